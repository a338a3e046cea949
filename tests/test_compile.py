"""``train.compile``: the compiled network computes the same function and gradients."""

from __future__ import annotations

import copy

import torch

from revkit.build import build
from revkit.spec import load_spec_dict
from revkit.train.compiled import compile_model


def test_a_compiled_flow_gives_the_same_log_density_and_gradients() -> None:
    doc = {"model": {"layers": [{"block": "actnorm"}, {"block": "affine_coupling", "hidden": 8, "repeat": 2},
                                {"block": "permute"}, {"block": "additive_coupling", "hidden": 8}]},
           "data": {"kind": "toy2d"}, "train": {"compile": True}}
    torch.manual_seed(0)
    flow = build(load_spec_dict(doc)).model
    with torch.no_grad():
        flow(torch.randn(32, 2))  # actnorm's data-dependent initialisation
        for p in flow.parameters():
            p.add_(torch.randn_like(p), alpha=0.1)
    eager = copy.deepcopy(flow)
    compile_model(flow, backend="eager")  # traced by dynamo; no code generation, so the test is quick
    x = torch.randn(16, 2)
    for f in (eager, flow):
        f.zero_grad()
        (-f.log_prob(x).mean()).backward()
    torch.testing.assert_close(flow.log_prob(x), eager.log_prob(x))
    for (name, a), b in zip(eager.named_parameters(), flow.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    assert flow.net._compiled_call_impl is not None


def test_train_compile_makes_the_trainer_compile_the_network() -> None:
    from revkit.train.trainer import Trainer

    for compile_ in (False, True):
        doc = {"model": {"layers": [{"block": "affine_coupling", "hidden": 4}]}, "data": {"kind": "toy2d"},
               "train": {"compile": compile_, "device": "cpu"}}
        spec = load_spec_dict(doc)
        built = build(spec)
        Trainer(built.model, built.objective, [(torch.randn(4, 2), torch.zeros(4))], spec.train)
        # compilation itself happens on the first call; constructing only wraps the network
        assert (built.model.net._compiled_call_impl is not None) == compile_
