"""The fixed-point inverse of a trained flow: reconstruction error against the iteration cap and tolerance.

Loads a run folder's latest checkpoint, encodes the first test batch (``--all``: every test batch) and decodes it
with every iterative block set to each (method, cap, tolerance) below, printing the largest reconstruction error
``max |x̂ − x|`` over the images, how many images are above ``--threshold``, how many (block, image) inversions stopped
at the cap, and the iteration histogram (:func:`revkit.eval.fixed_point.inverse_report`,
:func:`~revkit.eval.fixed_point.merge_inverse_reports`).

Usage::

    OMP_NUM_THREADS=1 REVKIT_DATA=../shared/data python bench/iresnet_inverse.py runs/mnist_iresnet-… \\
        [--methods plain anderson] [--memory 5] [--caps 5 10 20 50] [--tols 1e-4 1e-5 1e-6] \\
        [--images 500 | --all] [--threshold 1e-4]

The whole MNIST test set (10,000 images, 16 blocks) takes about 2 minutes per configuration on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from revkit import load_run
from revkit.eval.fixed_point import (
    inverse_report,
    iterative_blocks,
    merge_inverse_reports,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--methods", nargs="+", default=["plain", "anderson"], choices=["plain", "anderson"])
    parser.add_argument("--memory", type=int, nargs="+", default=[5], help="Anderson memories to try")
    parser.add_argument("--caps", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-4, 1e-5, 1e-6])
    images = parser.add_mutually_exclusive_group()
    images.add_argument("--images", type=int, default=500, help="images from the first test batch")
    images.add_argument("--all", action="store_true", help="every image of the test set, batch by batch")
    parser.add_argument("--threshold", type=float, default=1e-4, help="per-image error counted in 'over'")
    args = parser.parse_args()
    run = load_run(args.run_dir, device="cpu")
    _, test_loader, _ = run.loaders()
    if args.all:
        batches = [(b[0], b[1]) for b in test_loader]
    else:
        x, y = next(iter(test_loader))[:2]
        batches = [(x[: args.images], y[: args.images])]
    blocks = iterative_blocks(run.model)
    n_images = sum(x.shape[0] for x, _ in batches)
    print(f"{args.run_dir}: step {state['step']}, {len(blocks)} iterative blocks, {n_images} test images")
    print(f"{'method':>11} {'cap':>4} {'tol':>7} {'max error':>10} {'over':>6} {'at cap':>7} {'mean it':>8}  "
          f"histogram (iterations: inversions); 'over': images with error > {args.threshold:.0e}")
    configs = [("plain", 0)] if "plain" in args.methods else []
    configs += [("anderson", m) for m in args.memory] if "anderson" in args.methods else []
    for method, memory in configs:
        for cap in args.caps:
            for tol in args.tols:
                for block in blocks:
                    block.inverse_max_iter, block.inverse_tol = cap, tol
                    block.inverse_method, block.anderson_memory = method, max(memory, 1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # counted in the table instead
                    report = merge_inverse_reports(
                        [inverse_report(run.model, x, y, threshold=args.threshold) for x, y in batches]
                    )
                hist = " ".join(f"{k}:{v}" for k, v in report["iterations_histogram"].items())
                name = f"anderson({memory})" if method == "anderson" else method
                print(f"{name:>11} {cap:>4} {tol:>7.0e} {report['max_error']:>10.2e} "
                      f"{report['images_over_threshold']:>6} {report['unconverged']:>7} "
                      f"{report['mean_iterations']:>8.2f}  {hist}", flush=True)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
