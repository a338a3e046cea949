"""Shape checks shared by the built-in blocks: each raises :class:`~revkit.errors.ShapeError` with
a message that says what the block needs, what it got and what to do about it."""

from __future__ import annotations

from revkit.errors import ShapeError
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
