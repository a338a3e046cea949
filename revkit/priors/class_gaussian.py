r"""One Gaussian per class: diagonal and learned (the seed paper's class-conditional prior), optionally with a
low-rank covariance fitted to the encodings after training."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import Shape
from revkit.priors.base import Prior, PriorParams
from revkit.priors.gaussian import check_latent_shape, diag_normal_log_prob

MAX_RANK = 1024
MAX_FIT_SAMPLES = 1_000_000


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
    covariance_rank: int = Field(
        0, ge=0, le=MAX_RANK, description="0: diagonal covariances (the seed paper's); k > 0: each class's "
        "covariance is W Wᵀ + diag σ² with a rank-k factor W set by the fit after training (needs fit_samples)")
    fit_samples: int = Field(
        0, ge=0, le=MAX_FIT_SAMPLES, description="0: no fit; n > 0: after the last step, every class's mean and "
        "covariance are set to those of its encodings among n training images (means, stds and, with "
        "covariance_rank k, the top-k principal directions)")

    residual: bool = Field(
        True, description="with covariance_rank k > 0: keep each dimension's variance beyond the k principal "
        "directions as the diagonal σ² (false: only the k directions vary, σ = 0)")

    @model_validator(mode="after")
    def _rank_needs_a_fit(self) -> ClassGaussianParams:
        if self.covariance_rank > 0 and self.fit_samples < 2:
            raise ValueError(f"covariance_rank = {self.covariance_rank} needs fit_samples ≥ 2: the rank-k factor "
                             "is fitted to training encodings after the last step, never trained")
        return self


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

    **Fit after training** (``fit_samples = n > 0``): after the last step the trainer passes the
    encodings of ``n`` training images to :meth:`fit_to_data`, which sets each class's mean to their
    mean and its covariance to theirs, :math:`S_c`. With ``covariance_rank = 0`` that is the diagonal,
    :math:`\sigma_c^2 = \operatorname{diag} S_c`. With ``covariance_rank = k > 0`` the class density is

    .. math:: p(z \mid c) = \mathcal N\big(z;\ \mu_c,\ W_c W_c^\top + \operatorname{diag}\sigma_c^2\big),
              \qquad W_c = U_k \Lambda_k^{1/2}, \quad
              \sigma_c^2 = \max\big(\operatorname{diag} S_c - \operatorname{diag} W_c W_c^\top,\ 0\big),

    the top-:math:`k` eigenpairs :math:`(U_k, \Lambda_k)` of :math:`S_c` plus the residual variance
    of each dimension (probabilistic PCA with a per-dimension residual): per-dimension variances stay
    exactly those of the encodings, and the :math:`k` strongest correlations are kept. Samples are
    :math:`z = \mu_c + T\,(W_c ε' + \sigma_c \odot ε)`. Why: a diagonal Gaussian whose per-dimension stds
    match the encodings' still draws the dimensions independently, and the variety of a digit class
    lives in correlated directions; ``docs/mnist_ot_diversity.md`` measures the difference. ``W`` is a
    buffer (saved in checkpoints, never trained); until the fit it is zero, so training is unchanged.
    ``component_stds`` are the marginal stds :math:`\sqrt{\sigma_c^2 + \operatorname{diag} W_c W_c^\top}`.

    Args:
        shape: latent shape.
        classes: number of classes ``C ≥ 1`` (the builder fills it from the data).
        param: ``"log_std"`` or ``"std"`` (see above).
        init: ``"none"`` (every class :math:`N(0, I)`) or ``"data"``.
        init_samples: how many encodings ``init="data"`` asks the trainer for.
        active_threshold: the std above which a dimension counts as active.
        covariance_rank: ``k`` (0: diagonal).
        residual: with ``k > 0``, keep the residual diagonal (False: :math:`\\sigma_c = 0`, only the ``k``
            directions vary; the density floors the diagonal as for collapsed dimensions).
        fit_samples: how many training encodings :meth:`fit_to_data` asks for after training (0: no fit).

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
        covariance_rank: int = 0,
        fit_samples: int = 0,
        residual: bool = True,
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
        latent = math.prod(self.shape)
        if not 0 <= int(covariance_rank) <= latent:
            raise RevkitError(f"class_gaussian: covariance_rank must lie in [0, {latent}] (the latent size), "
                              f"got {covariance_rank}")
        if int(fit_samples) < 0 or (int(covariance_rank) > 0 and int(fit_samples) < 2):
            raise RevkitError(f"class_gaussian: fit_samples must be ≥ 0, and ≥ 2 with covariance_rank > 0; got "
                              f"{fit_samples}")
        self.rank = int(covariance_rank)
        self.fit_samples = int(fit_samples)
        self.residual = bool(residual)
        self.register_buffer("factors", torch.zeros(self._classes, latent, self.rank))
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

    def diagonal_stds(self) -> Tensor:
        r"""The diagonal part :math:`\sigma` per class, ``[classes, *shape]`` (exactly 0 where collapsed)."""
        return self.stds if self.param == "std" else self.log_stds.exp()

    def component_stds(self) -> Tensor:
        r"""Marginal standard deviations per class, ``[classes, *shape]``: :math:`\sigma` itself without a
        covariance factor, else :math:`\sqrt{\sigma^2 + \operatorname{diag} W W^\top}`."""
        diagonal = self.diagonal_stds()
        if self.rank == 0:
            return diagonal
        extra = self.factors.pow(2).sum(dim=-1).reshape(diagonal.shape)
        return (diagonal.pow(2) + extra).sqrt()

    def component_log_stds(self) -> Tensor:
        """Log-stds of the diagonal part per class as the density uses them, ``[classes, *shape]``: with
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

    @torch.no_grad()
    def fit_to_data(self, z: Tensor, y: Tensor | None = None) -> None:
        """With ``fit_samples > 0``: each class's mean and covariance from its encodings in ``z``
        ``[n, *shape]`` (labels ``y`` ``[n]``), as the class docstring says. A class with fewer than two
        encodings keeps its values. Computed in float64.

        Raises:
            RevkitError: without labels.
        """
        if self.fit_samples == 0:
            return
        if y is None:
            raise RevkitError("class_gaussian with fit_samples > 0 needs labelled encodings")
        flat = z.reshape(z.shape[0], -1).double()
        y = self._labels(y, z.shape[0])
        for c in range(self._classes):
            members = flat[y == c]
            if members.shape[0] < 2:
                continue
            mean = members.mean(dim=0)
            variance = members.var(dim=0)
            if self.rank > 0:
                centred = members - mean
                covariance = centred.T @ centred / (members.shape[0] - 1)
                values, vectors = torch.linalg.eigh(covariance)  # ascending
                top = values[-self.rank:].flip(0).clamp_min(0.0)
                factor = vectors[:, -self.rank:].flip(1) * top.sqrt()
                self.factors[c].copy_(factor)
                variance = (variance - factor.pow(2).sum(dim=1)).clamp_min(0.0) if self.residual \
                    else torch.zeros_like(variance)
            self.means[c].copy_(mean.reshape(self.shape))
            std = variance.sqrt().reshape(self.shape)
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
        if self.rank > 0:
            return self._low_rank_log_prob(flat, means, log_stds, y)
        if y is not None:
            return diag_normal_log_prob(flat, means[y], log_stds[y])
        per_class = diag_normal_log_prob(flat.unsqueeze(1), means, log_stds)  # [B, C]
        return torch.logsumexp(per_class, dim=1) - math.log(c)

    def _low_rank_log_prob(self, flat: Tensor, means: Tensor, log_stds: Tensor, y: Tensor | None) -> Tensor:
        r""":math:`\log\mathcal N(z; \mu_c, W_c W_c^\top + \operatorname{diag}\hat\sigma_c^2)` through
        torch's ``LowRankMultivariateNormal`` (Woodbury and the matrix determinant lemma: no D×D matrix), with
        :math:`\hat\sigma` floored at ``max(active_threshold, 1e-6)`` so that it stays well conditioned."""
        floor = 2 * math.log(max(self.active_threshold, 1e-6))
        dist = torch.distributions.LowRankMultivariateNormal(
            means, self.factors.to(means), log_stds.mul(2).clamp_min(floor).exp(), validate_args=False)
        if y is not None:
            per_class = dist.log_prob(flat.unsqueeze(1))  # [B, C]
            return per_class.gather(1, y.reshape(-1, 1)).squeeze(1)
        return torch.logsumexp(dist.log_prob(flat.unsqueeze(1)), dim=1) - math.log(self._classes)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        assert y is not None  # Prior.rsample draws labels for a conditional prior
        means, stds = self.component_means()[y], self.diagonal_stds()[y]
        eps = torch.randn_like(means)
        noise = stds * eps
        if self.rank > 0:
            coefficients = torch.randn(n, self.rank, dtype=means.dtype, device=means.device)
            noise = noise + torch.einsum("ndk,nk->nd", self.factors[y].to(means), coefficients).reshape(means.shape)
        return means + temperature * noise

    def _labels(self, y: Tensor, n: int | None = None) -> Tensor:
        labels = self._check_labels(y, int(torch.as_tensor(y).numel()) if n is None else n)
        assert labels is not None
        return labels

    def extra_repr(self) -> str:
        rank = f", covariance_rank={self.rank}, fit_samples={self.fit_samples}, residual={self.residual}" \
            if self.rank or self.fit_samples else ""
        return f"shape={self.shape}, classes={self._classes}, param={self.param!r}, init={self.init!r}{rank}"
