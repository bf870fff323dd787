"""A stand-in for Ray's dashboard agent on nodes of a cluster that runs no dashboard.

``python -S -I agentstub.py --node-id=ID --session-dir=DIR ...`` (the raylet starts it with
the arguments it gives the real agent; unknown ones are ignored). Stdlib only, about 8 MB RSS
instead of the real agent's 120 MB and ~1 s of CPU per node boot.

The raylet requires a dashboard agent process (it fate-shares with it) and waits for the
ports the agent publishes in ``<session dir>/<name>_<node id>``. Ray's own *minimal* agent
(Ray installed without ``[default]``) publishes ``-1`` for the metrics agent and metrics
export ports and for its HTTP port when it runs no HTTP server; this stub publishes ``-1``
for all three, exactly that contract, then waits until its parent (the raylet) goes.

What a node loses (all of it served by the real agent, none of it used by rayscale or by a
cluster without a dashboard): the node's Prometheus metrics and the metrics of its Ray
workers, the dashboard's per-node stats and log viewer, ``ray logs`` for this node, and the
agent's HTTP health endpoint (KubeRay's readiness probe; the local runtime reads GCS).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PORT_NAMES = ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port")


def _arg(argv: Sequence[str], name: str) -> str:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise SystemExit(f"agentstub: missing --{name}=...")


def publish_unused_ports(session_dir: Path, node_id: str) -> None:
    """Write -1 ("service not in use") to each port file, atomically, as Ray's agent does."""
    for name in PORT_NAMES:
        path = session_dir / f"{name}_{node_id}"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("-1")
        os.replace(tmp, path)


def main(argv: Sequence[str]) -> int:
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    publish_unused_ports(Path(_arg(argv, "session-dir")), _arg(argv, "node-id"))
    while os.getppid() == parent:
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
