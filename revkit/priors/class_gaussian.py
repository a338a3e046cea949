r"""One learned diagonal Gaussian per class (the class-conditional prior of the seed paper)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import Shape
from revkit.priors.base import Prior, PriorParams
from revkit.priors.gaussian import check_latent_shape, diag_normal_log_prob


class ClassGaussianParams(PriorParams):
    classes: int | None = Field(
        None, ge=1, le=100_000, description="number of classes; left out, the builder fills it from the data"
    )
    param: Literal["log_std", "std"] = Field(
        "log_std",
        description="learn log-stds (stds stay > 0) or the stds themselves, clamped at ≥ 0 after every "
        "step so dimensions can collapse to zero (the seed paper's setting)",
    )
    init: Literal["none", "data"] = Field(
        "none",
        description="'none': every class starts as N(0, I); 'data': means and stds from the untrained "
        "network's per-class encodings",
    )
    init_samples: int = Field(2000, ge=2, le=1_000_000, description="training encodings used by init = 'data'")
    active_threshold: float = Field(
        1e-3, ge=0.0, description="a dimension is active for a class while its std exceeds this"
    )


class ClassGaussian(Prior):
    r"""A diagonal Gaussian per class :math:`c` with learned means :math:`\mu_c` and stds :math:`\sigma_c`.

    .. math::
        \log p(z \mid y=c) = \log \mathcal N(z;\ \mu_c,\ \operatorname{diag}\hat\sigma_c^2), \qquad
        \log p(z) = \operatorname{logsumexp}_c \log p(z \mid c) - \log C

    The second line (``y=None``) is the marginal under uniform class weights. ``means`` has shape
    ``[classes, *shape]``; the stds are learned as

    * ``param="log_std"`` (default): ``log_stds`` :math:`s_c`, :math:`\sigma_c = e^{s_c} > 0`;
    * ``param="std"``: ``stds`` :math:`\sigma_c` directly, projected onto :math:`\sigma_c \ge 0`
      by :meth:`after_step` (the trainer calls it after every optimizer step), so a dimension can
      collapse to exactly zero std — the seed paper's optimal-transport prior.

    A dimension is *active* for class :math:`c` while :math:`\sigma_{c,d} >` ``active_threshold``;
    :meth:`restrict` clamps the inactive ones to :math:`\mu_c` and :meth:`active_counts` reports
    how many stay active per class.

    **Density with collapsed stds.** A zero std makes the Gaussian degenerate (no density). The log
    density therefore uses :math:`\hat\sigma = \max(\sigma, \tau)` with :math:`\tau` =
    ``active_threshold`` (for ``param="std"``; with ``τ = 0`` it is floored at 1e-12 instead): finite
    everywhere, exact on every active dimension, and a very narrow Gaussian around :math:`\mu_c`
    on the collapsed ones. Training by optimal transport never evaluates it; sampling uses the
    true :math:`\sigma` (zero stays zero).

    ``rsample(n, y)`` is reparameterized, :math:`z = \mu_y + T\,\sigma_y \odot ε`, so gradients
    reach means and stds; without ``y`` the labels are drawn uniformly.

    **Data-dependent initialisation** (``init="data"``): :meth:`init_from_data` sets
    :math:`\mu_c` and :math:`\sigma_c` to the per-dimension mean and standard deviation of the
    encodings of class :math:`c` (the trainer passes ``init_samples`` encodings of the untrained
    network); a class with fewer than two encodings gets the pooled mean and std of all of them.

    Args:
        shape: latent shape.
        classes: number of classes ``C ≥ 1`` (the builder fills it from the data).
        param: ``"log_std"`` or ``"std"`` (see above).
        init: ``"none"`` (every class :math:`N(0, I)`) or ``"data"``.
        init_samples: how many encodings ``init="data"`` asks the trainer for.
        active_threshold: the std above which a dimension counts as active.

    Example:
        >>> prior = ClassGaussian((4,), classes=2, param="std")
        >>> prior.rsample(3, torch.tensor([0, 1, 1])).shape
        torch.Size([3, 4])
    """

    Params = ClassGaussianParams
    conditional = True

    def __init__(
        self,
        shape: Shape,
        classes: int | None = None,
        param: Literal["log_std", "std"] = "log_std",
        init: Literal["none", "data"] = "none",
        init_samples: int = 2000,
        active_threshold: float = 1e-3,
    ):
        super().__init__(check_latent_shape("class_gaussian", shape))
        if classes is None or int(classes) < 1:
            raise RevkitError(
                f"class_gaussian: classes must be an integer ≥ 1, got {classes!r} (in a spec, leave "
                "prior.classes out to take it from the data, which must then be labelled)"
            )
        if param not in ("log_std", "std"):
            raise RevkitError(f"class_gaussian: param must be 'log_std' or 'std', got {param!r}")
        if init not in ("none", "data"):
            raise RevkitError(f"class_gaussian: init must be 'none' or 'data', got {init!r}")
        if active_threshold < 0:
            raise RevkitError(f"class_gaussian: active_threshold must be ≥ 0, got {active_threshold}")
        self._classes = int(classes)
        self.param = param
        self.init = init
        self.init_samples = int(init_samples) if init == "data" else 0
        self.active_threshold = float(active_threshold)
        self.means = nn.Parameter(torch.zeros(self._classes, *self.shape))
        if param == "std":
            self.stds = nn.Parameter(torch.ones(self._classes, *self.shape))
        else:
            self.log_stds = nn.Parameter(torch.zeros(self._classes, *self.shape))

    @property
    def classes(self) -> int:
        return self._classes

    # -- the parameters as the rest of revkit reads them -------------------------------------
    def component_means(self) -> Tensor:
        """Means per class, ``[classes, *shape]``."""
        return self.means

    def component_stds(self) -> Tensor:
        """Standard deviations per class, ``[classes, *shape]`` (exactly 0 where collapsed)."""
        return self.stds if self.param == "std" else self.log_stds.exp()

    def component_log_stds(self) -> Tensor:
        """Log-stds per class as the density uses them, ``[classes, *shape]``: with
        ``param="std"`` the log of :math:`\\max(\\sigma, \\tau)` (see the class docstring)."""
        if self.param == "std":
            return self.stds.clamp_min(max(self.active_threshold, 1e-12)).log()
        return self.log_stds

    # -- collapsing dimensions --------------------------------------------------------------
    @torch.no_grad()
    def active_mask(self) -> Tensor:
        """Boolean ``[classes, *shape]``: std > ``active_threshold``."""
        return self.component_stds() > self.active_threshold

    def active_dims(self, y: Tensor | None = None) -> Tensor:
        """``[batch, *shape]`` masks for labels ``y``; without labels ``[1, *shape]``, the dimensions
        active for at least one class."""
        mask = self.active_mask()
        if y is None:
            return mask.any(dim=0, keepdim=True)
        return mask[self._labels(y)]

    def restrict(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r"""``z`` ``[batch, *shape]`` with every dimension inactive for the sample's class set to that
        class's mean: :math:`z'_d = z_d` if :math:`\sigma_{y,d} > τ`, else :math:`\mu_{y,d}`.
        Gradients reach ``z`` on active dimensions and the means on inactive ones.

        Raises:
            RevkitError: without labels (the mean to clamp to depends on the class).
        """
        if y is None:
            raise RevkitError("class_gaussian.restrict needs the labels y: each class has its own mean "
                              "and its own active dimensions")
        y = self._labels(y, z.shape[0])
        return torch.where(self.active_mask()[y], z, self.component_means()[y])

    @torch.no_grad()
    def active_counts(self) -> list[int]:
        """How many dimensions stay active (std > ``active_threshold``) for each class."""
        return [int(c) for c in self.active_mask().reshape(self._classes, -1).sum(dim=1)]

    @torch.no_grad()
    def after_step(self) -> None:
        """With ``param="std"``: clamp every std at ≥ 0 (where a collapsed dimension stays
        unless a later gradient pushes it up again)."""
        if self.param == "std":
            self.stds.clamp_(min=0.0)

    @torch.no_grad()
    def init_from_data(self, z: Tensor, y: Tensor | None = None) -> None:
        """With ``init="data"``: per-class mean and std (unbiased) of the encodings ``z`` ``[n, *shape]``
        with labels ``y`` ``[n]``; a class with fewer than two encodings gets the pooled values.
        With ``init="none"`` nothing happens.

        Raises:
            RevkitError: without labels, or with fewer than two encodings.
        """
        if self.init != "data":
            return
        if y is None:
            raise RevkitError("class_gaussian with init = 'data' needs labelled encodings")
        if z.shape[0] < 2:
            raise RevkitError(f"class_gaussian with init = 'data' needs at least 2 encodings, got {z.shape[0]}")
        z = z.to(self.means)
        y = self._labels(y, z.shape[0])
        pooled_mean, pooled_std = z.mean(dim=0), z.std(dim=0)
        for c in range(self._classes):
            members = z[y == c]
            mean, std = (members.mean(dim=0), members.std(dim=0)) if members.shape[0] >= 2 \
                else (pooled_mean, pooled_std)
            self.means[c].copy_(mean)
            if self.param == "std":
                self.stds[c].copy_(std)
            else:
                self.log_stds[c].copy_(std.clamp_min(1e-12).log())

    # -- density and sampling ---------------------------------------------------------------
    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        b, c = z.shape[0], self._classes
        flat = z.reshape(b, -1)
        means = self.component_means().reshape(c, -1)
        log_stds = self.component_log_stds().reshape(c, -1)
        if y is not None:
            return diag_normal_log_prob(flat, means[y], log_stds[y])
        per_class = diag_normal_log_prob(flat.unsqueeze(1), means, log_stds)  # [B, C]
        return torch.logsumexp(per_class, dim=1) - math.log(c)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        assert y is not None  # Prior.rsample draws labels for a conditional prior
        means, stds = self.component_means()[y], self.component_stds()[y]
        eps = torch.randn_like(means)
        return means + temperature * stds * eps

    def _labels(self, y: Tensor, n: int | None = None) -> Tensor:
        labels = self._check_labels(y, int(torch.as_tensor(y).numel()) if n is None else n)
        assert labels is not None
        return labels

    def extra_repr(self) -> str:
        return f"shape={self.shape}, classes={self._classes}, param={self.param!r}, init={self.init!r}"
