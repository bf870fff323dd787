"""Where the control plane's executables come from: the environment, or a clear error.

``eval "$(scripts/setup-k8s.sh)"`` (run by ``./dev.sh test``) builds etcd, kube-apiserver,
kube-controller-manager and kubectl once, caches them, and exports the variables read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APISERVER_ENV = "RAYSCALE_KUBE_APISERVER"
ETCD_ENV = "RAYSCALE_ETCD"
SETUP_HINT = (
    'run `./dev.sh test`, or `eval "$(scripts/setup-k8s.sh)"` in this shell, to build '
    "etcd, kube-apiserver, kube-controller-manager and kubectl (cached under $RAYSCALE_CACHE) "
    "and export these variables"
)


class KubeBinariesMissing(RuntimeError):
    """etcd or kube-apiserver is not configured or not executable."""


@dataclass(frozen=True)
class KubeBinaries:
    """Paths of the two executables the control plane needs."""

    apiserver: Path
    etcd: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KubeBinaries:
        """Read the binaries from the environment; raise KubeBinariesMissing with the fix."""
        env = os.environ if environ is None else environ
        checks = (binary_problem(env, APISERVER_ENV), binary_problem(env, ETCD_ENV))
        problems = [p for p in checks if p]
        if problems:
            raise KubeBinariesMissing("; ".join(problems) + ". Fix: " + SETUP_HINT)
        return cls(apiserver=Path(env[APISERVER_ENV]), etcd=Path(env[ETCD_ENV]))


def executable_from_env(var: str, environ: Mapping[str, str] | None = None) -> Path:
    """The executable ``$var`` names (kube-controller-manager, kubectl...), or
    :class:`KubeBinariesMissing` with the fix."""
    env = os.environ if environ is None else environ
    problem = binary_problem(env, var)
    if problem:
        raise KubeBinariesMissing(f"{problem}. Fix: {SETUP_HINT}")
    return Path(env[var])


def binary_problem(env: Mapping[str, str], var: str) -> str | None:
    """What is wrong with ``$var`` as the path of an executable; None if nothing."""
    value = env.get(var, "")
    if not value:
        return f"{var} is not set"
    if not (os.path.isfile(value) and os.access(value, os.X_OK)):
        return f"{var}={value} is not an executable file"
    return None
