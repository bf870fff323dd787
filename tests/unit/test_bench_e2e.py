"""``rayscale bench e2e``'s pure parts: reading events.jsonl and summarising bursts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rayscale.bench import e2e

pytestmark = pytest.mark.unit


def test_events_reads_decisions_and_tolerates_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = e2e.Events(path)
    assert not events.available and events.first(0, "launch") is None
    rows = [
        {"at": 10.0, "type": "launch", "group": "small-group", "count": 2, "nodes": ["a", "b"]},
        {"at": 20.0, "type": "delete", "group": "small-group", "count": 1, "nodes": ["b"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"at": 30, "ty')
    assert events.first(0, "launch") == 10.0
    assert events.first(11, "launch") is None
    assert events.first(0, "delete", "a") is None
    assert events.first(0, "delete", "b") == 20.0
    assert [e["type"] for e in events.since(0)] == ["launch", "delete"]


def test_summary_relates_each_burst_to_the_single_worker_time() -> None:
    burst = {"failed_boots": 0, "rss_per_worker_mb": 130.0, "rss_per_worker_without_tasks_mb": 80.0}
    result = {
        "trials": [],
        "bursts": [
            {"n": 1, "demand_to_n_workers_s": 4.0, **burst},
            {"n": 6, "demand_to_n_workers_s": 7.0, **burst},
            {"n": 10, "demand_to_n_workers_s": None, **burst},
        ],
        "rss_bytes": [100 * 2**20],
    }
    summary = e2e.summarize(result, period=1.0, idle_timeout=5)
    assert [b["x_single_worker"] for b in summary["bursts"]] == [1.0, 1.75, None]
    table = e2e.burst_table(summary["bursts"])
    assert "not reached" in table[-1] and "1.75" in table[2]
