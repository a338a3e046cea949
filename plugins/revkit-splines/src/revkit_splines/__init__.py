"""revkit-splines: rational-quadratic spline flows (Durkan et al., 2019) as a revkit plugin.

Installing the distribution registers the blocks ``rq_spline_coupling`` (images and vectors) and
``rq_spline_autoregressive`` (vectors) through the entry-point group ``revkit``; a spec then says
``block = "rq_spline_coupling"``.
"""

from importlib import metadata

from revkit_splines.autoregressive import RQSplineAutoregressive, RQSplineAutoregressiveParams
from revkit_splines.coupling import RQSplineCoupling, RQSplineCouplingParams
from revkit_splines.made import MADE
from revkit_splines.rational_quadratic import SplineKnots, rq_spline, rq_spline_inverse, spline_knots

try:
    __version__ = metadata.version("revkit-splines")
except metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "MADE",
    "RQSplineAutoregressive",
    "RQSplineAutoregressiveParams",
    "RQSplineCoupling",
    "RQSplineCouplingParams",
    "SplineKnots",
    "__version__",
    "rq_spline",
    "rq_spline_inverse",
    "spline_knots",
]
