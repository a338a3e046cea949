"""The spec keys every spline block of this plugin shares: the spline's bins and tail bound."""

from __future__ import annotations

from pydantic import Field

from revkit import BlockParams


class SplineParams(BlockParams):
    """``bins`` and ``bound`` of the rational-quadratic spline (:mod:`revkit_splines.rational_quadratic`);
    each block's ``Params`` adds its network's keys."""

    bins: int = Field(8, ge=2, le=64, description="number of spline bins K (the network emits 3K − 1 numbers per "
                      "transformed entry)")
    bound: float = Field(
        3.0,
        ge=0.1,
        le=1e3,
        description="tail bound B: the spline acts on [−B, B], the block is the identity outside",
    )
