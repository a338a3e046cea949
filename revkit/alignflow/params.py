"""``[model.aligned_flows]``: the parameters of the model kind ``"aligned_flows"`` (validated by the spec loader as
the kind's ``Params``; its two layer lists are staged like ``[[model.layers]]``)."""

from __future__ import annotations

from pydantic import Field

from revkit.spec.models import LayerSpec, Section


class AlignedFlowsParams(Section):
    """``[model.aligned_flows]`` (with ``model.kind = "aligned_flows"``): two flows, one per domain, onto one
    shared latent space with the ``[prior]`` on it (see :mod:`revkit.alignflow`)."""

    flow_a: list[LayerSpec] = Field(
        min_length=1, description="the blocks of G_A (domain A → latent), in data → latent order")
    flow_b: list[LayerSpec] = Field(
        min_length=1, description="the blocks of G_B (domain B → latent); its latent shape must equal G_A's")
