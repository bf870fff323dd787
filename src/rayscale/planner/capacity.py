"""The capacity ledger: every node (existing or about to launch) as a row of two matrices.

Purely computational. ``free`` holds what task and placement-group demand may still use
(running nodes' available resources, pending and new nodes' full capacity); ``room`` holds
what request_resources may still claim of each node's *total* capacity. Rows are ordered by
preference (busy running nodes, idle running nodes from the most recently idle, pending nodes,
then nodes this plan launches), so first-fit keeps the longest-idle nodes free to be removed.
Every change is journalled so that an all-or-nothing gang can be rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rayscale.planner.shapes import EPS, ResourceIndex, Vector

RUNNING, PENDING, NEW = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Checkpoint:
    rows: int
    journal: int


@dataclass(frozen=True, slots=True)
class Shape:
    """A demand shape prepared for fast fitting."""

    vec: Vector
    cols: npt.NDArray[np.intp]
    need: Vector
    plain: bool  # asks for no special resource
    specials_wanted: npt.NDArray[np.bool_]
    col_list: list[int]
    need_list: list[float]


def prepare(index: ResourceIndex, resources: Mapping[str, float]) -> Shape:
    return prepare_vector(index, index.vector(resources))


def prepare_vector(index: ResourceIndex, vec: Vector) -> Shape:
    cols = vec.nonzero()[0]
    wanted = (vec > 0) & index.special_mask
    need = vec[cols]
    plain = not wanted.any()
    return Shape(vec, cols, need, plain, wanted, cols.tolist(), need.tolist())


class Ledger:
    def __init__(self, index: ResourceIndex, expected_rows: int) -> None:
        self.index = index
        size = max(16, expected_rows)
        # Column-major: fitting reads a few resource columns over all rows.
        self.free = np.zeros((size, index.width), dtype=np.float64, order="F")
        self.room = np.zeros((size, index.width), dtype=np.float64, order="F")
        self.specials = np.zeros((size, index.width), dtype=bool)
        self.has_special = np.zeros(size, dtype=bool)
        self.uses = np.zeros(size, dtype=np.int64)
        self.room_uses = np.zeros(size, dtype=np.int64)
        self.n = 0
        self.names: list[str] = []
        self.groups: list[str] = []
        self.kinds: list[int] = []
        self._journal: list[tuple[int | npt.NDArray[np.intp], Vector, bool]] = []

    # -- rows ---------------------------------------------------------------------------------
    def add_row(self, name: str, group: str, kind: int, free: Vector, total: Vector) -> int:
        if self.n == self.free.shape[0]:
            self._grow()
        row = self.n
        self.free[row] = free
        self.room[row] = total
        self.specials[row] = (total > 0) & self.index.special_mask
        self.has_special[row] = bool(self.specials[row].any())
        self.uses[row] = 0
        self.room_uses[row] = 0
        self.names.append(name)
        self.groups.append(group)
        self.kinds.append(kind)
        self.n += 1
        return row

    def add_block(
        self,
        names: Sequence[str],
        groups: Sequence[str],
        kinds: Sequence[int],
        free: npt.NDArray[np.float64],
        total: npt.NDArray[np.float64],
    ) -> None:
        """Rows for many existing nodes at once (``free``/``total``: one row per node)."""
        count = len(names)
        while self.n + count > self.free.shape[0]:
            self._grow()
        block = slice(self.n, self.n + count)
        self.free[block] = free
        self.room[block] = total
        specials = (total > 0) & self.index.special_mask
        self.specials[block] = specials
        self.has_special[block] = specials.any(axis=1)
        self.uses[block] = 0
        self.room_uses[block] = 0
        self.names.extend(names)
        self.groups.extend(groups)
        self.kinds.extend(kinds)
        self.n += count

    def add_rows(self, count: int, group: str, kind: int, total: Vector) -> range:
        """``count`` identical empty rows (new nodes of one group), named later."""
        while self.n + count > self.free.shape[0]:
            self._grow()
        rows = range(self.n, self.n + count)
        block = slice(self.n, self.n + count)
        self.free[block] = total
        self.room[block] = total
        specials = (total > 0) & self.index.special_mask
        self.specials[block] = specials
        self.has_special[block] = bool(specials.any())
        self.uses[block] = 0
        self.room_uses[block] = 0
        self.names.extend([""] * count)
        self.groups.extend([group] * count)
        self.kinds.extend([kind] * count)
        self.n += count
        return rows

    def _grow(self) -> None:
        size = self.free.shape[0] * 2
        for attr in ("free", "room", "specials"):
            old = getattr(self, attr)
            new = np.zeros((size, old.shape[1]), dtype=old.dtype, order="F")
            new[: old.shape[0]] = old
            setattr(self, attr, new)
        for attr in ("uses", "room_uses", "has_special"):
            old_counts = getattr(self, attr)
            counts = np.zeros(size, dtype=old_counts.dtype)
            counts[: old_counts.shape[0]] = old_counts
            setattr(self, attr, counts)

    # -- fitting ------------------------------------------------------------------------------
    def fit_rows(
        self, shape: Shape, limit: int, on_room: bool = False, exclude: set[int] | None = None
    ) -> list[tuple[int, int]]:
        """Up to ``limit`` (row, copies that fit) pairs, in preference order: rows carrying
        special resources the shape does not ask for go last; ``exclude`` is skipped."""
        matrix = (self.room if on_room else self.free)[: self.n]
        cols = shape.col_list
        need = shape.need_list
        if not cols:
            return []
        ratio: npt.NDArray[np.float64] = matrix[:, cols[0]] / need[0]
        for col, amount in zip(cols[1:], need[1:], strict=True):
            np.minimum(ratio, matrix[:, col] / amount, out=ratio)
        ratio += EPS
        if limit == 1 and not exclude:
            return self._first_fit(ratio, shape)
        copies = np.floor(ratio, out=ratio)
        pos = (copies >= 1).nonzero()[0]
        if pos.size == 0:
            return []
        rows = pos
        extra: npt.NDArray[np.bool_]
        if shape.plain:
            extra = self.has_special[rows]
        else:
            extra = np.asarray((self.specials[rows] & ~shape.specials_wanted).any(axis=1))
        if extra.any():
            order = np.concatenate(((~extra).nonzero()[0], extra.nonzero()[0]))
            rows, pos = rows[order], pos[order]
        window = limit + len(exclude or ())
        pairs = zip(rows[:window].tolist(), copies[pos[:window]].tolist(), strict=True)
        return [(r, int(k)) for r, k in pairs if not exclude or r not in exclude][:limit]

    def _first_fit(self, ratio: npt.NDArray[np.float64], shape: Shape) -> list[tuple[int, int]]:
        """:meth:`fit_rows` for one copy: the first row that holds it, plainer rows first."""
        ok = ratio >= 1.0
        if shape.plain:
            first = ok & ~self.has_special[: ok.size]
        else:
            unasked = (self.specials[: ok.size] & ~shape.specials_wanted).any(axis=1)
            first = ok & ~unasked
        for mask in (first, ok):
            row = int(mask.argmax())
            if mask[row]:
                return [(row, int(ratio[row]))]
        return []

    def take(self, row: int, shape: Shape, count: int, on_room: bool = False) -> None:
        delta = shape.vec * count
        if on_room:
            self.room[row] -= delta
            self.room_uses[row] += 1
        else:
            self.free[row] -= delta
            self.uses[row] += 1
        self._journal.append((row, delta, on_room))

    def take_many(
        self, rows: Sequence[int], shape: Shape, counts: Sequence[int], on_room: bool = False
    ) -> None:
        """:meth:`take` on many rows at once (one journal entry)."""
        index = np.asarray(rows, dtype=np.intp)
        delta = np.outer(np.asarray(counts, dtype=np.float64), shape.vec)
        if on_room:
            self.room[index] -= delta
            self.room_uses[index] += 1
        else:
            self.free[index] -= delta
            self.uses[index] += 1
        self._journal.append((index, delta, on_room))

    # -- all-or-nothing -----------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.n, len(self._journal))

    def rollback(self, mark: Checkpoint) -> None:
        while len(self._journal) > mark.journal:
            row, delta, on_room = self._journal.pop()
            if on_room:
                self.room[row] += delta
                self.room_uses[row] -= 1
            else:
                self.free[row] += delta
                self.uses[row] -= 1
        del self.names[mark.rows :]
        del self.groups[mark.rows :]
        del self.kinds[mark.rows :]
        self.n = mark.rows
