r"""The losses of adversarial training in data space, as functions of discriminator scores.

With raw scores :math:`s = D(x)` (logits) and :math:`\sigma` the logistic function, so that
:math:`\log\sigma(s) = -\operatorname{softplus}(-s)` and :math:`\log(1-\sigma(s)) = -\operatorname{softplus}(s)`
(computed in that stable form):

* ``minimax`` (Goodfellow et al., 2014): the discriminator minimises
  :math:`L_D = -\mathbb E\log\sigma(D(x)) - \mathbb E\log(1-\sigma(D(G(z))))`, the generator minimises
  :math:`L_G = \mathbb E\log(1-\sigma(D(G(z))))` — flat where the discriminator rejects the samples
  confidently (:math:`\partial L_G/\partial s = -\sigma(s) \to 0`);
* ``non_saturating``: the same :math:`L_D`; :math:`L_G = -\mathbb E\log\sigma(D(G(z)))`, whose gradient
  :math:`\sigma(s) - 1 \to -1` is largest exactly there;
* ``wgan_gp`` (Gulrajani et al., 2017): a critic of unbounded scores,
  :math:`L_D = \mathbb E D(G(z)) - \mathbb E D(x) + \gamma\,\mathbb E_{\hat x}(\lVert\nabla_{\hat x}D(\hat x)\rVert_2 - 1)^2`
  with :math:`\hat x = \epsilon x + (1-\epsilon)G(z)`, :math:`\epsilon\sim\mathcal U[0,1]` per sample;
  :math:`L_G = -\mathbb E D(G(z))`.

Means are over the batch; real and fake batches may differ in size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

GanLoss = Literal["minimax", "non_saturating", "wgan_gp"]
GAN_LOSSES: tuple[str, ...] = ("minimax", "non_saturating", "wgan_gp")


def critic_loss(kind: str, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """:math:`L_D` without the gradient penalty (see the module)."""
    if kind == "wgan_gp":
        return fake_scores.mean() - real_scores.mean()
    if kind in ("minimax", "non_saturating"):
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; allowed: {', '.join(GAN_LOSSES)}")


def generator_loss(kind: str, fake_scores: Tensor) -> Tensor:
    """:math:`L_G` (see the module): ``minimax`` :math:`\\mathbb E\\log(1-\\sigma(s))`, ``non_saturating``
    :math:`-\\mathbb E\\log\\sigma(s)`, ``wgan_gp`` :math:`-\\mathbb E s`."""
    if kind == "minimax":
        return -F.softplus(fake_scores).mean()
    if kind == "non_saturating":
        return F.softplus(-fake_scores).mean()
    if kind == "wgan_gp":
        return -fake_scores.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; allowed: {', '.join(GAN_LOSSES)}")


def interpolates(real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """:math:`\\hat x = \\epsilon x + (1-\\epsilon)\\tilde x` with one :math:`\\epsilon \\sim \\mathcal U[0,1]`
    per sample (or the given ``eps`` ``[B]``); ``real`` and ``fake`` have the same shape."""
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    e = eps.reshape(-1, *([1] * (real.dim() - 1)))
    return e * real + (1.0 - e) * fake


def gradient_penalty(critic: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    r""":math:`\mathbb E(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2` over the rows of ``points``
    ``[B, …]``, with the graph kept (``create_graph``) so that its gradient reaches the critic's
    parameters. Each sample's score depends only on that sample, so the gradient of the summed
    scores holds every per-sample gradient."""
    points = points.detach().requires_grad_(True)
    scores = critic(points)
    (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    norms = (grad.reshape(grad.shape[0], -1).pow(2).sum(dim=1) + 1e-12).sqrt()  # differentiable at 0 too
    return (norms - 1.0).pow(2).mean()
