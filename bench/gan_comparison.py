"""Maximum likelihood, adversarial and hybrid training of one invertible generator at one budget (Flow-GAN's comparison).

One command trains ``mnist_glow`` (maximum likelihood), ``mnist_gan`` (adversarial only, non-saturating) and
``mnist_flow_gan`` (adversarial + λ · bits/dim) — the same multi-scale Glow generator, batch 64 — for the same
number of generator updates (``--steps``) under the same time limit, evaluates each with the same settings
(exact test bits/dim; ``fid_mnist_classifier`` and the diversity scores ``spread_ratio``, ``precision`` and
``recall`` from ``eval.temperature`` samples; the largest reconstruction error of the inverse; a sample grid
each), and prints one table::

    python bench/gan_comparison.py                       # 2000 steps each: 43 min of training on one thread
    python bench/gan_comparison.py --steps 200 --markdown

Each spec keeps its own optimizer settings (the adversarial ones use Adam with β₁ = 0.5 and lr 1e-4). Run folders
go to ``--out`` (default ``runs/gan_comparison``); ``--set`` overrides go to all three specs. Flow-GAN's result to
test: adversarial bits/dim far worse than maximum likelihood's, the hybrid close to it with better samples.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import fmt, machine, table  # noqa: E402

from revkit.runs.run import run_spec  # noqa: E402
from revkit.spec import load_spec  # noqa: E402
from revkit.spec.bundled import resolve_spec  # noqa: E402

RUNS = (("maximum likelihood", "mnist_glow"), ("adversarial", "mnist_gan"), ("hybrid (Flow-GAN)", "mnist_flow_gan"))
COLUMNS = (("test bits/dim", "test_bits_per_dim"), ("fid_mnist_classifier", "fid_mnist_classifier"),
           ("spread_ratio", "spread_ratio"), ("precision", "precision"), ("recall", "recall"),
           ("max reconstruction error", "max_reconstruction_error"), ("steps", "steps"), ("train s", "train_seconds"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="generator updates per run (default 2000)")
    parser.add_argument("--minutes", type=float, default=18.0, help="time limit per run (default 18)")
    parser.add_argument("--temperature", type=float, default=1.0, help="eval.temperature of every run (default 1)")
    parser.add_argument("--out", default="runs/gan_comparison", help="folder of the three run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="a spec override for all three runs (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    common = [f"train.steps={args.steps}", f"train.time_limit_minutes={args.minutes}",
              f"eval.temperature={args.temperature}", 'eval.scores=["mnist_classifier"]', *args.overrides]
    rows = []
    for label, name in RUNS:
        path = resolve_spec(name)
        spec = load_spec(path, common)
        outcome = run_spec(spec, path, out=Path(args.out) / name)
        written = outcome.run_dir / "metrics.json"
        if not written.exists():  # stopped (Ctrl-C, SIGTERM) before its evaluation: no row to print
            print(f"{name} stopped before its evaluation ({outcome.run_dir}); resume it with "
                  f"revkit run --resume {outcome.run_dir}", file=sys.stderr)
            return 1
        metrics = json.loads(written.read_text())
        samples = outcome.run_dir / "samples.png"
        rows.append([label, name, *(fmt(metrics.get(key)) for _, key in COLUMNS),
                     str(samples) if samples.exists() else "—"])
    header = ["training", "spec", *(h for h, _ in COLUMNS), "samples"]
    limit = f"≤ {args.minutes:g} min each" if args.minutes > 0 else "no time limit"
    print(f"same generator (mnist_glow's Glow), batch 64, {args.steps} generator updates, {limit}, "
          f"samples at T = {args.temperature:g}")
    print(machine())
    print(table(header, rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
