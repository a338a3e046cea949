"""revkit: reversible (invertible) generative networks from a TOML spec."""

__version__ = "0.1.0"

from revkit.errors import RevkitError, ShapeError, SpecError  # noqa: E402
from revkit.flow import Flow  # noqa: E402
from revkit.invertible import BlockParams, Invertible  # noqa: E402
from revkit.objectives.base import Losses, Objective  # noqa: E402
from revkit.priors.base import Prior  # noqa: E402
from revkit.sequential import Sequential  # noqa: E402

__all__ = [
    "BlockParams",
    "Flow",
    "Invertible",
    "Losses",
    "Objective",
    "Prior",
    "RevkitError",
    "Sequential",
    "ShapeError",
    "SpecError",
    "__version__",
]
