"""`rayscale plan`: the dry run, through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rayscale.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src/rayscale/samples/ray-cluster.autoscaler.yaml"
STATE = ROOT / "examples/state-two-actors.json"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_json_output_keeps_the_documented_keys() -> None:
    code, out, _ = run("plan", str(SAMPLE), "--state", str(STATE), "-o", "json")
    assert code == 0
    plan = json.loads(out)
    assert set(plan) >= {"groups", "delete", "infeasible"}
    group = plan["groups"]["small-group"]
    assert set(group) >= {"replicas", "launch", "reasons"}
    # 2 pending actors + a 3-bundle STRICT_SPREAD gang; one idle worker absorbs one bundle.
    assert group["launch"] == 4 and group["replicas"] == 6
    assert plan["delete"] == []
    (infeasible,) = plan["infeasible"]
    assert set(infeasible) >= {"resources", "count", "reason"}
    assert "GPU" in infeasible["reason"]
    assert infeasible["code"] == "missing_resource" and "GPU" in infeasible["params"]["missing"]
    # each group reason's text, with its code and params beside it
    assert len(group["reason_codes"]) == len(group["reasons"])
    assert group["reason_codes"][0]["code"] == "demand_fits_no_node"
    assert group["reasons"][0].startswith(
        "launch 4 small-group: placement group STRICT_SPREAD 3 × {CPU: 1}"
    )


def test_text_output_explains() -> None:
    code, out, _ = run("plan", str(SAMPLE), "--state", str(STATE))
    assert code == 0
    assert "small-group: 2 -> 6 replicas +4" in out
    assert "needed by pending demand" in out


def test_idle_worker_deleted_with_reason(tmp_path: Path) -> None:
    state = {
        "nodes": [
            {"name": "head", "group": "headgroup", "total": {"CPU": 0}},
            {"name": "w", "group": "small-group", "total": {"CPU": 1}, "idle_seconds": 61},
        ]
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(state))
    code, out, _ = run("plan", str(SAMPLE), "--state", str(path), "-o", "json")
    assert code == 0
    assert json.loads(out)["delete"] == [
        {
            "node": "w",
            "group": "small-group",
            "replica": None,
            "reason": "delete w: idle 61 s ≥ 60 s idle timeout",
            "code": "idle_timeout",
            "params": {"group": "small-group", "nodes": ["w"], "idle_s": 61, "timeout_s": 60},
        }
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"nodes": [{"name": "a", "group": "gpu-group", "total": {}}]}', "unknown group"),
        ('{"nodes": [{"name": "a", "group": "small-group", "total": {"CPU": -1}}]}', ">= 0"),
        ('{"nodez": []}', "nodez"),
        ('{"demand": {"placement_groups": [{"strategy": "TIGHT", "bundles": [{}]}]}}', "strategy"),
    ],
    ids=["bad-json", "unknown-group", "negative", "unknown-key", "bad-strategy"],
)
def test_bad_state_exits_2_with_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    code, out, err = run("plan", str(SAMPLE), "--state", str(path))
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out


def test_bad_spec_exits_2_listing_problems(tmp_path: Path) -> None:
    spec = SAMPLE.read_text().replace("minReplicas: 0", "minReplicas: 20")
    path = tmp_path / "c.yaml"
    path.write_text(spec)
    code, _, err = run("plan", str(path), "--state", str(STATE))
    assert code == 2
    assert "minReplicas" in err and "Traceback" not in err
