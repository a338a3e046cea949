r"""The public block toolkit: everything a block author needs, built-in blocks included.

A plugin imports only from :mod:`revkit`, this module and :mod:`revkit.testing`; the submodules
here are implementation detail. What it offers:

* the contract — :class:`Invertible` (``forward``/``inverse``/``output_shape``, data → latent;
  ``Invertible.__init__(input_shape, rank_hint=...)`` checks the rank against ``supported_ranks``
  and stores ``input_shape``), :class:`BlockParams` (a block's spec keys), :data:`Shape`,
  :func:`sum_except_batch`, and the optional single-evaluation inverse :class:`InverseAndVJP` with
  its result :class:`InverseVJP` and the autograd helpers :func:`vjp`, :func:`leaf`,
  :func:`context_leaf`, :func:`trainable_parameters`;
* couplings — :class:`Coupling`, the base of every coupling: a subclass passes
  ``parameters_per_entry`` (``P``) and implements ``forward_half(active, params)`` and
  ``inverse_half(active, params)`` with ``params`` shaped per entry, ``[B, P, *active_shape]``;
  it inherits masks, context handling and a memory-saving backward that evaluates the network
  once. :class:`AdditiveCoupling` (``P = 1``) and :class:`AffineCoupling` (``P = 2``) are written
  that way;
* masks — :class:`Mask`, :class:`ChannelMask`, :class:`CheckerboardMask`, :func:`make_mask`,
  :data:`MaskKind`;
* subnets — :func:`coupling_subnet` (:class:`ConvSubnet` for images, :class:`MLPSubnet` for
  vectors, last layer zero), :func:`residual_function` (a RevBlock's ``F``/``G``);
* shape checks — :func:`require_rank`, :func:`require_built_shape`, :func:`require_even_channels`,
  :func:`require_context`, :func:`check_rank`, :func:`numel`;
* registration — :data:`hookimpl`, the marker of a plugin's hook functions, and :data:`Register`,
  the ``register(name, component)`` callback its ``register_blocks`` hook receives.

Example, a whole coupling block (NICE's shift, on images or vectors)::

    from revkit.blocks import Coupling

    class Shift(Coupling):
        volume_preserving = True

        def __init__(self, input_shape, *, hidden=64, mask="channel", flip=False, context_size=0):
            super().__init__(input_shape, hidden=hidden, mask=mask, flip=flip,
                             context_size=context_size, parameters_per_entry=1)

        def forward_half(self, active, params):      # y_a = x_a + t, log|∂y_a/∂x_a| = 0
            return active + params[:, 0], None

        def inverse_half(self, active, params):
            return active - params[:, 0], None

Built-in blocks are registered under the names in :data:`revkit.blocks.builtin.BUILTIN_BLOCKS`.
"""

from revkit.blocks.actnorm import ActNorm
from revkit.blocks.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    AffineCouplingParams,
    Coupling,
    CouplingParams,
)
from revkit.blocks.glow_step import GlowStep
from revkit.blocks.invconv import InvConv1x1
from revkit.blocks.iresnet import IResNet
from revkit.blocks.logit import Logit
from revkit.blocks.masks import ChannelMask, CheckerboardMask, Mask, MaskKind, make_mask
from revkit.blocks.permute import Permute
from revkit.blocks.planar import Planar
from revkit.blocks.reshape import Flatten, Reshape
from revkit.blocks.revblock import RevBlock
from revkit.blocks.shapes import require_built_shape, require_context, require_even_channels, require_rank
from revkit.blocks.split import Split
from revkit.blocks.squeeze import Squeeze
from revkit.blocks.subnets import ConvSubnet, MLPSubnet, coupling_subnet, residual_function
from revkit.blocks.subsample import Subsample
from revkit.invertible import (
    BlockParams,
    InverseAndVJP,
    InverseVJP,
    Invertible,
    NoParams,
    Shape,
    check_rank,
    context_leaf,
    leaf,
    numel,
    sum_except_batch,
    trainable_parameters,
    vjp,
)
from revkit.plugins.hookspecs import Register, hookimpl

__all__ = [
    # the contract
    "BlockParams",
    "InverseAndVJP",
    "InverseVJP",
    "Invertible",
    "NoParams",
    "Shape",
    "context_leaf",
    "leaf",
    "sum_except_batch",
    "trainable_parameters",
    "vjp",
    # couplings, masks, subnets
    "Coupling",
    "CouplingParams",
    "AffineCouplingParams",
    "ChannelMask",
    "CheckerboardMask",
    "Mask",
    "MaskKind",
    "make_mask",
    "ConvSubnet",
    "MLPSubnet",
    "coupling_subnet",
    "residual_function",
    # shape checks
    "check_rank",
    "numel",
    "require_built_shape",
    "require_context",
    "require_even_channels",
    "require_rank",
    # registration
    "Register",
    "hookimpl",
    # built-in blocks
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
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
