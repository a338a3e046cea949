"""The built-in invertible blocks (each registered under the name in
:data:`revkit.blocks.builtin.BUILTIN_BLOCKS`)."""

from revkit.blocks.actnorm import ActNorm
from revkit.blocks.coupling import AdditiveCoupling, AffineCoupling, Coupling
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

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "Coupling",
    "Flatten",
    "GlowStep",
    "IResNet",
    "InvConv1x1",
    "Logit",
    "Permute",
    "Planar",
    "Reshape",
    "RevBlock",
    "Split",
    "Squeeze",
    "Subsample",
]
