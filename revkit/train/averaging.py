r"""``train.ema_decay``: an exponential moving average of the weights (Polyak averaging).

After every optimizer step, for every floating-point parameter :math:`w` of the model and the objective,

.. math:: a ← d\,a + (1 - d)\,w, \qquad a_0 = w_0,

with decay :math:`d` (``ema_decay``); the average covers about the last :math:`1/(1-d)` steps. SGD's
iterates scatter around a minimum by an amount that grows with the learning rate; their average sits
closer to it, which is why averaged weights usually generalise a little better than the last ones
(Polyak & Juditsky, 1992; Izmailov et al., 2018). Buffers (a spectral norm's power-iteration vector,
an actnorm's initialised flag) are not averaged: they follow the live model.

The update itself is PyTorch's (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`); this module keeps
the averaged tensors by parameter name, so that they go into checkpoints next to the live weights and
can be put into the model for an evaluation (:meth:`WeightAverage.applied`) or for good at the end of
training (:meth:`WeightAverage.copy_to`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


def _named(modules: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    """The floating-point parameters of ``modules``, named ``<key>.<parameter name>``."""
    return {name: p for key, module in modules.items()
            for name, p in module.named_parameters(prefix=key) if p.is_floating_point()}


class WeightAverage:
    r"""The moving average :math:`a ← d\,a + (1 - d)\,w` of the parameters of ``modules``.

    Args:
        modules: the modules whose parameters are averaged, by a name that prefixes their parameter
            names (the trainer passes ``{"flow": model, "objective": objective}``).
        decay: :math:`d ∈ (0, 1)`.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> average = WeightAverage({"net": net}, decay=0.9)
        >>> average.update()                       # after each optimizer step
        >>> with average.applied():                # net holds the average inside
        ...     pass
    """

    def __init__(self, modules: Mapping[str, nn.Module], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay = {decay} is not in (0, 1)")
        self.modules = dict(modules)
        self.decay = float(decay)
        self.updates = 0
        self._update = get_ema_multi_avg_fn(self.decay)
        self.average = {name: p.detach().clone() for name, p in _named(self.modules).items()}

    def _pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        live = _named(self.modules)
        return [self.average[n] for n in self.average], [live[n].detach() for n in self.average]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average: :math:`a ← d\\,a + (1 - d)\\,w` for every parameter."""
        averaged, live = self._pairs()
        if averaged:
            self._update(averaged, live, None)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self) -> None:
        """Overwrite the modules' parameters with the average."""
        averaged, live = self._pairs()
        for a, w in zip(averaged, live, strict=True):
            w.copy_(a)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Inside: the modules hold the averaged parameters; after: their own again."""
        _, live = self._pairs()
        kept = [w.clone() for w in live]
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for w, k in zip(live, kept, strict=True):
                    w.copy_(k)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "weights": dict(self.average)}

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ValueError: when the saved average has other parameter names or shapes than these modules.
        """
        weights = state["weights"]
        if sorted(weights) != sorted(self.average):
            missing = sorted(set(self.average) - set(weights))[:3]
            extra = sorted(set(weights) - set(self.average))[:3]
            raise ValueError(f"the saved weight average does not fit this model (missing {missing}, unexpected {extra})")
        for name, tensor in weights.items():
            if tuple(tensor.shape) != tuple(self.average[name].shape):
                raise ValueError(f"the saved weight average of {name} has shape {tuple(tensor.shape)}, this model's "
                                 f"{tuple(self.average[name].shape)}")
            self.average[name].copy_(tensor)
        self.updates = int(state.get("updates", 0))


__all__ = ["WeightAverage"]
