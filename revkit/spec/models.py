"""The pydantic models of a spec file: ``[model]``, ``[prior]``, ``[objective]``, ``[data]``,
``[train]``, ``[eval]`` and ``[output]``.

Component tables (each ``[[model.layers]]`` entry, ``[prior]``, ``[objective]``, ``[data]``) hold a
few common keys (``block``/``kind``, ``repeat``, ``batch_size``, …); every other key belongs to the
registered component and is validated by its ``Params`` model, whose instance the table keeps in
:attr:`ComponentSpec.params`. :func:`revkit.spec.load_spec_dict` fills it from the registries, so
build a :class:`Spec` with that function rather than with ``Spec.model_validate``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, Strict, field_validator, model_validator

from revkit.limits import MAX_BATCH, SAMPLES_OR_NONE, SEED, TEMPERATURE
from revkit.paths import path_problem
from revkit.spec.dump import dumps, spec_to_dict
from revkit.spec.errors import FieldError


def _check_path(value: str | None) -> str | None:
    """A path field's value, or ValueError saying why it is not a usable path (see revkit.paths)."""
    if value is not None:
        problem = path_problem(value)
        if problem:
            raise ValueError(f"the path {problem}")
    return value


class Section(BaseModel):
    """Base of every table of a spec: unknown keys are errors, floats must be finite, and values
    are not coerced between TOML types (``true`` is not the integer 1, ``"5"`` is not a number,
    ``"yes"`` is not a boolean; an integer is accepted where a float is expected)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    #: fields that are not TOML keys of the table (hidden from error messages and the schema).
    HIDDEN_FIELDS: ClassVar[tuple[str, ...]] = ()


class NoComponentParams(BaseModel):
    """Placeholder ``params`` of a component table before the registry validated it."""

    model_config = ConfigDict(extra="forbid")


class ComponentSpec(Section):
    """A table that names a registered component; its other keys are the component's ``Params``."""

    HIDDEN_FIELDS: ClassVar[tuple[str, ...]] = ("params",)
    #: the key that names the component (``block`` or ``kind``).
    NAME_KEY: ClassVar[str] = "kind"
    #: what the component is called in messages (``block``, ``prior``, ``data source``).
    LABEL: ClassVar[str] = "component"
    #: attribute of :class:`revkit.plugins.Registries` that holds this kind of component.
    REGISTRY: ClassVar[str] = ""

    params: SerializeAsAny[BaseModel] = Field(
        default_factory=NoComponentParams,
        description="the component's own parameters, validated by its registered Params model",
    )

    @property
    def name(self) -> str:
        """The registered name of the component (the value of ``block`` or ``kind``)."""
        return str(getattr(self, self.NAME_KEY))

    def kwargs(self) -> dict[str, Any]:
        """The component's keyword parameters: every field of its ``Params`` (defaults included)."""
        return {key: getattr(self.params, key) for key in type(self.params).model_fields}

    def given(self) -> frozenset[str]:
        """The parameters the spec set explicitly (the others take the component's defaults)."""
        return frozenset(self.params.model_fields_set)


class LayerSpec(ComponentSpec):
    """One ``[[model.layers]]`` table: a registered block, repeated ``repeat`` times."""

    NAME_KEY: ClassVar[str] = "block"
    LABEL: ClassVar[str] = "block"
    REGISTRY: ClassVar[str] = "blocks"

    block: str = Field(description="a registered block name, e.g. 'affine_coupling'; `revkit plugins` lists them")
    repeat: int = Field(
        1, ge=1, le=10_000,
        description="number of copies of this block; copies alternate the block's `flip` field "
                    "when it has one and the spec leaves it out",
    )
    memory_saving: bool | None = Field(
        None,
        description="recompute this layer's activations from its outputs during backward instead of storing "
                    "them (blocks with an analytic inverse only); left out: train.memory_saving",
    )


class PriorSpec(ComponentSpec):
    """``[prior]``: the density on the flow's latent."""

    LABEL: ClassVar[str] = "prior"
    REGISTRY: ClassVar[str] = "priors"

    kind: str = Field("standard_normal", description="a registered prior, e.g. 'standard_normal', 'class_gaussian'")


class ObjectiveSpec(ComponentSpec):
    """``[objective]``: what training minimises."""

    LABEL: ClassVar[str] = "objective"
    REGISTRY: ClassVar[str] = "objectives"

    kind: str = Field("max_likelihood", description="a registered objective, e.g. 'max_likelihood'")


class DataSpec(ComponentSpec):
    """``[data]``: a registered data source plus the loader settings common to all sources."""

    LABEL: ClassVar[str] = "data source"
    REGISTRY: ClassVar[str] = "datasets"

    kind: str = Field(description="a registered data source, e.g. 'mnist'")
    root: str | None = Field(
        None, min_length=1,
        description="data folder (relative to the working directory); left out: $REVKIT_DATA, "
                    "else ~/.cache/revkit/data",
    )
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="training batch size")
    test_batch_size: int = Field(500, ge=1, le=MAX_BATCH, description="evaluation batch size")
    num_workers: int = Field(0, ge=0, description="data-loader worker processes (0: load in the main process)")
    pad: int = Field(0, ge=0, le=1024, description="zero-pad images by this many pixels on each side")
    shift: int = Field(
        0, ge=0, le=1024,
        description="augmentation: translate each training image by a random whole number of pixels in "
                    "[-shift, shift] along each axis, zero-filled (after pad; the test split is not shifted)",
    )
    labels_per_class: int | None = Field(
        None, ge=1, le=1_000_000,
        description="semi-supervised data: keep the labels of only this many training images per class (a "
                    "seeded, balanced choice) and mark the others unlabelled (label -1); the test split keeps "
                    "every label; left out: every training label is kept",
    )
    labels_seed: int = SEED.field(
        0, "with labels_per_class: seed of the choice of the labelled images (independent of train.seed, so "
           "runs with different seeds see the same labels)",
    )
    labelled_only: bool = Field(
        False, description="with labels_per_class: train on the labelled images only (the supervised baseline "
                           "on the same labels)",
    )
    labelled_repeat: int = Field(
        1, ge=1, le=100_000,
        description="with labels_per_class: list each labelled training image this many times per epoch, so "
                    "batches hold more of the few labelled images among the unlabelled ones",
    )

    @model_validator(mode="after")
    def _semi_supervised_keys(self) -> DataSpec:
        if self.labels_per_class is None:
            for key, value, default, does in (
                ("labelled_only", self.labelled_only, False, "keeps only the labelled images"),
                ("labelled_repeat", self.labelled_repeat, 1, "repeats the labelled images"),
                ("labels_seed", self.labels_seed, 0, "seeds the choice of the labelled images"),
            ):
                if value != default:
                    raise FieldError(key, f"{key} = {str(value).lower()} {does} of labels_per_class, which is not "
                                          f"set; set labels_per_class (e.g. 100) or leave {key} out")
        elif self.labelled_only and self.labelled_repeat != 1:
            raise FieldError("labelled_repeat", "labelled_repeat oversamples the labelled images among the "
                                                "unlabelled ones, but labelled_only = true keeps no unlabelled "
                                                "image; leave labelled_repeat out (or set labelled_only = false)")
        return self

    @field_validator("root")
    @classmethod
    def _root_is_a_path(cls, value: str | None) -> str | None:
        return _check_path(value)


Dim = Annotated[int, Strict(), Field(ge=1)]


class ModelSpec(Section):
    """``[model]``: the model, of a registered kind (``kind``; ``revkit plugins`` lists them). The
    kind ``"flow"`` is the list of layers in data → latent order; another kind reads its own table
    ``[model.<kind>]``, validated by the kind's ``Params`` (:class:`revkit.model.ModelKind`)."""

    HIDDEN_FIELDS: ClassVar[tuple[str, ...]] = ("options",)

    kind: str = Field(
        "flow", min_length=1,
        description="a registered model kind: 'flow' (the layers are a normalizing flow) or another kind, "
                    "described by its table [model.<kind>]; `revkit plugins` lists them",
    )

    # Strict(False) on the tuple only: a TOML array becomes a tuple; its items stay strict
    input_shape: Annotated[tuple[Dim, ...], Strict(False), Field(min_length=1, max_length=4)] | None = Field(
        None,
        description="per-sample data shape, e.g. [1, 28, 28]; when given it must equal the data's "
                    "shape after data.pad",
    )
    conditional: bool = Field(False, description="pass one-hot class labels as context to conditional blocks")
    layers: list[LayerSpec] = Field(
        default_factory=list,
        description="the blocks, in data → latent order (at least 1 item for kinds that need layers, such as 'flow')",
    )
    options: SerializeAsAny[BaseModel] | None = Field(
        None, description="the kind's own table [model.<kind>], validated by the kind's Params model"
    )


Beta = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]

_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


class TrainSpec(Section):
    """``[train]``: optimisation, schedule, logging and checkpoints."""

    seed: int = SEED.field(0, "random seed (initialisation, data order)")
    device: str = Field("auto", description="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)")
    steps: int = Field(2000, ge=1, description="optimizer steps (one step = every update in objective.update_order())")
    lr: float = Field(1e-3, gt=0.0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled weight decay (AdamW)")
    betas: Annotated[tuple[Beta, Beta], Strict(False)] = Field((0.9, 0.999), description="Adam's beta1 and beta2, each in [0, 1)")
    schedule: Literal["none", "cosine", "step"] = Field("none", description="learning-rate schedule after warm-up")
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up from 0 over this many steps")
    step_size: int | None = Field(None, ge=1, description="for schedule = 'step': steps between decays")
    gamma: float = Field(0.5, gt=0.0, le=1.0, description="for schedule = 'step': factor per decay")
    grad_clip: float = Field(0.0, ge=0.0, description="maximum global gradient norm; 0 disables clipping")
    log_every: int = Field(50, ge=1, description="steps between metric lines in metrics.jsonl")
    checkpoint_every: int = Field(500, ge=0, description="steps between checkpoints; 0: only at the end")
    keep_checkpoints: int = Field(3, ge=1, description="how many of the newest checkpoints to keep")
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="a NaN/inf loss or gradient: 'stop' (name the layer, keep the last good checkpoint, "
                            "exit) or 'skip' the update (counted as skipped_updates in the metrics)"
    )
    eval_every: int = Field(0, ge=0, description="steps between evaluations; 0: evaluate only at the end")
    time_limit_minutes: float = Field(
        0.0, ge=0.0, description="0: no limit; else stop early, checkpoint and evaluate"
    )
    memory_saving: bool = Field(
        False,
        description="memory-saving execution for every layer: rebuild activations from outputs during backward "
                    "instead of storing them (flat memory in depth, same gradients); every block needs an "
                    "analytic inverse; a layer's own memory_saving overrides it",
    )
    compile: bool = Field(
        False, description="compile the training loss with torch.compile (faster steps after a slow first one)"
    )
    precision: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="'bfloat16': the training forward pass and losses run under autocast (convolutions and matrix "
                    "products in bfloat16; weights, gradients, optimizer and evaluation stay float32)",
    )
    ema_decay: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="d > 0: keep an exponential moving average of the weights (a ← d·a + (1 − d)·w after every "
                    "step); evaluation and the final model use it; 0: off",
    )

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(f"{value!r} is not a device; allowed: 'cpu', 'cuda', 'cuda:N' (N = 0, 1, …) or 'auto'")
        return value

    @model_validator(mode="after")
    def _schedule_needs(self) -> TrainSpec:
        if self.schedule == "step" and self.step_size is None:
            raise FieldError("step_size", "schedule = 'step' needs step_size (steps between decays), e.g. 1000")
        return self


#: pictures the final evaluation can write (see revkit/eval/report.py).
Picture = Literal["samples", "reconstructions", "interpolations", "dimension_sweeps", "prior_stds"]
#: score backends of the final evaluation.
Score = Literal["mnist_classifier", "inception"]


class EvalSpec(Section):
    """``[eval]``: the final (and periodic) evaluation: pictures and scores."""

    samples: int = SAMPLES_OR_NONE.field(64, "samples in the sample grid (0: none)")
    temperature: float = TEMPERATURE.field(1.0, "scale of the prior's std when sampling")
    reconstructions: int = Field(8, ge=0, le=10_000, description="test images in the reconstruction grid (0: none)")
    test_batches: int = Field(0, ge=0, description="test batches to evaluate; 0: the whole test split")
    pictures: list[Picture] | None = Field(
        None,
        description="PNGs to write: 'samples' (a row per class for class-conditional models), 'reconstructions' "
                    "(original / restricted to the prior's active dimensions / full), 'interpolations' "
                    "(between test images of the same and of different classes), 'dimension_sweeps' (per class, "
                    "the dimensions of largest prior std over mean ± 2·std), 'prior_stds' (sorted stds per "
                    "class); left out: samples and reconstructions, plus the other three for class-conditional "
                    "models",
    )
    scores: list[Score] = Field(
        default_factory=list,
        description="scores for metrics.json: 'mnist_classifier' (sample_class_accuracy and fid_mnist_classifier "
                    "from a small MNIST classifier revkit trains once and caches; MNIST data only), 'inception' "
                    "(fid_inception through torch-fidelity, only with Inception weights on disk: never downloaded)",
    )
    score_samples: int = Field(
        10000, ge=10, le=1_000_000,
        description="samples drawn for the scores (balanced over the classes of a class-conditional model)",
    )
    interpolation_pairs: int = Field(
        3, ge=1, le=50, description="pairs of test images per kind (same class, different classes) to interpolate"
    )
    interpolation_steps: int = Field(8, ge=2, le=64, description="decoded points per interpolation, both ends included")
    sweep_dims: int = Field(3, ge=1, le=32, description="dimensions of largest prior std swept per class")
    sweep_steps: int = Field(9, ge=2, le=64, description="points per sweep from mean − 2·std to mean + 2·std")
    inception_weights: str | None = Field(
        None, min_length=1,
        description="local file of torch-fidelity's Inception weights for the 'inception' score; left out: "
                    "the torch hub cache's checkpoints folder",
    )

    @field_validator("inception_weights")
    @classmethod
    def _weights_is_a_path(cls, value: str | None) -> str | None:
        return _check_path(value)

    @field_validator("pictures", "scores")
    @classmethod
    def _no_repeats(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            repeated = sorted({v for v in value if value.count(v) > 1})
            if repeated:
                names = ", ".join(repr(v) for v in repeated)
                raise ValueError(f"{names} listed more than once; list each at most once")
        return value


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class LoggerSpec(ComponentSpec):
    """One experiment logger of ``[output]``: ``loggers = ["tensorboard"]``, or a table
    ``[[output.loggers]]`` with ``kind`` and the logger's own keys (validated by its ``Params``)."""

    LABEL: ClassVar[str] = "logger"
    REGISTRY: ClassVar[str] = "loggers"

    kind: str = Field(description="a registered logger, e.g. 'tensorboard' (built in) or 'mlflow' (revkit-mlflow)")


class OutputSpec(Section):
    """``[output]``: where the run folder goes, and the experiment loggers a run writes to."""

    dir: str = Field("runs", min_length=1, description="run folders go to dir/<name>")
    name: str = Field("", max_length=200, description="run folder name; empty: '<spec stem>-<YYYYmmdd-HHMMSS>'")
    loggers: list[LoggerSpec] = Field(
        default_factory=list,
        description="experiment loggers besides metrics.jsonl (always written): names such as 'tensorboard', or "
                    "tables with kind and the logger's keys; `revkit plugins` lists them",
    )

    @field_validator("loggers")
    @classmethod
    def _loggers_once(cls, value: list[LoggerSpec]) -> list[LoggerSpec]:
        names = [logger.kind for logger in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repr(n) for n in repeated)} listed more than once; list each logger once")
        return value

    @field_validator("dir")
    @classmethod
    def _dir_is_a_path(cls, value: str) -> str:
        return _check_path(value) or value

    @field_validator("name")
    @classmethod
    def _name_characters(cls, value: str) -> str:
        if value and not _NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a run name; use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit (no '/' or spaces)"
            )
        return value


class Spec(Section):
    """A whole spec file. Build it with :func:`revkit.spec.load_spec` or
    :func:`revkit.spec.load_spec_dict`, which validate the component tables with the registries."""

    model: ModelSpec = Field(description="the invertible network")
    prior: PriorSpec = Field(default_factory=PriorSpec, description="the density on the latent")
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec, description="what training minimises")
    data: DataSpec = Field(description="the data source and loader settings")
    train: TrainSpec = Field(default_factory=TrainSpec, description="optimisation and checkpoints")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="evaluation")
    output: OutputSpec = Field(default_factory=OutputSpec, description="the run folder")

    def to_dict(self) -> dict[str, Any]:
        """The spec as the TOML document it stands for (component parameters flattened into their
        tables; unset component parameters and None values left out)."""
        return spec_to_dict(self)

    def to_toml(self) -> str:
        """The spec as TOML text; :func:`revkit.spec.load_spec_dict` of its parse gives it back."""
        return dumps(self.to_dict())


#: the component tables of a spec outside ``model.layers``, by section name.
COMPONENT_SECTIONS: dict[str, type[ComponentSpec]] = {
    "prior": PriorSpec,
    "objective": ObjectiveSpec,
    "data": DataSpec,
}
