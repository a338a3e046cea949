"""Training throughput of the shipped specs: steps/s, images/s, achieved FLOP rate against a
measured matmul peak, and the slowdown of memory-saving execution.

    python bench/throughput.py                                  # mnist_glow and mnist_ot, batch 64 and 256
    python bench/throughput.py --specs mnist_glow --batches 64 --repeats 20 --markdown

Each configuration builds the spec's model, prior and objective exactly as ``revkit run`` does and
times :meth:`revkit.train.Trainer.train_step` (objective, backward, clipping, optimizer step,
prior constraints) on batches of synthetic images of the data's shape and labels (so the figures
measure the model, not the disk). FLOPs of one step are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward and
backward) with plain execution; memory-saving rows divide the same useful FLOPs by their own time
(recomputation is not counted as work). The peak is the median rate of a 2048×2048 float32 matrix product on the same machine
in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timing, dump, machine, table, time_calls  # noqa: E402

from revkit.build import build  # noqa: E402
from revkit.spec import load_spec  # noqa: E402
from revkit.spec.bundled import resolve_spec  # noqa: E402
from revkit.train.trainer import Trainer  # noqa: E402

MODES = ("plain", "memory_saving")


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Median FLOP/s of an ``n×n`` float32 matrix product."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    timing = time_calls(lambda: a @ b, repeats, warmup=2, device=device)
    return 2 * n**3 / timing.median


def synthetic_loader(info: Any, batch: int, batches: int, seed: int = 0) -> DataLoader:
    """Batches of images with 256 levels in [0, 1] (or standard normal vectors) and labels."""
    gen = torch.Generator().manual_seed(seed)
    n = batch * batches
    if info.levels:
        x = torch.randint(0, info.levels, (n, *info.shape), generator=gen).float() / (info.levels - 1)
    else:
        x = torch.randn(n, *info.shape, generator=gen)
    y = torch.randint(0, max(info.classes, 1), (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False, drop_last=True)


def synthetic_trainer(spec_name: str, batch: int, overrides: list[str], batches: int) -> tuple[Trainer, DataLoader]:
    """The bundled spec ``spec_name`` built as ``revkit run`` builds it (``data.batch_size = batch``, then
    ``overrides`` applied, torch seeded with 0), its trainer initialised on ``batches`` synthetic batches of the
    data's shape (:func:`synthetic_loader`); the trainer and that loader.

    Steps run in float32 unless ``overrides`` set ``train.precision``: a spec that trains in bfloat16 is timed in
    the same precision as the others, and memory-saving execution (which refuses bfloat16) can be compared with
    plain execution of the same spec."""
    spec = load_spec(resolve_spec(spec_name),
                     overrides=[f"data.batch_size={batch}", "train.precision=float32", *overrides])
    torch.manual_seed(0)
    built = build(spec)
    loader = synthetic_loader(built.info, batch, batches=batches)
    trainer = Trainer(built.model, built.objective, loader, spec.train)
    trainer.initialize()
    return trainer, loader


def measure(spec_name: str, batch: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    trainer, loader = synthetic_trainer(
        spec_name, batch, [f"train.memory_saving={'true' if mode == 'memory_saving' else 'false'}",
                           f"train.device={args.device}"], batches=4)
    device = trainer.device
    batch_data = [t.to(device) for t in next(iter(loader))]

    def step() -> None:
        trainer.train_step(batch_data)
        trainer.step += 1

    step()
    flops = None
    if mode == "plain":  # the counter's module hooks cannot follow memory-saving's nested autograd
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    timing = time_calls(step, args.repeats, warmup=1, device=device)
    return {"seconds": timing.samples, "flops": flops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="+", default=["mnist_glow", "mnist_ot"])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    device = torch.device(args.device)
    peak = matmul_peak(device)
    results: dict[str, Any] = {}
    rows = []
    for spec_name in args.specs:
        for batch in args.batches:
            plain_s = None
            flops = None
            for mode in ("plain", *[m for m in args.modes if m != "plain"]):
                out = measure(spec_name, batch, mode, args)
                flops = out["flops"] if out["flops"] is not None else flops
                out["flops"] = flops
                results[f"{spec_name}/{batch}/{mode}"] = out
                t = Timing(out["seconds"])
                rate = out["flops"] / t.median
                if mode == "plain":
                    plain_s = t.median
                slowdown = f"{t.median / plain_s:.2f}" if plain_s else "–"
                rows.append([spec_name, batch, mode, t.ms(), f"{1 / t.median:.2f}", f"{batch / t.median:,.0f}",
                             f"{out['flops'] / 1e9:.2f}", f"{rate / 1e9:.1f}", f"{100 * rate / peak:.0f}%", slowdown])
                print(f"  {spec_name} batch {batch} {mode}: {t.ms()} ms/step", file=sys.stderr)
    print(f"# bench/throughput.py — {machine()}")
    print(f"# device {args.device}; matmul peak (2048² float32) {peak / 1e9:.1f} GFLOP/s; ms/step: median "
          f"[interquartile range] of {args.repeats} training steps on synthetic batches")
    print(table(["spec", "batch", "execution", "ms/step", "steps/s", "images/s", "GFLOP/step", "GFLOP/s",
                 "of peak", "time ÷ plain"], rows, markdown=args.markdown))
    dump(args.json, {"machine": machine(), "args": vars(args), "matmul_peak": peak, "results": results})


if __name__ == "__main__":
    main()
