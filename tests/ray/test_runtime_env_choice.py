"""runtime_env on the embedded runtime: Ray's runtime-env agent only when the cluster asks.

By default every node runs rayscale's stand-in (rayscale.local.runtimeenvstub): tasks without
a runtime_env and with ``env_vars`` only run; any other runtime_env fails at once with Ray's
RuntimeEnvSetupError naming the field and the annotation that turns the real agent on. With
``rayscale.io/runtime-env-agent: "true"`` the same job-level ``working_dir`` works.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ray.runtime_helpers import RuntimeFactory, runtime_fixture  # noqa: F401

pytestmark = pytest.mark.ray

IDLE_S = 5
ANNOTATION = "rayscale.io/runtime-env-agent"

# Each outcome is printed as one line; ray.get has a timeout, so nothing can hang.
TASKS = """
import os, sys, ray

ray.init()

@ray.remote(num_cpus=1)
def foo():
    return os.environ.get("FOO", "unset")

def outcome(name, ref):
    try:
        print(name, "OK", ray.get(ref, timeout=120), flush=True)
    except ray.exceptions.RuntimeEnvSetupError as exc:
        print(name, "SETUP-ERROR", " ".join(str(exc).split()), flush=True)
    except Exception as exc:
        print(name, "OTHER", type(exc).__name__, flush=True)

outcome("plain", foo.remote())
outcome("env_vars", foo.options(runtime_env={"env_vars": {"FOO": "bar"}}).remote())
outcome("pip", foo.options(runtime_env={"pip": ["rayscale-no-such-package"]}).remote())
"""

WORKING_DIR = """
import sys, ray

ray.init(runtime_env={"working_dir": sys.argv[1]})

@ray.remote(num_cpus=1)
def greet():
    import greeting  # from the job's working_dir
    return greeting.TEXT

try:
    print("working_dir", "OK", ray.get(greet.remote(), timeout=120), flush=True)
except ray.exceptions.RuntimeEnvSetupError as exc:
    print("working_dir", "SETUP-ERROR", " ".join(str(exc).split()), flush=True)
"""


def lines(output: str) -> dict[str, str]:
    """``name -> rest`` for the driver's outcome lines."""
    out = {}
    for line in output.splitlines():
        name, _, rest = line.partition(" ")
        if rest.split(" ", 1)[0] in ("OK", "SETUP-ERROR", "OTHER"):
            out[name] = rest
    return out


def test_runtime_env_choice(runtime: RuntimeFactory, tmp_path: Any) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "greeting.py").write_text("TEXT = 'hello from working_dir'\n")

    # The default: no runtime-env agent.
    lean = runtime("autoscaler", "renv", idle_timeout=IDLE_S)
    lean.up()
    got = lines(lean.exec_script(TASKS, timeout=300).stdout)
    assert got["plain"] == "OK unset", got
    assert got["env_vars"] == "OK bar", got
    assert got["pip"].startswith("SETUP-ERROR"), got
    assert "runtime_env field(s) pip " in got["pip"] and f'{ANNOTATION}: "true"' in got["pip"]
    got = lines(lean.exec_script(WORKING_DIR, str(job_dir), timeout=300).stdout)
    assert got["working_dir"].startswith("SETUP-ERROR"), got
    assert "runtime_env field(s) working_dir " in got["working_dir"], got
    lean.down()

    # Asked for: Ray's agent runs and sets the working_dir up.
    def agent_on(doc: dict[str, Any]) -> None:
        doc["metadata"].setdefault("annotations", {})[ANNOTATION] = "true"

    full = runtime("autoscaler", "renvon", idle_timeout=IDLE_S, edit=agent_on)
    full.up()
    got = lines(full.exec_script(WORKING_DIR, str(job_dir), timeout=300).stdout)
    assert got["working_dir"] == "OK hello from working_dir", got
