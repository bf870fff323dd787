"""Reasons rendered for people. Purely computational: formatting only.

Kept apart from the planner so the wording can change without touching a decision, and so
nothing but this module turns a :class:`~rayscale.planner.reasons.Reason` into text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rayscale.planner.reasons import Reason, ReasonCode
from rayscale.planner.shapes import fmt


def _nodes(p: Mapping[str, Any]) -> str:
    return ", ".join(p.get("nodes", ()))


def _shapes(p: Mapping[str, Any]) -> str:
    shown = "; ".join(f"{s['count']} pending {fmt(s['resources'])}" for s in p.get("shapes", ()))
    more = int(p.get("more", 0))
    return shown + (f"; and {more} more demand shapes" if more > 0 else "")


def _missing(p: Mapping[str, Any]) -> str:
    parts = []
    for name, m in sorted(p.get("missing", {}).items()):
        offers = float(m.get("offers", 0))
        if offers > 0:
            parts.append(f"{name}: needs {float(m['needs']):g}, largest offers {offers:g}")
        else:
            parts.append(f"{name}: no group or node has it")
    return "; ".join(parts)


_TEMPLATES: dict[ReasonCode, Callable[[Mapping[str, Any]], str]] = {
    ReasonCode.BELOW_MIN: lambda p: f"below minReplicas={p['min']}",
    ReasonCode.DEMAND_FITS_NO_NODE: lambda p: (
        f"launch {p['replicas']} {p['group']}: {_shapes(p)} fits no free node"
    ),
    ReasonCode.REQUEST_RESOURCES: lambda p: (
        f"launch {p['replicas']} {p['group']}: request_resources() needs more total capacity"
    ),
    ReasonCode.FALLBACK_SPECIAL_GROUP: lambda p: (
        f"{p['group']} carries resources {fmt(p['resources'])} does not ask for, but every "
        "plainer group is at its limit"
    ),
    ReasonCode.AT_MAX: lambda p: f"{p['group']} is at maxReplicas={p['max']}",
    ReasonCode.CONSERVATIVE_LIMIT: lambda p: (
        f"{p['group']} is Conservative: at most max(1, running={p['running']}) pending replicas"
    ),
    ReasonCode.HELD_BACK: lambda p: (
        "held back: "
        + "; ".join(render(Reason(ReasonCode(r["code"]), r["params"])) for r in p.get("limits", ()))
    ),
    ReasonCode.WAITING_FOR_BUSY_NODES: lambda p: (
        f"waiting: only busy existing nodes can hold {fmt(p['resources'])}"
    ),
    ReasonCode.MISSING_RESOURCE: lambda p: (
        f"infeasible: no group can hold {fmt(p['resources'])} ({_missing(p)})"
    ),
    ReasonCode.NO_SINGLE_NODE: lambda p: (
        f"infeasible: no single group or node holds all of {fmt(p['resources'])}"
    ),
    ReasonCode.SPREAD_TOO_WIDE: lambda p: (
        f"infeasible: STRICT_SPREAD needs {p['bundles']} distinct nodes, but at most "
        f"{p['hosts']} can exist"
    ),
    ReasonCode.IDLE_TIMEOUT: lambda p: (
        f"delete {_nodes(p)}: idle {float(p['idle_s']):.0f} s ≥ {float(p['timeout_s']):g} s "
        "idle timeout"
    ),
    ReasonCode.ABOVE_MAX: lambda p: (
        f"delete {_nodes(p)}: {p.get('state', 'idle')}, group is above maxReplicas={p['max']}"
    ),
    ReasonCode.KEEP_NEEDED: lambda p: (
        f"keep {_nodes(p)}: idle {float(p['idle_s']):.0f} s but {p['need']}"
    ),
    ReasonCode.KEEP_AT_MIN: lambda p: (
        f"keep {_nodes(p)}: idle {float(p['idle_s']):.0f} s but group is at minReplicas={p['min']}"
    ),
    ReasonCode.NO_CHANGE: lambda p: (
        f"no change: {p['replicas']} replicas cover the demand this group can serve"
    ),
    ReasonCode.DRAIN_REFUSED: lambda p: (
        f"keep {_nodes(p)}: Ray refused to drain {p['node']} ({p.get('message') or 'busy'})"
    ),
    ReasonCode.DELETE_PENDING: lambda p: (
        f"waiting for {_nodes(p)} to go before scaling {p['group']} again"
    ),
    ReasonCode.BOOT_FAILED: lambda p: (
        f"{p['group']}: {p['node']} failed to boot (exit {p.get('exit_code')}): {p.get('line')}"
    ),
    ReasonCode.WORKER_EXITED: lambda p: (
        f"{p['group']}: {p['node']} exited ({p.get('exit_code')}): {p.get('line')}"
    ),
    ReasonCode.ACTION_FAILED: lambda p: f"{p['action']} {p.get('target', '')} failed: {p['error']}",
}


def render(reason: Reason) -> str:
    """The sentence for ``reason``."""
    return _TEMPLATES[reason.code](reason.params)
