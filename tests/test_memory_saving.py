"""Memory-saving execution: same gradients as plain autograd, activations not stored, clear refusals.

The per-block gradient equality is the conformance kit's ``memory_saving`` check, run over every
registered block in tests/test_conformance.py; here: whole flows (multi-scale splits, class
context, per-layer switches), what the backward keeps in memory, random state, and the spec.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import revkit
from revkit.blocks import AdditiveCoupling, AffineCoupling, InverseAndVJP
from revkit.build import build_model
from revkit.data.base import DataInfo
from revkit.errors import SpecError
from revkit.flow import Flow
from revkit.invertible import Invertible, Shape
from revkit.memory_saving import run_memory_saving
from revkit.plugins import hookimpl, load_registries
from revkit.spec import load_spec_dict

PICTURES = DataInfo(shape=(1, 8, 8), classes=10, levels=256, name="mnist")

MULTI_SCALE = [
    {"block": "squeeze"},                                             # 4×4×4
    {"block": "glow_step", "hidden": 8, "repeat": 2},
    {"block": "affine_coupling", "hidden": 8, "mask": "checkerboard"},
    {"block": "split"},                                               # factor out 2×4×4
    {"block": "squeeze"},                                             # 8×2×2
    {"block": "revblock", "hidden": 8, "repeat": 2},
    {"block": "additive_coupling", "hidden": 8},
]


class Iterative(Invertible):
    """A block whose inverse is declared iterative (``analytic_inverse = False``)."""

    analytic_inverse = False

    def __init__(self, input_shape: Shape):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * self.scale, self.zero_logdet(x) + x[0].numel() * self.scale.abs().log()

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y / self.scale, self.zero_logdet(y) - y[0].numel() * self.scale.abs().log()


class IterativePlugin:
    @hookimpl
    def register_blocks(self, register: Any) -> None:
        register("iterative_scale", Iterative)


REGS = load_registries(extra_plugins=[("memory-saving-tests", IterativePlugin())], entry_points=False)


def flow_of(layers: list[dict[str, Any]], *, train: dict[str, Any] | None = None, conditional: bool = False,
            seed: int = 0, double: bool = True) -> Flow:
    doc = {"model": {"layers": layers, "conditional": conditional}, "data": {"kind": "mnist"},
           "train": train or {}}
    spec = load_spec_dict(doc, registries=REGS)
    torch.manual_seed(seed)
    flow = build_model(spec, PICTURES, registries=REGS)
    flow = flow.double() if double else flow
    with torch.no_grad():  # data-dependent init (actnorm), then parameters away from the identity
        flow.train()
        flow.net(torch.rand(16, *PICTURES.shape, dtype=flow_dtype(flow)), context_of(flow, 16))
        for p in flow.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return flow


def flow_dtype(flow: Flow) -> torch.dtype:
    return next(flow.parameters()).dtype


def context_of(flow: Flow, n: int) -> Tensor | None:
    if not flow.conditional:
        return None
    return nn.functional.one_hot(torch.arange(n) % 10, 10).to(flow_dtype(flow))


def nll_gradients(flow: Flow, x: Tensor) -> dict[str, Tensor]:
    """Gradients of the mean negative log-likelihood (network and prior) for every parameter."""
    flow.train()
    flow.zero_grad()
    labels = torch.arange(x.shape[0]) % 10 if flow.conditional else None
    loss = -flow.log_prob(x, labels).mean()
    loss.backward()
    return {n: p.grad.clone() for n, p in flow.named_parameters() if p.grad is not None}


def assert_same_gradients(a: dict[str, Tensor], b: dict[str, Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        err = (a[name] - b[name]).abs().max().item()
        assert err <= atol, f"{name}: max abs difference {err:.3g} > {atol:g}"


def saving_marks(flow: Flow) -> list[bool]:
    """Every chain's per-block memory-saving marks, depth first (through split continuations)."""
    from revkit.sequential import Sequential

    marks: list[bool] = []

    def visit(chain: Sequential) -> None:
        for layer, mark in zip(chain.layers, chain.memory_saving):
            marks.append(mark)
            then = getattr(layer, "then", None)
            if isinstance(then, Sequential):
                visit(then)

    visit(flow.net)
    return marks


# -- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("double", "atol"), [(True, 1e-10), (False, 1e-5)])
def test_a_multi_scale_flow_gets_plain_autograds_gradients(double: bool, atol: float) -> None:
    plain = flow_of(MULTI_SCALE, double=double)
    saving = flow_of(MULTI_SCALE, train={"memory_saving": True}, double=double)
    assert not any(saving_marks(plain))
    assert saving_marks(saving) == [True, True, True, True, False, True, True, True, True]
    x = torch.rand(6, *PICTURES.shape, dtype=flow_dtype(plain))
    assert_same_gradients(nll_gradients(plain, x), nll_gradients(saving, x), atol)


def test_class_context_gets_the_same_gradients_too() -> None:
    layers = [{"block": "squeeze"}, {"block": "glow_step", "hidden": 8, "repeat": 3}]
    plain = flow_of(layers, conditional=True)
    saving = flow_of(layers, conditional=True, train={"memory_saving": True})
    x = torch.rand(5, *PICTURES.shape, dtype=torch.float64)
    assert_same_gradients(nll_gradients(plain, x), nll_gradients(saving, x), 1e-10)


def test_gradients_reach_a_context_that_requires_them() -> None:
    torch.manual_seed(0)
    blocks = [AdditiveCoupling((4,), hidden=6, context_size=3, flip=i % 2 == 1).double() for i in range(3)]
    for b in blocks:
        nn.init.normal_(b.subnet.net[-1].weight, std=0.3)
    x = torch.randn(4, 4, dtype=torch.float64)
    grads = []
    for saving in (False, True):
        ctx = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        ctx.data = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
        if saving:
            y, _ = run_memory_saving(blocks, x, ctx)
        else:
            y = x
            for b in blocks:
                y, _ = b(y, ctx)
        (y ** 2).sum().backward()
        grads.append(ctx.grad)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def test_per_layer_switches_override_the_train_setting() -> None:
    layers = copy.deepcopy(MULTI_SCALE)
    layers[1]["memory_saving"] = True          # the glow steps only
    layers[5]["memory_saving"] = False         # the revblocks stay plain under train.memory_saving
    only_glow = flow_of(layers)
    assert saving_marks(only_glow) == [False, True, True, False, False, False, False, False, False]
    all_but_rev = flow_of(layers, train={"memory_saving": True})
    assert saving_marks(all_but_rev) == [True, True, True, True, False, True, False, False, True]
    x = torch.rand(4, *PICTURES.shape, dtype=torch.float64)
    reference = nll_gradients(flow_of(MULTI_SCALE), x)
    assert_same_gradients(reference, nll_gradients(only_glow, x), 1e-10)
    assert_same_gradients(reference, nll_gradients(all_but_rev, x), 1e-10)


# -- memory ------------------------------------------------------------------------------------
def saved_bytes(flow: Flow, x: Tensor) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of the loss (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.device.type != "meta":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    flow.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = -flow.log_prob(x).mean()
    loss.backward()
    return sum(seen.values())


@pytest.mark.parametrize("saving", [False, True])
def test_stored_activations_grow_with_depth_only_without_memory_saving(saving: bool) -> None:
    def deep(depth: int) -> Flow:
        layers = [{"block": "squeeze"}, {"block": "glow_step", "hidden": 16, "repeat": depth}]
        return flow_of(layers, train={"memory_saving": saving}, double=False)

    x = torch.rand(32, *PICTURES.shape)
    shallow, deeper = saved_bytes(deep(2), x), saved_bytes(deep(16), x)
    params_growth = sum(p.numel() * 4 for p in deep(16).parameters()) - sum(p.numel() * 4 for p in deep(2).parameters())
    if saving:
        # the parameters themselves are kept (they are inputs of the chain); activations are not
        assert deeper - shallow <= params_growth + 4096
    else:
        assert deeper - shallow > 5 * params_growth


# -- random state ------------------------------------------------------------------------------
class DropoutShift(nn.Module):
    """A coupling network with dropout: ``t = Dropout(NN(x_c))``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.drop = net, nn.Dropout(0.5)

    def forward(self, cond: Tensor, context: Tensor | None) -> Tensor:
        return self.drop(self.net(cond, context))


def test_stochastic_networks_draw_the_same_masks_and_the_callers_stream_is_untouched() -> None:
    def stochastic_blocks() -> list[AdditiveCoupling]:
        torch.manual_seed(3)
        blocks = [AdditiveCoupling((6,), hidden=8, flip=i % 2 == 1).double() for i in range(4)]
        for b in blocks:
            nn.init.normal_(b.subnet.net[-1].weight, std=0.5)
            b.subnet = DropoutShift(b.subnet)
        return blocks

    x = torch.randn(5, 6, dtype=torch.float64)
    results = []
    for saving in (False, True):
        blocks = stochastic_blocks()
        torch.manual_seed(11)
        if saving:
            y, logdet = run_memory_saving(blocks, x)
        else:
            y = x
            for b in blocks:
                y, _ = b(y)
        (y ** 3).sum().backward()
        after = torch.rand(3)  # the caller's stream continues as if nothing was replayed
        results.append(([p.grad.clone() for b in blocks for p in b.parameters()], after))
    (plain_grads, plain_after), (saving_grads, saving_after) = results
    for a, b in zip(plain_grads, saving_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    torch.testing.assert_close(plain_after, saving_after)


# -- the spec ----------------------------------------------------------------------------------
def test_a_block_without_analytic_inverse_is_refused_naming_the_layer() -> None:
    layers = [{"block": "squeeze"}, {"block": "iterative_scale", "memory_saving": True}]
    with pytest.raises(SpecError) as info:
        flow_of(layers)
    assert info.value.path == "model.layers[1].memory_saving"
    assert "block 'iterative_scale'" in str(info.value) and "analytic inverse" in str(info.value)


def test_train_memory_saving_names_itself_and_the_fix() -> None:
    layers = [{"block": "squeeze"}, {"block": "iterative_scale"}]
    with pytest.raises(SpecError) as info:
        flow_of(layers, train={"memory_saving": True})
    assert info.value.path == "train.memory_saving"
    assert "memory_saving = false on that layer" in str(info.value)
    flow_of([{"block": "squeeze", "memory_saving": True}, {"block": "iterative_scale"}],
            train={"memory_saving": False})


def test_run_memory_saving_refuses_an_iterative_block() -> None:
    x = torch.randn(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="no analytic inverse"):
        run_memory_saving([Iterative((3,))], x)


def test_without_gradients_the_chain_runs_plainly() -> None:
    blocks = [AdditiveCoupling((4,), hidden=4)]
    with torch.no_grad():
        y, logdet = run_memory_saving(blocks, torch.randn(3, 4))
    assert not y.requires_grad and logdet.shape == (3,)


# -- the dispatch: a block's own single-evaluation step, else the generic recompute -----------------


class NetworkCalls:
    """Counts the calls of ``module`` (a forward hook) while :attr:`counting` is True."""

    def __init__(self, module: nn.Module):
        self.calls = 0
        self.counting = False
        module.register_forward_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        if self.counting:
            self.calls += 1


def backward_network_calls(blocks: list[Invertible], networks: list[nn.Module], x: Tensor,
                           context: Tensor | None = None) -> list[int]:
    """Calls of each of ``networks`` during ``loss.backward()`` of a memory-saving chain of ``blocks``."""
    counters = [NetworkCalls(net) for net in networks]
    y, logdet = run_memory_saving(blocks, x.clone().requires_grad_(), context)
    loss = 0.5 * y.square().sum() - logdet.sum()
    for counter in counters:
        counter.counting = True
    loss.backward()
    return [counter.calls for counter in counters]


def test_an_affine_coupling_evaluates_its_network_once_per_block_in_the_memory_saving_backward() -> None:
    torch.manual_seed(0)
    blocks: list[Invertible] = [
        AffineCoupling((4, 4, 4), hidden=8, flip=i % 2 == 1, context_size=3) for i in range(3)
    ]
    for block in blocks:
        nn.init.normal_(block.subnet.net[-1].weight, std=0.3)
    calls = backward_network_calls(blocks, [b.subnet for b in blocks], torch.randn(2, 4, 4, 4), torch.randn(2, 3))
    assert calls == [1, 1, 1]


def test_memory_saving_dispatches_to_a_blocks_inverse_and_vjp_only_when_it_has_one() -> None:
    assert isinstance(AffineCoupling((4,), hidden=8), InverseAndVJP)
    assert not isinstance(HandSplitShift((4,)), InverseAndVJP)


class HandSplitShift(Invertible):
    """``y = [x_1, x_2 + t(x_1)]`` written by hand on vectors: a block without ``inverse_and_vjp``, so
    memory-saving execution takes the generic step (invert, then re-run ``forward``)."""

    supported_ranks = (1,)

    def __init__(self, input_shape: Shape, context_size: int = 0):
        super().__init__(input_shape)
        self.half = input_shape[0] // 2
        self.context_size = context_size
        self.net = nn.Sequential(nn.Linear(self.half + context_size, 8), nn.Tanh(),
                                 nn.Linear(8, input_shape[0] - self.half))

    def _shift(self, x1: Tensor, context: Tensor | None) -> Tensor:
        return self.net(x1 if context is None else torch.cat([x1, context], dim=1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.half], x[:, self.half :]
        return torch.cat([x1, x2 + self._shift(x1, context)], dim=1), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y1, y2 = y[:, : self.half], y[:, self.half :]
        return torch.cat([y1, y2 - self._shift(y1, context)], dim=1), self.zero_logdet(y)


def test_the_generic_step_gives_plain_autograds_gradients_with_two_network_evaluations() -> None:
    torch.manual_seed(0)
    blocks: list[Invertible] = [HandSplitShift((5,), context_size=2), AffineCoupling((5,), hidden=8, mask="checkerboard"),
                                HandSplitShift((5,), context_size=2)]
    x, context = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    for block in blocks:
        block.double()

    def gradients(saving: bool) -> list[Tensor]:
        chain = copy.deepcopy(blocks)
        xs, cs = x.clone().requires_grad_(), context.clone().requires_grad_()
        if saving:
            y, logdet = run_memory_saving(chain, xs, cs)
        else:
            y, logdet = xs, xs.new_zeros(6)
            for block in chain:
                y, ld = block(y, cs)
                logdet = logdet + ld
        (0.5 * y.square().sum() - logdet.sum() + y[:, 0].sin().sum()).backward()
        return [xs.grad, cs.grad, *(p.grad for b in chain for p in b.parameters())]

    plain, saving = gradients(False), gradients(True)
    assert len(plain) == len(saving)
    for p, s in zip(plain, saving):
        assert p is not None and s is not None
        torch.testing.assert_close(s, p, rtol=1e-10, atol=1e-10)
    calls = backward_network_calls(blocks, [blocks[0].net, blocks[1].subnet, blocks[2].net], x, context)
    assert calls == [2, 1, 2]  # generic: invert, then forward again; the coupling's own step: once


# -- import direction: the contract knows nothing of the memory mechanism --------------------------


REVKIT = Path(revkit.__file__).parent


def _revkit_imports(path: Path) -> tuple[set[str], set[str]]:
    """(every revkit module ``path`` imports, anywhere in it; those imported at module top level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    everywhere: set[str] = set()
    top: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [f"{node.module}.{a.name}" for a in node.names
                      if (REVKIT.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()]
        names = [n for n in names if n == "revkit" or n.startswith("revkit.")]
        everywhere.update(names)
        if node in tree.body:
            top.update(names)
    return everywhere, top


def _module(path: Path) -> str:
    parts = path.relative_to(REVKIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_contract_blocks_memory_mechanism_and_chain_import_without_a_cycle() -> None:
    files = [REVKIT / "invertible.py", REVKIT / "memory_saving.py", REVKIT / "sequential.py",
             *sorted((REVKIT / "blocks").glob("*.py"))]
    graph = {_module(f): _revkit_imports(f) for f in files}
    edges = {m: {n for n in imports if n in graph and n != m} for m, (imports, _) in graph.items()}

    assert not {n for n in graph["revkit.invertible"][0] if n.startswith("revkit.memory_saving")}
    assert edges["revkit.memory_saving"] == {"revkit.invertible"}
    assert graph["revkit.memory_saving"][0] <= {"revkit.invertible"}
    assert {"revkit.invertible", "revkit.memory_saving"} <= graph["revkit.sequential"][1]
    assert graph["revkit.sequential"][0] == graph["revkit.sequential"][1]  # nothing imported inside functions
    assert not any(n.startswith("revkit.memory_saving") for m in edges if m.startswith("revkit.blocks")
                   for n in graph[m][0])

    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(edges[module]):
            assert state.get(nxt) != 1, f"import cycle: {' → '.join([*path, module, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
