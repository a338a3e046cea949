"""Multi-scale factor-out (Real NVP, Glow)."""

from __future__ import annotations

import contextlib

import torch
from pydantic import Field
from torch import Tensor

from revkit.errors import ShapeError
from revkit.invertible import BlockParams, Invertible, Shape, numel


class SplitParams(BlockParams):
    fraction: float = Field(0.5, gt=0.0, lt=1.0, description="share of channels (features) factored out")


class Split(Invertible):
    r"""Factor out part of the channels straight to the latent; the rest continues through ``then``.

    For an input ``x`` of shape ``(C, H, W)`` (or ``(D,)``), the last ``k = round(fraction·C)``
    channels ``x_out`` go to the latent unchanged and the first ``C − k`` channels ``x_in`` go
    through the continuation ``g = then`` (the layers after the split in a spec; identity when
    none). The output is the flat vector

    .. math:: y = [\operatorname{vec}(x_{out}),\ \operatorname{vec}(g(x_{in}))]

    of all ``C·H·W`` elements, so ``log|det J| = log|det J_g|``. Nested splits give Glow's
    multi-scale latent: the pieces factored out earlier come first.
    """

    Params = SplitParams
    block_name = "split"

    def __init__(self, input_shape: Shape, fraction: float = 0.5, then: Invertible | None = None):
        super().__init__(input_shape)
        channels = self.input_shape[0]
        self.factored = int(round(fraction * channels))
        if not 0 < self.factored < channels:
            raise ShapeError(
                f"split of fraction {fraction} on {channels} channels leaves nothing to factor out "
                f"or nothing to continue; it needs at least 2 channels (got shape {self.input_shape})"
            )
        self.fraction = fraction
        self.kept_shape: Shape = (channels - self.factored, *self.input_shape[1:])
        self.factored_shape: Shape = (self.factored, *self.input_shape[1:])
        self.then: Invertible | None = None
        if then is not None:
            self.attach(then)

    def attach(self, then: Invertible) -> None:
        """Set the continuation (the blocks after the split), which takes :attr:`kept_shape`."""
        self.then = then
        self.exact_logdet = then.exact_logdet
        self.analytic_inverse = then.analytic_inverse

    def exact_logdet_mode(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext() if self.then is None else self.then.exact_logdet_mode()

    def _then_shape(self) -> Shape:
        return self.kept_shape if self.then is None else tuple(self.then.output_shape(self.kept_shape))

    def output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) != self.input_shape:
            raise ShapeError(f"split was built for shape {self.input_shape}, got {tuple(input_shape)}")
        return (numel(self.factored_shape) + numel(self._then_shape()),)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        keep, out = x[:, : self.kept_shape[0]], x[:, self.kept_shape[0] :]
        if self.then is None:
            logdet = self.zero_logdet(x)
        else:
            keep, logdet = self.then(keep, context)
        b = x.shape[0]
        return torch.cat([out.reshape(b, -1), keep.reshape(b, -1)], dim=1), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, k = y.shape[0], numel(self.factored_shape)
        out = y[:, :k].reshape(b, *self.factored_shape)
        keep = y[:, k:].reshape(b, *self._then_shape())
        if self.then is None:
            logdet = self.zero_logdet(y)
        else:
            keep, logdet = self.then.inverse(keep, context)
        return torch.cat([keep, out], dim=1), logdet

    def describe(self) -> str:
        return "Split" if self.fraction == 0.5 else f"Split({self.fraction:g})"

