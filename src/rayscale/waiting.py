"""The one way rayscale waits for a condition: poll until truthy, or fail naming what.

``check`` may raise :class:`StopWaiting` to end the wait early (a process died, say); its
message then becomes the error. Everything that polls (CLI, runtime, harness, tests) uses this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """The condition did not hold in time; the message names it and the last detail."""


class StopWaiting(Exception):
    """Raised by a check to give up at once (the thing waited for can no longer happen)."""


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy; return it.

    On timeout raise :class:`WaitTimeoutError` naming ``what`` (plus ``detail()`` if given).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)
