r"""A normalizing flow: an invertible network plus a prior on its output.

With the network :math:`f` (data → latent) and the prior density :math:`p_Z`, the model density is

.. math:: \log p_X(x \mid y) = \log p_Z(f(x; c) \mid y) + \log\left|\det \frac{∂f(x; c)}{∂x}\right|

where ``y`` are class labels and ``c`` the context the blocks see (the one-hot code of ``y`` when
the flow is conditional).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from revkit.errors import RevkitError
from revkit.invertible import Invertible, Shape
from revkit.model import Model
from revkit.priors.base import Prior
from revkit.runtime.device import module_device, module_dtype
from revkit.sequential import Sequential
from revkit.summary import chain_rows, describe, fmt_shape, parameter_count, render_table


class Flow(Invertible, Model):
    """An invertible network with a prior: ``encode``, ``decode``, ``log_prob``, ``sample`` (the
    model kind ``"flow"``; :class:`~revkit.model.Model` is the contract).

    Args:
        layers: the blocks in data → latent order (a :class:`Sequential` or an iterable of
            blocks); a :class:`~revkit.blocks.split.Split` holds the blocks after it.
        input_shape: per-sample data shape, e.g. ``(1, 28, 28)`` or ``(2,)``.
        prior: density on the latent (shape ``output_shape(input_shape)``); needed by
            :meth:`log_prob` and :meth:`sample`.
        classes: number of classes of the labels ``y`` (0 for none).
        conditional: pass the one-hot labels as ``context`` to the blocks.

    Example:
        >>> from revkit.blocks import AffineCoupling
        >>> from revkit.priors import StandardNormal
        >>> flow = Flow([AffineCoupling((2,), hidden=16)], (2,), prior=StandardNormal((2,)))
        >>> flow.log_prob(torch.randn(5, 2)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        layers: Sequential | Iterable[Invertible],
        input_shape: Shape,
        prior: Prior | None = None,
        classes: int = 0,
        conditional: bool = False,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.net = layers if isinstance(layers, Sequential) else Sequential(layers, self.input_shape)
        self.latent_shape = self.net.output_shape(self.input_shape)
        if prior is not None and tuple(prior.shape) != tuple(self.latent_shape):
            raise RevkitError(f"the prior has shape {prior.shape} but the flow's latent has shape "
                              f"{self.latent_shape}")
        if conditional and classes < 1:
            raise RevkitError("a conditional flow needs classes ≥ 1")
        self.prior = prior
        self.classes = int(classes)
        self.exact_logdet = self.net.exact_logdet
        self.analytic_inverse = self.net.analytic_inverse
        for name, module in self.net.named_modules():  # blocks that warn say which one they are
            if hasattr(module, "layer_name") and isinstance(module, Invertible):
                module.layer_name = f"flow.net.{name} ({module.describe()})"
        self.conditional = bool(conditional)

    # -- the invertible contract -------------------------------------------------------------
    def output_shape(self, input_shape: Shape) -> Shape:
        return self.net.output_shape(input_shape)

    def exact_logdet_mode(self) -> contextlib.AbstractContextManager[object]:
        """The blocks' exact modes (see :meth:`Sequential.exact_logdet_mode`)."""
        return self.net.exact_logdet_mode()

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.net(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.net.inverse(y, context)

    # -- the user-facing calls ---------------------------------------------------------------
    def context(self, y: Tensor | None) -> Tensor | None:
        """The blocks' context for labels ``y``: their one-hot code if the flow is conditional."""
        if not self.conditional:
            return None
        if y is None:
            raise RevkitError("this flow is class-conditional: pass the labels y")
        return F.one_hot(y.long(), self.classes).to(module_dtype(self))

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Data ``[B, *input_shape]`` → latent ``[B, *latent_shape]``."""
        return self.net(x, self.context(y))[0]

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Latent ``[B, *latent_shape]`` → data ``[B, *input_shape]``."""
        return self.net.inverse(z, self.context(y))[0]

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | y) in nats per sample, ``[B]`` (the marginal over classes when the prior is
        class-conditional and ``y`` is None)."""
        prior = self._need_prior()
        z, logdet = self.net(x, self.context(y))
        return prior.log_prob(z, y) + logdet

    def sample(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``[n, *input_shape]``; labels ``y`` (``[n]`` or one label for all) for a
        conditional model, drawn uniformly when omitted. ``temperature`` scales the prior's std."""
        prior = self._need_prior()
        if y is None and (self.conditional or prior.conditional):
            y = torch.randint(0, max(self.classes, prior.classes), (n,), device=module_device(self))
        if y is not None:
            y = torch.as_tensor(y, device=module_device(self)).long().reshape(-1).expand(n)
        z = prior.rsample(n, y, temperature)
        return self.decode(z, y)

    def describe(self) -> str:
        return "Flow"

    # -- the model contract's description ----------------------------------------------------
    def compile_network(self, backend: str = "inductor") -> None:
        """Compile the network's forward (training and ``encode``; ``inverse`` stays eager)."""
        self.net.compile(dynamic=False, backend=backend)

    def graph(self) -> str:
        return describe(self.net)

    def layer_chain(self) -> tuple[Sequential, Shape]:
        return self.net, tuple(self.input_shape)

    def summary(self) -> str:
        net_params = parameter_count(self.net)
        prior_params = parameter_count(self.prior) if self.prior is not None else 0
        prior_name = type(self.prior).__name__ if self.prior is not None else "none"
        table = render_table(
            chain_rows(self.net, self.input_shape), [(f"prior: {prior_name}", self.latent_shape, prior_params)],
            f"total parameters: {net_params + prior_params:,} (network {net_params:,}, prior {prior_params:,})")
        return "\n".join([self.graph(), f"input {fmt_shape(self.input_shape)} → latent {fmt_shape(self.latent_shape)}",
                          "", table])

    # -- helpers -----------------------------------------------------------------------------
    def _need_prior(self) -> Prior:
        if self.prior is None:
            raise RevkitError("this flow has no prior: pass prior= to use log_prob or sample")
        return self.prior
