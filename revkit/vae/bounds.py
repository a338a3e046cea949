r"""Bounds on :math:`\log p(x)` for a :class:`~revkit.vae.model.VAE`, per image.

With :math:`z_l \sim q(z \mid x)` and log-weights :math:`\log w_l = \log p(x \mid z_l) + \log p(z_l) -
\log q(z_l \mid x)`:

* the **ELBO** :math:`\mathcal L = \mathbb E_q[\log w] = \mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q \,\|\, p)`,
  estimated by the mean of the :math:`\log w_l`;
* the **importance-weighted bound** (IWAE, Burda et al. 2016)

  .. math:: \mathcal L_L = \log \frac1L \sum_{l=1}^L w_l
            = \operatorname{logsumexp}_l(\log w_l) - \log L,

  with :math:`\mathbb E[\mathcal L_1] = \mathcal L \le \mathbb E[\mathcal L_L] \le \log p(x)`, and
  :math:`\mathcal L_L → \log p(x)` as :math:`L → ∞`; :math:`-\mathcal L_L` is the reported
  :math:`-\log p(x)` (5000 samples in the literature);
* the **reconstruction term** :math:`-\mathbb E_q[\log p(x \mid z)]` that VAE tables list next to them.

:func:`importance_weighted` draws the :math:`L` samples in chunks of at most ``chunk_rows`` decoder
rows (samples × images) and keeps a running log-sum-exp, so memory stays bounded for any ``L``; the
encoder runs once per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from revkit.errors import RevkitError
from revkit.vae.model import VAE


@dataclass
class Bounds:
    """Per-image estimates ``[B]`` in nats from ``samples`` posterior draws per image."""

    log_px: Tensor  # the IWAE bound 𝓛_L
    elbo: Tensor  # mean of log w
    log_px_given_z: Tensor  # mean of log p(x|z)
    kl: Tensor  # mean of log q(z|x) − log p(z)
    samples: int


def log_weights(model: VAE, x: Tensor, samples: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(log w, log p(x|z), log q − log p(z))``, each ``[S, B]``, from ``S = samples`` fresh draws."""
    z, log_q = model.draw(model.posterior(x), samples)
    log_lik = model.log_likelihood(x, z)
    kl = log_q - model.log_prior(z)
    return log_lik - kl, log_lik, kl


def elbo(model: VAE, x: Tensor, samples: int = 1) -> Tensor:
    """The ELBO per image ``[B]``, the mean of ``samples`` log-weights (with gradients)."""
    return log_weights(model, x, samples)[0].mean(0)


@torch.no_grad()
def importance_weighted(model: VAE, x: Tensor, samples: int, chunk_rows: int = 10_000) -> Bounds:
    """The IWAE bound with ``L = samples`` (and the ELBO, reconstruction and KL terms from the same
    draws) per image, drawing at most ``max(1, chunk_rows // B)`` samples per image at a time."""
    if samples < 1:
        raise RevkitError(f"the importance-weighted bound needs at least 1 sample, got {samples}")
    b = x.shape[0]
    per_chunk = max(1, int(chunk_rows) // max(b, 1))
    post = model.posterior(x)
    running = x.new_full((b,), -math.inf)
    sum_log_w, sum_lik, sum_kl = x.new_zeros(b), x.new_zeros(b), x.new_zeros(b)
    done = 0
    while done < samples:
        s = min(per_chunk, samples - done)
        z, log_q = model.draw(post, s)
        log_lik = model.log_likelihood(x, z)
        kl = log_q - model.log_prior(z)
        log_w = log_lik - kl
        running = torch.logaddexp(running, torch.logsumexp(log_w, dim=0))
        sum_log_w += log_w.sum(0)
        sum_lik += log_lik.sum(0)
        sum_kl += kl.sum(0)
        done += s
    return Bounds(log_px=running - math.log(samples), elbo=sum_log_w / samples, log_px_given_z=sum_lik / samples,
                  kl=sum_kl / samples, samples=samples)
