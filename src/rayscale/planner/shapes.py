"""Resource vectors: indexing, fitting, ordering and human-readable formatting.

Purely computational. Resource names are Ray's logical resources; ``CPU``, ``memory`` and
``object_store_memory`` are the commodity ones, anything else (``GPU``, ``TPU``, custom
resources) is *special*: a node carrying a special resource the demand does not ask for is
the wrong place for it when a plainer one fits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
EPS = 1e-9
COMMODITY = frozenset({"CPU", "memory", "object_store_memory"})
_MEMORY_LIKE = frozenset({"memory", "object_store_memory"})


def is_special(resource: str) -> bool:
    return resource not in COMMODITY


def clean(resources: Mapping[str, float]) -> dict[str, float]:
    """Drop zero entries so that equal shapes compare equal."""
    return {k: float(v) for k, v in resources.items() if v}


def shape_key(resources: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(clean(resources).items()))


def fits_count(capacity: Mapping[str, float], shape: Mapping[str, float]) -> int:
    """How many copies of ``shape`` fit in ``capacity`` (0 when it never fits)."""
    best = math.inf
    for name, need in shape.items():
        if need <= 0:
            continue
        best = min(best, math.floor(capacity.get(name, 0.0) / need + EPS))
        if best <= 0:
            return 0
    return 0 if best == math.inf else int(best)


def extra_specials(capacity: Mapping[str, float], shape: Mapping[str, float]) -> int:
    """Special resources ``capacity`` carries that ``shape`` does not ask for."""
    return sum(1 for k, v in capacity.items() if v > 0 and is_special(k) and not shape.get(k))


def add(vectors: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for vec in vectors:
        for k, v in vec.items():
            total[k] = total.get(k, 0.0) + v
    return clean(total)


def sort_key(resources: Mapping[str, float]) -> tuple[object, ...]:
    """Bigger, rarer shapes first (first-fit-decreasing), with a deterministic tie-break."""
    special_kinds = 0
    special_total = 0.0
    for name, value in resources.items():
        if value and name not in COMMODITY:
            special_kinds += 1
            special_total += value
    return (
        -special_kinds,
        -special_total,
        -resources.get("CPU", 0.0),
        -resources.get("memory", 0.0),
        shape_key(resources),
    )


def _fmt_amount(name: str, value: float) -> str:
    if name in _MEMORY_LIKE:
        for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if value >= size:
                return f"{value / size:g}{unit}"
        return f"{value:g}B"
    return f"{value:g}"


def fmt(resources: Mapping[str, float]) -> str:
    """``{CPU: 1, memory: 1Gi}``: the way reasons show a shape."""
    parts = [f"{k}: {_fmt_amount(k, v)}" for k, v in sorted(clean(resources).items())]
    return "{" + ", ".join(parts) + "}"


class ResourceIndex:
    """Maps resource names to matrix columns for one planning round."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(set(names)))
        self.column = {name: i for i, name in enumerate(self.names)}
        self.special_mask = np.array([is_special(n) for n in self.names], dtype=bool)

    @property
    def width(self) -> int:
        return len(self.names)

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> npt.NDArray[np.float64]:
        """One row per resource vector."""
        out = np.zeros((len(rows), self.width), dtype=np.float64)
        column = self.column
        for i, resources in enumerate(rows):
            for name, value in resources.items():
                if value:
                    out[i, column[name]] = value
        return out

    def vector(self, resources: Mapping[str, float]) -> Vector:
        vec = np.zeros(self.width, dtype=np.float64)
        for name, value in resources.items():
            if value:
                vec[self.column[name]] = value
        return vec
