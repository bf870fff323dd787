"""lightkube's msgspec decoders crash the process when threads first decode a kind at once;
warm_decoders (called by the API server's Kubernetes backend before serving) prevents it.

Each case runs in a fresh interpreter: 8 threads decode the same Pod list at one barrier.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import json, sys, threading
from lightkube.core import decoders
from lightkube.resources.core_v1 import Pod
from rayscale.builders.operator import operator_head_pod
from rayscale.kube.resources import warm_decoders
from rayscale.spec import parse_cluster
from rayscale.testing.kube_ray import sample_cluster

pod = operator_head_pod(parse_cluster(sample_cluster("autoscaler")), "uid")
pod["metadata"]["name"] = "head"
data = json.dumps({"items": [pod] * 3}).encode()
if sys.argv[1] == "warm":
    warm_decoders([Pod])
barrier = threading.Barrier(8)

def decode():
    barrier.wait()
    decoders.decode_list(data, Pod)

threads = [threading.Thread(target=decode) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def run(mode: str) -> int:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True).returncode


def test_warmed_decoders_survive_concurrent_first_decodes() -> None:
    assert [run("warm") for _ in range(5)] == [0] * 5


def test_unwarmed_concurrent_first_decodes_crash() -> None:
    """The hazard itself (measured 30 of 30 crashed): if lightkube or msgspec fix it, this
    fails, and warm_decoders can go."""
    assert any(code != 0 for code in [run("cold") for _ in range(3)])
