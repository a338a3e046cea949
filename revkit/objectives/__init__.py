"""Training objectives: :class:`Objective` and the built-in ones."""

from revkit.objectives.base import Losses, Objective, ObjectiveParams
from revkit.objectives.max_likelihood import MaxLikelihood

__all__ = ["Losses", "MaxLikelihood", "Objective", "ObjectiveParams"]
