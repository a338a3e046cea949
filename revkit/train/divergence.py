"""Finding where a diverged step first went non-finite.

When a loss or a gradient is NaN or infinite, the trainer stops (``train.on_nonfinite = "stop"``)
and names the culprit: :func:`first_nonfinite_output` re-runs the update's losses with a forward
hook on every submodule of the flow (and the objective) and reports the first module, in execution
order, whose output holds a non-finite value. Hooks fire when a module returns, so a submodule is
seen before the block that contains it: the name is the innermost module where the values broke
(``layers.3.net.2``, a convolution inside the fourth layer). :func:`nonfinite_gradients` names the
parameters whose gradients are not finite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def is_finite(value: Any) -> bool:
    """True when every floating-point tensor in ``value`` (a tensor or nested tuples/lists/dicts)
    holds only finite numbers."""
    return all(bool(torch.isfinite(t).all()) for t in _tensors(value) if t.is_floating_point())


@contextmanager
def _watch(modules: Iterable[tuple[str, nn.Module]], found: list[str]) -> Iterator[None]:
    """Record, in ``found``, ``"name (Class)"`` of each module whose output is not finite, in order."""
    def hook_for(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not found and not is_finite(output):
                found.append(f"{name} ({type(module).__name__})")
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules if name]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def first_nonfinite_output(flow: nn.Module, objective: nn.Module, batch: Any, update: str) -> str:
    """Re-run ``objective.losses(flow, batch, update)`` without gradients and describe where the
    values first went non-finite: the input batch, the first module (by name, e.g.
    ``"flow layers.3.net.2 (Conv2d)"``), or the loss itself when every module output was finite."""
    if not is_finite(batch[0]):
        return "the input batch itself holds NaN or infinite values"
    found: list[str] = []
    named = [(f"flow {n}", m) for n, m in flow.named_modules()]
    named += [(f"objective {n}", m) for n, m in objective.named_modules()]
    with torch.no_grad(), _watch(named, found):
        try:
            out = objective.losses(flow, batch, update=update)
        except Exception as exc:  # noqa: BLE001 - the re-run itself failing still tells us something
            return found[0] if found else f"re-running the step raised {type(exc).__name__}: {exc}"
    if found:
        return f"the output of {found[0]} went non-finite first"
    loss = getattr(out, "loss", out)
    if is_finite(loss):
        return "no module output nor the loss was non-finite when the step was re-run (a random draw?)"
    return "every module output was finite; the objective's loss term itself is not"


def nonfinite_gradients(params: Iterable[tuple[str, nn.Parameter]], limit: int = 3) -> list[str]:
    """Names of (at most ``limit``) parameters whose ``.grad`` holds NaN or infinite values."""
    bad = []
    for name, p in params:
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            bad.append(name)
            if len(bad) >= limit:
                break
    return bad
