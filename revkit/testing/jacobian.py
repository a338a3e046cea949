r"""Brute-force log-determinants, the ground truth the conformance kit compares ``logdet`` with.

For a map :math:`g` between per-sample tensors with :math:`n` elements each, the full Jacobian
:math:`J_g(v) ∈ ℝ^{n×n}` of one sample is computed with :func:`torch.func.jacrev` and
:math:`\log|\det J_g(v)|` with :func:`torch.linalg.slogdet`. Cost :math:`O(n)` backward passes
and :math:`O(n^3)` for the determinant, so use small shapes and float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


#: rows of a Jacobian computed per vmapped backward pass.
CHUNK = 64


def jacobian(fn: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
    """Jacobian ``∂fn(v)/∂v`` of a map between flat vectors, ``[fn(v).numel(), v.numel()]``.

    Uses :func:`torch.func.jacrev`; a module whose operations the functional transforms cannot
    batch (data-dependent Python control flow, for instance) falls back to
    :func:`torch.autograd.functional.jacobian`, which computes the same matrix row by row.
    """
    try:
        # rows in chunks for large samples: one vmapped backward per row at once would hold n copies
        # of every intermediate tensor (gigabytes for a 1,000-element sample through a MADE)
        return torch.func.jacrev(fn, chunk_size=CHUNK if v.numel() > CHUNK else None)(v)
    except (RuntimeError, NotImplementedError):
        return torch.autograd.functional.jacobian(fn, v)


def brute_force_logdet(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-sample :math:`\log|\det ∂fn(x_i)/∂x_i|` from the full Jacobian of each sample.

    Args:
        fn: maps a batch of one ``[1, *in_shape]`` to a batch of one ``[1, *out_shape]`` with as
            many elements (a block's forward or inverse, output only).
        x: ``[batch, *in_shape]`` points at which to differentiate.

    Returns:
        ``(logabsdet, sign)``, both ``[batch]``; ``sign`` is 0 where the Jacobian is singular.

    Raises:
        AssertionError: ``fn`` changes the number of elements, so its Jacobian is not square.
    """
    shape = x.shape[1:]
    logabsdets, signs = [], []
    for i in range(x.shape[0]):

        def flat(v: Tensor) -> Tensor:
            return fn(v.reshape(1, *shape)).reshape(-1)

        jac = jacobian(flat, x[i].reshape(-1))
        if jac.shape[0] != jac.shape[1]:
            raise AssertionError(
                f"the Jacobian is {tuple(jac.shape)}, not square: the map changes the number of "
                "elements per sample, so it is not a bijection"
            )
        sign, logabsdet = torch.linalg.slogdet(jac)
        logabsdets.append(logabsdet)
        signs.append(sign)
    return torch.stack(logabsdets).detach(), torch.stack(signs).detach()


__all__ = ["brute_force_logdet", "jacobian"]
