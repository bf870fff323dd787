"""The ``rayscale`` command line.

Bad input (a spec, a state file, a flag) ends with a one-paragraph error on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="KubeRay-compatible autoscaling for Ray: plan, run locally, benchmark.",
)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
app.add_typer(bench_app, name="bench")

err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


class Output(str, enum.Enum):
    text = "text"
    json = "json"


def load_cluster_groups(path: Path) -> tuple:  # type: ignore[type-arg]
    """Parse a RayCluster YAML into planner groups, or exit 2 with every problem listed."""
    from rayscale.spec import SpecError, load_file, to_group_configs

    try:
        loaded = load_file(path)
    except SpecError as exc:
        fail(exc.format() if hasattr(exc, "format") else str(exc))
    return to_group_configs(loaded.cluster)


@app.command("plan")
def plan_cmd(
    cluster: Annotated[Path, typer.Argument(help="RayCluster YAML (KubeRay ray.io/v1)")],
    state: Annotated[
        Path, typer.Option("--state", "-s", help="Snapshot of nodes and demand (JSON)")
    ],
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json")] = Output.text,
) -> None:
    """Dry run: what would the autoscaler do for this cluster and this snapshot?"""
    from rayscale.dryrun import StateError, load_state, plan_to_json, plan_to_text, to_planner_input
    from rayscale.planner import plan

    groups = load_cluster_groups(cluster)
    try:
        inp = to_planner_input(load_state(state), groups)
    except StateError as exc:
        fail(str(exc))
    result = plan(inp)
    if output is Output.json:
        sys.stdout.write(json.dumps(plan_to_json(result), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(plan_to_text(result) + "\n")


@bench_app.command("planner")
def bench_planner(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per scenario")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer repeats (noisier)")] = False,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="Run only these (S1..S5)")
    ] = None,
) -> None:
    """rayscale's planner vs Ray 2.60's v1 and v2 schedulers on the same seeded inputs."""
    from rayscale.bench.planner_bench import main as run

    raise typer.Exit(run(json_output, quick=quick, scenarios=scenario))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
