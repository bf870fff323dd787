"""The status view: one autoscaler iteration as JSON, and as text in ``ray status``'s layout.

Pure: built from a :class:`~rayscale.autoscaler.loop.TickReport`; the caller stores it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from rayscale.autoscaler.loop import TickReport
from rayscale.planner import HEAD_GROUP, GroupConfig
from rayscale.planner.shapes import fmt

_RULE = "-" * 63


def _shape(resources: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(resources.items()) if v}


def status_dict(
    name: str,
    address: str,
    groups: Sequence[GroupConfig],
    report: TickReport,
    failures: Sequence[str] = (),
    loop_errors: int = 0,
) -> dict[str, Any]:
    """The JSON of ``rayscale status -o json``."""
    running: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    for node in report.nodes:
        (running if node.status == "running" else pending)[node.group] += 1
    plan = report.plan
    return {
        "name": name,
        "address": address,
        "updated_at": report.at,
        "iteration_seconds": round(report.seconds, 4),
        "loop_errors": loop_errors,
        "groups": [
            {
                "name": g.name,
                "min": g.min_replicas,
                "max": g.max_replicas,
                "desired": plan.groups[g.name].replicas,
                "running": running[g.name],
                "pending": pending[g.name] + len(report.launched.get(g.name, [])),
                "reasons": list(plan.groups[g.name].reasons),
            }
            for g in groups
        ],
        "nodes": [
            {
                "name": n.name,
                "group": n.group,
                "state": _state(n.status, n.idle_s),
                "idle_seconds": round(n.idle_s, 1),
                "total": _shape(n.total),
                "available": _shape(n.available),
            }
            for n in report.nodes
        ],
        "demand": {
            "bundles": [
                {"resources": _shape(b.resources), "count": b.count} for b in report.demand.bundles
            ],
            "placement_groups": [
                {"strategy": pg.strategy.value, "bundles": [_shape(b) for b in pg.bundles]}
                for pg in report.demand.placement_groups
            ],
            "request_resources": [_shape(b) for b in report.demand.request_resources],
        },
        "infeasible": [_unmet(u) for u in plan.infeasible],
        "held_back": [_unmet(u) for u in plan.held_back],
        "launched": {g: list(ns) for g, ns in report.launched.items()},
        "deleted": list(report.deleted),
        "recent_failures": list(failures),
    }


def _state(status: str, idle_s: float) -> str:
    if status == "pending":
        return "pending"
    return "idle" if idle_s > 0 else "active"


def _unmet(u: Any) -> dict[str, Any]:
    out = {"resources": _shape(u.resources), "count": u.count, "reason": u.reason}
    if u.strategy is not None:
        out["strategy"] = u.strategy.value
    return out


def _amount(name: str, used: float, total: float) -> str:
    if name in ("memory", "object_store_memory"):
        return f"{_bytes(used)}/{_bytes(total)} {name}"
    return f"{used:.1f}/{total:.1f} {name}"


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}B"


def _dict_text(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"'{k}': {v:.1f}" for k, v in sorted(resources.items())) + "}"


def format_status(status: Mapping[str, Any]) -> str:
    """``ray status``'s layout, plus rayscale's per-group targets and reasons."""
    when = dt.datetime.fromtimestamp(status["updated_at"]).isoformat(sep=" ")
    lines = [f"======== Autoscaler status: {when} ========", "Node status", _RULE]
    by_state: dict[str, Counter[str]] = defaultdict(Counter)
    for node in status["nodes"]:
        by_state[node["state"]][node["group"]] += 1
    for title, state in (("Active", "active"), ("Idle", "idle"), ("Pending", "pending")):
        lines.append(f"{title}:")
        counts = by_state.get(state)
        lines += (
            [f" {c} {g}" for g, c in sorted(counts.items())] if counts else [f" (no {state} nodes)"]
        )
    lines.append("Recent failures:")
    lines += [f" {f}" for f in status["recent_failures"]] or [" (no failures)"]
    lines += ["", "Resources", _RULE, "Total Usage:"]
    totals: dict[str, float] = defaultdict(float)
    used: dict[str, float] = defaultdict(float)
    for node in status["nodes"]:
        if node["state"] == "pending":
            continue
        for k, v in node["total"].items():
            totals[k] += v
            used[k] += v - node["available"].get(k, 0.0)
    lines += [f" {_amount(k, used[k], totals[k])}" for k in sorted(totals)] or [" (none)"]
    demand = status["demand"]
    if demand["request_resources"]:
        lines.append("From request_resources:")
        counts = Counter(_dict_text(b) for b in demand["request_resources"])
        lines += [f" {s}: {c} from request_resources()" for s, c in counts.items()]
    lines.append("Pending Demands:")
    pending = [
        f" {_dict_text(b['resources'])}: {b['count']}+ pending tasks/actors"
        for b in demand["bundles"]
    ]
    for pg in demand["placement_groups"]:
        shapes = Counter(_dict_text(b) for b in pg["bundles"])
        text = " + ".join(f"{s} * {c}" for s, c in shapes.items())
        pending.append(f" {text} ({pg['strategy']}): 1+ pending placement groups")
    lines += pending or [" (no resource demands)"]
    if status["infeasible"]:
        lines.append("Infeasible:")
        lines += [
            f" {fmt(u['resources'])} × {u['count']}: {u['reason']}" for u in status["infeasible"]
        ]
    lines += ["", "Groups (rayscale)", _RULE]
    for g in status["groups"]:
        lines.append(
            f" {g['name']}: desired {g['desired']} (min {g['min']}, max {g['max']}), "
            f"running {g['running']}, pending {g['pending']}"
        )
        lines += [f"   - {r}" for r in g["reasons"]]
    head = [n for n in status["nodes"] if n["group"] == HEAD_GROUP]
    if not head:
        lines.append(" (head not reported by GCS)")
    lines.append(
        f"The autoscaler took {status['iteration_seconds']:.3f} seconds to complete "
        "the update iteration."
    )
    return "\n".join(lines)
