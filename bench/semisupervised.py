"""Semi-supervised learning with the i-ResNet hybrid: the same network on n labels per class, with and without the rest.

One command trains, at the same budget (``--steps`` steps of the same batch size under the same time limit):

* ``specs/mnist_iresnet_supervised100.toml``: cross-entropy on the labelled images only (``data.labelled_only``);
* ``specs/mnist_iresnet_semisupervised.toml``: the hybrid on every training image, cross-entropy on the labelled
  ones and λ · bits/dim on all of them;

both with the same ``--labels-per-class`` labelled images (the same seeded choice, ``data.labels_seed``), and prints
their test accuracy on the full test split in one table::

    python bench/semisupervised.py                          # 100 labels per class, 2000 steps: up to 2 × 18 minutes
    python bench/semisupervised.py --labels-per-class 10 --markdown
    python bench/semisupervised.py --steps 2 --small        # a smoke run: seconds, figures meaningless
    python bench/semisupervised.py --only mnist_iresnet_supervised100 &  \
        python bench/semisupervised.py --only mnist_iresnet_semisupervised &  wait
    python bench/semisupervised.py --reuse                  # both runs above in one table, none retrained

Run folders go to ``--out`` (default ``runs/semisupervised``); ``--set`` overrides go to both runs. ``--small``
shrinks the network and the evaluation (one block per stage, batch 16, one test batch of 50) for a smoke test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from iresnet_hybrid import SMALL, run_one  # noqa: E402  (also puts the repository on sys.path)

from common import fmt, machine, table  # noqa: E402

RUNS = (("supervised: labelled images only", "mnist_iresnet_supervised100"),
        ("hybrid: every image", "mnist_iresnet_semisupervised"))
COLUMNS = (("test accuracy", "test_accuracy"), ("test bits/dim", "test_bits_per_dim"), ("steps", "steps"),
           ("train s", "train_seconds"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels-per-class", type=int, default=100, help="labelled training images per class "
                        "(data.labels_per_class, default 100)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run (default 2000)")
    parser.add_argument("--minutes", type=float, default=18.0, help="time limit per run (default 18)")
    parser.add_argument("--out", default="runs/semisupervised", help="folder of the two run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="a spec override for both runs (repeatable)")
    parser.add_argument("--small", action="store_true", help="a tiny network and evaluation, for smoke tests")
    parser.add_argument("--only", choices=[name for _, name in RUNS], help="train and report only this run")
    parser.add_argument("--reuse", action="store_true", help="read a run folder that already holds metrics.json of "
                        "the same spec instead of training it again")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if args.labels_per_class < 1:
        parser.error("--labels-per-class must be ≥ 1")
    common = [f"train.steps={args.steps}", f"train.time_limit_minutes={args.minutes}",
              f"data.labels_per_class={args.labels_per_class}", *(SMALL if args.small else ()), *args.overrides]
    rows = []
    for label, name in RUNS:
        if args.only not in (None, name):
            continue
        metrics = run_one(name, common, Path(args.out) / name, reuse=args.reuse)
        rows.append([label, name, *(fmt(metrics.get(key)) for _, key in COLUMNS)])
    small = " (--small: a smoke run)" if args.small else ""
    print(f"{args.labels_per_class} labels per class ({10 * args.labels_per_class} labelled MNIST images), "
          f"{args.steps} steps, ≤ {args.minutes:g} min each{small}; {machine()}")
    print(table(["training", "spec", *(h for h, _ in COLUMNS)], rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
