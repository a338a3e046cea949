r"""A spectrally normalized MLP critic and the hinge losses of adversarial training.

Critic :math:`D: \mathbb R^k \to \mathbb R`, ``Linear(k → h) → LeakyReLU(0.2) → Linear(h → h) →
LeakyReLU(0.2) → Linear(h → 1)``, every weight divided by an estimate of its largest singular value
(:func:`torch.nn.utils.parametrizations.spectral_norm`, Miyato et al., 2018: one power-iteration
step per training forward, with persistent vectors), so each layer — and, the activations being
1-Lipschitz, the whole critic — is (about) 1-Lipschitz.

Hinge losses (Lim & Ye, 2017; Miyato et al., 2018), with "real" the prior samples and "fake" the
encodings:

.. math:: L_D = \operatorname{mean}\,\max(0, 1 - D(\text{real})) + \operatorname{mean}\,\max(0, 1 + D(\text{fake})),
          \qquad L_G = -\operatorname{mean}\, D(\text{fake}).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.functional import relu
from torch.nn.utils.parametrizations import spectral_norm


class SpectralCritic(nn.Module):
    """Spectral-normalized MLP critic: ``[B, k] → [B]`` (see the module).

    Args:
        in_features: ``k``.
        hidden: ``h``.

    Example:
        >>> SpectralCritic(8, 32)(torch.randn(5, 8)).shape
        torch.Size([5])
    """

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.in_features, self.hidden = int(in_features), int(hidden)
        self.layers = nn.ModuleList(
            spectral_norm(nn.Linear(a, b)) for a, b in ((in_features, hidden), (hidden, hidden), (hidden, 1))
        )
        self.activation = nn.LeakyReLU(0.2)

    def forward(self, v: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            v = self.activation(layer(v))
        return self.layers[-1](v).squeeze(-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hidden={self.hidden}"


def hinge_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """:math:`L_D`: push the critic above +1 on real samples and below −1 on fakes."""
    return relu(1.0 - real_scores).mean() + relu(1.0 + fake_scores).mean()


def hinge_generator_loss(fake_scores: Tensor) -> Tensor:
    """:math:`L_G = -\\operatorname{mean} D(\\text{fake})`: the generator raises the critic's score."""
    return -fake_scores.mean()
