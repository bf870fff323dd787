"""The scaling planner: a pure function from a cluster snapshot to a Plan with reasons."""

from rayscale.planner.core import plan
from rayscale.planner.model import (
    HEAD_GROUP,
    BundleDemand,
    Deletion,
    Demand,
    DemandKind,
    GroupConfig,
    GroupDecision,
    NodeView,
    Placement,
    PlacementGroupDemand,
    Plan,
    PlannerInput,
    Strategy,
    UnmetDemand,
)

__all__ = [
    "HEAD_GROUP",
    "BundleDemand",
    "Deletion",
    "Demand",
    "DemandKind",
    "GroupConfig",
    "GroupDecision",
    "NodeView",
    "Placement",
    "PlacementGroupDemand",
    "Plan",
    "PlannerInput",
    "Strategy",
    "UnmetDemand",
    "plan",
]
