r"""The prior contract: a density over the flow's latent, optionally conditioned on class labels.

Shapes: ``z`` is ``[batch, *shape]`` where ``shape`` is the flow's latent shape; labels ``y`` are
``[batch]`` integers in ``[0, classes)``. ``temperature`` scales the standard deviation of every
Gaussian component (``temperature=0`` gives the means).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import Shape
from revkit.runtime.device import module_device


class PriorParams(BaseModel):
    """Base of every prior's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Prior(nn.Module):
    """Base class of priors. Subclasses implement ``_log_prob`` and ``_rsample``.

    Subclasses take the latent ``shape`` first and their parameters as keywords (declared in
    ``Params``). Public methods validate their arguments, then call the private ones.
    """

    Params: ClassVar[type[PriorParams]] = PriorParams
    #: one component per class: ``log_prob`` and ``rsample`` use the labels ``y``.
    conditional: ClassVar[bool] = False
    #: how many training encodings :meth:`init_from_data` wants (0: the first batch's are enough).
    init_samples: int = 0
    #: how many training encodings :meth:`fit_to_data` wants after the last step (0: no fit).
    fit_samples: int = 0

    def __init__(self, shape: Shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    @property
    def classes(self) -> int:
        """Number of classes of a conditional prior (0 for an unconditional one)."""
        return 0

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(z | y) per sample, ``[batch]``; a conditional prior with ``y=None`` gives the
        marginal under uniform class weights."""
        if tuple(z.shape[1:]) != self.shape:
            raise RevkitError(f"{type(self).__name__}.log_prob: expected latents of per-sample shape "
                              f"{self.shape}, got {tuple(z.shape[1:])}")
        return self._log_prob(z, self._check_labels(y, z.shape[0]))

    def rsample(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` reparameterized samples ``[n, *shape]`` (gradients reach the prior's parameters).
        A conditional prior with ``y=None`` draws the labels uniformly."""
        if n < 1:
            raise RevkitError(f"number of samples must be ≥ 1, got {n}")
        if temperature < 0:
            raise RevkitError(f"temperature must be ≥ 0, got {temperature}")
        if y is None and self.conditional:
            y = self.random_labels(n)
        return self._rsample(n, self._check_labels(y, n), float(temperature))

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """Like :meth:`rsample`, without gradients."""
        return self.rsample(n, y, temperature)

    def random_labels(self, n: int) -> Tensor:
        """``n`` labels drawn uniformly from the classes (for a conditional prior)."""
        return torch.randint(0, max(self.classes, 1), (n,), device=module_device(self))

    @torch.no_grad()
    def init_from_data(self, z: Tensor, y: Tensor | None = None) -> None:
        """Data-dependent initialisation from the untrained network's encodings ``z`` (at least
        :attr:`init_samples` of them) and their labels; the default does nothing. The trainer calls
        it once, before step 1 of a fresh run."""

    @torch.no_grad()
    def fit_to_data(self, z: Tensor, y: Tensor | None = None) -> None:
        """Fit to the trained network's encodings ``z`` (:attr:`fit_samples` of them) and their labels;
        the default does nothing. The trainer calls it once, after the last step (when training
        completes or reaches its time limit), before the final checkpoint."""

    def active_dims(self, y: Tensor | None = None) -> Tensor:
        """Boolean mask ``[batch or 1, *shape]`` of the latent dimensions the prior lets vary (std > 0)
        for labels ``y``; all True by default. Priors whose stds can collapse to zero (the paper's
        per-class Gaussians) override it."""
        return torch.ones((1, *self.shape), dtype=torch.bool, device=module_device(self))

    def restrict(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``z`` with every inactive dimension clamped to the prior's mean (for labels ``y``): the
        latent the prior can actually produce. The default keeps ``z`` (every dimension is active)."""
        return z

    @torch.no_grad()
    def after_step(self) -> None:
        """Called by the trainer after every optimizer step: project the parameters back onto their
        constraints (e.g. std ≥ 0). The default does nothing."""

    # -- to implement -------------------------------------------------------------------------
    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def _check_labels(self, y: Tensor | None, n: int) -> Tensor | None:
        if not self.conditional:
            return None
        if y is None:
            return None
        y = torch.as_tensor(y, device=module_device(self)).long().reshape(-1)
        if y.numel() == 1 and n > 1:
            y = y.expand(n)
        if y.shape[0] != n:
            raise RevkitError(f"expected {n} labels, got {y.shape[0]}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.classes):
            raise RevkitError(f"labels must lie in [0, {self.classes}), got values in "
                              f"[{int(y.min())}, {int(y.max())}]")
        return y
