r"""``train.precision``: the dtype of the training forward pass.

``"float32"`` (the default) computes everything in float32. ``"bfloat16"`` runs each update's
forward pass and loss under :func:`torch.autocast` with ``dtype = torch.bfloat16``: convolutions and
matrix products (the bulk of a step) take bfloat16 inputs and run on the processor's bfloat16 units
(AVX-512 BF16 or AMX on a CPU, tensor cores on a GPU), while the weights, their gradients, the
optimizer's state, reductions autocast keeps in float32 and every evaluation stay float32. The
backward pass follows the forward's dtypes, as autocast intends; no loss scaling is needed, because
bfloat16 has float32's exponent range.

bfloat16 keeps 8 significant bits (about 3 decimal digits), so a loss computed this way is an
approximation of the float32 one: good for training a classifier or a flow by gradient descent, not
for reporting a log-likelihood (the final evaluation computes that in float32). Memory-saving layers
cannot train in bfloat16 (:func:`revkit.build.check_precision` refuses the spec): they rebuild each
input by the block's inverse, and a bfloat16 inverse does not undo a bfloat16 forward.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from revkit.errors import SpecError

#: ``train.precision`` values and the autocast dtype each asks for (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}


def forward_precision(precision: str, device: torch.device) -> ContextManager[object]:
    """A context in which the training forward pass runs at ``precision`` on ``device``.

    Raises:
        ValueError: for a precision not in :data:`PRECISIONS`.
        SpecError: at ``train.precision``, for bfloat16 on a GPU without bfloat16 arithmetic (compute capability
            below 8.0), where autocast would fail with a RuntimeError.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision = {precision!r} is not known; allowed: {', '.join(map(repr, PRECISIONS))}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise SpecError("train.precision", f"precision = '{precision}' needs a GPU with bfloat16 arithmetic (compute "
                                           f"capability 8.0 or newer); {torch.cuda.get_device_name(device)} has none: "
                                           "use precision = 'float32' (--set train.precision=float32)")
    return torch.autocast(device_type=device.type, dtype=dtype)


__all__ = ["PRECISIONS", "forward_precision"]
