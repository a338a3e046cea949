"""``rq_spline_coupling`` is a subclass of revkit's public ``Coupling`` and so inherits its
single-evaluation memory-saving backward: rebuilding a block's input and back-propagating through it
evaluates the coupling network once, and the gradients are plain autograd's."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from revkit.blocks import Coupling, InverseAndVJP
from revkit.memory_saving import run_memory_saving
from revkit_splines import RQSplineCoupling


def _chain(context_size: int) -> list[RQSplineCoupling]:
    torch.manual_seed(0)
    blocks = [RQSplineCoupling((4, 4, 4), hidden=8, bins=5, bound=1.5, flip=i % 2 == 1,
                               mask="checkerboard" if i == 1 else "channel", context_size=context_size)
              for i in range(3)]
    for block in blocks:
        nn.init.normal_(block.subnet.net[-1].weight, std=0.3)
    return blocks


def test_the_spline_coupling_is_a_coupling_with_the_single_evaluation_step() -> None:
    block = RQSplineCoupling((4,), hidden=8, bins=6)
    assert isinstance(block, Coupling) and isinstance(block, InverseAndVJP)
    assert block.parameters_per_entry == 3 * 6 - 1


def test_the_memory_saving_backward_evaluates_each_blocks_network_once() -> None:
    blocks = _chain(context_size=3)
    calls = [0] * len(blocks)
    counting = False

    def counter(i: int) -> Any:
        def hook(*_: Any) -> None:
            if counting:
                calls[i] += 1
        return hook

    for i, block in enumerate(blocks):
        block.subnet.register_forward_hook(counter(i))
    y, logdet = run_memory_saving(blocks, torch.randn(2, 4, 4, 4).requires_grad_(), torch.randn(2, 3))
    loss = 0.5 * y.square().sum() - logdet.sum()
    counting = True
    loss.backward()
    assert calls == [1, 1, 1]


def test_memory_saving_gradients_equal_plain_autograds() -> None:
    blocks = _chain(context_size=3)
    x, context = 1.5 * torch.randn(3, 4, 4, 4, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)

    def gradients(saving: bool) -> list[Tensor]:
        chain = [copy.deepcopy(b).double() for b in blocks]
        xs, cs = x.clone().requires_grad_(), context.clone().requires_grad_()
        if saving:
            y, logdet = run_memory_saving(chain, xs, cs)
        else:
            y, logdet = xs, xs.new_zeros(3)
            for block in chain:
                y, ld = block(y, cs)
                logdet = logdet + ld
        (0.5 * y.square().sum() - logdet.sum()).backward()
        return [xs.grad, cs.grad, *(p.grad for b in chain for p in b.parameters())]

    for plain, saving in zip(gradients(False), gradients(True), strict=True):
        assert plain is not None and saving is not None
        torch.testing.assert_close(saving, plain, rtol=1e-9, atol=1e-9)
