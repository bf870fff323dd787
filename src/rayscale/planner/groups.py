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

_GIB = float(2**30)


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
        self.extra_specials = (self.caps > 0) & index.special_mask
        self.index = index
        self.usable = np.array([t.config.max_replicas > 0 for t in self.tallies], dtype=bool)
        self.hosts = np.array([t.hosts for t in self.tallies], dtype=np.float64)
        self.ceilings = np.array([t.ceiling()[0] for t in self.tallies], dtype=np.float64)
        order = sorted(range(len(self.tallies)), key=lambda i: self.tallies[i].config.name)
        self.name_rank = np.empty(len(self.tallies), dtype=np.int64)
        self.name_rank[order] = np.arange(len(self.tallies))
        self._cpu = index.column.get("CPU")
        self._mem = index.column.get("memory")
        self._last_shape: Shape | None = None
        self._last_per_node: npt.NDArray[np.float64] = np.zeros(0)

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

    def ranked(self, shape: Shape, count: int) -> list[tuple[GroupTally, int]]:
        """Groups that can hold ``shape``, least waste first for ``count`` copies.

        Only the plainest groups are candidates: a group carrying a GPU/TPU/custom resource
        the shape does not ask for is suitable only when no plainer group can hold the shape,
        whatever their headroom. Ties: groups that can take everything, then less special,
        CPU and memory waste, then fewer nodes, then the name.
        """
        per_node = self.per_node(shape)
        fit = (per_node >= 1) & self.usable
        if not fit.any():
            return []
        extra = (self.extra_specials & ~shape.specials_wanted).any(axis=1)
        if (fit & ~extra).any():
            fit &= ~extra
        idx = fit.nonzero()[0]
        per = np.minimum(per_node[idx], 2.0**31)
        hosts = self.hosts[idx]
        nodes = np.ceil(np.ceil(count / per) / hosts) * hosts
        waste = nodes[:, None] * self.caps[idx] - count * shape.vec
        special = waste[:, self.index.special_mask].sum(axis=1)
        cpu = waste[:, self._cpu] if self._cpu is not None else np.zeros(idx.size)
        mem = waste[:, self._mem] / _GIB if self._mem is not None else np.zeros(idx.size)
        new = np.fromiter((self.tallies[i].new for i in idx.tolist()), np.float64, idx.size)
        room = np.maximum(0.0, self.ceilings[idx] - new)
        short = room * per * hosts < count
        # np.lexsort sorts by the last key first.
        order = np.lexsort(
            (
                self.name_rank[idx],
                nodes,
                np.round(mem, 3),
                np.round(cpu, 6),
                np.round(special, 6),
                short,
            )
        ).tolist()
        return [(self.tallies[idx[j]], int(per[j])) for j in order]
