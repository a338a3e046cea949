r"""A variational autoencoder whose approximate posterior is a normalizing flow.

Generative model on binary data :math:`x` (per-sample shape ``input_shape``), latent :math:`z \in
\mathbb R^D`:

.. math:: p(z) = N(0, I), \qquad p(x \mid z) = \prod_i \mathrm{Bernoulli}(x_i;\ σ(\ell_i(z))),

with the decoder's logits :math:`\ell(z)`. Approximate posterior (Rezende & Mohamed 2015): the
encoder gives :math:`μ, \log σ` (and a context :math:`h`), and

.. math::

    z_0 = μ + σ \odot ε,\ ε \sim N(0, I), \qquad z_K = f_K ∘ \dots ∘ f_1(z_0; h),

    \log q(z_K \mid x) = \log N(z_0; μ, σ^2) - \textstyle\sum_k \log\left|\det ∂f_k/∂z_{k-1}\right| .

``posterior_flow`` is a :class:`~revkit.Sequential` of registered vector blocks (``planar``,
``affine_coupling``, ``permute``, …) in the direction :math:`z_0 → z_K`; an empty one is the plain
VAE. Bounds on :math:`\log p(x)` are in :mod:`revkit.vae.bounds`.

The model implements the model contract (:class:`revkit.model.Model`) with the VAE's meaning:
``encode`` is the posterior's flow applied to :math:`μ`, ``decode`` the Bernoulli means
:math:`σ(\ell(z))`, ``latent`` (and ``forward``) one posterior draw, ``log_prob`` the ELBO with one
draw (a lower bound: ``exact_likelihood = False``), and the layer table lists the posterior flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revkit.invertible import Shape
from revkit.model import Model
from revkit.priors.standard_normal import StandardNormal
from revkit.sequential import Sequential
from revkit.summary import chain_rows, describe, fmt_shape, parameter_count

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class Posterior:
    """The encoder's output for a batch: ``mean, log_std [B, D]`` and the flow's context ``h [B, K]``."""

    mean: Tensor
    log_std: Tensor
    context: Tensor | None


class VAE(Model):
    r"""VAE with a flow posterior (see the module docstring).

    Args:
        input_shape: per-sample data shape, e.g. ``(1, 28, 28)``.
        latent: latent size ``D``.
        encoder: ``x [B, *input_shape] → (μ [B, D], log σ [B, D], h [B, K] or None)``.
        decoder: ``z [B, D] → logits [B, *input_shape]``.
        posterior_flow: blocks on ``(D,)`` taking ``h`` as context (None or empty: the plain VAE).
    """

    conditional = False
    classes = 0
    exact_likelihood = False

    def __init__(self, input_shape: Shape, latent: int, encoder: nn.Module, decoder: nn.Module,
                 posterior_flow: Sequential | None = None):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_shape = (int(latent),)
        self.encoder = encoder
        self.decoder = decoder
        self.posterior_flow = posterior_flow if posterior_flow is not None else Sequential([], self.latent_shape)
        self.prior = StandardNormal(self.latent_shape)

    @property
    def flow_steps(self) -> int:
        """``K``, the number of blocks in the posterior flow."""
        return len(self.posterior_flow)

    # -- the posterior ----------------------------------------------------------------------
    def posterior(self, x: Tensor) -> Posterior:
        mean, log_std, h = self.encoder(x)
        return Posterior(mean, log_std, h)

    def draw(self, post: Posterior, samples: int = 1) -> tuple[Tensor, Tensor]:
        r"""``samples`` reparameterized draws per image: ``z_K [S, B, D]`` and ``log q(z_K|x) [S, B]``."""
        b, d = post.mean.shape
        eps = torch.randn((samples, b, d), device=post.mean.device, dtype=post.mean.dtype)
        z0 = post.mean + torch.exp(post.log_std) * eps
        log_q0 = -0.5 * (eps.pow(2) + LOG_2PI).sum(-1) - post.log_std.sum(-1)
        context = None if post.context is None else post.context.expand(samples, *post.context.shape)
        flat_ctx = None if context is None else context.reshape(samples * b, -1)
        zk, logdet = self.posterior_flow(z0.reshape(samples * b, d), flat_ctx)
        return zk.reshape(samples, b, d), log_q0 - logdet.reshape(samples, b)

    # -- the generative model ---------------------------------------------------------------
    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""``log p(x|z)`` for ``x [B, *input_shape]`` and ``z [S, B, D]``: ``[S, B]`` (Bernoulli, summed
        over pixels)."""
        s, b, d = z.shape
        logits = self.decoder(z.reshape(s * b, d)).reshape(s, b, -1)
        target = x.reshape(1, b, -1).expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z)`` for ``z [S, B, D]``: ``[S, B]``."""
        s, b, d = z.shape
        return self.prior.log_prob(z.reshape(s * b, d)).reshape(s, b)

    # -- the model contract -----------------------------------------------------------------
    def context(self, y: Tensor | None) -> Tensor | None:
        """A VAE takes no class context."""
        return None

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One posterior draw per image: ``(z_K [B, D], log q(z_K|x) [B])``."""
        z, log_q = self.draw(self.posterior(x), 1)
        return z[0], log_q[0]

    def latent(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """One posterior draw per image, ``z_K [B, D]``, as a training step draws it."""
        return self(x)[0]

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The ELBO with one posterior draw, ``[B]``: a lower bound on ``log p(x)``."""
        z, log_q = self.draw(self.posterior(x), 1)
        return (self.log_likelihood(x, z) + self.log_prior(z) - log_q)[0]

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The posterior's flow applied to the encoder's mean: ``[B, D]``."""
        post = self.posterior(x)
        return self.posterior_flow(post.mean, post.context)[0]

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Bernoulli means ``σ(ℓ(z)) [B, *input_shape]``."""
        return torch.sigmoid(self.decoder(z))

    def sample(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """Means of ``p(x|z)`` for ``n`` draws ``z ~ N(0, temperature² I)``: ``[n, *input_shape]``."""
        return self.decode(self.prior.rsample(n, None, temperature))

    def describe(self) -> str:
        steps = " → ".join(b.describe() for b in self.posterior_flow) or "none"
        return f"VAE(latent {self.latent_shape[0]}, posterior flow: {steps})"

    def graph(self) -> str:
        return describe(self.posterior_flow)

    def layer_chain(self) -> tuple[Sequential, Shape]:
        return self.posterior_flow, self.latent_shape

    def summary(self) -> str:
        """The posterior flow's graph and table, and the parameter counts of the encoder, the decoder
        and the flow."""
        from_shape = fmt_shape(self.latent_shape)
        lines = [
            f"VAE: encoder → N(μ, σ²) on {from_shape} → posterior flow (K = {self.flow_steps}) → decoder",
            f"posterior flow: {self.graph()}",
            f"input {fmt_shape(self.input_shape)} → latent {from_shape}",
            "",
        ]
        for row in chain_rows(self.posterior_flow, self.latent_shape):
            lines.append(f"  {row.index:>3}  {row.description:<28} {fmt_shape(row.input_shape):>6} → "
                         f"{fmt_shape(row.output_shape):<6} {row.parameters:>10,}")
        parts = {"encoder": self.encoder, "posterior flow": self.posterior_flow, "decoder": self.decoder}
        counts = ", ".join(f"{name} {parameter_count(m):,}" for name, m in parts.items())
        lines.append(f"total parameters: {parameter_count(self):,} ({counts})")
        return "\n".join(lines)
