"""Cost of an i-ResNet block against the length of its log-det power series.

For ``n`` = series_terms in 1, 2, 4, 8, 16 prints the median wall time (ms, over repeats) of

* ``forward``: the block's output without the log-det (``skipping_logdet_estimates``), no grad;
* ``logdet``: forward with the power-series log-det estimate, no grad (evaluation);
* ``train``: forward with the differentiable estimate plus backward of ``Σ y² + Σ logdet``;
* ``train+neumann``: the same with the Neumann-series gradient;
* ``inverse``: the fixed-point inverse (eval mode, tolerance 1e-5), and its iterations.

Usage::

    OMP_NUM_THREADS=1 python bench/iresnet.py [--batch 64] [--shape 4 14 14] [--hidden 32] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from revkit.blocks.iresnet import IResNet
from revkit.objectives.classifier import skipping_logdet_estimates

TERMS = (1, 2, 4, 8, 16)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _calls(block: IResNet, neumann: IResNet, x: torch.Tensor, y: torch.Tensor) -> list[Callable[[], None]]:
    """forward, logdet, train, train+neumann and inverse of one configuration, as calls to time."""

    def forward() -> None:
        with torch.no_grad(), skipping_logdet_estimates(block):
            block(x)

    def logdet() -> None:
        with torch.no_grad():
            block(x)

    def train(b: IResNet) -> Callable[[], None]:
        def step() -> None:
            b.train()
            out, ld = b(x)
            (out.pow(2).sum() + ld.sum()).backward()
            b.zero_grad(set_to_none=True)
        return step

    def inverse() -> None:
        with torch.no_grad():
            block.inverse(y)

    return [forward, logdet, train(block), train(neumann), inverse]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shape", type=int, nargs="+", default=[4, 14, 14])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    shape = tuple(args.shape)
    torch.manual_seed(0)
    x = torch.randn(args.batch, *shape)
    print(f"i-ResNet block on {args.batch}×{'×'.join(map(str, shape))}, hidden {args.hidden}, "
          f"{torch.get_num_threads()} thread(s); median ms over {args.repeats} repeats")
    print(f"{'terms':>5} {'forward':>9} {'logdet':>9} {'train':>9} {'train+neumann':>14} {'inverse':>9} {'iters':>6}")
    for n in TERMS:
        block = IResNet(shape, hidden=args.hidden, series_terms=n, inverse_tol=1e-5)
        neumann = IResNet(shape, hidden=args.hidden, series_terms=n, neumann_gradient=True)
        neumann.load_state_dict(block.state_dict())
        block.eval()
        with torch.no_grad():
            y = block(x)[0]

        calls = _calls(block, neumann, x, y)
        row = [median_ms(f, args.repeats) for f in calls[:4]]
        block.eval()
        row.append(median_ms(calls[4], args.repeats))
        stats = block.last_inverse
        iters = int(stats.iterations.max()) if stats is not None else 0
        print(f"{n:>5} {row[0]:>9.1f} {row[1]:>9.1f} {row[2]:>9.1f} {row[3]:>14.1f} {row[4]:>9.1f} {iters:>6}")


if __name__ == "__main__":
    main()
