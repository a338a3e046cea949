"""The i-ResNet hybrid over a few weights of its likelihood term: test accuracy and test bits/dim of one network.

One command trains ``specs/mnist_iresnet_hybrid.toml`` once per weight λ (``objective.nll_weight``), each for the
same number of steps (``--steps``) under the same time limit, and prints one table (Nalisnick et al., 2019; Chen et
al., 2019)::

    python bench/iresnet_hybrid.py                          # λ = 0, 0.01, 0.1, 1: four runs of up to 18 minutes
    python bench/iresnet_hybrid.py --weights 0.1 1 --markdown
    python bench/iresnet_hybrid.py --steps 2 --small         # a smoke run: seconds, figures meaningless
    python bench/iresnet_hybrid.py --weights 0 0.1 &  python bench/iresnet_hybrid.py --weights 0.01 1 &  wait
    python bench/iresnet_hybrid.py --reuse                  # the four runs above in one table, none retrained

The loss of each run is ``cross-entropy + λ · bits/dim``; with λ = 0 it is the plain classifier, which estimates no
log-det and so reports no bits/dim (—). Columns: λ, test accuracy, test bits/dim (dequantized, the model's exact
evaluation estimator), the largest reconstruction error of the fixed-point inverse on the first test batch, steps
taken and training seconds. Run folders go to ``--out`` (default ``runs/iresnet_hybrid``); ``--set`` overrides go to
every run. ``--small`` shrinks the network and the evaluation (one block per stage, batch 16, one test batch of
50) for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, table  # noqa: E402

from revkit.runs.run import run_spec  # noqa: E402
from revkit.spec import load_spec  # noqa: E402
from revkit.spec.bundled import resolve_spec  # noqa: E402

SPEC = "mnist_iresnet_hybrid"
#: overrides of --small: one block per stage, small batches, one test batch, few pictures.
SMALL = ("model.layers[2].repeat=1", "model.layers[4].repeat=1", "data.batch_size=16", "data.test_batch_size=50",
         "eval.test_batches=1", "eval.samples=4", "eval.reconstructions=2")
COLUMNS = (("test accuracy", "test_accuracy"), ("test bits/dim", "test_bits_per_dim"), ("steps", "steps"),
           ("train s", "train_seconds"))


def run_one(name: str, overrides: list[str], out: Path, reuse: bool = False) -> dict[str, object]:
    """Train and evaluate the bundled spec ``name`` with ``overrides`` in the run folder ``out``; its metrics.

    With ``reuse``, a folder that already holds ``metrics.json`` of a run of the same spec (the same validated
    spec, overrides applied) is read instead of trained again, so the runs of one table can be trained by
    separate commands (on separate cores) and the table printed by a last one; a folder of another spec
    is an error, never overwritten."""
    path = resolve_spec(name)
    spec = load_spec(path, overrides)
    metrics_file, spec_file = out / "metrics.json", out / "spec.toml"
    if reuse and metrics_file.is_file() and spec_file.is_file():
        if load_spec(spec_file).model_dump() == spec.model_dump():
            print(f"reusing {out} (the same spec, already run)", flush=True)
            return json.loads(metrics_file.read_text())
        raise SystemExit(f"--reuse: {out} holds a run of another spec (its spec.toml differs from this run's); "
                         "remove that folder or choose another --out")
    outcome = run_spec(spec, path, out=out)
    return json.loads((outcome.run_dir / "metrics.json").read_text())


def inverse_error(metrics: dict[str, object]) -> object:
    """The largest reconstruction error of the fixed-point inverse (``metrics["inverse"]["max_error"]``)."""
    inverse = metrics.get("inverse")
    return inverse.get("max_error") if isinstance(inverse, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0],
                        help="values of objective.nll_weight, one run each (default 0 0.01 0.1 1)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run (default 2000)")
    parser.add_argument("--minutes", type=float, default=18.0, help="time limit per run (default 18)")
    parser.add_argument("--out", default="runs/iresnet_hybrid", help="folder of the run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="a spec override for every run (repeatable)")
    parser.add_argument("--small", action="store_true", help="a tiny network and evaluation, for smoke tests")
    parser.add_argument("--reuse", action="store_true", help="read a run folder that already holds metrics.json of "
                        "the same spec instead of training it again")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if any(w < 0 for w in args.weights):
        parser.error("--weights must be ≥ 0")
    common = [f"train.steps={args.steps}", f"train.time_limit_minutes={args.minutes}",
              *(SMALL if args.small else ()), *args.overrides]
    rows = []
    for weight in args.weights:
        metrics = run_one(SPEC, [*common, f"objective.nll_weight={weight!r}"], Path(args.out) / f"nll_weight-{weight:g}",
                          reuse=args.reuse)
        rows.append([f"{weight:g}", *(fmt(metrics.get(key)) for _, key in COLUMNS[:2]), fmt(inverse_error(metrics)),
                     *(fmt(metrics.get(key)) for _, key in COLUMNS[2:])])
    header = ["nll_weight λ", COLUMNS[0][0], COLUMNS[1][0], "inverse max error", *(h for h, _ in COLUMNS[2:])]
    small = " (--small: a smoke run)" if args.small else ""
    print(f"{SPEC}: cross-entropy + λ · bits/dim, {args.steps} steps, ≤ {args.minutes:g} min each{small}; {machine()}")
    print(table(header, rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
