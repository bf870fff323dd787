"""Why the autoscaler did (or did not) do something: a code plus parameters.

Every decision carries a :class:`Reason`. Code reads ``reason.code`` and ``reason.params``
(logs' structured fields, ``status -o json``, the bench, metrics, Kubernetes Events); people
read ``reason.text()``. No code parses the text.

Purely computational: rendering is string formatting only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ReasonCode(str, Enum):
    """What kind of decision (or non-decision) a reason explains."""

    # -- launches
    BELOW_MIN = "below_min"
    """A group is below its minReplicas. params: group, min, replicas (launched for it)."""
    DEMAND_FITS_NO_NODE = "demand_fits_no_node"
    """Pending demand fits no free node, so new nodes are launched. params: group, replicas,
    shapes ([{kind: "task" | "placement_group", resources, count, strategy?, bundles?}]; at most
    three examples), more (shapes not listed)."""
    REQUEST_RESOURCES = "request_resources"
    """The cluster's total capacity must hold request_resources(). params: group, replicas,
    shapes ([{resources, count}]), more."""
    FALLBACK_SPECIAL_GROUP = "fallback_special_group"
    """Plain work goes to a group with an unasked accelerator because every plain group is at
    its limit. params: group, resources (the unasked special resources), replicas."""

    # -- held back (feasible, not placed this round)
    AT_MAX = "at_max"
    """params: group, max."""
    CONSERVATIVE_LIMIT = "conservative_limit"
    """Conservative upscaling: pending replicas <= max(1, running). params: group, running."""
    HELD_BACK = "held_back"
    """Demand held back by group limits. params: resources, count, limits ([{code, params}] of
    AT_MAX / CONSERVATIVE_LIMIT reasons)."""
    HOLD = "hold"
    """A group's line for demand its limit holds back. params: group, resources, count, limits
    (as HELD_BACK)."""
    WAITING_FOR_BUSY_NODES = "waiting_for_busy_nodes"
    """Only busy existing nodes can hold it. params: resources."""

    # -- infeasible (no group can ever hold it)
    MISSING_RESOURCE = "missing_resource"
    """params: resources, missing ({name: {needs, offers}}; offers 0 = nobody has it),
    gang (optional: the strategy when the resources are a whole gang's)."""
    NO_SINGLE_NODE = "no_single_node"
    """No single group or node holds all of it. params: resources."""
    SPREAD_TOO_WIDE = "spread_too_wide"
    """STRICT_SPREAD needs more distinct nodes than the groups allow. params: bundles, hosts."""

    # -- scale-down
    IDLE_TIMEOUT = "idle_timeout"
    """params: group, nodes, idle_s, timeout_s."""
    ABOVE_MAX = "above_max"
    """params: group, nodes, max, state ("idle" | "pending"), idle_s."""
    KEEP_NEEDED = "keep_needed"
    """An idle node is kept because demand needs it. params: group, nodes, idle_s, need
    ("request_resources" | "pending_demand")."""
    KEEP_AT_MIN = "keep_at_min"
    """An idle node is kept because the group is at minReplicas. params: group, nodes, idle_s,
    min."""

    # -- steady
    NO_CHANGE = "no_change"
    """params: group, replicas."""

    # -- applying a plan (the loop, not the planner)
    DRAIN_REFUSED = "drain_refused"
    """Ray refused to drain a host; its whole replica stays. params: group, nodes, node,
    message."""
    DELETE_PENDING = "delete_pending"
    """Pods listed in workersToDelete still exist; the group is not rescaled until they are
    gone. params: group, nodes."""
    BOOT_FAILED = "boot_failed"
    """A worker failed to boot. params: group, node, exit_code, line."""
    WORKER_EXITED = "worker_exited"
    """A running worker's Ray process exited; its pod is replaced if still wanted. params:
    group, node, exit_code, line."""
    ACTION_FAILED = "action_failed"
    """An action of the loop failed and is retried next tick. params: action, target, error."""


@dataclass(frozen=True, slots=True)
class Reason:
    """A code and its parameters (JSON-compatible values only)."""

    code: ReasonCode
    params: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The sentence people read; see :mod:`rayscale.planner.explain` for the wording."""
        from rayscale.planner.explain import render

        return render(self)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.value, "params": dict(self.params), "text": self.text()}
