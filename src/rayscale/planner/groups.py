"""Per-group bookkeeping for one planning round: counts, headroom, and which group to launch.

Purely computational.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rayscale.planner.capacity import Shape
from rayscale.planner.model import GroupConfig, NodeView
from rayscale.planner.shapes import EPS, ResourceIndex, is_special

_GIB = float(2**30)


@dataclass(slots=True)
class GroupTally:
    """Replica counts of one group; ``new`` changes as the round launches nodes."""

    config: GroupConfig
    running_nodes: int = 0
    pending_nodes: int = 0
    existing: int = 0  # replicas, running + pending
    new: int = 0  # replicas this plan launches
    new_for_min: int = 0
    limits_hit: set[str] = field(default_factory=set)

    @property
    def hosts(self) -> int:
        return max(1, self.config.num_of_hosts)

    def headroom(self) -> tuple[int, str]:
        """Replicas this group may still launch, and the limit that binds."""
        cfg = self.config
        by_max = cfg.max_replicas - self.existing - self.new
        if cfg.upscaling_mode != "Conservative":
            return max(0, by_max), "max"
        running = self.running_nodes // self.hosts
        pending = math.ceil(self.pending_nodes / self.hosts)
        by_rate = max(1, running) - pending - self.new
        if by_rate < by_max:
            return max(0, by_rate), "conservative"
        return max(0, by_max), "max"

    def limit_text(self, limit: str) -> str:
        cfg = self.config
        if limit == "conservative":
            running = self.running_nodes // self.hosts
            return (
                f"{cfg.name} is Conservative: at most max(1, running={running}) "
                "replicas pending at once"
            )
        return f"{cfg.name} is at maxReplicas={cfg.max_replicas}"


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

    def per_node(self, shape: Shape) -> npt.NDArray[np.float64]:
        """Copies of ``shape`` one node of each group holds."""
        if not self.tallies:
            return np.zeros(0)
        if shape.cols.size == 0:
            return np.full(len(self.tallies), np.inf)
        ratio: npt.NDArray[np.float64] = (self.caps[:, shape.cols] / shape.need).min(axis=1)
        return np.floor(ratio + EPS)

    def suitable(self, shape: Shape) -> list[tuple[GroupTally, int]]:
        """Groups that can hold ``shape`` at all, restricted to the plainest ones.

        A group carrying a GPU/TPU/custom resource the shape does not ask for is only
        suitable when no plainer group can hold the shape, whatever their headroom.
        """
        per_node = self.per_node(shape)
        fit = (per_node >= 1) & self.usable
        if not fit.any():
            return []
        extra = (self.extra_specials & ~shape.specials_wanted).any(axis=1)
        if (fit & ~extra).any():
            fit &= ~extra
        return [(self.tallies[i], int(min(per_node[i], 2**31))) for i in np.flatnonzero(fit)]

    def rank(
        self, shape: Shape, count: int, options: list[tuple[GroupTally, int]]
    ) -> list[tuple[GroupTally, int]]:
        """Order candidate groups by least waste for ``count`` copies of ``shape``."""

        def score(option: tuple[GroupTally, int]) -> tuple[object, ...]:
            tally, per = option
            nodes = math.ceil(count / per)
            nodes = math.ceil(nodes / tally.hosts) * tally.hosts
            cap = self.index.vector(tally.config.resources)
            waste = nodes * cap - count * shape.vec
            special = sum(float(waste[i]) for i, n in enumerate(self.index.names) if is_special(n))
            cpu = float(waste[self.index.column["CPU"]]) if "CPU" in self.index.column else 0.0
            mem = (
                float(waste[self.index.column["memory"]]) / _GIB
                if "memory" in self.index.column
                else 0.0
            )
            room, _ = tally.headroom()
            short = room * tally.hosts * per < count
            return (
                short,
                round(special, 6),
                round(cpu, 6),
                round(mem, 3),
                nodes,
                tally.config.name,
            )

        return sorted(options, key=score)
