"""Shape checks shared by the built-in blocks and plugins (public through :mod:`revkit.blocks`): each
raises :class:`~revkit.errors.ShapeError` (:class:`~revkit.errors.RevkitError` for a call's context)
with a message that says what the block needs, what it got and what to do about it.

The rank and built-shape checks live with the contract (:mod:`revkit.invertible`), where
``Invertible.__init__(input_shape)`` and the default ``output_shape`` use them; they are re-exported
here so that a block author finds every check in one place."""

from __future__ import annotations

from torch import Tensor

from revkit.errors import RevkitError, ShapeError
from revkit.invertible import Shape, require_built_shape, require_rank


def require_even_channels(block: str, input_shape: Shape, hint: str) -> None:
    """Raise unless the first dimension (channels of an image, features of a vector) is even and ≥ 2."""
    channels = input_shape[0]
    if channels < 2 or channels % 2:
        what = "features" if len(input_shape) == 1 else "channels"
        raise ShapeError(
            f"{block} splits the {what} into two halves, so it needs an even number of {what} ≥ 2; "
            f"got {channels} in per-sample shape {tuple(input_shape)}; {hint}"
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


__all__ = ["require_built_shape", "require_context", "require_even_channels", "require_rank"]
