r"""MADE: a masked MLP whose outputs for feature :math:`i` depend only on the features before it.

Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution Estimation", ICML 2015.
The features get *degrees* :math:`1, …, D` in an order (``reverse`` flips it); every hidden unit a degree in
:math:`1, …, D-1`; a weight is kept only where the degrees allow it — input :math:`j` → hidden unit of
degree :math:`m` if :math:`d(j) ≤ m`, hidden → hidden if the degree does not decrease, and hidden of degree
:math:`m` → the outputs of feature :math:`i` if :math:`d(i) > m`. So the ``P`` outputs of feature :math:`i`
are a function of :math:`\{x_j : d(j) < d(i)\}` and of the context, and the Jacobian of an elementwise map
whose parameters they are is triangular in that order. The context enters every first-layer unit and, through
an unmasked linear map, every output — the first feature's outputs see no hidden unit, so without that path
they could not depend on the context. With a single feature there is no hidden layer at all: its outputs are
a learned constant (plus the context's linear map).

Shapes: ``forward(x [B, D], context [B, K] | None) -> [B, D, P]``. The last layer starts at zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` ``[out, in]`` on every call."""

    def __init__(self, mask: Tensor):
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return F.linear(x, self.weight * self.mask, self.bias)


def feature_degrees(features: int, reverse: bool) -> Tensor:
    """Degrees :math:`1…D` of the features, in order or reversed."""
    degrees = torch.arange(1, features + 1)
    return degrees.flip(0) if reverse else degrees


class MADE(nn.Module):
    r"""``D (+K) → h → h → D·P`` with ReLUs, masked as in the module docstring.

    Args:
        features: ``D``.
        per_feature: ``P``, outputs per feature.
        hidden: ``h``, width of both hidden layers.
        context_size: ``K`` (0: no context).
        reverse: number the features ``D…1`` instead of ``1…D``.
    """

    def __init__(self, features: int, per_feature: int, hidden: int, context_size: int = 0, reverse: bool = False):
        super().__init__()
        self.features, self.per_feature, self.context_size = int(features), int(per_feature), int(context_size)
        inputs = feature_degrees(self.features, reverse)
        self.register_buffer("degrees", inputs, persistent=False)
        outputs = self.features * self.per_feature
        # feature-major outputs: output i·P + p belongs to feature i
        self.context_output = nn.Linear(self.context_size, outputs, bias=False) if self.context_size else None
        if self.features == 1:
            self.hidden_layers = None
            self.bias = nn.Parameter(torch.zeros(outputs))
        else:
            units = torch.arange(hidden) % (self.features - 1) + 1
            self.hidden_layers = _MaskedHidden(inputs, units, self.context_size)
            self.output_layer = MaskedLinear((inputs.repeat_interleave(self.per_feature)[:, None] > units[None, :]).float())
            nn.init.zeros_(self.output_layer.weight)
            nn.init.zeros_(self.output_layer.bias)
        if self.context_output is not None:
            nn.init.zeros_(self.context_output.weight)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.hidden_layers is None:
            out = self.bias.expand(x.shape[0], -1)
        else:
            out = self.output_layer(self.hidden_layers(x, context))
        if self.context_output is not None:
            assert context is not None
            out = out + self.context_output(context)
        return out.reshape(x.shape[0], self.features, self.per_feature)


class _MaskedHidden(nn.Module):
    """MADE's two masked ReLU layers: ``D (+K) → h → h``."""

    def __init__(self, inputs: Tensor, units: Tensor, context_size: int):
        super().__init__()
        self.input_layer = MaskedLinear((units[:, None] >= inputs[None, :]).float())
        self.context_layer = nn.Linear(context_size, len(units), bias=False) if context_size else None
        self.hidden_layer = MaskedLinear((units[:, None] >= units[None, :]).float())

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        h = self.input_layer(x)
        if self.context_layer is not None:
            assert context is not None
            h = h + self.context_layer(context)
        return F.relu(self.hidden_layer(F.relu(h)))


__all__ = ["MADE", "MaskedLinear", "feature_degrees"]
