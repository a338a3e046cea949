r"""The invertible-module contract every block, and the :class:`~revkit.Flow` itself, follows.

A block is a bijection :math:`f` between per-sample tensors of shape ``input_shape`` and
``output_shape(input_shape)`` (the same number of elements). The direction *forward* is data
→ latent.

* ``forward(x, context=None) -> (y, logdet)`` with ``y = f(x)`` and
  ``logdet = log|det ∂f(x)/∂x|`` per sample, summed over all dimensions: shape ``[batch]``.
* ``inverse(y, context=None) -> (x, logdet)`` with ``x = f⁻¹(y)`` and
  ``logdet = log|det ∂f⁻¹(y)/∂y|``, so that forward then inverse sums to ≈ 0.
* ``output_shape(input_shape)`` maps per-sample shapes (no batch dimension) and raises
  :class:`~revkit.errors.ShapeError` for a shape the block cannot take. Blocks check the shape in
  ``__init__`` too, so a wrong architecture fails when it is built, not inside training.

``context`` carries conditioning, a float tensor ``[batch, context_size]`` (for class labels, the
one-hot code). Blocks that ignore it still accept it.

A block may also record a training-time ``penalty`` (a scalar tensor) in a forward pass in training
mode; the trainer adds it to the loss of the update that trains the flow (:mod:`revkit.penalties`).

Registered blocks take ``input_shape`` as their first constructor argument and their parameters as
keywords; the class attribute ``Params`` is the pydantic model that validates those keywords from a
spec. Blocks that use ``context`` set ``conditional = True`` and accept ``context_size``.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

if TYPE_CHECKING:
    from revkit.memory_saving import ReverseGrad

Shape = tuple[int, ...]


class BlockParams(BaseModel):
    """Base of every block's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class NoParams(BlockParams):
    """Parameter model of a block that takes no parameters."""


class Invertible(nn.Module):
    """Base class of invertible modules. See the module docstring for the contract.

    The flags ``exact_logdet``, ``analytic_inverse`` and ``volume_preserving`` state what the
    conformance kit (:mod:`revkit.testing`) and the trainer may assume about a block.
    """

    #: pydantic model that validates this block's keyword parameters from a spec.
    Params: ClassVar[type[BlockParams]] = NoParams
    #: ``logdet`` is exact (False for stochastic estimators, which must offer
    #: :meth:`exact_logdet_mode`). Chains (:class:`~revkit.Sequential`) set it per instance.
    exact_logdet: bool = True
    #: ``inverse`` is closed-form (False for fixed-point inverses with a tolerance).
    analytic_inverse: bool = True
    #: ``logdet`` is identically zero.
    volume_preserving: bool = False
    #: the block uses ``context`` and its constructor accepts ``context_size``.
    conditional: ClassVar[bool] = False
    #: per-sample ranks the block accepts: 1 for vectors ``(D,)``, 3 for images ``(C, H, W)``.
    supported_ranks: ClassVar[tuple[int, ...]] = (1, 3)
    #: open interval of valid input values, or None for all reals (the logit block: (0, 1)).
    input_domain: ClassVar[tuple[float, float] | None] = None
    #: a scalar the last training-mode forward pass asks the trainer to add to the loss, with its
    #: graph (:mod:`revkit.penalties`); None when the block has none.
    penalty: Tensor | None = None

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def reverse_grad(
        self,
        y: Tensor,
        grad_y: Tensor,
        grad_logdet: Tensor | None,
        context: Tensor | None = None,
    ) -> ReverseGrad:
        r"""Memory-saving backward step: rebuild ``x = f⁻¹(y)`` and back-propagate through ``f`` at ``x``.

        Given the block's output ``y`` (detached) and the loss gradients ``∂L/∂y`` and ``∂L/∂ℓ``
        (``ℓ = logdet``, shape ``[B]``), return the rebuilt input, ``∂L/∂x``, ``∂L/∂context`` and the
        gradients of the block's trainable parameters (:mod:`revkit.memory_saving`). The default
        inverts without a graph and re-runs ``forward`` with one; a block whose inverse evaluates
        what the backward needs (a coupling's network) overrides it to evaluate that only once.
        Only called for blocks with ``analytic_inverse = True``.
        """
        from revkit.memory_saving import recompute_reverse_grad

        return recompute_reverse_grad(self, y, grad_y, grad_logdet, context)

    def exact_logdet_mode(self) -> contextlib.AbstractContextManager[object]:
        """A context in which ``logdet`` is computed exactly. Blocks with ``exact_logdet = False``
        override it (for example with a brute-force Jacobian for small inputs); for exact blocks it
        changes nothing."""
        return contextlib.nullcontext()

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape; the default is shape-preserving."""
        return tuple(input_shape)

    def describe(self) -> str:
        """Compact name for ``revkit inspect``, e.g. ``AffineCoupling(64)``."""
        return type(self).__name__

    @staticmethod
    def zero_logdet(x: Tensor) -> Tensor:
        """A ``[batch]`` tensor of zeros matching ``x``'s batch size, dtype and device."""
        return x.new_zeros(x.shape[0])


def sum_except_batch(t: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``[B, ...] -> [B]``."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def numel(shape: Shape) -> int:
    """Number of elements of a per-sample shape."""
    return math.prod(shape)


def check_rank(block: str, input_shape: Shape, ranks: tuple[int, ...]) -> None:
    """Raise :class:`ShapeError` unless ``len(input_shape)`` is one of ``ranks``."""
    from revkit.errors import ShapeError

    if len(input_shape) not in ranks:
        kinds = {1: "vectors (D,)", 2: "matrices (H, W)", 3: "images (C, H, W)"}
        allowed = " or ".join(kinds.get(r, f"rank-{r} tensors") for r in ranks)
        raise ShapeError(f"{block} takes {allowed}, got per-sample shape {tuple(input_shape)}")


__all__ = [
    "BlockParams",
    "Invertible",
    "NoParams",
    "Shape",
    "check_rank",
    "numel",
    "sum_except_batch",
]
