"""Give each new node the smallest suitable group that still holds what was packed on it.

Purely computational. The round opens each new node as the group that holds the most of the
demand that needed it, so that later demand packs onto it (few nodes). Once everything is
placed, each such node moves to the smallest group that holds its contents (little waste):
Karpenter's "launch the cheapest type that still fits what was packed".

A node moves only to a group no larger in any resource (so the move never adds memory to
save CPUs: a half-empty CPU node does not become a high-memory node with fewer CPUs), of one
host, with room left (maxReplicas, Conservative), and carrying no special resource (GPU, TPU,
custom) the node's first group did not carry, so plain work never lands on an accelerator it
did not already sit on. Nodes launched for minReplicas and multi-host replicas keep their
group. Rows are visited in launch order: deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rayscale.planner.capacity import Ledger
from rayscale.planner.groups import GroupTable
from rayscale.planner.shapes import EPS


def shrink(table: GroupTable, ledger: Ledger, rows: Sequence[int], groups: list[int]) -> None:
    """Move each of ``rows`` (new nodes of the single-host groups ``groups[k]``, indices into
    ``table.tallies``) to its smallest suitable group; updates ``groups``, the ledger's group
    names, free/room vectors and the tallies' launch counts."""
    if not rows:
        return
    tallies = table.tallies
    idx = np.asarray(rows, dtype=np.intp)
    src = np.asarray(groups, dtype=np.intp)
    caps = table.caps
    # What each node holds: its capacity minus what is left, for tasks and for request_resources.
    used = np.maximum(caps[src] - ledger.free[idx], caps[src] - ledger.room[idx])
    holds = (caps[None, :, :] + EPS >= used[:, None, :]).all(axis=2)
    unasked = table.specials[None, :, :] & ~table.specials[src][:, None, :]
    no_larger = (caps[None, :, :] <= caps[src][:, None, :] + EPS).all(axis=2)
    suitable = holds & no_larger & ~unasked.any(axis=2) & (table.usable & table.single)[None, :]
    ranks = np.where(suitable, table.size_rank[None, :], np.iinfo(np.int64).max)
    order = np.argsort(ranks, axis=1, kind="stable")
    for k in range(len(rows)):
        g = int(src[k])
        for cand in order[k].tolist():
            if cand == g or ranks[k, cand] >= table.size_rank[g]:
                break
            tally = tallies[cand]
            if tally.headroom()[0] <= 0:
                continue
            tallies[g].new -= 1
            tally.new += 1
            row = rows[k]
            ledger.free[row] += caps[cand] - caps[g]
            ledger.room[row] += caps[cand] - caps[g]
            ledger.groups[row] = tally.config.name
            groups[k] = cand
            break
