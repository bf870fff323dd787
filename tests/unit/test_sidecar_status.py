"""The sidecar's status log (rayscale.sidecar.StatusLog): the ``ray status``-style block goes
to the log whenever it changes and at least every minute, as Ray's sidecar does, and Ray's own
``ray status`` document is published."""

from __future__ import annotations

import json

import pytest

from rayscale.autoscaler.loop import Autoscaler
from rayscale.sidecar import STATUS_EVERY_S, StatusLog
from tests.unit.test_autoscaler_loop import HEAD, ONE_CPU, FakeOperator, FakeRayView

pytestmark = pytest.mark.unit


def _blocks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "rayscale.sidecar" and "Autoscaler status" in r.getMessage()
    ]


def test_the_status_block_is_logged_on_change_and_every_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", "rayscale.sidecar")
    now = [1000.0]
    ray = FakeRayView([HEAD])
    status = StatusLog("demo", "127.0.0.1:6379", ray, lambda: 0, clock=lambda: now[0])
    op = FakeOperator()
    loop = Autoscaler(op.groups, ray, op, clock=lambda: now[0])

    status(loop.tick())
    assert len(_blocks(caplog)) == 1
    assert status.lines[0].startswith("======== Autoscaler status:")
    assert json.loads(ray.published[-1])  # Ray's own `ray status` document

    for _ in range(5):  # nothing changed, under a minute: not again
        now[0] += 10.0
        status(loop.tick())
    assert len(_blocks(caplog)) == 1

    now[0] += STATUS_EVERY_S - 50.0 + 0.1  # a minute since it was logged
    status(loop.tick())
    assert len(_blocks(caplog)) == 2

    ray.demand = ONE_CPU  # a change: logged at once, with the decision in it
    now[0] += 1.0
    status(loop.tick())
    blocks = _blocks(caplog)
    assert len(blocks) == 3
    assert " {'CPU': 1.0}: 1+ pending tasks/actors" in blocks[-1]
    assert any(line.startswith(" small-group: desired 1 ") for line in status.lines)
