"""The RayCluster samples shipped in ``rayscale/samples`` (package data)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLES", "sample_path"]

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

SAMPLES = {
    "autoscaler": "ray-cluster.autoscaler.yaml",
    "autoscaler-min1": "ray-cluster.autoscaler.min1.yaml",
}
"""Short name -> file name. ``autoscaler``: KubeRay's sample of the detached-actor walkthrough
(head 0 CPUs, 0..10 workers, ConfigMap ray-example). ``autoscaler-min1``: the request_resources
walkthrough's cluster (head 1 CPU, min 1 worker)."""


def sample_path(name: str) -> Path:
    """The path of a shipped sample, by short name (``"autoscaler"``) or file name."""
    file_name = SAMPLES.get(name, name)
    path = SAMPLES_DIR / file_name
    if not path.is_file():
        known = ", ".join(sorted(SAMPLES))
        raise FileNotFoundError(f"no sample {name!r}; known samples: {known}")
    return path
