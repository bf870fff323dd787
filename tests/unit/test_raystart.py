"""The launcher's rewrite of the raylet's agent commands (pure string work, no processes)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from rayscale.local import raystart

pytestmark = pytest.mark.unit

REAL = (
    "--runtime_env_agent_command=/venv/bin/python -u /ray/_private/runtime_env/agent/main.py "
    "--node-id=abc --node-ip-address=192.0.2.2 --runtime-env-agent-port=0 "
    "--session-dir=/tmp/rs/ray/session_1 --gcs-address=192.0.2.2:6379 --log-dir=/tmp/x"
)


def test_runtime_env_agent_command_becomes_the_stub() -> None:
    flag, stub, keep = raystart.STUBS["runtime-env"]
    out = raystart._replace_agent(REAL, flag, stub, keep)
    assert out.startswith(flag)
    argv = shlex.split(out[len(flag) :])
    assert argv[:3] == [sys.executable, "-S", "-I"]
    assert argv[3].endswith("/rayscale/local/runtimeenvstub.py")
    assert argv[4:] == [
        "--node-id=abc",
        "--node-ip-address=192.0.2.2",
        "--runtime-env-agent-port=0",
        "--session-dir=/tmp/rs/ray/session_1",
    ]


def test_other_arguments_are_left_alone() -> None:
    flag, stub, keep = raystart.STUBS["dashboard"]
    assert raystart._replace_agent(REAL, flag, stub, keep) == REAL
    assert raystart._replace_agent("--node_id=abc", flag, stub, keep) == "--node_id=abc"


def test_unused_cli_modules_are_optional_in_ray() -> None:
    """``ray.scripts.scripts`` must import without them (it skips groups it cannot import)."""
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in raystart.UNUSED_CLI_MODULES)
    code = (
        f"import sys; {blocked}; import ray.scripts.scripts as s; print('start' in s.cli.commands)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"
