"""Ray's generated protobuf modules (``ray/core/generated/*_pb2.py``), loaded without Ray.

``import ray.core.generated.autoscaler_pb2`` runs ``ray/__init__.py``, which imports most of
Ray (about 40 MB of RSS, 600 modules). The generated modules themselves need only protobuf and
import each other relatively (``from . import common_pb2``), so this package's ``__path__``
is Ray's ``core/generated`` folder: ``rayscale.ray.protos.autoscaler_pb2`` is Ray's own file,
of the installed Ray version, and nothing else of Ray runs. Both names share protobuf's
default descriptor pool, so a process that also imports Ray gets the same message classes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _generated_dir() -> str:
    spec = importlib.util.find_spec("ray")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("Ray is not installed: its generated protobuf modules are needed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "core" / "generated")


__path__ = [_generated_dir()]
