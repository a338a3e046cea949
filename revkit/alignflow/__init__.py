"""Cycle-consistent translation between unpaired domains with two flows on one latent (AlignFlow):
the model kind ``aligned_flows`` and the objective ``alignflow``."""

from revkit.alignflow.model import AlignedFlows
from revkit.alignflow.objective import AlignFlowObjective
from revkit.alignflow.params import AlignedFlowsParams

__all__ = ["AlignFlowObjective", "AlignedFlows", "AlignedFlowsParams"]
