r"""The discriminator contract: a network :math:`D: \mathcal X \to \mathbb R` that scores data-space samples.

Adversarial objectives (:mod:`revkit.objectives.adversarial`, :mod:`revkit.alignflow`) train a
discriminator against samples of the model's inverse. Discriminators are registered components
(hook ``register_discriminators``), built as ``Discriminator(input_shape, classes=K, **params)``:

* ``input_shape`` is the per-sample data shape (``(C, H, W)`` or ``(D,)``);
* ``classes = K > 0`` makes it class-conditional by projection (Miyato & Koyama, 2018):
  :math:`D(x, y) = w^\top \phi(x) + b + e_y^\top \phi(x)`, with :math:`\phi` the network's last
  features and :math:`e_y` a learned embedding of the label; ``classes = 0``: :math:`D(x) = w^\top\phi(x) + b`;
* ``forward(x, y=None) -> [B]`` returns raw scores (logits for the minimax and non-saturating losses,
  critic values for WGAN-GP).

A spec names one in ``[objective.discriminator]`` (``kind = "conv"`` plus the discriminator's own keys,
validated by its ``Params`` like any other component; :class:`DiscriminatorTable`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, ValidationInfo, model_validator
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from revkit.errors import FieldError, RevkitError, did_you_mean
from revkit.invertible import Shape

if TYPE_CHECKING:
    from revkit.plugins.registry import Registries


class DiscriminatorParams(BaseModel):
    """Base of every discriminator's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def maybe_spectral(module: nn.Module, on: bool) -> nn.Module:
    """``module`` with its weight spectrally normalized (one power iteration per training forward,
    :func:`torch.nn.utils.parametrizations.spectral_norm`) when ``on``."""
    return _spectral_norm(module) if on else module


class Discriminator(nn.Module):
    r"""Base class of discriminators (see the module docstring).

    Subclasses build the feature network :math:`\phi` and call :meth:`make_head` with its width; the
    head adds the linear score and, for ``classes > 0``, the projection term.

    Args:
        input_shape: per-sample data shape.
        classes: number of classes of a class-conditional discriminator (0: unconditional).
    """

    Params: ClassVar[type[DiscriminatorParams]] = DiscriminatorParams
    #: the per-sample ranks it takes (1: vectors, 3: images), or None for any.
    supported_ranks: ClassVar[tuple[int, ...] | None] = None

    def __init__(self, input_shape: Shape, classes: int = 0):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.classes = int(classes)
        ranks = type(self).supported_ranks
        if ranks is not None and len(self.input_shape) not in ranks:
            raise RevkitError(f"{type(self).__name__} takes per-sample shapes of rank {ranks}, "
                              f"got {self.input_shape}")
        if self.classes < 0:
            raise RevkitError(f"classes must be ≥ 0, got {classes}")

    def make_head(self, features: int, spectral: bool) -> None:
        """The score :math:`w^\\top\\phi + b` and, with classes, the label embedding :math:`e_y`."""
        self.score = maybe_spectral(nn.Linear(features, 1), spectral)
        self.embed = maybe_spectral(nn.Embedding(self.classes, features), spectral) if self.classes else None

    def features(self, x: Tensor) -> Tensor:
        """:math:`\\phi(x)`: ``[B, *input_shape] → [B, F]``."""
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Scores ``[B]`` of samples ``x`` (with labels ``y`` ``[B]`` when class-conditional)."""
        phi = self.features(x)
        out = self.score(phi).squeeze(-1)
        if self.embed is not None:
            if y is None:
                raise RevkitError(f"this discriminator is class-conditional ({self.classes} classes): pass labels y")
            out = out + (self.embed(y.long()) * phi).sum(dim=-1)
        return out


class DiscriminatorTable(BaseModel):
    """``[objective.discriminator]``: ``kind`` (a registered discriminator, default ``"conv"``) and that
    discriminator's own keys, validated by its ``Params``.

    The registries come from the validation context (``context={"registries": …}``, which the spec
    loader passes), else from the installed plugins. Errors name the key: an unknown ``kind`` with a
    did-you-mean and the installed names, an unknown or invalid parameter with what is allowed.
    """

    model_config = ConfigDict(extra="allow")

    kind: str = "conv"
    _component: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> DiscriminatorTable:
        registries = (info.context or {}).get("registries") if info is not None else None
        cls = lookup(self.kind, registries)
        params_cls = getattr(cls, "Params", DiscriminatorParams)
        raw = dict(self.model_extra or {})
        try:
            params_cls.model_validate_json(json.dumps(raw, default=str), strict=True)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = [p for p in first.get("loc", ()) if isinstance(p, str)]
            key = loc[0] if loc else "kind"
            if first.get("type") == "extra_forbidden":
                allowed = sorted(params_cls.model_fields)
                raise FieldError(key, f"unknown key '{key}'{did_you_mean(key, allowed)} for discriminator "
                                      f"'{self.kind}'; allowed keys: kind, {', '.join(allowed) or '(none)'}") from None
            raise FieldError(key, f"{first.get('msg', 'invalid value')} (got {first.get('input')!r})") from None
        self._component = cls
        return self

    def params(self) -> dict[str, Any]:
        """The discriminator's keyword parameters (its ``Params`` defaults filled in)."""
        params_cls = getattr(self.component, "Params", DiscriminatorParams)
        validated = params_cls.model_validate_json(json.dumps(dict(self.model_extra or {}), default=str), strict=True)
        return {k: getattr(validated, k) for k in type(validated).model_fields}

    @property
    def component(self) -> type[Discriminator]:
        if self._component is None:
            self._component = lookup(self.kind, None)
        return self._component

    def build(self, input_shape: Shape, classes: int = 0) -> Discriminator:
        """``Discriminator(input_shape, classes=classes, **params)``."""
        return self.component(tuple(input_shape), classes=classes, **self.params())


def lookup(name: str, registries: Registries | None = None) -> type[Discriminator]:
    """The discriminator registered as ``name`` (in ``registries``, default the installed plugins').

    Raises:
        FieldError: on the key ``kind``, with a did-you-mean and the installed names.
    """
    if registries is None:
        from revkit.plugins import get_registries  # the registries sit above the components they hold

        registries = get_registries()
    table = registries.discriminators
    cls = table.get(name)
    if cls is None:
        names = table.names()
        raise FieldError("kind", f"unknown discriminator '{name}'{did_you_mean(name, names)}; installed "
                                 f"discriminators: {', '.join(repr(n) for n in names) or '(none)'}")
    return cls


def as_table(value: DiscriminatorTable | dict[str, Any] | str | None) -> DiscriminatorTable:
    """A :class:`DiscriminatorTable` from a table, a dict (``{"kind": "conv", "hidden": 32}``), a name or None
    (the default ``conv``)."""
    if isinstance(value, DiscriminatorTable):
        return value
    if value is None:
        value = {}
    if isinstance(value, str):
        value = {"kind": value}
    try:
        return DiscriminatorTable.model_validate(dict(value))
    except ValidationError as exc:
        raise RevkitError(f"discriminator: {exc.errors(include_url=False)[0].get('msg')}") from None
