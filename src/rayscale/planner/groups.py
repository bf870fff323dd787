"""Per-group bookkeeping for one planning round: counts, headroom, and which group to launch.

Purely computational.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rayscale.planner.capacity import Shape
from rayscale.planner.model import GroupConfig, NodeView
from rayscale.planner.reasons import Reason, ReasonCode
from rayscale.planner.shapes import EPS, ResourceIndex


@dataclass(slots=True)
class GroupTally:
    """Replica counts of one group; ``new`` changes as the round launches nodes."""

    config: GroupConfig
    running_nodes: int = 0
    pending_nodes: int = 0
    existing: int = 0  # replicas, running + pending
    new: int = 0  # replicas this plan launches

    @property
    def hosts(self) -> int:
        return max(1, self.config.num_of_hosts)

    def ceiling(self) -> tuple[int, str]:
        """The most replicas this round may add (before any launch), and the binding limit:
        maxReplicas, or Conservative's pending replicas <= max(1, running replicas)."""
        cfg = self.config
        by_max = cfg.max_replicas - self.existing
        if cfg.upscaling_mode != "Conservative":
            return by_max, "max"
        running = self.running_nodes // self.hosts
        pending = math.ceil(self.pending_nodes / self.hosts)
        by_rate = max(1, running) - pending
        return (by_rate, "conservative") if by_rate < by_max else (by_max, "max")

    def headroom(self) -> tuple[int, str]:
        """Replicas this group may still launch, and the limit that binds."""
        ceiling, limit = self.ceiling()
        return max(0, ceiling - self.new), limit

    def limit_reason(self, limit: str) -> Reason:
        """The limit that holds demand back: maxReplicas, or Conservative's rate."""
        cfg = self.config
        if limit == "conservative":
            running = self.running_nodes // self.hosts
            return Reason(ReasonCode.CONSERVATIVE_LIMIT, {"group": cfg.name, "running": running})
        return Reason(ReasonCode.AT_MAX, {"group": cfg.name, "max": cfg.max_replicas})


def count_replicas(nodes: Sequence[NodeView], hosts: int) -> int:
    """Replicas formed by ``nodes``: by replica id, else ``hosts`` nodes per replica."""
    ids = {n.replica for n in nodes if n.replica is not None}
    loose = sum(1 for n in nodes if n.replica is None)
    return len(ids) + math.ceil(loose / max(1, hosts))


class GroupTable:
    """All groups as a matrix, to fit a shape against every group in one step."""

    def __init__(self, index: ResourceIndex, tallies: Sequence[GroupTally]) -> None:
        self.tallies = list(tallies)
        self.caps = np.array(
            [index.vector(t.config.resources) for t in self.tallies], dtype=np.float64
        ).reshape(len(self.tallies), index.width)
        self.specials = (self.caps > 0) & index.special_mask
        self.index = index
        self.position = {t.config.name: i for i, t in enumerate(self.tallies)}
        self.usable = np.array([t.config.max_replicas > 0 for t in self.tallies], dtype=bool)
        self.single = np.array([t.hosts == 1 for t in self.tallies], dtype=bool)
        scale = self.caps.max(axis=0) if self.tallies else np.ones(index.width)
        self.scale = np.where(scale > 0, scale, 1.0)
        self.size_rank = self._size_rank()
        self._last_shape: Shape | None = None
        self._last_per_node: npt.NDArray[np.float64] = np.zeros(0)

    def _size_rank(self) -> npt.NDArray[np.int64]:
        """Groups from the smallest: fewer special resources, then fewer CPUs, less memory,
        less of everything (scaled), then the name. For one node's contents, the waste of a
        group is its capacity minus the contents, so the smallest group that holds them
        wastes the least."""
        index = self.index
        cpu, mem = index.column.get("CPU"), index.column.get("memory")
        keys = []
        for i, t in enumerate(self.tallies):
            cap = self.caps[i]
            keys.append(
                (
                    float(cap[index.special_mask].sum()),
                    float(cap[cpu]) if cpu is not None else 0.0,
                    float(cap[mem]) if mem is not None else 0.0,
                    float((cap / self.scale).sum()),
                    t.config.name,
                )
            )
        order = sorted(range(len(keys)), key=keys.__getitem__)
        rank = np.empty(len(keys), dtype=np.int64)
        rank[order] = np.arange(len(keys))
        return rank

    def per_node(self, shape: Shape) -> npt.NDArray[np.float64]:
        """Copies of ``shape`` one node of each group holds (cached for the last shape)."""
        if shape is self._last_shape:
            return self._last_per_node
        if not self.tallies:
            result: npt.NDArray[np.float64] = np.zeros(0)
        elif shape.cols.size == 0:
            result = np.full(len(self.tallies), np.inf)
        else:
            ratio: npt.NDArray[np.float64] = (self.caps[:, shape.cols] / shape.need).min(axis=1)
            result = np.floor(ratio + EPS)
        self._last_shape, self._last_per_node = shape, result
        return result

    def openable(self, shape: Shape, count: float = math.inf) -> list[tuple[GroupTally, int, bool]]:
        """Groups a new node for ``shape`` may come from, in the order to try them, each with
        the copies one node holds and whether it is a fallback. Copies beyond ``count`` (what
        is left to place) do not count: among groups that hold it all, the largest comes first.

        Plain groups (no GPU/TPU/custom resource the shape does not ask for) come first, the
        one that holds the most copies first: a new node is opened as large as possible so
        that later demand packs onto it, and is shrunk to the smallest group that still holds
        what it got once the round is placed (:mod:`rayscale.planner.shrink`). Groups with an
        unasked special resource follow only when a plain group can hold the shape: they are
        the fallback once every plain group is at its limit.
        """
        per_node = self.per_node(shape)
        fit = (per_node >= 1) & self.usable
        if not fit.any():
            return []
        extra = (self.specials & ~shape.specials_wanted).any(axis=1)
        plain = fit & ~extra
        out = [(self.tallies[i], p, False) for i, p in self._largest(plain, per_node, count)]
        if out:
            out += [
                (self.tallies[i], p, True) for i, p in self._largest(fit & extra, per_node, count)
            ]
        else:
            out = [(self.tallies[i], p, False) for i, p in self._largest(fit, per_node, count)]
        return out

    def _largest(
        self, mask: npt.NDArray[np.bool_], per_node: npt.NDArray[np.float64], count: float
    ) -> list[tuple[int, int]]:
        idx = mask.nonzero()[0]
        if idx.size == 0:
            return []
        per = np.minimum(per_node[idx], 2.0**31)
        order = np.lexsort((-self.size_rank[idx], -np.minimum(per, count))).tolist()
        return [(int(idx[j]), int(per[j])) for j in order]
