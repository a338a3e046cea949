"""``train.compile``: run the model's network through ``torch.compile``.

Compilation happens on the first training step (tens of seconds on a CPU, where inductor
generates C++; it needs a C++ compiler) and pays off over long runs; the function, the
``state_dict`` keys and checkpoints are unchanged, because the compiled module only wraps
``flow.net``'s ``forward`` in place (:meth:`torch.nn.Module.compile`). Memory-saving segments
run their own autograd function and are left to eager execution by the compiler (a graph break),
so the two options combine but compilation then speeds up only the plain layers.
"""

from __future__ import annotations

from revkit.errors import RevkitError
from revkit.model import Model


def compile_model(model: Model, backend: str = "inductor") -> None:
    """Compile the model's network in place (:meth:`~revkit.model.Model.compile_network`; for a flow,
    ``flow.net``'s forward: training and ``encode``; ``inverse`` stays eager).

    Args:
        model: the model to compile.
        backend: ``torch.compile``'s backend (``"eager"`` traces without generating code: tests).

    Raises:
        RevkitError: this PyTorch build cannot compile (``torch.compile`` unavailable).
    """
    import torch

    if not hasattr(torch, "compile"):
        raise RevkitError("train.compile = true needs torch.compile (PyTorch ≥ 2.0); set train.compile = false")
    model.compile_network(backend)
