"""The two ways the local backend could run a job's entrypoint on an existing cluster, measured.

- **driver**: what the local backend does: the entrypoint as a driver process (through
  :mod:`rayscale.apiserver.jobrunner`) with the cluster's address and token, in its own process
  group; the head runs without the dashboard.
- **submission**: Ray's job submission: the head runs with ``--include-dashboard=true`` and the
  job goes through ``JobSubmissionClient`` (a JobSupervisor actor spawns the entrypoint).

For each: the head's RSS (its process group, idle), the time from "submit" to "finished", and
the peak growth of RSS while the job runs: the head's process tree (Ray workers, the job
supervisor actor and, for submission, the entrypoint it spawns) plus, for the driver path, the
wrapper and driver. The entrypoint connects, runs one task and
sleeps 2 s (so its processes can be sampled). Run with ``rayscale bench apiserver --jobs``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

from rayscale import processes
from rayscale.local import raynodes
from rayscale.local.raynodes import NodeResources

ENTRYPOINT = (
    "import ray, time; ray.init(); "
    "print(ray.get(ray.remote(lambda: 41 + 1).remote()), flush=True); time.sleep(2)"
)
_SUBMIT = """
import json, sys, time
from ray.job_submission import JobSubmissionClient, JobStatus
client = JobSubmissionClient(sys.argv[1])
t0 = time.monotonic()
job = client.submit_job(entrypoint=sys.argv[2])
while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
    time.sleep(0.05)
print(json.dumps({"seconds": time.monotonic() - t0, "status": str(client.get_job_status(job))}))
"""


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def _sample_peak(proc: subprocess.Popen[Any] | processes.ManagedProcess, extra: Any) -> int:
    """Peak RSS of ``extra()`` (bytes) sampled every 0.1 s until ``proc`` exits."""
    peak = 0
    while (proc.poll() if isinstance(proc, subprocess.Popen) else proc.returncode) is None:
        peak = max(peak, int(extra()))
        time.sleep(0.1)
    return peak


def driver_path(trials: int) -> dict[str, Any]:
    cluster = raynodes.start_head("bench-jobs-drv", NodeResources(num_cpus=1))
    try:
        time.sleep(2)
        head_pid = cluster.head.process.pid
        head_rss = processes.group_rss(cluster.head.process.pgid)
        times, peaks = [], []
        for i in range(trials):
            before = processes.process_tree_rss(head_pid)
            exit_file = cluster.root / f"exit-{i}"
            argv = [sys.executable, "-m", "rayscale.apiserver.jobrunner", str(exit_file),
                    sys.executable, "-c", ENTRYPOINT]  # fmt: skip
            t0 = time.monotonic()
            proc = processes.spawn(argv, log_path=cluster.root / f"job-{i}.log",
                                   env=cluster.client_environ())  # fmt: skip
            peak = _sample_peak(
                proc,
                lambda p=proc: (
                    processes.process_tree_rss(p.pid) + processes.process_tree_rss(head_pid)
                ),
            )
            proc.wait()
            times.append(time.monotonic() - t0)
            peaks.append(peak - before)
            code = json.loads(exit_file.read_text())["code"]
            if code != 0:
                raise RuntimeError(f"driver failed: {proc.log_tail()}")
    finally:
        cluster.stop()
        cluster.remove_dir()
    return {"head_rss_mb": _mb(head_rss), "seconds": times, "job_rss_mb": _mb(max(peaks))}


def submission_path(trials: int) -> dict[str, Any]:
    cluster = raynodes.start_head("bench-jobs-sub", NodeResources(num_cpus=1),
                                  include_dashboard=True)  # fmt: skip
    try:
        port = cluster.head.ports.dashboard
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        import urllib.error
        import urllib.request

        while True:  # the dashboard's HTTP server comes up after GCS
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # it answers (e.g. 401 without the token)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the dashboard did not answer within 60 s") from None
                time.sleep(0.3)
        time.sleep(2)
        head_pid = cluster.head.process.pid
        head_rss = processes.group_rss(cluster.head.process.pgid)
        times, extra = [], []
        env = cluster.client_environ()
        for _ in range(trials):
            before = processes.process_tree_rss(head_pid)
            entrypoint = f"{sys.executable} -c {ENTRYPOINT!r}"
            proc = subprocess.Popen(
                [sys.executable, "-c", _SUBMIT, url, entrypoint],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            peak = _sample_peak(proc, lambda: processes.process_tree_rss(head_pid))
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"job submission failed: {err[-2000:]}")
            result = json.loads(out.strip().splitlines()[-1])
            if "SUCCEEDED" not in result["status"]:
                raise RuntimeError(f"the submitted job ended {result['status']}")
            times.append(result["seconds"])
            extra.append(peak - before)
    finally:
        cluster.stop()
        cluster.remove_dir()
    return {"head_rss_mb": _mb(head_rss), "seconds": times, "job_rss_mb": _mb(max(extra))}


def main(trials: int = 3, json_output: bool = False) -> int:
    results = {}
    for name, run in (("driver", driver_path), ("submission", submission_path)):
        try:
            results[name] = run(trials)
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
        except (RuntimeError, OSError, raynodes.RayNodesError) as exc:
            print(f"error ({name}): {exc}", file=sys.stderr)
            return 1
    if json_output:
        print(json.dumps(results))
        return 0
    print(f"Job on an existing local cluster, {trials} trials each (entrypoint: one task + 2 s):")
    for name, r in results.items():
        secs = r["seconds"]
        print(f"  {name:<11} head RSS {r['head_rss_mb']:7.1f} MB   submit->finished median "
              f"{statistics.median(secs):5.2f} s (min {min(secs):.2f}, max {max(secs):.2f})   "
              f"RSS growth while running {r['job_rss_mb']:6.1f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
