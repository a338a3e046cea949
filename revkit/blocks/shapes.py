"""Shape checks shared by the built-in blocks (and open to plugins): each raises
:class:`~revkit.errors.ShapeError` (:class:`~revkit.errors.RevkitError` for a call's context) with a
message that says what the block needs, what it got and what to do about it."""

from __future__ import annotations

from torch import Tensor

from revkit.errors import RevkitError, ShapeError
from revkit.invertible import Shape, check_rank


def require_rank(block: str, input_shape: Shape, ranks: tuple[int, ...], hint: str = "") -> None:
    """Raise unless ``len(input_shape)`` is one of ``ranks``; ``hint`` says what to do instead."""
    try:
        check_rank(block, input_shape, ranks)
    except ShapeError as error:
        raise ShapeError(f"{error}; {hint}" if hint else str(error)) from None


def require_even_channels(block: str, input_shape: Shape, hint: str) -> None:
    """Raise unless the first dimension (channels of an image, features of a vector) is even and ≥ 2."""
    channels = input_shape[0]
    if channels < 2 or channels % 2:
        what = "features" if len(input_shape) == 1 else "channels"
        raise ShapeError(
            f"{block} splits the {what} into two halves, so it needs an even number of {what} ≥ 2; "
            f"got {channels} in per-sample shape {tuple(input_shape)}; {hint}"
        )


def require_built_shape(block: str, built: Shape, given: Shape) -> None:
    """Raise unless ``given`` is the per-sample shape the block was built for."""
    if tuple(given) != tuple(built):
        raise ShapeError(
            f"{block} was built for per-sample shape {tuple(built)}, got {tuple(given)}; "
            "build it again for the new shape"
        )


def require_context(block: str, context_size: int, context: Tensor | None, x: Tensor) -> Tensor | None:
    """The context a conditional block built with ``context_size = K`` is called with: ``None`` when
    ``K = 0`` (the context is ignored), else ``context`` ``[B, K]`` in ``x``'s dtype; raises when it is
    missing or has another shape."""
    if context_size == 0:
        return None
    expected = (x.shape[0], context_size)
    if context is None:
        raise RevkitError(f"{block} was built with context_size={context_size}: pass a context of shape {expected}")
    if tuple(context.shape) != expected:
        raise RevkitError(f"{block} expects a context of shape {expected}, got {tuple(context.shape)}")
    return context.to(x.dtype)
