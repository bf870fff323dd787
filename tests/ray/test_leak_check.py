"""The Ray harness fails a test that leaks a Ray process (and the leak is real).

An inner pytest run (``pytester``, in a subprocess, with this directory's conftest) has two tests
that each leave a real Ray worker running:
- ``test_escapes_bookkeeping`` starts a worker through the harness, then drops it from the
  cluster's bookkeeping, so teardown does not stop it; found by the cluster-directory marker.
- ``test_escapes_harness`` starts ``ray start --block`` itself, with its own temp dir and the
  token passed by value, so nothing mentions the cluster directory; found by the autouse check
  for Ray processes among the test process's descendants.
Both must error with the leak message, and each leaked node (its process group) must be among
the reported processes. The outer test then kills what is left by pid (the inner run keeps
them: ``RAYSCALE_KEEP_LEAKS=1``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rayscale import processes

pytestmark = pytest.mark.ray
pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

INNER_TESTS = """
import json
import os
import tempfile
from pathlib import Path

from rayscale import processes
from rayscale.local import raynodes
from rayscale.local.raynodes import NodeResources

INFO = Path(os.environ["LEAK_INFO_DIR"])


def record(name, **info):
    (INFO / f"{name}.json").write_text(json.dumps(info))


def test_escapes_bookkeeping(ray_cluster):
    cluster = ray_cluster(workers=[("leaky-worker", "cpu", NodeResources(num_cpus=1))])
    escaped = cluster.workers.pop("leaky-worker")  # a bookkeeping bug: teardown forgets it
    record("bookkeeping", pid=escaped.pid, markers=[cluster.marker])


def test_escapes_harness(ray_cluster):
    cluster = ray_cluster()
    own_dir = tempfile.mkdtemp(prefix="rs-leak-", dir="/tmp")
    env = {k: v for k, v in cluster.client_environ().items() if k != "RAY_AUTH_TOKEN_PATH"}
    env["RAY_AUTH_TOKEN"] = cluster.token_path.read_text()  # nothing mentions cluster.root
    env["RAY_CLOUD_INSTANCE_ID"] = "escaped-worker"
    ports = raynodes.NodePorts.allocate(head=False)
    argv = [cluster.ray_executable, "start", "--block", f"--address={cluster.gcs_address}",
            f"--temp-dir={own_dir}/ray", "--num-cpus=1", "--object-store-memory=83886080",
            "--include-log-monitor=false", "--disable-usage-stats", *ports.to_args()]
    proc = processes.spawn(argv, log_path=Path(own_dir) / "worker.log", env=env)
    record("harness", pid=proc.pid, markers=[own_dir])
    node = raynodes.RayNode("escaped-worker", "cpu", False, proc, ports, NodeResources())
    cluster.wait_joined(node)
"""


def test_leaking_tests_fail_and_leaks_are_real(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    info_dir = tmp_path / "info"
    info_dir.mkdir()
    monkeypatch.setenv("LEAK_INFO_DIR", str(info_dir))
    monkeypatch.setenv("RAYSCALE_KEEP_LEAKS", "1")  # the inner harness reports but keeps them
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_inner=INNER_TESTS)

    infos: dict[str, dict[str, object]] = {}
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=480)
        infos = {p.stem: json.loads(p.read_text()) for p in info_dir.glob("*.json")}
        output = result.stdout.str()
        assert result.ret != 0, output
        result.assert_outcomes(passed=2, errors=2)
        assert set(infos) == {"bookkeeping", "harness"}, output
        for name, marker in [
            ("test_escapes_bookkeeping", "RAY PROCESS LEAK"),
            ("test_escapes_harness", "(outside the harness)"),
        ]:
            block = output[output.index(f"ERROR at teardown of {name}") :]
            assert marker in block[:4000], output
        # A node is a process group led by its `ray start` launcher (later its keeper). The
        # leak is reported if live members of the leaked node's group are: after the head
        # stops, the escaped node's keeper may already be winding its own group down.
        reported = {
            (int(pid), int(pgid)) for pid, pgid in re.findall(r"pid=(\d+) pgid=(\d+)", output)
        }
        for info in infos.values():
            pid = info["pid"]
            assert isinstance(pid, int)
            # Reported means found alive (only live processes are reported). A node whose
            # head is gone winds its own group down within about 30 s, so it may be gone now.
            members = [p for p, g in reported if pid in (p, g)]
            assert members, f"leaked node (group {pid}) not reported:\n{output}"
    finally:
        _clean_up_by_pid(infos)


def _clean_up_by_pid(infos: dict[str, dict[str, object]]) -> None:
    """Kill each leaked ``ray start`` group by its pid, then anything still marked."""
    markers: list[str] = []
    for info in infos.values():
        pid = info["pid"]
        assert isinstance(pid, int)
        markers.extend(str(m) for m in info["markers"])  # type: ignore[attr-defined]
        group = processes.find_leftovers(pgids=[pid])
        survivors = processes.kill_processes(group)
        assert not survivors, survivors
    rest = processes.find_leftovers(markers=markers)
    processes.kill_processes(rest)
    assert not processes.find_leftovers(markers=markers)
    for marker in markers:
        shutil.rmtree(marker, ignore_errors=True)
