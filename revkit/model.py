r"""The model contract: what training, evaluation and the run layer may ask of any generative model.

revkit ships two kinds of model, each in its own module and registered by name through the
``register_models`` plugin hook: the normalizing flow (:class:`~revkit.Flow`,
``model.kind = "flow"``) and the VAE with a flow posterior (:mod:`revkit.vae`, ``"vae"``). Code
outside a kind's module talks to a model only through this contract:

* ``input_shape`` and ``latent_shape`` — per-sample shapes of the data ``x`` and the latent ``z``;
  ``classes`` (0: no labels) and ``conditional`` (the model takes labels ``y``); ``prior`` — the
  density on the latent (:class:`~revkit.Prior`, or None for a bare flow).
* ``encode(x, y)`` → ``z`` and ``decode(z, y)`` → ``x`` (for a flow, :math:`f` and :math:`f^{-1}`;
  for a VAE, the posterior's flow at the encoder's mean and the decoder's Bernoulli means).
* ``latent(x, y)`` — the latent codes a training step computes (a flow's :math:`f(x)`, a VAE's
  one posterior draw): the trainer's data-dependent initialisation runs it in training mode.
* ``log_prob(x, y)`` → :math:`\log p(x \mid y)` in nats per sample, exact when
  ``exact_likelihood`` is True, else a lower bound (a VAE's ELBO).
* ``sample(n, y, temperature)`` — ``n`` data samples; ``context(y)`` — the blocks' context.
* ``graph()`` — the compact graph (``Squeeze → 4×AffineCoupling(64) → …``), ``layer_chain()`` — the
  chain of blocks that the per-layer table lists and its input shape, ``summary()`` — what
  ``revkit inspect`` prints.

A *model kind* (:class:`ModelKind`) turns the ``[model]`` table into a model; a plugin registers
one with ``register("name", Kind)`` in its ``register_models`` hook.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel
from torch import Tensor, nn

from revkit.invertible import Shape
from revkit.priors.base import Prior
from revkit.sequential import Sequential


class Model(nn.Module):
    """Base class of generative models (see the module docstring for the contract)."""

    input_shape: Shape
    latent_shape: Shape
    classes: int = 0
    conditional: bool = False
    # an annotation only: a class attribute would shadow the submodule nn.Module registers
    prior: Prior | None
    #: ``log_prob`` is exact (False: it is a lower bound on the log-likelihood).
    exact_likelihood: ClassVar[bool] = True

    def context(self, y: Tensor | None) -> Tensor | None:
        """The blocks' context for labels ``y`` (None for a model without one)."""
        return None

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Data ``[B, *input_shape]`` → latent ``[B, *latent_shape]``."""
        raise NotImplementedError

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Latent ``[B, *latent_shape]`` → data ``[B, *input_shape]``."""
        raise NotImplementedError

    def latent(self, x: Tensor, y: Tensor | None = None, *extra: Tensor) -> Tensor:
        """The latent codes of ``x`` as a training step computes them. ``extra``: the further entries of a
        batch whose source yields more than ``(x, y)`` (a second domain's images and labels); a model
        that holds a network for them initialises it here, the others ignore them."""
        return self.encode(x, y)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``log p(x | y)`` in nats per sample, ``[B]`` (a lower bound when not ``exact_likelihood``)."""
        raise NotImplementedError

    def sample(self, n: int, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``[n, *input_shape]``; ``temperature`` scales the prior's std."""
        raise NotImplementedError

    def exact_logdet_mode(self) -> contextlib.AbstractContextManager[object]:
        """A context in which ``log_prob`` is computed without stochastic estimators where the model
        has any (a flow's i-ResNet blocks); the default changes nothing."""
        return contextlib.nullcontext()

    def compile_network(self, backend: str = "inductor") -> None:
        """``train.compile``: compile what a training step runs, in place (:meth:`torch.nn.Module.compile`,
        so ``state_dict`` keys do not change). The default compiles the whole model's forward."""
        self.compile(dynamic=False, backend=backend)

    def graph(self) -> str:
        """The compact graph of the model's blocks."""
        raise NotImplementedError

    def layer_chain(self) -> tuple[Sequential, Shape]:
        """The chain of blocks the per-layer table lists, and its per-sample input shape."""
        raise NotImplementedError

    def summary(self) -> str:
        """What ``revkit inspect`` prints: the graph, the shapes and the per-layer table."""
        raise NotImplementedError


class ModelKind(Protocol):
    """A registered kind of model: how a ``[model]`` table becomes a :class:`Model`.

    Attributes:
        Params: the pydantic model of the kind's own table ``[model.<kind>]``, or None when the
            kind has none (a flow is described by ``[[model.layers]]`` alone).
        layer_lists: fields of ``Params`` that hold lists of block tables (validated like
            ``[[model.layers]]``, e.g. a VAE's ``posterior_flow``).
        needs_layers: True when ``[[model.layers]]`` must hold at least one block, False when the
            kind takes none.
    """

    Params: ClassVar[type[BaseModel] | None]
    layer_lists: ClassVar[tuple[str, ...]]
    needs_layers: ClassVar[bool]

    @classmethod
    def build(cls, spec: Any, info: Any, registries: Any) -> Model:
        """The model a validated spec describes, on the data ``info`` (a :class:`~revkit.data.DataInfo`)."""
        ...


__all__ = ["Model", "ModelKind"]
