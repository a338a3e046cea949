r"""Hypothesis strategies for the conformance kit: block parameters, per-sample shapes, inputs.

* :func:`params_strategy` draws keyword dictionaries from a block's pydantic ``Params`` model.
* :func:`shapes_strategy` draws small per-sample shapes of the ranks a block supports.
* :func:`draw_inputs` turns a seed into a batch inside the block's ``input_domain``.

The drawn shapes are small (the kit computes full Jacobians: at most :math:`4·4·4 = 64` elements)
but have the properties real data has: odd element counts, 3 channels (RGB), odd spatial sides.
Samples of over 1,000 elements are the large example's business
(:data:`revkit.testing.conformance.LARGE_SHAPES`). Integer parameters stay :math:`≤ 8`.
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import torch
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from torch import Tensor

from revkit.errors import RevkitError
from revkit.invertible import Shape

#: integers and floats without bounds are drawn from ``[0, SMALL]``; bounded ones stay ``≤ SMALL``
#: unless their lower bound is larger.
SMALL = 8
#: vector lengths, channel counts and image sides drawn by :func:`shapes_strategy`.
VECTOR_SIZES = (2, 3, 4, 5, 6, 8)
CHANNELS = (1, 2, 3, 4)
SIDES = (2, 3, 4)


class KitError(RevkitError):
    """The conformance kit was asked for something it cannot do (an undrawable required
    parameter, an unknown block name or check)."""


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
def params_strategy(params_model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Draw keyword dictionaries for a block from its pydantic parameter model.

    Per field: ``Literal`` → one of its values, ``bool`` → either, ``int``/``float`` → a value
    within the field's ``ge``/``gt``/``le``/``lt`` bounds kept small (``≤ 8``; ``[0, 8]`` when
    unbounded; integers take their lower bound about half the time), ``Enum`` → one of its
    members, lists/tuples of those → short sequences (1–3 items unless ``min_length`` /
    ``max_length`` say otherwise), ``X | None`` → ``None`` or an ``X``. A field whose type cannot be drawn is left out, so the block's default applies.

    Raises:
        KitError: a field without a default has a type that cannot be drawn.
    """
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in params_model.model_fields.items():
        strategy = field_strategy(info)
        if strategy is not None:
            fields[name] = strategy
        elif info.is_required():
            raise KitError(
                f"{params_model.__name__}.{name}: cannot draw values of type {info.annotation!r} "
                "and the field has no default; pass params= to check_block (a dict or a "
                "hypothesis strategy of dicts)"
            )
    return st.fixed_dictionaries(fields)


def field_strategy(info: FieldInfo) -> st.SearchStrategy[Any] | None:
    """Strategy for one pydantic field, or ``None`` when its type cannot be drawn."""
    return _type_strategy(info.annotation, list(info.metadata), element=False)


def _type_strategy(tp: Any, metadata: list[Any], element: bool) -> st.SearchStrategy[Any] | None:
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extra = get_args(tp)
        for item in extra:  # Field(...) inside Annotated carries its constraints in .metadata
            metadata = metadata + (list(item.metadata) if isinstance(item, FieldInfo) else [item])
        return _type_strategy(inner, metadata, element)
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin in (Union, types.UnionType):
        arms = [
            st.none() if arm is type(None) else _type_strategy(arm, metadata, element)
            for arm in get_args(tp)
        ]
        drawable = [a for a in arms if a is not None]
        return st.one_of(drawable) if drawable else None
    if tp is bool:
        return st.booleans()
    if tp is int:
        lo, hi = _int_range(metadata)
        return st.just(lo) | st.integers(lo, hi)  # favour the smallest: cheap, and often the only valid one
    if tp is float:
        return _float_strategy(metadata)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _sequence_strategy(tp, origin, metadata, element)
    return None


def _bound(metadata: Iterable[Any], name: str) -> Any:
    for item in metadata:
        value = getattr(item, name, None)
        if value is not None:
            return value
    return None


def _small_range(lo: float | None, hi: float | None) -> tuple[float, float]:
    """``[lo, hi]`` with missing ends filled in and the upper end kept ``≤ SMALL`` (or just
    above ``lo`` when ``lo`` itself is larger)."""
    if lo is None and hi is None:
        return 0, SMALL
    if lo is None:
        lo = 0 if hi >= 0 else hi - SMALL
    cap = SMALL if lo < SMALL else lo + 1
    return lo, cap if hi is None else min(hi, cap)


def _int_range(metadata: list[Any]) -> tuple[int, int]:
    ge, gt, le, lt = (_bound(metadata, k) for k in ("ge", "gt", "le", "lt"))
    lo = ge if ge is not None else (math.floor(gt) + 1 if gt is not None else None)
    hi = le if le is not None else (math.ceil(lt) - 1 if lt is not None else None)
    lo, hi = _small_range(lo, hi)
    return int(lo), int(hi)


def _float_strategy(metadata: list[Any]) -> st.SearchStrategy[float]:
    ge, gt, le, lt = (_bound(metadata, k) for k in ("ge", "gt", "le", "lt"))
    lo = ge if ge is not None else gt
    hi = le if le is not None else lt
    lo, hi = _small_range(lo, hi)
    return st.floats(
        float(lo),
        float(hi),
        exclude_min=ge is None and gt is not None and lo == gt,
        exclude_max=le is None and lt is not None and hi == lt,
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=False,
    )


def _sequence_strategy(
    tp: Any, origin: Any, metadata: list[Any], element: bool
) -> st.SearchStrategy[Any] | None:
    if element:  # lists of lists are beyond "small"
        return None
    args = get_args(tp)
    is_tuple = origin is tuple or tp is tuple
    if is_tuple and args and args[-1] is not Ellipsis:  # fixed-length tuple[int, float]
        parts = [_type_strategy(a, [], element=True) for a in args]
        return None if any(p is None for p in parts) else st.tuples(*parts)
    item = _type_strategy(args[0] if args else int, [], element=True)
    if item is None:
        return None
    min_len = _bound(metadata, "min_length") or 1
    max_len = _bound(metadata, "max_length")
    max_len = max(min_len, 3) if max_len is None else max_len
    items = st.lists(item, min_size=min_len, max_size=max_len)
    return items.map(tuple) if is_tuple else items


# --------------------------------------------------------------------------------------------
# shapes and inputs
# --------------------------------------------------------------------------------------------
def shapes_strategy(ranks: Iterable[int]) -> st.SearchStrategy[Shape]:
    """Small per-sample shapes of the given ranks.

    Rank 1: vectors ``(d,)`` with ``d ∈ {2, 3, 4, 5, 6, 8}``; rank 3: images ``(c, h, w)`` with
    ``c ∈ {1, 2, 3, 4}`` and ``h, w ∈ {2, 3, 4}``; any other rank: every side in ``{2, 3, 4}``.
    Odd sizes are drawn as often as even ones: a shape a block refuses must raise its ShapeError.
    """
    options: list[st.SearchStrategy[Shape]] = []
    for rank in sorted(set(ranks)):
        if rank == 1:
            options.append(st.sampled_from(VECTOR_SIZES).map(lambda d: (d,)))
        elif rank == 3:
            options.append(st.tuples(st.sampled_from(CHANNELS), st.sampled_from(SIDES), st.sampled_from(SIDES)))
        elif rank >= 1:
            options.append(st.tuples(*[st.sampled_from(SIDES)] * rank))
    if not options:
        raise KitError(f"supported_ranks {tuple(ranks)} names no rank ≥ 1 to draw shapes from")
    return st.one_of(options)


def draw_inputs(
    shape: Shape,
    batch: int,
    generator: torch.Generator,
    domain: tuple[float, float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""A ``[batch, *shape]`` tensor drawn with ``generator``, inside the open interval ``domain``.

    All reals: standard normal. A bounded interval :math:`(a, b)`: uniform on its middle 90 %
    (away from the edges, where blocks such as logit are ill-conditioned). Half-bounded:
    :math:`a + e^{N(0, 1/4)}` (or :math:`b - …`).
    """
    size = (batch, *shape)
    if domain is None:
        return torch.randn(size, generator=generator, dtype=dtype)
    lo, hi = (float(v) for v in domain)
    if math.isfinite(lo) and math.isfinite(hi):
        u = torch.rand(size, generator=generator, dtype=dtype)
        return lo + (hi - lo) * (0.05 + 0.9 * u)
    spread = torch.exp(0.5 * torch.randn(size, generator=generator, dtype=dtype))
    if math.isfinite(lo):
        return lo + spread
    if math.isfinite(hi):
        return hi - spread
    return torch.randn(size, generator=generator, dtype=dtype)


__all__ = [
    "KitError",
    "draw_inputs",
    "field_strategy",
    "params_strategy",
    "shapes_strategy",
]
