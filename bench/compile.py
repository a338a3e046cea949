"""What ``train.compile = true`` buys: training step time of a shipped spec, eager against ``torch.compile``.

    python bench/compile.py                                  # mnist_glow, batch 64, 20 steps each
    python bench/compile.py --specs mnist_glow mnist_ot --batches 64 256 --repeats 30 --markdown

Each configuration builds the spec's model, prior and objective exactly as ``revkit run`` does
(``train.compile = false``), initialises it on synthetic batches of the data's shape (as
``bench/throughput.py`` does), and times :meth:`revkit.train.Trainer.train_step` twice on the same
batch from the same initial weights: eagerly, and after :func:`revkit.train.compiled.compile_model`
(what ``train.compile = true`` does before the first step). The first compiled step, which
compiles, is timed on its own (the "compile s" column) and excluded from the step medians; one
more warm-up step precedes the timed ones in both modes. "speed-up" is eager median ÷ compiled
median, measured in the same invocation. ``--backend eager`` traces without generating code (for
the smoke test in ``tests/test_bench_scripts.py``; it measures nothing useful).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timing, dump, machine, table, time_calls  # noqa: E402
from throughput import synthetic_trainer  # noqa: E402

from revkit.train.compiled import compile_model  # noqa: E402


def measure(spec_name: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """Eager and compiled step times (seconds) of one spec at one batch size, and the compile time."""
    trainer, loader = synthetic_trainer(spec_name, batch, ["train.compile=false", f"train.device={args.device}"],
                                        batches=2)
    initial = copy.deepcopy(trainer.state_dict())
    batch_data = [t.to(trainer.device) for t in next(iter(loader))]

    def step() -> None:
        trainer.train_step(batch_data)
        trainer.step += 1

    out: dict[str, Any] = {}
    step()  # warm-up
    out["eager"] = time_calls(step, args.repeats, warmup=0, device=trainer.device).samples
    trainer.load_state_dict(initial)
    compile_model(trainer.model, backend=args.backend)
    started = time.perf_counter()
    step()  # compiles
    out["compile_seconds"] = time.perf_counter() - started
    step()  # warm-up
    out["compiled"] = time_calls(step, args.repeats, warmup=0, device=trainer.device).samples
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="+", default=["mnist_glow"])
    parser.add_argument("--batches", type=int, nargs="+", default=[64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend ('eager': smoke test only)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    rows = []
    for spec_name in args.specs:
        for batch in args.batches:
            out = measure(spec_name, batch, args)
            results[f"{spec_name}/{batch}"] = out
            eager, compiled = Timing(out["eager"]), Timing(out["compiled"])
            rows.append([spec_name, batch, eager.ms(), compiled.ms(), f"{out['compile_seconds']:.1f}",
                         f"{eager.median / compiled.median:.2f}"])
            print(f"  {spec_name} batch {batch}: eager {eager.ms()} ms, compiled {compiled.ms()} ms", file=sys.stderr)
    print(f"# bench/compile.py — {machine()}")
    print(f"# device {args.device}; backend {args.backend}; ms/step: median [interquartile range] of {args.repeats} "
          "training steps on one synthetic batch, same initial weights")
    print(table(["spec", "batch", "eager ms/step", "compiled ms/step", "compile s", "speed-up (eager ÷ compiled)"],
                rows, markdown=args.markdown))
    dump(args.json, {"machine": machine(), "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
