"""What ``train.precision = "bfloat16"`` buys: training steps of bundled specs in float32 and under bfloat16
autocast, from the same weights on the same synthetic batch.

    python bench/precision.py                                   # mnist_iresnet_classifier, batch 64
    python bench/precision.py --specs mnist_iresnet_classifier mnist_glow --repeats 30 --markdown

Each row: one :meth:`revkit.train.Trainer.train_step` of the spec built as ``revkit run`` builds it
(``bench/throughput.py:synthetic_trainer``), timed ``--repeats`` times after one warm-up in each precision (the
weights reset before each precision); medians and interquartile ranges; "speed-up" is float32's median ÷
bfloat16's, measured in this invocation. The last column is the relative difference of the first step's
losses, what bfloat16's 8 significant bits cost. Whether bfloat16 is faster depends on the processor: this
machine's line says which bfloat16 instructions (AVX-512 BF16, AMX) it has.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timing, machine, table, time_calls  # noqa: E402
from throughput import synthetic_trainer  # noqa: E402


def cpu_bfloat16_flags() -> str:
    """The processor's bfloat16-related feature flags (Linux), or "unknown"."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = sorted(f for f in flags.split(":", 1)[1].split() if "bf16" in f or f.startswith("amx"))
    return ", ".join(found) or "none"


def step_row(spec_name: str, batch: int, repeats: int) -> list[object]:
    trainer, loader = synthetic_trainer(spec_name, batch, ["train.compile=false", "train.device=cpu"], batches=2)
    initial = copy.deepcopy(trainer.state_dict())
    data = list(next(iter(loader)))
    timings: dict[str, Timing] = {}
    losses: dict[str, float] = {}
    for precision in ("float32", "bfloat16"):
        trainer.load_state_dict(initial)
        trainer.precision = precision
        losses[precision] = trainer.train_step(data)["loss"]
        trainer.load_state_dict(initial)
        timings[precision] = time_calls(lambda: trainer.train_step(data), repeats)
    difference = abs(losses["bfloat16"] - losses["float32"]) / max(abs(losses["float32"]), 1e-12)
    return [f"{spec_name} training step, batch {batch}", timings["float32"].ms(), timings["bfloat16"].ms(),
            f"{timings['float32'].median / timings['bfloat16'].median:.2f}", f"{difference:.1e}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="*", default=["mnist_iresnet_classifier"], help="bundled specs")
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = [step_row(name, args.batch, args.repeats) for name in args.specs]
    print(f"# bench/precision.py — {machine()}; bfloat16 instructions: {cpu_bfloat16_flags()}")
    print("# ms per step: median [interquartile range]; speed-up = float32 median ÷ bfloat16 median")
    print(table(["what", "float32 ms", "bfloat16 ms", "speed-up", "first loss, relative difference"], rows,
                args.markdown))


if __name__ == "__main__":
    main()
