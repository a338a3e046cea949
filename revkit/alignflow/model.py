r"""Two normalizing flows onto one shared latent space (AlignFlow, Grover et al., 2020).

:math:`G_A: \mathcal X_A \to \mathcal Z` and :math:`G_B: \mathcal X_B \to \mathcal Z` are invertible networks
with one prior :math:`p_Z` on their common latent space, so each domain has an exact density

.. math:: \log p_A(x_A) = \log p_Z(G_A(x_A)) + \log\left|\det \frac{∂G_A}{∂x_A}\right|,
          \qquad \text{likewise } p_B,

and the translations are compositions through the latent:

.. math:: x_A \mapsto G_B^{-1}(G_A(x_A)), \qquad x_B \mapsto G_A^{-1}(G_B(x_B)).

Because both maps are bijections, :math:`A \to B \to A` is the identity by construction:
:math:`G_A^{-1}(G_B(G_B^{-1}(G_A(x_A)))) = G_A^{-1}(G_A(x_A)) = x_A` (up to float rounding) — cycle
consistency needs no loss.

Under the model contract (:class:`revkit.model.Model`) the model is domain A's: ``encode`` is
:math:`G_A`, ``decode`` :math:`G_A^{-1}`, ``log_prob`` :math:`\log p_A`, ``sample`` draws from domain
A; the ``_b`` methods are domain B's, and :meth:`a_to_b` / :meth:`b_to_a` translate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from revkit.errors import RevkitError
from revkit.invertible import Shape
from revkit.model import Model
from revkit.priors.base import Prior
from revkit.runtime.device import module_device
from revkit.sequential import Sequential
from revkit.summary import chain_rows, describe, fmt_shape, parameter_count, render_table


class AlignedFlows(Model):
    """Two flows ``net_a``, ``net_b`` (data → latent) sharing ``prior`` (see the module).

    Args:
        net_a, net_b: the two invertible networks, on ``input_shape``, with equal latent shapes.
        input_shape: per-sample shape of both domains' data.
        prior: the shared density on the latent.
        classes: number of classes of the labels (0: none); the flows are not conditioned on them.

    Example:
        >>> from revkit.blocks import AffineCoupling
        >>> from revkit.priors import StandardNormal
        >>> m = AlignedFlows(Sequential([AffineCoupling((2,), hidden=8)], (2,)),
        ...                  Sequential([AffineCoupling((2,), hidden=8)], (2,)), (2,), StandardNormal((2,)))
        >>> x = torch.randn(4, 2)
        >>> bool(torch.allclose(m.b_to_a(m.a_to_b(x)), x, atol=1e-5))
        True
    """

    def __init__(self, net_a: Sequential, net_b: Sequential, input_shape: Shape, prior: Prior, classes: int = 0):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.net_a, self.net_b = net_a, net_b
        latent_a, latent_b = net_a.output_shape(self.input_shape), net_b.output_shape(self.input_shape)
        if tuple(latent_a) != tuple(latent_b):
            raise RevkitError(f"the two flows must share one latent space: flow_a gives {tuple(latent_a)}, "
                              f"flow_b gives {tuple(latent_b)}")
        self.latent_shape = tuple(latent_a)
        if tuple(prior.shape) != self.latent_shape:
            raise RevkitError(f"the prior has shape {prior.shape} but the latent has shape {self.latent_shape}")
        self.prior = prior
        self.classes = int(classes)
        self.conditional = False
        self.exact_logdet = bool(net_a.exact_logdet and net_b.exact_logdet)

    # -- domain A: the model contract -----------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """:math:`G_A(x)`."""
        return self.net_a(x)[0]

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """:math:`G_A^{-1}(z)`."""
        return self.net_a.inverse(z)[0]

    def latent(self, x: Tensor, y: Tensor | None = None, x_b: Tensor | None = None, y_b: Tensor | None = None) -> Tensor:
        """:math:`G_A(x)`; given domain B's batch too (the trainer passes a batch's further entries), also runs
        :math:`G_B` on it, so both flows get their data-dependent initialisation (actnorm) before step 1."""
        if x_b is not None:
            self.net_b(x_b)
        return self.encode(x, y)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """:math:`\\log p_A(x)` in nats per sample ``[B]``."""
        return self._log_prob(self.net_a, x, y)

    def sample(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples of domain A: :math:`G_A^{-1}(z)`, :math:`z \\sim p_Z` at ``temperature``."""
        return self.decode(self._prior_samples(n, y, temperature))

    # -- domain B and the translations --------------------------------------------------------------
    def encode_b(self, x: Tensor) -> Tensor:
        """:math:`G_B(x)`."""
        return self.net_b(x)[0]

    def decode_b(self, z: Tensor) -> Tensor:
        """:math:`G_B^{-1}(z)`."""
        return self.net_b.inverse(z)[0]

    def log_prob_b(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """:math:`\\log p_B(x)` in nats per sample ``[B]``."""
        return self._log_prob(self.net_b, x, y)

    def sample_b(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples of domain B."""
        return self.decode_b(self._prior_samples(n, y, temperature))

    def a_to_b(self, x_a: Tensor) -> Tensor:
        """:math:`G_B^{-1}(G_A(x_A))`."""
        return self.decode_b(self.encode(x_a))

    def b_to_a(self, x_b: Tensor) -> Tensor:
        """:math:`G_A^{-1}(G_B(x_B))`."""
        return self.decode(self.encode_b(x_b))

    # -- the description ------------------------------------------------------------------------------
    def graph(self) -> str:
        return f"A: {describe(self.net_a)} | B: {describe(self.net_b)}"

    def layer_chain(self) -> tuple[Sequential, Shape]:
        return self.net_a, self.input_shape

    def summary(self) -> str:
        prior_params = parameter_count(self.prior)
        a, b = parameter_count(self.net_a), parameter_count(self.net_b)
        lines = [f"flow_a: {describe(self.net_a)}", f"flow_b: {describe(self.net_b)}",
                 f"input {fmt_shape(self.input_shape)} → shared latent {fmt_shape(self.latent_shape)}", ""]
        for name, net in (("flow_a", self.net_a), ("flow_b", self.net_b)):
            lines += [name, render_table(chain_rows(net, self.input_shape), [], f"{name} parameters: {parameter_count(net):,}"), ""]
        lines.append(f"total parameters: {a + b + prior_params:,} (flow_a {a:,}, flow_b {b:,}, "
                     f"prior {type(self.prior).__name__} {prior_params:,})")
        return "\n".join(lines)

    # -- helpers ---------------------------------------------------------------------------------------
    def _log_prob(self, net: Sequential, x: Tensor, y: Tensor | None) -> Tensor:
        z, logdet = net(x)
        return self.prior.log_prob(z, y if self.prior.conditional else None) + logdet

    def _prior_samples(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        if self.prior.conditional:
            if y is None:
                y = torch.randint(0, self.prior.classes, (n,), device=module_device(self))
            y = torch.as_tensor(y, device=module_device(self)).long().reshape(-1).expand(n)
        else:
            y = None
        return self.prior.rsample(n, y, temperature)
