"""revkit against FrEIA, nflows and zuko on same-sized models: training steps/s, sampling time,
parameters — a row per library, all measured in one run, interleaved so they share the machine's
noise.

    pip install FrEIA nflows zuko        # or: pip install -e '.[bench]'
    python bench/peers.py                # both models
    python bench/peers.py --model images --markdown --repeats 15

``--model images`` is a Glow-style flow on 1×28×28 images: a squeeze to 4×14×14, then ``K`` steps
of actnorm, a channel mixing and an affine coupling whose network is ``conv3×3(2 → h) → ReLU →
conv1×1(h → h) → ReLU → conv3×3(h → 4)``. revkit: ``squeeze`` + ``glow_step × K`` (LU 1×1
convolution); nflows: ``SqueezeTransform`` + ``ActNorm``, ``OneByOneConvolution`` (LU),
``AffineCouplingTransform``; FrEIA: ``IRevNetDownsampling`` + ``AllInOneBlock × K`` (actnorm, a
fixed random permutation, the coupling). zuko has no image flows, so it is not in this table.

``--model vectors`` is each library's idiomatic Real NVP on flattened 28×28 images (784
features): ``K`` affine couplings that alternate which half they transform, each network an MLP
``half → h → h → 2·half`` with ReLU. revkit: ``affine_coupling × K``; FrEIA:
``GLOWCouplingBlock × K/2`` (two couplings each); nflows: ``AffineCouplingTransform × K``; zuko:
``RealNVP`` with ``K`` transforms.

All use a standard normal base. One training step is ``−mean log p(x)``, backward, Adam;
sampling draws ``batch`` samples without gradients. Libraries that are not installed are listed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timing, dump, machine, table  # noqa: E402

from revkit.build import build_model  # noqa: E402
from revkit.data.base import DataInfo  # noqa: E402
from revkit.spec import load_spec_dict  # noqa: E402

LOG_2PI = math.log(2 * math.pi)


def mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class ContextFreeMLP(nn.Module):
    """:func:`mlp` with the ``(x, context)`` call signature nflows uses."""

    def __init__(self, n_in: int, n_out: int, hidden: int):
        super().__init__()
        self.net = mlp(n_in, n_out, hidden)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


class Model:
    """What the benchmark needs of a library's flow: parameters, a loss, a sampler."""

    def __init__(self, module: nn.Module, nll: Callable[[Tensor], Tensor], sample: Callable[[int], Tensor]):
        self.module, self.nll, self.sample = module, nll, sample

    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


def revkit_model(features: int, couplings: int, hidden: int, memory_saving: bool = False) -> Model:
    doc = {"model": {"layers": [{"block": "affine_coupling", "repeat": couplings, "hidden": hidden}]},
           "data": {"kind": "mnist"}, "train": {"memory_saving": memory_saving}}
    flow = build_model(load_spec_dict(doc), DataInfo(shape=(features,), classes=0, levels=None, name="vectors"))
    return Model(flow, lambda x: -flow.log_prob(x).mean(), lambda n: flow.sample(n))


def freia_model(features: int, couplings: int, hidden: int) -> Model:
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    inn = Ff.SequenceINN(features)
    for _ in range(couplings // 2):
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=lambda i, o: mlp(i, o, hidden), clamp=2.0)

    def nll(x: Tensor) -> Tensor:
        z, log_jac = inn(x)
        return (0.5 * z.pow(2).sum(1) + 0.5 * features * LOG_2PI - log_jac).mean()

    return Model(inn, nll, lambda n: inn(torch.randn(n, features), rev=True)[0])


def nflows_model(features: int, couplings: int, hidden: int) -> Model:
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import AffineCouplingTransform

    transforms = []
    for i in range(couplings):
        mask = (torch.arange(features) >= features // 2).int() if i % 2 == 0 else (torch.arange(features) < features // 2).int()
        transforms.append(AffineCouplingTransform(mask, lambda n_in, n_out: ContextFreeMLP(n_in, n_out, hidden)))
    flow = Flow(CompositeTransform(transforms), StandardNormal([features]))
    return Model(flow, lambda x: -flow.log_prob(x).mean(), lambda n: flow.sample(n))


def zuko_model(features: int, couplings: int, hidden: int) -> Model:
    import zuko

    flow = zuko.flows.RealNVP(features, transforms=couplings, hidden_features=(hidden, hidden))
    return Model(flow, lambda x: -flow().log_prob(x).mean(), lambda n: flow().sample((n,)))


# -- the Glow-style image model -------------------------------------------------------------------
IMAGE = (1, 28, 28)


def conv_net(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                         nn.Conv2d(hidden, n_out, 3, padding=1))


class ContextFreeConv(nn.Module):
    """:func:`conv_net` with the ``(x, context)`` call signature nflows uses."""

    def __init__(self, n_in: int, n_out: int, hidden: int):
        super().__init__()
        self.net = conv_net(n_in, n_out, hidden)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def revkit_images(couplings: int, hidden: int, memory_saving: bool = False) -> Model:
    doc = {"model": {"layers": [{"block": "squeeze"}, {"block": "glow_step", "repeat": couplings, "hidden": hidden}]},
           "data": {"kind": "mnist"}, "train": {"memory_saving": memory_saving}}
    flow = build_model(load_spec_dict(doc), DataInfo(shape=IMAGE, classes=0, levels=None, name="images"))
    return Model(flow, lambda x: -flow.log_prob(x).mean(), lambda n: flow.sample(n))


def freia_images(couplings: int, hidden: int) -> Model:
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    inn = Ff.SequenceINN(*IMAGE)
    inn.append(Fm.IRevNetDownsampling)
    for _ in range(couplings):
        inn.append(Fm.AllInOneBlock, subnet_constructor=lambda i, o: conv_net(i, o, hidden), affine_clamping=2.0)
    dims = math.prod(IMAGE)

    def nll(x: Tensor) -> Tensor:
        z, log_jac = inn(x)
        return (0.5 * z.pow(2).flatten(1).sum(1) + 0.5 * dims * LOG_2PI - log_jac).mean()

    return Model(inn, nll, lambda n: inn(torch.randn(n, 4, 14, 14), rev=True)[0])


def nflows_images(couplings: int, hidden: int) -> Model:
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.conv import OneByOneConvolution
    from nflows.transforms.coupling import AffineCouplingTransform
    from nflows.transforms.normalization import ActNorm
    from nflows.transforms.reshape import SqueezeTransform

    transforms = [SqueezeTransform()]
    for i in range(couplings):
        mask = torch.tensor([1, 1, 0, 0]) if i % 2 == 0 else torch.tensor([0, 0, 1, 1])
        transforms += [ActNorm(4), OneByOneConvolution(4),
                       AffineCouplingTransform(mask, lambda n_in, n_out: ContextFreeConv(n_in, n_out, hidden))]
    flow = Flow(CompositeTransform(transforms), StandardNormal([4, 14, 14]))
    return Model(flow, lambda x: -flow.log_prob(x).mean(), lambda n: flow.sample(n))


IMAGE_LIBRARIES: dict[str, Callable[..., Model]] = {
    "revkit": revkit_images,
    "revkit (memory saving)": lambda k, h: revkit_images(k, h, memory_saving=True),
    "FrEIA": freia_images,
    "nflows": nflows_images,
}

VECTOR_LIBRARIES: dict[str, Callable[..., Model]] = {
    "revkit": revkit_model,
    "revkit (memory saving)": lambda f, k, h: revkit_model(f, k, h, memory_saving=True),
    "FrEIA": freia_model,
    "nflows": nflows_model,
    "zuko": zuko_model,
}


def version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    dist = {"FrEIA": "FrEIA", "nflows": "nflows", "zuko": "zuko"}.get(name.split(" ")[0], "revkit")
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return "?"


def run_table(kind: str, makers: dict[str, Callable[[], Model]], x: Tensor, args: argparse.Namespace) -> dict:
    """Build every library's model, time ``args.repeats`` interleaved rounds, print the table."""
    models: dict[str, Model] = {}
    missing: list[str] = []
    for name, make in makers.items():
        try:
            models[name] = make()
        except ImportError as exc:
            missing.append(f"{name} ({exc.name} not installed)")
    steps: dict[str, Callable[[], None]] = {}
    samplers: dict[str, Callable[[], None]] = {}
    for name, model in models.items():
        optimizer = torch.optim.Adam(model.module.parameters(), lr=1e-4)

        def step(model: Model = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            model.nll(x).backward()
            optimizer.step()

        def sample(model: Model = model) -> None:
            with torch.no_grad():
                model.sample(x.shape[0])

        model.module.train()
        step()  # data-dependent initialisation, optimizer state
        step()
        model.module.eval()
        sample()
        steps[name], samplers[name] = step, sample

    train_s: dict[str, list[float]] = {n: [] for n in models}
    sample_s: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            model.module.train()
            start = time.perf_counter()
            steps[name]()
            train_s[name].append(time.perf_counter() - start)
            model.module.eval()
            start = time.perf_counter()
            samplers[name]()
            sample_s[name].append(time.perf_counter() - start)

    peers = [n for n in models if not n.startswith("revkit")]
    fastest = min(peers, key=lambda n: Timing(train_s[n]).median) if peers else None
    rows = []
    for name, model in models.items():
        t, smp = Timing(train_s[name]), Timing(sample_s[name])
        speedup = f"{Timing(train_s[fastest]).median / t.median:.2f}" if fastest else "–"
        rows.append([name, version(name), f"{model.parameters():,}", t.ms(), f"{1 / t.median:.1f}",
                     f"{x.shape[0] / t.median:,.0f}", smp.ms(), speedup])
    print(table(["library", "version", "parameters", "train ms/step", "steps/s", "images/s", "sample ms",
                 f"step speed ÷ fastest peer ({fastest})"], rows, markdown=args.markdown))
    if missing:
        print("not measured: " + ", ".join(missing))
    print()
    return {"train_s": train_s, "sample_s": sample_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["images", "vectors", "both"], default="both")
    parser.add_argument("--couplings", type=int, default=8, help="K (even)")
    parser.add_argument("--hidden", type=int, default=None, help="default: 64 (images), 512 (vectors)")
    parser.add_argument("--batch", type=int, default=None, help="default: 64 (images), 256 (vectors)")
    parser.add_argument("--repeats", type=int, default=11, help="timed rounds (each library once per round)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    print(f"# bench/peers.py — {machine()}")
    print(f"# median [interquartile range] of {args.repeats} interleaved rounds\n")
    out: dict[str, object] = {"machine": machine(), "args": vars(args)}
    k = args.couplings
    if args.model in ("images", "both"):
        h, b = args.hidden or 64, args.batch or 64
        torch.manual_seed(0)
        x = torch.rand(b, *IMAGE)
        print(f"## Glow-style on 1×28×28: squeeze, {k} × (actnorm, channel mixing, affine coupling), conv hidden {h}, "
              f"batch {b}")
        makers = {name: (lambda make=make: make(k, h)) for name, make in IMAGE_LIBRARIES.items()}
        out["images"] = run_table("images", makers, x, args)
    if args.model in ("vectors", "both"):
        h, b = args.hidden or 512, args.batch or 256
        torch.manual_seed(0)
        x = torch.randn(b, 784)
        print(f"## Real NVP on 784 features: {k} affine couplings, MLP hidden {h}, batch {b}")
        makers = {name: (lambda make=make: make(784, k, h)) for name, make in VECTOR_LIBRARIES.items()}
        out["vectors"] = run_table("vectors", makers, x, args)
    dump(args.json, out)


if __name__ == "__main__":
    main()
