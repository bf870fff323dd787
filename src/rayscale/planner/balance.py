"""How full to load a new node with one shape, so what is left suits the demand still to come.

Purely computational. Filling a new node with as many copies of a shape as fit can strand a
resource: memory-heavy work fills a high-memory node's CPUs and leaves its memory unused,
because every later shape needs CPU too. For each plain group that may open a node and each
load of 1..k copies, the leftover is filled with the remaining demand's own mix (in proportion,
never more than there is); what stays unused is the waste. The load with the least waste per
copy wins: e.g. one memory-heavy copy on a CPU node whose CPUs the small CPU work then fills,
rather than four on a high-memory node whose memory nobody uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from rayscale.planner.capacity import Shape
from rayscale.planner.groups import GroupTable, GroupTally
from rayscale.planner.shapes import EPS

STRANDED = 0.25
"""Share of a resource left free on a node whose other resource is used up, that counts as
stranded."""
MAX_LOAD = 256
"""Loads tried per group (1..MAX_LOAD copies); beyond it a node is filled full."""


def best_load(
    table: GroupTable,
    shape: Shape,
    count: int,
    rest: npt.NDArray[np.float64],
    candidates: Sequence[tuple[GroupTally, int, bool]],
) -> tuple[int, int] | None:
    """(position in ``candidates``, copies per node) of the least wasteful way to open nodes
    for ``count`` copies of ``shape``, given ``rest``, the demand placed after it; None when
    nothing beats the first candidate's full load. Only plain single-host candidates count.
    Worth calling only when :func:`strands` says the full load strands a resource."""
    cols = (rest > 0) | (shape.vec > 0)
    need = shape.vec[cols]
    demand = rest[cols]
    asked = demand > 0
    scale = table.scale[cols]
    best: tuple[float, int, int] | None = None  # (waste per copy, -load, position)
    for pos, (tally, per_node, fallback) in enumerate(candidates):
        if fallback or tally.hosts != 1 or tally.headroom()[0] <= 0:
            continue
        top = min(per_node, count, MAX_LOAD)
        loads = np.arange(1, top + 1, dtype=np.float64)
        cap = table.caps[table.position[tally.config.name]][cols]
        left = cap[None, :] - loads[:, None] * need[None, :]
        if asked.any():
            fill = (left[:, asked] / demand[asked]).min(axis=1)
            nodes = np.ceil(count / loads)
            fill = np.minimum(np.maximum(fill, 0.0), 1.0 / nodes)
        else:
            fill = np.zeros(len(loads))
        unused = np.maximum(left - fill[:, None] * demand[None, :], 0.0)
        waste = np.round((unused / scale).sum(axis=1) / loads, 9)
        k = int(np.lexsort((-loads, waste))[0])
        score = (float(waste[k]), -int(loads[k]), pos)
        if best is None or score < best:
            best = score
    if best is None:
        return None
    _, neg_load, pos = best
    load = -neg_load
    if pos == 0 and load == min(candidates[0][1], count):
        return None
    return pos, load


def strands(
    table: GroupTable,
    shape: Shape,
    count: int,
    rest: npt.NDArray[np.float64],
    first: tuple[GroupTally, int, bool],
) -> bool:
    """Whether a full load on the default group exhausts a resource the later demand needs
    while more than :data:`STRANDED` of another stays free, even on the group the node would
    shrink to: only then is a lighter load worth considering (else the largest node, shrunk
    at the end, packs best). Plain shapes only: an accelerator used up by GPU work leaves
    CPUs that plain work can still use."""
    tally, per_node, _ = first
    if not shape.plain:
        return False
    row = table.position[tally.config.name]
    own = table.caps[row]
    load = min(per_node, count) * shape.vec
    asked = (rest > 0) & ~table.index.special_mask
    if not bool(((own - load)[asked] < EPS).any()):
        return False
    # The node shrinks at the end to the smallest group no larger that holds the load: is a
    # resource still stranded there?
    fits = (table.caps + EPS >= load).all(axis=1) & (table.caps <= own + EPS).all(axis=1)
    fits &= table.usable & ~(table.specials & ~table.specials[row]).any(axis=1)
    cap = table.caps[int(np.where(fits, table.size_rank, np.iinfo(np.int64).max).argmin())]
    return bool(((cap - load)[asked] > STRANDED * cap[asked]).any())
