"""`rayscale exec` / `status` / `down` against recorded clusters, through the real CLI.

No Ray runs here: a cluster record is written to a temporary RAYSCALE_HOME, and ``exec`` runs
a plain Python command with the cluster's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rayscale.local import registry

pytestmark = pytest.mark.unit

RAYSCALE = str(Path(sys.executable).with_name("rayscale"))


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAYSCALE_HOME": str(home)}
    return subprocess.run([RAYSCALE, *args], env=env, capture_output=True, text=True, timeout=60)


def record(home: Path, name: str = "c1") -> None:
    os.environ["RAYSCALE_HOME"] = str(home)
    try:
        rec = registry.ClusterRecord(name, "spec.yaml", os.getpid(), 0.0, status="ready",
                                     address="127.0.0.1:1", token_path=str(home / "token"))  # fmt: skip
        registry.write(rec)
    finally:
        del os.environ["RAYSCALE_HOME"]


def test_exec_keeps_a_later_double_dash_and_sets_the_cluster_env(tmp_path: Path) -> None:
    record(tmp_path)
    code = "import os, sys; print(sys.argv[1:], os.environ['RAY_ADDRESS'])"
    result = cli(tmp_path, "exec", "c1", "--", "python", "-c", code, "a", "--", "b")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['a', '--', 'b'] 127.0.0.1:1"


def test_corrupt_state_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    record(tmp_path)
    (tmp_path / "clusters" / "c1" / "state.json").write_text("{oops")
    for args in (("status", "c1"), ("exec", "c1", "--", "true")):
        result = cli(tmp_path, *args)
        assert result.returncode == 2, result
        assert "unreadable" in result.stderr and "rayscale down c1" in result.stderr
        assert "Traceback" not in result.stderr


def test_down_of_a_corrupt_record_cleans_up_and_forgets_it(tmp_path: Path) -> None:
    record(tmp_path)
    (tmp_path / "clusters" / "c1" / "state.json").write_text("{oops")
    result = cli(tmp_path, "down", "c1")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "clusters" / "c1" / "state.json").exists()
