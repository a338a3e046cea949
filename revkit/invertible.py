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
spec. Blocks that use ``context`` set ``conditional = True`` and accept ``context_size``. A block
built for one shape passes it to ``Invertible.__init__(input_shape)``, which checks its rank against
``supported_ranks`` and stores it; the default :meth:`Invertible.output_shape` then accepts only
that shape.

Optional: a block may also offer ``inverse_and_vjp(y, grad_y, grad_logdet, context)`` (the
:class:`InverseAndVJP` protocol): the rebuilt input :math:`x = f^{-1}(y)` together with the
vector–Jacobian product of ``forward`` at it, evaluating each of its networks once (a coupling's
network, a RevBlock's ``F`` and ``G``). That is maths, not memory management: this module knows
nothing of how activations are stored or freed. The memory mechanism (:mod:`revkit.memory_saving`)
uses the method where a block has it and otherwise inverts and re-runs ``forward``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from revkit.errors import ShapeError

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
    #: the name shape errors call the block by (its registered name); empty: the class name.
    block_name: ClassVar[str] = ""
    #: the per-sample shape the block was built for (set by ``__init__(input_shape)``).
    input_shape: Shape

    def __init__(self, input_shape: Shape | None = None, *, rank_hint: str = ""):
        """Start a block; with ``input_shape``, check its rank and store it as :attr:`input_shape`.

        Args:
            input_shape: the per-sample shape the block is built for, or None for a block that is
                not built for one shape (a chain, a test double).
            rank_hint: what to do instead, appended to the error for a rank not in
                :attr:`supported_ranks` (e.g. ``"put a flatten or reshape before it"``).

        Raises:
            ShapeError: ``len(input_shape)`` is not one of :attr:`supported_ranks`.
        """
        super().__init__()
        if input_shape is not None:
            require_rank(self.name_in_errors(), input_shape, self.supported_ranks, rank_hint)
            self.input_shape = tuple(input_shape)

    def name_in_errors(self) -> str:
        """:attr:`block_name`, or the class name when the block sets none."""
        return self.block_name or type(self).__name__

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def exact_logdet_mode(self) -> contextlib.AbstractContextManager[object]:
        """A context in which ``logdet`` is computed exactly. Blocks with ``exact_logdet = False``
        override it (for example with a brute-force Jacobian for small inputs); for exact blocks it
        changes nothing."""
        return contextlib.nullcontext()

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape. The default is shape-preserving and, for a block built for one
        shape (:attr:`input_shape`), raises :class:`ShapeError` for any other; a block that changes
        the shape calls it to check, then computes its own."""
        built = getattr(self, "input_shape", None)
        if built is None:
            return tuple(input_shape)
        require_built_shape(self.name_in_errors(), built, input_shape)
        return tuple(built)

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
    if len(input_shape) not in ranks:
        kinds = {1: "vectors (D,)", 2: "matrices (H, W)", 3: "images (C, H, W)"}
        allowed = " or ".join(kinds.get(r, f"rank-{r} tensors") for r in ranks)
        raise ShapeError(f"{block} takes {allowed}, got per-sample shape {tuple(input_shape)}")


def require_rank(block: str, input_shape: Shape, ranks: tuple[int, ...], hint: str = "") -> None:
    """Raise :class:`ShapeError` unless ``len(input_shape)`` is one of ``ranks``; ``hint`` says what
    to do instead."""
    try:
        check_rank(block, input_shape, ranks)
    except ShapeError as error:
        raise ShapeError(f"{error}; {hint}" if hint else str(error)) from None


def require_built_shape(block: str, built: Shape, given: Shape) -> None:
    """Raise :class:`ShapeError` unless ``given`` is the per-sample shape the block was built for."""
    if tuple(given) != tuple(built):
        raise ShapeError(
            f"{block} was built for per-sample shape {tuple(built)}, got {tuple(given)}; "
            "build it again for the new shape"
        )


# -- the optional single-evaluation inverse: x = f⁻¹(y) with the vector–Jacobian product at x --------


@dataclass
class InverseVJP:
    r"""The rebuilt input of a block ``f`` with output ``y`` and the vector–Jacobian product at it.

    For loss gradients :math:`\bar{y} = ∂L/∂y` and :math:`\bar{\ell} = ∂L/∂\ell` (``ℓ = logdet``,
    shape ``[B]``):

    Attributes:
        x: :math:`x = f^{-1}(y)`, detached.
        grad_x: :math:`\bar{x} = \bar{y}^T ∂f/∂x + \bar{\ell}^T ∂\ell/∂x`, or None when not
            computed.
        grad_context: the same product with respect to the context ``c``, or None (no context, or
            it needs no gradient).
        grad_params: the same product with respect to each of :func:`trainable_parameters` of the
            block, in that order (None for a parameter ``f`` does not depend on).
    """

    x: Tensor
    grad_x: Tensor | None
    grad_context: Tensor | None
    grad_params: tuple[Tensor | None, ...]


@runtime_checkable
class InverseAndVJP(Protocol):
    """A block that rebuilds its input and back-propagates through itself in one step, evaluating
    each of its networks once (:class:`~revkit.blocks.Coupling`, :class:`~revkit.blocks.RevBlock`)
    or in closed form (:class:`~revkit.blocks.ActNorm`, :class:`~revkit.blocks.InvConv1x1`)."""

    def inverse_and_vjp(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> InverseVJP:
        """``x = f⁻¹(y)`` (``y`` detached) and the vector–Jacobian product of ``forward`` at ``x``
        with ``(grad_y, grad_logdet)`` (see :class:`InverseVJP`); ``grad_logdet`` None means 0."""
        ...


def trainable_parameters(block: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``block`` that require gradients, in ``block.parameters()`` order."""
    return [p for p in block.parameters() if p.requires_grad]


def leaf(t: Tensor) -> Tensor:
    """``t`` detached from its graph as a new leaf that requires gradients."""
    return t.detach().requires_grad_(True)


def context_leaf(context: Tensor | None) -> Tensor | None:
    """The context as a graph leaf when gradients must reach it, else detached."""
    if context is None:
        return None
    return leaf(context) if context.requires_grad else context.detach()


def vjp(
    block: nn.Module,
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor | None],
    inputs: Sequence[Tensor],
    context: Tensor | None,
) -> tuple[list[Tensor | None], Tensor | None, tuple[Tensor | None, ...]]:
    r"""Vector–Jacobian product :math:`\sum_k \bar{o}_k^T ∂o_k/∂(\text{inputs}, c, θ)` of a local graph.

    ``outputs`` were computed with a graph from the leaves ``inputs`` (detached tensors with
    ``requires_grad``), ``context`` and the parameters θ of ``block``. Returns ``(grads of inputs,
    grad of context or None, grads of trainable_parameters(block))``; outputs whose gradient is None
    are skipped, and leaves they do not reach get None.
    """
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None and o.requires_grad]
    params = trainable_parameters(block)
    wants_context = context is not None and context.requires_grad
    targets: list[Tensor] = [*inputs, *params, *([context] if wants_context else [])]
    if not pairs:
        return [None] * len(inputs), None, (None,) * len(params)
    grads = torch.autograd.grad(
        [o for o, _ in pairs], targets, [g for _, g in pairs], allow_unused=True
    )
    n = len(inputs)
    grad_context = grads[-1] if wants_context else None
    return list(grads[:n]), grad_context, tuple(grads[n:n + len(params)])


__all__ = [
    "BlockParams",
    "InverseAndVJP",
    "InverseVJP",
    "Invertible",
    "NoParams",
    "Shape",
    "check_rank",
    "context_leaf",
    "leaf",
    "numel",
    "require_built_shape",
    "require_rank",
    "sum_except_batch",
    "trainable_parameters",
    "vjp",
]
