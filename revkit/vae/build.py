"""The model kind ``"vae"``: from ``[model.vae]`` to a :class:`~revkit.vae.model.VAE`: the encoder, the decoder, and the
posterior flow built by the same planner and chain builder as a top-level flow
(:func:`revkit.build.plan_layer_list`, :func:`revkit.build.build_chain`), on the latent ``(D,)``,
with ``model.vae.context`` as the context size of conditional blocks."""

from __future__ import annotations

from typing import ClassVar

from revkit.build import build_chain, check_input_shape, plan_layer_list
from revkit.data.base import DataInfo
from revkit.errors import ShapeError, SpecError
from revkit.plugins.registry import Registries
from revkit.spec.models import Spec
from revkit.vae.model import VAE
from revkit.vae.networks import ConvDecoder, ConvEncoder, MLPDecoder
from revkit.vae.params import VAEParams

FLOW_PATH = ("model", "vae", "posterior_flow")


def build_vae(spec: Spec, info: DataInfo, registries: Registries | None = None) -> VAE:
    """The VAE of ``spec.model.vae`` on the data's per-sample shape."""
    cfg = spec.model.options
    if not isinstance(cfg, VAEParams):
        raise SpecError("model.vae", "model.kind = 'vae' needs a [model.vae] table")
    shape = check_input_shape(spec, info)
    try:
        encoder = ConvEncoder(shape, cfg.latent, cfg.channels, cfg.hidden, cfg.context)
        decoder = (ConvDecoder(cfg.latent, shape, cfg.channels, cfg.hidden) if cfg.decoder == "conv"
                   else MLPDecoder(cfg.latent, shape, cfg.hidden))
    except ShapeError as exc:
        raise SpecError("model.vae", f"data '{info.name}': {exc}") from exc
    planned = plan_layer_list(cfg.posterior_flow, FLOW_PATH, registries, spec.train.memory_saving)
    flow = build_chain(planned, (cfg.latent,), cfg.context)
    return VAE(shape, cfg.latent, encoder, decoder, flow)


class VAEKind:
    """A VAE with a flow posterior, described by ``[model.vae]`` (:class:`~revkit.vae.params.VAEParams`);
    it takes no ``[[model.layers]]``: its blocks are ``[[model.vae.posterior_flow]]``."""

    Params: ClassVar[type[VAEParams]] = VAEParams
    layer_lists: ClassVar[tuple[str, ...]] = ("posterior_flow",)
    needs_layers: ClassVar[bool] = False

    @classmethod
    def build(cls, spec: Spec, info: DataInfo, registries: Registries) -> VAE:
        return build_vae(spec, info, registries)
