"""Internal plugin: registers the built-in blocks through the same hook third parties use."""

from __future__ import annotations

from revkit.blocks.actnorm import ActNorm
from revkit.blocks.coupling import AdditiveCoupling, AffineCoupling
from revkit.blocks.glow_step import GlowStep
from revkit.blocks.invconv import InvConv1x1
from revkit.blocks.iresnet import IResNet
from revkit.blocks.logit import Logit
from revkit.blocks.permute import Permute
from revkit.blocks.planar import Planar
from revkit.blocks.reshape import Flatten, Reshape
from revkit.blocks.revblock import RevBlock
from revkit.blocks.split import Split
from revkit.blocks.squeeze import Squeeze
from revkit.blocks.subsample import Subsample
from revkit.plugins.hookspecs import Register, hookimpl

#: spec name → block class, in the order ``revkit plugins`` lists them.
BUILTIN_BLOCKS = {
    "additive_coupling": AdditiveCoupling,
    "affine_coupling": AffineCoupling,
    "revblock": RevBlock,
    "subsample": Subsample,
    "squeeze": Squeeze,
    "actnorm": ActNorm,
    "invconv1x1": InvConv1x1,
    "permute": Permute,
    "flatten": Flatten,
    "reshape": Reshape,
    "logit": Logit,
    "glow_step": GlowStep,
    "split": Split,
    "planar": Planar,
    "iresnet": IResNet,
}


@hookimpl
def register_blocks(register: Register) -> None:
    for name, block in BUILTIN_BLOCKS.items():
        register(name, block)


#: blocks that other distributions provide (name → distribution), so a spec naming one that is not
#: installed gets "pip install …" advice.
BLOCK_HINTS = {"rq_spline_coupling": "revkit-splines", "rq_spline_autoregressive": "revkit-splines"}


@hookimpl
def register_block_hints(register: Register) -> None:
    for name, distribution in BLOCK_HINTS.items():
        register(name, distribution)
