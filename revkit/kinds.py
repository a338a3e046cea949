"""Internal plugin: the model kind ``"flow"`` — ``[[model.layers]]`` built into a :class:`~revkit.Flow`
with the ``[prior]`` on its latent."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from revkit.build import build_chain, build_prior, check_input_shape, plan_layers
from revkit.data.base import DataInfo
from revkit.errors import RevkitError, SpecError
from revkit.flow import Flow
from revkit.plugins.hookspecs import Register, hookimpl
from revkit.plugins.registry import Registries
from revkit.spec.models import Spec


class FlowKind:
    """A normalizing flow: the blocks of ``[[model.layers]]`` in data → latent order, with the prior of
    ``[prior]`` on the latent; ``model.conditional`` passes one-hot labels to conditional blocks."""

    Params: ClassVar[type[BaseModel] | None] = None
    layer_lists: ClassVar[tuple[str, ...]] = ()
    needs_layers: ClassVar[bool] = True

    @classmethod
    def build(cls, spec: Spec, info: DataInfo, registries: Registries) -> Flow:
        shape = check_input_shape(spec, info)
        if spec.model.conditional and info.classes < 1:
            raise SpecError("model.conditional", f"a conditional model needs class labels, but data source "
                                                 f"'{info.name}' has none; set model.conditional = false")
        context_size = info.classes if spec.model.conditional else 0
        net = build_chain(plan_layers(spec, registries), shape, context_size)
        latent = net.output_shape(shape)
        prior = build_prior(spec, latent, info, registries)
        try:
            return Flow(net, shape, prior=prior, classes=info.classes, conditional=spec.model.conditional)
        except RevkitError as exc:
            raise SpecError("prior", str(exc)) from exc


@hookimpl
def register_models(register: Register) -> None:
    register("flow", FlowKind)
