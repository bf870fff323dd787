"""The runtime-env agent stand-in: its hand-written protobuf against Ray's own generated
messages, and its HTTP contract (port file, token check) as the raylet uses it.

The whole path (raylet -> stub -> a task's RuntimeEnvSetupError) is in the Ray tier:
tests/ray/test_runtime_bursts.py::test_runtime_env_choice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.core.generated import runtime_env_agent_pb2 as pb

from rayscale.local import runtimeenvstub as stub
from rayscale.spec.models import RUNTIME_ENV_AGENT_ANNOTATION

pytestmark = pytest.mark.unit


def _reply(env: dict[str, object] | str) -> pb.GetOrCreateRuntimeEnvReply:
    request = pb.GetOrCreateRuntimeEnvRequest(
        serialized_runtime_env=env if isinstance(env, str) else json.dumps(env),
        job_id=b"\x01\x00\x00\x00",
        source_process="raylet",
    )
    request.runtime_env_config.setup_timeout_seconds = 600
    return pb.GetOrCreateRuntimeEnvReply.FromString(stub.get_or_create(request.SerializeToString()))


@pytest.mark.parametrize("env", ["", "{}", {"pip": []}, {"_ray_commit": "abc"}])
def test_empty_runtime_env_is_created(env: dict[str, object] | str) -> None:
    reply = _reply(env)
    assert reply.status == pb.AGENT_RPC_STATUS_OK
    context = json.loads(reply.serialized_runtime_env_context)
    assert context["env_vars"] == {} and context["command_prefix"] == []


def test_env_vars_reach_the_context() -> None:
    reply = _reply({"env_vars": {"A": "b", "N": 1}})
    assert reply.status == pb.AGENT_RPC_STATUS_OK
    assert json.loads(reply.serialized_runtime_env_context)["env_vars"] == {"A": "b", "N": "1"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"pip": ["requests"], "_ray_commit": "abc"}, "pip"),
        ({"working_dir": "gcs://_ray_pkg_x.zip", "env_vars": {"A": "b"}}, "working_dir"),
        ({"conda": "base"}, "conda"),
    ],
)
def test_other_runtime_envs_fail_with_the_fix(env: dict[str, object], named: str) -> None:
    reply = _reply(env)
    assert reply.status == pb.AGENT_RPC_STATUS_FAILED
    assert f"runtime_env field(s) {named} " in reply.error_message
    assert f'{RUNTIME_ENV_AGENT_ANNOTATION}: "true"' in reply.error_message
    assert "_ray_commit" not in reply.error_message


def test_annotation_name_is_the_specs() -> None:
    assert stub.ANNOTATION == RUNTIME_ENV_AGENT_ANNOTATION


def test_other_replies_parse() -> None:
    delete = pb.DeleteRuntimeEnvIfPossibleReply.FromString(
        stub.REPLIES["/delete_runtime_env_if_possible"](b"")
    )
    assert delete.status == pb.AGENT_RPC_STATUS_OK
    info = pb.GetRuntimeEnvsInfoReply.FromString(stub.REPLIES["/get_runtime_envs_info"](b""))
    assert info.total == 0 and not info.runtime_env_states


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """The stub as the raylet starts it (by path, ``-S -I``), with token auth on."""
    token = "t0ken-for-the-test"
    (tmp_path / "token").write_text(token + "\n")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}
    proc = subprocess.Popen(
        [sys.executable, "-S", "-I", stub.__file__, "--node-id=abc", f"--session-dir={tmp_path}",
         "--node-ip-address=127.0.0.1", "--runtime-env-agent-port=0", "--unknown=ignored"],
        env=env,
    )  # fmt: skip
    port_file = tmp_path / f"{stub.PORT_NAME}_abc"
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, "the stub exited"
            assert time.monotonic() < deadline, "the stub published no port"
            time.sleep(0.02)
        yield int(port_file.read_text()), token
    finally:
        proc.terminate()
        proc.wait(10)


def _post(port: int, path: str, body: bytes, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_contract_with_token(served: tuple[int, str]) -> None:
    port, token = served
    body = pb.GetOrCreateRuntimeEnvRequest(serialized_runtime_env='{"pip": ["x"]}')
    status, raw = _post(port, "/get_or_create_runtime_env", body.SerializeToString(), token)
    assert status == 200
    assert pb.GetOrCreateRuntimeEnvReply.FromString(raw).status == pb.AGENT_RPC_STATUS_FAILED
    assert _post(port, "/get_or_create_runtime_env", b"", None)[0] == 401
    assert _post(port, "/get_or_create_runtime_env", b"", "wrong")[0] == 403
    assert _post(port, "/nothing", b"", token)[0] == 404
