"""From a validated :class:`~revkit.spec.Spec` to a model (of the registered kind ``model.kind``),
its prior, the objective and the data source.

Shapes are tracked per sample (no batch dimension) from the data's shape through each block's
``output_shape``, so a wrong architecture fails here — as a :class:`~revkit.errors.SpecError` at
``model.layers[i]`` naming the shape the layer got — and never inside training. Building reads no
data files: a data source's construction is cheap and its ``info`` static, so ``revkit validate``
and ``revkit inspect`` work without the data.

A *factor-out* block (one with ``attach(then)`` and ``kept_shape``, such as ``split``) takes the
layers after it: they are built into a :class:`~revkit.Sequential` on its ``kept_shape`` and
attached, so ``a → split → b → c`` is ``a → split(then = b → c)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revkit.data.base import DataInfo, DataSource, default_root
from revkit.data.loaders import padded_info
from revkit.errors import RevkitError, ShapeError, SpecError
from revkit.invertible import Invertible, Shape
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.plugins import get_registries
from revkit.plugins.registry import Registries
from revkit.priors.base import Prior
from revkit.sequential import Sequential
from revkit.spec.components import registry_for, unknown_component
from revkit.spec.errors import Loc, format_path
from revkit.spec.models import ComponentSpec, LayerSpec, Spec

#: errors a component's constructor may raise for parameters or shapes it cannot take.
CONSTRUCTION_ERRORS = (RevkitError, ShapeError, ValueError)


def allocation_failure(exc: BaseException) -> bool:
    """True for torch's (or Python's) failure to allocate a tensor: parameters too large for memory."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "allocate" in str(exc))


def too_large(what: str, exc: BaseException) -> str:
    """The message for a component whose parameters do not fit in memory."""
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return f"{what} needs more memory than this machine has ({detail}); use smaller sizes (hidden, repeat, …)"


@dataclass
class Built:
    """Everything a spec describes, ready to train: the model (with its prior attached), the
    objective (already ``setup``), the data source and the data's info (after ``data.pad``)."""

    model: Model
    objective: Objective
    source: DataSource
    info: DataInfo


@dataclass(frozen=True)
class PlannedLayer:
    """One block after ``repeat`` expansion: ``copy`` of ``copies`` of ``spec.model.layers[index]``."""

    index: int
    copy: int
    copies: int
    name: str
    component: Any
    kwargs: dict[str, Any]
    #: the TOML path of the layer list (a model kind's own list, e.g. ``model.<kind>.<list>``).
    path: Loc = ("model", "layers")
    #: run this layer with memory-saving execution, and the spec key that asked for it.
    memory_saving: bool = False
    memory_saving_key: str = "train.memory_saving"

    @property
    def where(self) -> str:
        return format_path((*self.path, self.index))

    @property
    def label(self) -> str:
        copy = f" (copy {self.copy + 1} of {self.copies})" if self.copies > 1 else ""
        return f"block '{self.name}'{copy}"


def fmt_shape(shape: Shape) -> str:
    """``(1, 28, 28)`` → ``'(1, 28, 28)'``; ``(2,)`` → ``'(2,)'``."""
    return str(tuple(int(s) for s in shape))


def _component(spec_cls: type[ComponentSpec], table: ComponentSpec, registries: Registries, loc: Loc) -> Any:
    component = registry_for(spec_cls, registries).get(table.name)
    if component is None:
        raise unknown_component(spec_cls, table.name, registries, loc)
    return component


# -- data ----------------------------------------------------------------------------------------
def resolve_root(spec: Spec) -> Path:
    """``data.root`` (``~`` expanded, relative to the working directory), else the default root
    (``$REVKIT_DATA``, else the per-user cache folder)."""
    return Path(spec.data.root).expanduser() if spec.data.root else default_root()


def build_data(spec: Spec, registries: Registries | None = None) -> DataSource:
    """The data source ``[data]`` names, as ``Source(root=..., **params)`` (``root=None`` when
    the source reads no files). Reads no data."""
    regs = registries if registries is not None else get_registries()
    cls = _component(type(spec.data), spec.data, regs, ("data",))
    root = resolve_root(spec) if getattr(cls, "needs_root", True) else None
    try:
        return cls(root=root, **spec.data.kwargs())
    except CONSTRUCTION_ERRORS as exc:
        raise SpecError("data", f"data source '{spec.data.name}' cannot be set up: {exc}") from exc


def data_info(spec: Spec, source: DataSource) -> DataInfo:
    """The source's :class:`DataInfo` after ``data.pad`` (images grow by ``2·pad`` per side pair)."""
    try:
        return padded_info(source.info, spec.data.pad)
    except RevkitError as exc:
        raise SpecError("data.pad", str(exc)) from exc


def check_input_shape(spec: Spec, info: DataInfo) -> Shape:
    """The flow's input shape: the data's; ``model.input_shape``, when given, must equal it."""
    shape = tuple(int(s) for s in info.shape)
    given = spec.model.input_shape
    if given is not None and tuple(given) != shape:
        padded = f" after data.pad = {spec.data.pad}" if spec.data.pad else ""
        raise SpecError(
            "model.input_shape",
            f"the spec says {fmt_shape(given)} but data source '{info.name}' gives per-sample shape "
            f"{fmt_shape(shape)}{padded}; set model.input_shape = {list(shape)} or leave it out",
        )
    return shape


# -- the network ---------------------------------------------------------------------------------
def _with_flip(kwargs: dict[str, Any], layer: LayerSpec, copy: int) -> dict[str, Any]:
    """Copy ``copy`` of a repeated block: alternate ``flip`` unless the spec set it."""
    fields = type(layer.params).model_fields
    if "flip" in fields and "flip" not in layer.given() and isinstance(kwargs.get("flip"), bool):
        return {**kwargs, "flip": kwargs["flip"] != (copy % 2 == 1)}
    return kwargs


def plan_layers(spec: Spec, registries: Registries | None = None) -> list[PlannedLayer]:
    """``spec.model.layers`` with ``repeat`` expanded, in data → latent order."""
    return plan_layer_list(spec.model.layers, ("model", "layers"), registries, spec.train.memory_saving)


def plan_layer_list(
    layers: list[LayerSpec], path: Loc, registries: Registries | None = None, memory_saving: bool = False
) -> list[PlannedLayer]:
    """A list of layer tables found at the TOML path ``path``, with ``repeat`` expanded; a layer
    without its own ``memory_saving`` takes ``memory_saving`` (``train.memory_saving``)."""
    regs = registries if registries is not None else get_registries()
    planned = []
    for index, layer in enumerate(layers):
        component = _component(LayerSpec, layer, regs, (*path, index))
        base = layer.kwargs()
        saving = memory_saving if layer.memory_saving is None else layer.memory_saving
        key = ("train.memory_saving" if layer.memory_saving is None
               else format_path((*path, index, "memory_saving")))
        for copy in range(layer.repeat):
            planned.append(PlannedLayer(index, copy, layer.repeat, layer.block, component,
                                        _with_flip(base, layer, copy), tuple(path), saving, key))
    return planned


def _is_factor_out(block: Invertible) -> bool:
    return callable(getattr(block, "attach", None)) and hasattr(block, "kept_shape")


def _construct(item: PlannedLayer, shape: Shape, context_size: int) -> tuple[Invertible, Shape]:
    """Build one block on ``shape``; return it and its output shape."""
    cls = item.component
    ranks = getattr(cls, "supported_ranks", None)
    if ranks is not None and len(shape) not in ranks:
        kinds = {1: "vectors (D,)", 3: "images (C, H, W)"}
        allowed = " or ".join(kinds.get(r, f"rank-{r} tensors") for r in ranks)
        raise SpecError(item.where, f"{item.label} takes {allowed}, but its input has per-sample "
                                    f"shape {fmt_shape(shape)}")
    kwargs = dict(item.kwargs)
    if context_size and getattr(cls, "conditional", False):
        kwargs["context_size"] = context_size
    try:
        block = cls(tuple(shape), **kwargs)
        out = tuple(int(s) for s in block.output_shape(tuple(shape)))
    except CONSTRUCTION_ERRORS as exc:
        raise SpecError(item.where, f"{item.label} cannot take input of per-sample shape "
                                    f"{fmt_shape(shape)}: {exc}") from exc
    except (MemoryError, RuntimeError) as exc:
        if not allocation_failure(exc):
            raise
        raise SpecError(item.where, too_large(f"{item.label} on per-sample shape {fmt_shape(shape)}", exc)) from exc
    return block, out


def _check_memory_saving(item: PlannedLayer, block: Invertible) -> None:
    if item.memory_saving and not block.analytic_inverse:
        raise SpecError(
            item.memory_saving_key,
            f"memory-saving execution rebuilds a layer's input with its analytic inverse, but {item.label} at "
            f"{item.where} has none (its inverse is iterative); set memory_saving = false on that layer "
            f"(memory_saving = true on each of the others instead of train.memory_saving)",
        )


def build_chain(planned: list[PlannedLayer], shape: Shape, context_size: int = 0) -> Sequential:
    """The blocks of ``planned`` on input ``shape``; a factor-out block takes the rest as its
    continuation (built on its ``kept_shape``). Layers planned with ``memory_saving`` run with
    memory-saving execution (:meth:`Sequential.set_memory_saving`); a factor-out block itself stores
    nothing worth saving, and the layers of its continuation follow their own setting."""
    blocks: list[Invertible] = []
    saving: list[bool] = []
    current = tuple(shape)
    for position, item in enumerate(planned):
        block, out = _construct(item, current, context_size)
        blocks.append(block)
        if _is_factor_out(block):
            saving.append(False)
            rest = planned[position + 1:]
            if rest:
                block.attach(build_chain(rest, tuple(block.kept_shape), context_size))  # type: ignore[operator]
            break
        _check_memory_saving(item, block)
        saving.append(item.memory_saving)
        current = out
    chain = Sequential(blocks, tuple(shape))
    chain.set_memory_saving(saving)
    return chain


def build_prior(spec: Spec, latent_shape: Shape, info: DataInfo, registries: Registries | None = None) -> Prior:
    """``Prior(latent_shape, **params)``; a ``classes`` parameter left None takes the data's
    number of classes."""
    regs = registries if registries is not None else get_registries()
    cls = _component(type(spec.prior), spec.prior, regs, ("prior",))
    kwargs = spec.prior.kwargs()
    if "classes" in kwargs and kwargs["classes"] is None and info.classes > 0:
        kwargs["classes"] = info.classes
    given = kwargs.get("classes")
    if isinstance(given, int) and not isinstance(given, bool) and 0 < given < info.classes:
        raise SpecError("prior.classes", f"prior.classes = {given}, but data source '{info.name}' has "
                                         f"{info.classes} classes (labels 0…{info.classes - 1}); set "
                                         f"prior.classes = {info.classes} or leave it out")
    try:
        return cls(tuple(latent_shape), **kwargs)
    except (MemoryError, RuntimeError) as exc:
        if not allocation_failure(exc):
            raise
        raise SpecError("prior", too_large(f"prior '{spec.prior.name}'", exc)) from exc
    except CONSTRUCTION_ERRORS as exc:
        labels = f"{info.classes} classes" if info.classes else "no labels"
        raise SpecError("prior", f"prior '{spec.prior.name}' cannot be built on the latent of shape "
                                 f"{fmt_shape(latent_shape)} (data '{info.name}' has {labels}): {exc}") from exc


def build_model(spec: Spec, info: DataInfo, registries: Registries | None = None) -> Model:
    """The model of ``[model]`` on the data's shape: the registered kind ``model.kind`` builds it
    (:class:`revkit.model.ModelKind`)."""
    regs = registries if registries is not None else get_registries()
    kind = regs.models.get(spec.model.kind)
    if kind is None:
        raise SpecError("model.kind", f"unknown model kind '{spec.model.kind}'; installed model kinds: "
                                      f"{', '.join(repr(n) for n in regs.models.names()) or '(none)'}")
    return kind.build(spec, info, regs)


def build_objective(spec: Spec, model: Model, info: DataInfo, registries: Registries | None = None) -> Objective:
    """``Objective(**params)``, then ``objective.setup(model, info)``."""
    regs = registries if registries is not None else get_registries()
    cls = _component(type(spec.objective), spec.objective, regs, ("objective",))
    try:
        objective = cls(**spec.objective.kwargs())
        objective.setup(model, info)
    except (MemoryError, RuntimeError) as exc:
        if not allocation_failure(exc):
            raise
        raise SpecError("objective", too_large(f"objective '{spec.objective.name}'", exc)) from exc
    except CONSTRUCTION_ERRORS as exc:
        raise SpecError("objective", f"objective '{spec.objective.name}' cannot be set up: {exc}") from exc
    return objective


def check_unlabelled(spec: Spec, model: Model, objective: Objective, info: DataInfo,
                     registries: Registries | None = None) -> None:
    """Semi-supervised data (``data.labels_per_class`` without ``labelled_only``) mark most training
    labels :data:`~revkit.data.base.UNLABELLED` (−1): refuse every part of the spec that would read
    such a label as a class — a class-conditional model or prior, or an objective that does not
    declare :attr:`~revkit.objectives.base.Objective.accepts_unlabelled`.

    Raises:
        SpecError: at ``data.labels_per_class``, naming the part that reads every label and what to change.
    """
    data = spec.data
    if data.labels_per_class is None or data.labelled_only:
        return
    where = "data.labels_per_class"
    unlabelled = (f"data.labels_per_class = {data.labels_per_class} leaves most training images unlabelled "
                  "(label -1)")
    if info.classes < 1:
        raise SpecError(where, f"data source '{info.name}' has no labels to keep; leave labels_per_class out")
    if model.conditional:
        raise SpecError(where, f"{unlabelled}, but model.conditional = true passes every image's label to the "
                               "blocks; set model.conditional = false, data.labelled_only = true, or leave "
                               "labels_per_class out")
    prior = model.prior
    if prior is not None and prior.conditional:
        raise SpecError(where, f"{unlabelled}, but prior '{spec.prior.name}' has a component per class and reads "
                               "every image's label; use an unconditional prior (e.g. 'standard_normal'), "
                               "data.labelled_only = true, or leave labels_per_class out")
    if not objective.accepts_unlabelled:
        regs = registries if registries is not None else get_registries()
        takes = [n for n in regs.objectives.names() if getattr(regs.objectives.get(n), "accepts_unlabelled", False)]
        allowed = ", ".join(f"'{n}'" for n in takes) or "(none installed)"
        raise SpecError(where, f"{unlabelled}, but objective '{spec.objective.name}' reads every image's label "
                               f"with these parameters (its accepts_unlabelled is false); objectives that take unlabelled "
                               f"images: {allowed}; or set data.labelled_only = true, or leave labels_per_class "
                               "out")


def check_precision(spec: Spec, model: Model) -> None:
    """Refuse ``train.precision = "bfloat16"`` for a model with memory-saving layers: they rebuild each
    input from its output by the block's inverse, and an inverse computed in bfloat16 is not the
    inverse of the bfloat16 forward (``exp(-s)`` and ``exp(s)`` rounded apart), so the rebuilt
    activations, and the gradients taken at them, are off by far more than the precision's rounding.

    Raises:
        SpecError: at ``train.precision``, saying what to change.
    """
    precision = getattr(spec.train, "precision", "float32")
    if precision == "float32":
        return
    marked = any(isinstance(m, Sequential) and any(m.memory_saving) for m in model.modules())
    if marked:
        raise SpecError("train.precision", f"train.precision = '{precision}' cannot train memory-saving layers "
                                           "(train.memory_saving or a layer's memory_saving): their inputs are "
                                           "rebuilt by inverses, which in bfloat16 do not undo the bfloat16 "
                                           "forward; use precision = 'float32' or turn memory_saving off")


def build(spec: Spec, registries: Registries | None = None) -> Built:
    """Data source, model (with prior) and objective of a spec, without reading data files; a
    semi-supervised spec is checked by :func:`check_unlabelled`."""
    regs = registries if registries is not None else get_registries()
    source = build_data(spec, regs)
    info = data_info(spec, source)
    model = build_model(spec, info, regs)
    objective = build_objective(spec, model, info, regs)
    check_unlabelled(spec, model, objective, info, regs)
    check_precision(spec, model)
    return Built(model=model, objective=objective, source=source, info=info)
