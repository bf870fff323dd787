"""Reasons rendered for people. Purely computational: formatting only.

Kept apart from the planner so the wording can change without touching a decision, and so
nothing but this module turns a :class:`~rayscale.planner.reasons.Reason` into text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayscale.planner.reasons import Reason, ReasonCode
from rayscale.planner.shapes import fmt


def _nodes(p: Mapping[str, Any]) -> str:
    return ", ".join(p.get("nodes", ()))


def _more(p: Mapping[str, Any]) -> str:
    more = int(p.get("more", 0))
    return f"; and {more} more demand shapes" if more > 0 else ""


def _bundles(bundles: Any) -> str:
    return " + ".join(f"{b['count']} × {fmt(b['resources'])}" for b in bundles)


def _shape(s: Mapping[str, Any]) -> str:
    if s.get("kind") == "placement_group":
        return f"placement group {s['strategy']} {_bundles(s['bundles'])} fits no free node"
    return f"{s['count']} pending {fmt(s['resources'])} fit no free node"


def _shapes(p: Mapping[str, Any]) -> str:
    return "; ".join(_shape(s) for s in p.get("shapes", ())) + _more(p)


def _requests(p: Mapping[str, Any]) -> str:
    shown = "; ".join(
        f"request_resources {s['count']} × {fmt(s['resources'])} exceed total capacity"
        for s in p.get("shapes", ())
    )
    return shown + _more(p)


def _missing(p: Mapping[str, Any]) -> str:
    parts = []
    for name, m in sorted(p.get("missing", {}).items()):
        offers = float(m.get("offers", 0))
        if offers > 0:
            parts.append(f"{name}: needs {float(m['needs']):g}, largest offers {offers:g}")
        else:
            parts.append(f"{name}: no group or node has it")
    return "; ".join(parts)


def _what(p: Mapping[str, Any]) -> str:
    gang = p.get("gang")
    return f"the whole {gang} gang {fmt(p['resources'])}" if gang else fmt(p["resources"])


def _limits(p: Mapping[str, Any]) -> str:
    return "; ".join(
        render(Reason(ReasonCode(r["code"]), r["params"])) for r in p.get("limits", ())
    )


def _launch(p: Mapping[str, Any]) -> str:
    return f"launch {p['replicas']}: " if "replicas" in p else ""


_NEEDS = {"request_resources": "request_resources", "pending_demand": "pending demand"}


def _state(p: Mapping[str, Any]) -> str:
    if p.get("state", "idle") == "pending":
        return "not yet running"
    return f"idle {float(p.get('idle_s', 0)):.0f} s"


_TEMPLATES: dict[ReasonCode, Callable[[Mapping[str, Any]], str]] = {
    ReasonCode.BELOW_MIN: lambda p: f"{_launch(p)}below minReplicas={p['min']}",
    ReasonCode.DEMAND_FITS_NO_NODE: lambda p: f"{_launch(p)}{_shapes(p)}",
    ReasonCode.REQUEST_RESOURCES: lambda p: f"{_launch(p)}{_requests(p)}",
    ReasonCode.FALLBACK_SPECIAL_GROUP: lambda p: (
        f"{_launch(p)}{p['group']} carries {fmt(p['resources'])} that the demand does not ask "
        "for, but every plainer group is at its limit"
    ),
    ReasonCode.AT_MAX: lambda p: f"{p['group']} is at maxReplicas={p['max']}",
    ReasonCode.CONSERVATIVE_LIMIT: lambda p: (
        f"{p['group']} is Conservative: at most max(1, running={p['running']}) replicas "
        "pending at once"
    ),
    ReasonCode.HELD_BACK: lambda p: f"held back: {_limits(p)}",
    ReasonCode.HOLD: lambda p: (
        f"hold {p['count']} × {fmt(p['resources'])}: held back: {_limits(p)}"
    ),
    ReasonCode.WAITING_FOR_BUSY_NODES: lambda p: (
        f"waiting: only busy existing nodes can hold {fmt(p['resources'])}"
    ),
    ReasonCode.MISSING_RESOURCE: lambda p: (
        f"infeasible: no group can hold {_what(p)} ({_missing(p)})"
    ),
    ReasonCode.NO_SINGLE_NODE: lambda p: (
        f"infeasible: no single group or node holds all of {_what(p)}"
    ),
    ReasonCode.SPREAD_TOO_WIDE: lambda p: (
        f"infeasible: STRICT_SPREAD needs {p['bundles']} distinct nodes, but at most "
        f"{p['hosts']} existing or launchable nodes can hold its bundles"
    ),
    ReasonCode.IDLE_TIMEOUT: lambda p: (
        f"delete {_nodes(p)}: idle {float(p['idle_s']):.0f} s ≥ {float(p['timeout_s']):g} s "
        "idle timeout"
    ),
    ReasonCode.ABOVE_MAX: lambda p: (
        f"delete {_nodes(p)}: {_state(p)}, group is above maxReplicas={p['max']}"
    ),
    ReasonCode.KEEP_NEEDED: lambda p: (
        f"keep {_nodes(p)}: idle {float(p['idle_s']):.0f} s but needed by "
        f"{_NEEDS.get(p['need'], p['need'])}"
    ),
    ReasonCode.KEEP_AT_MIN: lambda p: (
        f"keep {_nodes(p)}: idle {float(p['idle_s']):.0f} s but group is at minReplicas={p['min']}"
    ),
    ReasonCode.NO_CHANGE: lambda p: (
        f"no change: {p['replicas']} replicas cover the demand this group can serve"
    ),
    ReasonCode.DRAIN_REFUSED: lambda p: (
        f"keep {_nodes(p)}: Ray refused to drain {p['node']} ({p.get('message') or 'busy'})"
        + (
            f"; {', '.join(p['cordoned'])} stay drained (Ray 2.60 cannot undo a drain) until "
            "the whole replica is idle and goes"
            if p.get("cordoned")
            else ""
        )
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


# -- building reasons (params only; the text is rendered when someone reads it) ---------------
MAX_EXAMPLES = 3
"""Demand shapes a launch reason lists; the rest are counted as ``more``."""


@dataclass(frozen=True, slots=True)
class Cause:
    """What one launch is for. Turned into reason params only for the examples a plan shows,
    so a round with 10,000 demand shapes does not format 10,000 of them.

    ``kind``: "min" | "request_resources" | "task" | "placement_group".
    """

    kind: str
    count: int = 0
    resources: Mapping[str, float] = field(default_factory=dict)
    strategy: str = ""
    bundles: tuple[Mapping[str, float], ...] = ()
    floor: int = 0

    def example(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count}
        out["resources"] = {k: float(v) for k, v in self.resources.items()}
        if self.kind == "placement_group":
            counts: dict[tuple[tuple[str, float], ...], int] = {}
            for b in self.bundles:
                key = tuple(sorted((k, float(v)) for k, v in b.items() if v))
                counts[key] = counts.get(key, 0) + 1
            out["strategy"] = self.strategy
            out["bundles"] = [{"resources": dict(k), "count": c} for k, c in counts.items()]
        return out


def launch_reasons(
    group: str, launches: Iterable[tuple[Cause, int, Mapping[str, float] | None]]
) -> list[Reason]:
    """One reason per kind of launch of ``group``: (cause, replicas, unasked specials when the
    group is a fallback for plainer work) for each launch, in order."""
    floor = 0
    floor_replicas = 0
    buckets: dict[tuple[ReasonCode, tuple[tuple[str, float], ...]], dict[int, list[Any]]] = {}
    for cause, replicas, fallback in launches:
        if cause.kind == "min":
            floor, floor_replicas = cause.floor, floor_replicas + replicas
            continue
        if fallback is not None:
            code = ReasonCode.FALLBACK_SPECIAL_GROUP
            key = tuple(sorted(fallback.items()))
        elif cause.kind == "request_resources":
            code, key = ReasonCode.REQUEST_RESOURCES, ()
        else:
            code, key = ReasonCode.DEMAND_FITS_NO_NODE, ()
        bucket = buckets.setdefault((code, key), {})
        entry = bucket.get(id(cause))
        if entry is None:
            bucket[id(cause)] = [cause, replicas]
        else:
            entry[1] += replicas
    out = []
    if floor_replicas:
        out.append(
            Reason(ReasonCode.BELOW_MIN, {"group": group, "min": floor, "replicas": floor_replicas})
        )
    for (code, key), bucket in buckets.items():
        entries = list(bucket.values())
        params: dict[str, Any] = {
            "group": group,
            "replicas": sum(e[1] for e in entries),
            "shapes": [e[0].example() for e in entries[:MAX_EXAMPLES]],
            "more": max(0, len(entries) - MAX_EXAMPLES),
        }
        if code is ReasonCode.FALLBACK_SPECIAL_GROUP:
            params["resources"] = dict(key)
        out.append(Reason(code, params))
    return out


def limit_json(reason: Reason) -> dict[str, Any]:
    """A limit (AT_MAX / CONSERVATIVE_LIMIT) as nested JSON inside a HELD_BACK reason."""
    return {"code": reason.code.value, "params": dict(reason.params)}


def held_back(limits: Sequence[Reason], resources: Mapping[str, float], count: int) -> Reason:
    """Feasible demand not placed this round: the binding limits, or busy nodes."""
    res = {k: float(v) for k, v in resources.items()}
    if limits:
        params = {"resources": res, "count": count, "limits": [limit_json(r) for r in limits]}
        return Reason(ReasonCode.HELD_BACK, params)
    return Reason(ReasonCode.WAITING_FOR_BUSY_NODES, {"resources": res, "count": count})


def infeasible(
    resources: Mapping[str, float],
    offers: Iterable[Mapping[str, float]],
    gang: str | None = None,
) -> Reason:
    """Why no group or node holds ``resources``: the resources nobody offers enough of, or
    (when each is offered somewhere) that no single group or node has them all."""
    largest: dict[str, float] = {}
    for src in offers:
        for k, v in src.items():
            if v > largest.get(k, 0.0):
                largest[k] = float(v)
    res = {k: float(v) for k, v in resources.items()}
    missing = {
        k: {"needs": v, "offers": largest.get(k, 0.0)}
        for k, v in sorted(res.items())
        if v > largest.get(k, 0.0) + 1e-9
    }
    params: dict[str, Any] = {"resources": res}
    if gang:
        params["gang"] = gang
    if missing:
        params["missing"] = missing
        return Reason(ReasonCode.MISSING_RESOURCE, params)
    return Reason(ReasonCode.NO_SINGLE_NODE, params)
