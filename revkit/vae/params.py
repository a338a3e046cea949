"""``[model.vae]``: the parameters of the model kind ``"vae"`` (validated by the spec loader as the
kind's ``Params``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from revkit.spec.models import LayerSpec, Section


class VAEParams(Section):
    """``[model.vae]`` (with ``model.kind = "vae"``): a VAE on binary images whose approximate
    posterior is a Gaussian pushed through ``posterior_flow`` (see :mod:`revkit.vae`)."""

    latent: int = Field(32, ge=1, le=4096, description="latent size D of z")
    channels: int = Field(32, ge=1, le=1024, description="channels of the encoder's first convolution (twice that "
                                                         "in the second)")
    hidden: int = Field(300, ge=1, le=65536, description="width of the encoder's and decoder's dense layers")
    decoder: Literal["mlp", "conv"] = Field(
        "mlp", description="'mlp': two dense layers to the pixels' Bernoulli logits; 'conv': a dense layer then "
                           "two transposed convolutions (mirror of the encoder)"
    )
    context: int = Field(0, ge=0, le=4096, description="size of the encoder's context h, passed to the posterior "
                                                       "flow's conditional blocks; 0: no context")
    posterior_flow: list[LayerSpec] = Field(
        default_factory=list,
        description="the blocks applied to z₀ ~ N(μ, σ²) in order (vector blocks such as 'planar', "
                    "'affine_coupling', 'permute'); empty: the plain VAE",
    )
