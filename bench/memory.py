"""Peak memory and time of one training step against depth: plain autograd, memory-saving
execution, and ``torch.utils.checkpoint`` per block for reference.

    python bench/memory.py                      # depths 8 16 32 64, Glow steps on 3×32×32, batch 32
    python bench/memory.py --depths 8 64 --repeats 9 --markdown

The model is ``squeeze → glow_step × depth`` (actnorm, invertible 1×1 convolution, affine coupling
with a 3-layer convolutional network of ``--hidden`` channels), built from a spec dictionary, so
memory-saving execution is switched on exactly as a user would (``train.memory_saving = true``).
One step is ``−log p(x)`` (standard normal prior), backward, Adam.

Memory: each (mode, depth) runs in a fresh process. On the CPU the peak is the process's peak
resident set size during a few steps minus its size just before them (model, optimizer state and
inputs already allocated; glibc set to return freed blocks at once, see ``bench/common.py``); on
CUDA it is ``torch.cuda.max_memory_allocated`` minus the allocation before the step.

Time: for each depth one fresh process (with the default allocator, since returning every freed
block to the system slows allocation-heavy code) builds the model once per mode and times their
steps interleaved, round by round, so the ratios compare steps taken under the same conditions.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Timing,
    dump,
    machine,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    run_child,
    table,
    time_calls,
)

from revkit.build import build_model  # noqa: E402
from revkit.data.base import DataInfo  # noqa: E402
from revkit.flow import Flow  # noqa: E402
from revkit.invertible import Invertible  # noqa: E402
from revkit.spec import load_spec_dict  # noqa: E402

MODES = ("plain", "memory_saving", "checkpoint")


class Checkpointed(Invertible):
    """A block run under ``torch.utils.checkpoint`` (stores its input, recomputes its graph)."""

    def __init__(self, block: Invertible):
        super().__init__()
        self.block = block

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return checkpoint(self.block, x, context, use_reentrant=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.block.inverse(y, context)


def make_flow(mode: str, depth: int, shape: tuple[int, ...], hidden: int) -> Flow:
    doc = {
        "model": {"layers": [{"block": "squeeze"},
                             {"block": "glow_step", "repeat": depth, "hidden": hidden}]},
        "data": {"kind": "mnist"},
        "train": {"memory_saving": mode == "memory_saving"},
    }
    spec = load_spec_dict(doc)
    info = DataInfo(shape=shape, classes=0, levels=256, name="synthetic")
    flow = build_model(spec, info)
    if mode == "checkpoint":
        layers = flow.net.layers
        for i in range(1, len(layers)):
            layers[i] = Checkpointed(layers[i])
    return flow


def make_step(mode: str, depth: int, args: argparse.Namespace) -> Callable[[], None]:
    """One training step of the model in ``mode`` (built, initialised and warmed up)."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = tuple(args.shape)
    flow = make_flow(mode, depth, shape, args.hidden).to(device)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    x = torch.rand(args.batch, *shape, device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = -flow.log_prob(x).mean()
        loss.backward()
        optimizer.step()

    flow.train()
    step()  # actnorm initialisation, Adam state
    return step


def child_time(depth: int, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per step of every mode at ``depth``, interleaved round by round."""
    steps = {mode: make_step(mode, depth, args) for mode in args.modes}
    seconds: dict[str, list[float]] = {mode: [] for mode in args.modes}
    device = torch.device(args.device)
    for _ in range(args.repeats):
        for mode, step in steps.items():
            seconds[mode] += time_calls(step, 1, warmup=0, device=device).samples
    return seconds


def child(mode: str, depth: int, args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory of ``mode`` at ``depth`` over two steps."""
    device = torch.device(args.device)
    step = make_step(mode, depth, args)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_mb()
        reset_peak_rss()
    time_calls(step, 2, warmup=0, device=device)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = peak_rss_mb() - base
    return {"peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DEPTH"), help=argparse.SUPPRESS)
    parser.add_argument("--child-time", type=int, metavar="DEPTH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args)))
        return
    if args.child_time is not None:
        print(json.dumps(child_time(args.child_time, args)))
        return

    common = ["--shape", *map(str, args.shape), "--hidden", str(args.hidden), "--batch", str(args.batch),
              "--repeats", str(args.repeats), "--device", args.device, "--modes", *args.modes]
    results: dict[str, dict[int, Any]] = {m: {} for m in args.modes}
    for depth in args.depths:
        for mode in args.modes:
            out = run_child(Path(__file__), ["--child", mode, str(depth), *common], args.threads)
            results[mode][depth] = out
        seconds = run_child(Path(__file__), ["--child-time", str(depth), *common], args.threads, malloc=False)
        for mode in args.modes:
            results[mode][depth]["seconds"] = seconds[mode]
            print(f"  {mode:>13} depth {depth:>3}: {results[mode][depth]['peak_mb']:8.1f} MiB, "
                  f"{Timing(seconds[mode]).median * 1e3:8.1f} ms/step", file=sys.stderr)

    headers = ["depth"]
    for mode in args.modes:
        headers += [f"{mode} MiB", f"{mode} ms/step"]
    if "plain" in args.modes:
        headers += [f"{m} time ÷ plain" for m in args.modes if m != "plain"]
    rows = []
    for depth in args.depths:
        row: list[object] = [depth]
        for mode in args.modes:
            out = results[mode][depth]
            row += [f"{out['peak_mb']:.0f}", Timing(out["seconds"]).ms()]
        if "plain" in args.modes:
            plain = Timing(results["plain"][depth]["seconds"]).median
            row += [f"{Timing(results[m][depth]['seconds']).median / plain:.2f}" for m in args.modes if m != "plain"]
        rows.append(row)
    print(f"# bench/memory.py — {machine()}")
    print(f"# squeeze → glow_step × depth (hidden {args.hidden}) on {tuple(args.shape)}, batch {args.batch}, "
          f"device {args.device}, {args.threads} threads; peak memory of one training step above the "
          f"model + optimizer + input; ms/step: median [interquartile range] of {args.repeats} interleaved steps")
    print(table(headers, rows, markdown=args.markdown))
    lo, hi = min(args.depths), max(args.depths)
    for mode in args.modes:
        growth = results[mode][hi]["peak_mb"] / max(results[mode][lo]["peak_mb"], 1e-9)
        line = f"{mode}: peak at depth {hi} ÷ depth {lo} = {growth:.2f}"
        if mode != "plain" and "plain" in args.modes:
            ratios = [Timing(results[mode][d]["seconds"]).median / Timing(results["plain"][d]["seconds"]).median
                      for d in args.depths]
            line += f"; time ÷ plain: median {sorted(ratios)[len(ratios) // 2]:.2f} over depths"
        print(line)
    dump(args.json, {"machine": machine(), "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
