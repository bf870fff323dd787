"""Reading why a node failed to boot from its logs (pure text parsing, no processes).

The sample lines are verbatim from Ray 2.60 logs seen on this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rayscale.local import raylogs

pytestmark = pytest.mark.unit

RAYLET_BIND = (
    "[2026-11-23 13:54:38,984 I 24748 24748] (raylet) main.cc:283: Setting cluster ID to: 87f9\n"
    "[2026-11-23 13:54:39,165 E 24777 24786] (raylet) logging.cc:118: Unhandled exception: "
    "N5boost10wrapexceptINS_6system12system_errorEEE. what(): bind: Address already in use "
    "[system:98 at external/boost/boost/asio/detail/reactive_socket_service.hpp:161 in function "
    "'bind'] /work/main/.venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet(+0xff77"
    "0a) [0x5631b23c970a] ray::operator<<()\n"
    "[2026-11-23 13:54:39,180 E 24777 24786] (raylet) logging.cc:125: Stack trace: \n"
)
START_TIMEOUT = (
    "Traceback (most recent call last):\n"
    '  File "/work/main/.venv/bin/ray", line 6, in <module>\n'
    "Exception: The current node timed out during startup. This could happen because some of "
    "the raylet failed to startup or the GCS has become overloaded.\n"
)
CLICK_USAGE = (
    "Usage: ray start [OPTIONS]\nTry 'ray start --help' for help.\n\n"
    "Error: No such option: --bogus\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(RAYLET_BIND, "bind: Address already in use [system:98", id="raylet-bind"),
        pytest.param(START_TIMEOUT, "Exception: The current node timed out", id="ray-start"),
        pytest.param(CLICK_USAGE, "Error: No such option: --bogus", id="bad-flag"),
        pytest.param(
            "E1123 14:55:45.606118915   17980 chttp2_server.cc:1059]                UNKNOWN:No "
            "address added out of total 1 resolved for '0.0.0.0:60005' {created_time:\"2026-11-23"
            'T14:55:45.606039416+00:00", children:[UNKNOWN:Failed to add any wildcard listeners\n'
            "[2026-11-23 14:55:45,641 C 17980 17980] (raylet) grpc_server.cc:134:  An unexpected "
            "system state has occurred. You have likely discovered a bug in Ray.\n",
            "UNKNOWN:No address added out of total 1 resolved for '0.0.0.0:60005' {children:",
            id="grpc-port-taken",
        ),
        pytest.param(
            "[2026-11-23 13:54:39,165 F 1 2] (raylet) node_manager.cc:9: Check failed: ok\n",
            "Check failed: ok",
            id="fatal",
        ),
    ],
)
def test_first_error_line(text: str, expected: str) -> None:
    line = raylogs.first_error_line(text)
    assert line is not None and line.startswith(expected), line
    assert "(+0x" not in line  # stack frames glued to the message are dropped


def test_no_error_is_none() -> None:
    assert (
        raylogs.first_error_line("[2026-11-23 13:54:38,984 I 1 1] (raylet) main.cc:1: ok\n") is None
    )


def test_raylet_log_wins_over_ray_start_output(tmp_path: Path) -> None:
    logs = tmp_path / "ray" / "session_2026-11-23_13-54-34_1_2" / "logs"
    logs.mkdir(parents=True)
    (logs / "raylet.w3.out").write_text(RAYLET_BIND)
    (logs / "raylet.w4.out").write_text("[2026-11-23 13:54:39,165 E 1 2] (raylet) x.cc:1: other\n")
    start_log = tmp_path / "w3.log"
    start_log.write_text(START_TIMEOUT)
    line = raylogs.boot_failure_line(tmp_path / "ray", "w3", start_log)
    assert line is not None and line.startswith("raylet: bind: Address already in use"), line
    assert raylogs.boot_failure_line(tmp_path / "ray", "w9", start_log) == (
        "Exception: The current node timed out during startup. This could happen because some "
        "of the raylet failed to startup or the GCS has become overloaded."
    )
