"""Reconcile passes scheduled per object: serialised per key, concurrent across keys.

An event for an object whose pass is running marks it dirty, so exactly one more pass follows
(bursts of events coalesce); a pass that raises is retried after a second. A slow object never
holds up another (KubeRay issue 3909). The operator's RayCluster and RayJob reconcilers share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger("rayscale.kube.operator")

Key = tuple[str, str]  # (namespace, name)


class KeyedPasses:
    """Runs :meth:`reconcile` for a key on :meth:`trigger`; subclasses implement it."""

    kind = "object"

    def __init__(self) -> None:
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._dirty: set[Key] = set()
        self._closed = False
        self.passes = 0

    async def reconcile(self, namespace: str, name: str) -> None:
        raise NotImplementedError

    def trigger(self, namespace: str, name: str) -> None:
        if self._closed:
            return
        key = (namespace, name)
        if key in self._tasks:
            self._dirty.add(key)
            return
        self._tasks[key] = asyncio.ensure_future(self._run(key))

    async def _run(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    await self.reconcile(*key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconciling %s %s/%s failed; retrying", self.kind, *key)
                    await asyncio.sleep(1.0)
                    self._dirty.add(key)
                if key not in self._dirty:
                    return
        finally:
            self._tasks.pop(key, None)

    async def close(self) -> None:
        """Cancel running passes (before the client they use is closed)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no pass is running (for tests and shutdown)."""
        await self.idle_except(())

    async def idle_except(self, keys: Iterable[Key]) -> None:
        """Wait until no pass runs but those of ``keys`` (to show they block nothing)."""
        skip = set(keys)
        while tasks := [t for k, t in self._tasks.items() if k not in skip]:
            await asyncio.gather(*tasks, return_exceptions=True)
