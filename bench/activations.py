"""What revkit's ELU (``revkit.blocks.activations``) buys over ``torch.nn.ELU``: the activation alone, and a
training step of an i-ResNet spec with one or the other in every block.

    python bench/activations.py                               # 64×64×14×14, mnist_iresnet_classifier, batch 64
    python bench/activations.py --repeats 30 --markdown --specs mnist_iresnet_classifier mnist_iresnet

Rows: the activation's forward and forward + backward on a random batch of ``--shape``, then one
:meth:`revkit.train.Trainer.train_step` of each spec on a synthetic batch (as ``bench/compile.py`` does), from
the same initial weights, with every i-ResNet activation swapped. Medians and interquartile ranges of
``--repeats`` calls after one warm-up; "speed-up" is torch's median ÷ revkit's, measured in this invocation.
The last column is the largest difference of the two activations' outputs on the batch.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timing, machine, table, time_calls  # noqa: E402
from throughput import synthetic_trainer  # noqa: E402

from revkit.blocks.activations import ELU  # noqa: E402


def activation_rows(shape: list[int], repeats: int) -> list[list[object]]:
    torch.manual_seed(0)
    x = torch.randn(*shape)
    ours, theirs = ELU(), nn.ELU()

    def forward_backward(act: nn.Module) -> None:
        v = x.detach().requires_grad_(True)
        act(v).sum().backward()

    diff = float((ours(x) - theirs(x)).abs().max())
    rows = []
    for what, call in (("forward", lambda act: act(x)), ("forward + backward", forward_backward)):
        t_torch = time_calls(lambda: call(theirs), repeats)
        t_ours = time_calls(lambda: call(ours), repeats)
        rows.append([f"ELU {what}, {'×'.join(map(str, shape))}", t_torch.ms(), t_ours.ms(),
                     f"{t_torch.median / t_ours.median:.2f}", f"{diff:.1e}"])
    return rows


def swap(model: nn.Module, to_torch: bool) -> None:
    """Replace every ELU module of ``model`` by the other implementation."""
    for module in model.modules():
        for name, child in module.named_children():
            if to_torch and isinstance(child, ELU):
                setattr(module, name, nn.ELU())
            elif not to_torch and isinstance(child, nn.ELU):
                setattr(module, name, ELU())


def step_row(spec_name: str, batch: int, repeats: int) -> list[object]:
    trainer, loader = synthetic_trainer(spec_name, batch, ["train.compile=false", "train.device=cpu"], batches=2)
    initial = copy.deepcopy(trainer.state_dict())
    data = list(next(iter(loader)))
    timings: dict[bool, Timing] = {}
    for to_torch in (True, False):
        trainer.load_state_dict(initial)
        swap(trainer.model, to_torch)
        timings[to_torch] = time_calls(lambda: trainer.train_step(data), repeats)
    return [f"{spec_name} training step, batch {batch}", timings[True].ms(), timings[False].ms(),
            f"{timings[True].median / timings[False].median:.2f}", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[64, 64, 14, 14], help="activation input shape")
    parser.add_argument("--specs", nargs="*", default=["mnist_iresnet_classifier"], help="bundled i-ResNet specs")
    parser.add_argument("--batch", type=int, default=64, help="training batch of the spec rows")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = activation_rows(args.shape, args.repeats)
    rows += [step_row(name, args.batch, args.repeats) for name in args.specs]
    print(f"# bench/activations.py — {machine()}")
    print("# ms per call: median [interquartile range]; speed-up = torch.nn.ELU median ÷ revkit ELU median")
    print(table(["what", "torch.nn.ELU ms", "revkit ELU ms", "speed-up", "max |difference|"], rows, args.markdown))


if __name__ == "__main__":
    main()
