"""revkit: reversible (invertible) generative networks from a TOML spec."""

from revkit.version import __version__
from revkit.errors import RevkitError, ShapeError, SpecError  # noqa: E402
from revkit.flow import Flow  # noqa: E402
from revkit.invertible import BlockParams, Invertible  # noqa: E402
from revkit.model import Model, ModelKind  # noqa: E402
from revkit.objectives.base import Losses, Objective  # noqa: E402
from revkit.priors.base import Prior  # noqa: E402
from revkit.runs.load import Run, load_run  # noqa: E402
from revkit.sequential import Sequential  # noqa: E402

__all__ = [
    "BlockParams",
    "Flow",
    "Invertible",
    "Losses",
    "Model",
    "ModelKind",
    "Objective",
    "Prior",
    "RevkitError",
    "Run",
    "Sequential",
    "ShapeError",
    "SpecError",
    "__version__",
    "load_run",
]
