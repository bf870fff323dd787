"""The ``rayscale bench planner`` table: one block per scenario, one line per scheduler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SCHEDULERS = ("rayscale", "ray_v1", "ray_v2")


def _launch_text(launch: Mapping[str, int] | None) -> str:
    if launch is None:
        return "-"
    return ", ".join(f"{t} {n}" for t, n in launch.items()) or "(none)"


def _ms_text(row: Mapping[str, Any], s: str) -> str:
    if row[f"{s}_status"] == "timeout":
        return f">{row[f'{s}_ms_lower_bound'] / 1000:g} s (timeout)"
    if row[f"{s}_ms"] is None:
        return str(row[f"{s}_status"])
    return (
        f"{row[f'{s}_ms']:.1f} ({row[f'{s}_ms_min']:.1f}-{row[f'{s}_ms_max']:.1f}, "
        f"n={row[f'{s}_runs']})"
    )


def print_table(rows: Sequence[Mapping[str, Any]], repeats: Mapping[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="rayscale plan() vs Ray 2.60 schedulers (same input)", show_lines=True)
    for col in (
        "scenario",
        "scheduler",
        "ms median (min-max, n)",
        "launched",
        "nodes",
        "CPUs",
        "GPUs",
        "memory GiB",
        "all feasible demand fits (how)",
    ):
        table.add_column(col, overflow="fold")
    for row in rows:
        size = (
            f"{row['scenario']}\n{row['bundles']} bundles, {row['shapes']} shapes\n"
            f"{row['nodes']} nodes, {row['node_types']} types\n"
            f"speedup vs best Ray: {_speed(row)}"
        )
        for i, s in enumerate(SCHEDULERS):
            sat = row[f"{s}_satisfied"]
            table.add_row(
                size if i == 0 else "",
                s,
                _ms_text(row, s),
                _launch_text(row[f"{s}_launch"]),
                _num(row[f"{s}_launched_nodes"]),
                _num(row[f"{s}_cpus"]),
                _num(row[f"{s}_gpus"]),
                _num(row.get(f"{s}_memory_gib")),
                "-" if sat is None else (f"yes ({row[f'{s}_check']})" if sat else "[red]NO[/red]"),
            )
    console.print(table)
    console.print(
        f"timing: median of up to {dict(repeats)} runs per scheduler, each scheduler in a "
        "fresh process with a collected, frozen heap; only the scheduler call is timed; "
        "machine shared, so min-max shows the noise."
    )
    for row in rows:
        for line in _row_notes(row):
            console.print(f"- {row['scenario']}: {line}", markup=False, highlight=False)


def _speed(row: Mapping[str, Any]) -> str:
    x = row["speedup_vs_best_ray"]
    if x is None:
        return "-"
    return f">={x:g}x" if row["speedup_is_lower_bound"] else f"{x:g}x"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _row_notes(row: Mapping[str, Any]) -> list[str]:
    out = (
        [f"excluded as infeasible (fits no group): {row['excluded_infeasible']}"]
        if row["excluded_infeasible"]
        else []
    )
    for s in SCHEDULERS:
        out += [f"{s}: {n}" for n in row[f"{s}_notes"]]
        if row[f"{s}_infeasible"]:
            out.append(f"{s} reports unplaceable: {row[f'{s}_infeasible']}")
        if row[f"{s}_unplaced"]:
            out.append(f"{s} leaves unplaced (checker): {row[f'{s}_unplaced']}")
    if row.get("rayscale_plan_check") not in (None, "ok"):
        out.append(f"rayscale plan check: {row['rayscale_plan_check']}")
    scale = row.get("rayscale_ms_at_bundles")
    if scale:
        out.append(
            "rayscale median ms by pending bundles: "
            + ", ".join(f"{int(k):,}: {v:g}" for k, v in scale.items())
        )
    out += [f"LOSS {x}" for x in row["rayscale_losses"]]
    return out
