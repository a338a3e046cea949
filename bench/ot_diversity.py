"""Diagnosis of a class-conditional run's sample variety: the learned prior's stds against the spread of
the encodings they are matched to, per class, on the test split; and the run's diversity scores.

    python bench/ot_diversity.py RUN_DIR [RUN_DIR …]

For each run and class it prints the prior's mean std over the latent dimensions, the mean
per-dimension std of the test encodings of that class, their ratio, and how many dimensions are
active; then the run's ``spread_ratio``, ``precision``, ``recall``, ``sample_class_accuracy`` and
``fid_mnist_classifier`` from ``metrics.json``, and its ``std_ratio`` over training from
``metrics.jsonl`` (the batch estimate logged by the ``optimal_transport`` objective).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from revkit import load_run

SCORES = ("sample_class_accuracy", "fid_mnist_classifier", "spread_ratio", "precision", "recall")


@torch.no_grad()
def per_class(run_dir: Path, images: int) -> list[tuple[int, float, float, int]]:
    """Rows ``(class, prior mean std, encodings' mean std, active dims)`` on up to ``images`` test images."""
    run = load_run(run_dir, device="cpu")
    prior = run.model.prior
    assert prior is not None and hasattr(prior, "component_stds"), "needs a class prior"
    codes, labels, seen = [], [], 0
    for x, y in run.loaders()[1]:
        codes.append(run.model.encode(x, y).reshape(x.shape[0], -1))
        labels.append(y)
        seen += x.shape[0]
        if seen >= images:
            break
    z, y = torch.cat(codes), torch.cat(labels)
    stds = prior.component_stds().reshape(prior.classes, -1)
    active = prior.active_counts() if hasattr(prior, "active_counts") else [0] * prior.classes
    return [(c, float(stds[c].mean()), float(z[y == c].std(dim=0).mean()), int(active[c]))
            for c in range(prior.classes) if int((y == c).sum()) >= 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--images", type=int, default=2000, help="test images encoded per run")
    args = parser.parse_args()
    for run_dir in args.runs:
        print(f"\n## {run_dir.name}\n")
        print("| class | prior std (mean) | encodings' std (mean) | ratio | active dims |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for c, prior_std, code_std, active in per_class(run_dir, args.images):
            print(f"| {c} | {prior_std:.4f} | {code_std:.4f} | {prior_std / code_std:.3f} | {active} |")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print("\n" + ", ".join(f"{k} {metrics[k]:.3f}" for k in SCORES if k in metrics))
        log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        trace = [(r["step"], r["std_ratio"]) for r in log if r.get("std_ratio") is not None]
        if trace:
            print("std_ratio over training: " + ", ".join(f"{s}: {v:.3f}" for s, v in trace[:: max(1, len(trace) // 8)]))


if __name__ == "__main__":
    main()
