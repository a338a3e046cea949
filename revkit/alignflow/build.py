"""The model kind ``"aligned_flows"``: ``[model.aligned_flows]`` (two layer lists) → :class:`~revkit.alignflow.model.AlignedFlows`,
each list planned and built like ``[[model.layers]]`` (:func:`revkit.build.plan_layer_list`,
:func:`revkit.build.build_chain`) on the data's shape, with ``[prior]`` on the shared latent."""

from __future__ import annotations

from typing import ClassVar

from revkit.alignflow.model import AlignedFlows
from revkit.alignflow.params import AlignedFlowsParams
from revkit.build import build_chain, build_prior, check_input_shape, fmt_shape, plan_layer_list
from revkit.data.base import DataInfo
from revkit.errors import SpecError
from revkit.plugins.registry import Registries
from revkit.spec.models import Spec

KIND = "aligned_flows"


class AlignedFlowsKind:
    """Two flows onto one latent (AlignFlow), described by ``[model.aligned_flows]`` (``flow_a``, ``flow_b``);
    no ``[[model.layers]]``."""

    Params: ClassVar[type[AlignedFlowsParams]] = AlignedFlowsParams
    layer_lists: ClassVar[tuple[str, ...]] = ("flow_a", "flow_b")
    needs_layers: ClassVar[bool] = False

    @classmethod
    def build(cls, spec: Spec, info: DataInfo, registries: Registries) -> AlignedFlows:
        cfg = spec.model.options
        if not isinstance(cfg, AlignedFlowsParams):
            raise SpecError(f"model.{KIND}", f"model.kind = '{KIND}' needs a [model.{KIND}] table")
        if spec.model.conditional:
            raise SpecError("model.conditional", f"model kind '{KIND}' has no conditional blocks; set it to false")
        shape = check_input_shape(spec, info)
        nets = []
        for name in cls.layer_lists:
            planned = plan_layer_list(getattr(cfg, name), ("model", KIND, name), registries, spec.train.memory_saving)
            nets.append(build_chain(planned, shape))
        latent_a, latent_b = (tuple(n.output_shape(shape)) for n in nets)
        if latent_a != latent_b:
            raise SpecError(f"model.{KIND}.flow_b", f"the two flows must share one latent space: flow_a maps "
                                                    f"{fmt_shape(shape)} to {fmt_shape(latent_a)}, flow_b to "
                                                    f"{fmt_shape(latent_b)}")
        prior = build_prior(spec, latent_a, info, registries)
        return AlignedFlows(nets[0], nets[1], shape, prior, classes=info.classes)
