"""Timing the schedulers under the same clean conditions.

Each scheduler runs on each scenario in a fresh process forked from the parent once the
scenario is built (:func:`time_isolated`), so no scheduler runs on a heap another left
behind; inside it, every timed call starts after a full garbage collection with the
survivors frozen (:func:`_clean_heap`), so a collection of someone else's objects is not
timed. Only the scheduler call itself is timed, under a per-call timeout (SIGALRM).
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from rayscale.bench.ray_anchors import AnchorRun
from rayscale.planner.model import PlannerInput
from rayscale.planner.shapes import fmt

Runner = Callable[[], AnchorRun]


def _clean_heap() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class BenchTimeout(BaseException):
    """Raised inside a scheduler call that ran past its timeout (BaseException: Ray code that
    catches Exception cannot swallow it)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; main thread only, else no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout()

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Timed:
    """All runs of one scheduler on one scenario."""

    status: str  # ok | timeout | error | unavailable
    run: AnchorRun | None = None
    times_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None


def time_runs(
    make: Callable[[], Callable[[], AnchorRun]],
    repeats: int,
    timeout_s: float,
    budget_s: float,
) -> Timed:
    """Build the runner once, then call it up to ``repeats`` times under a per-call timeout."""
    try:
        runner = make()
    except ImportError as exc:
        return Timed(status="unavailable", notes=[f"not importable: {exc}"])
    out = Timed(status="ok")
    for i in range(repeats):
        try:
            _clean_heap()
            with deadline(timeout_s):
                run = runner()
        except BenchTimeout:
            out.notes.append(f"run {i + 1} cut short at the {timeout_s:g} s timeout")
            if out.run is None:
                out.status = "timeout"
            break
        except Exception as exc:  # report a crashing scheduler, keep benchmarking the rest
            out.status = "error" if out.run is None else out.status
            out.notes.append(f"run {i + 1} raised {type(exc).__name__}: {exc}")
            break
        if out.run is None:
            out.run = run
        elif run.launch != out.run.launch:
            out.notes.append(f"run {i + 1} launched {run.launch}, run 1 {out.run.launch}")
        out.times_ms.append(run.elapsed_ms)
        if sum(out.times_ms) / 1000 > budget_s and i + 1 < repeats:
            out.notes.append(f"stopped after {i + 1} of {repeats} runs ({budget_s:g} s budget)")
            break
    gc.unfreeze()
    return out


def time_isolated(
    make: Callable[[], Runner], repeats: int, timeout_s: float, budget_s: float
) -> Timed:
    """:func:`time_runs` in a forked child (same input, clean heap); the parent waits up to
    every call's timeout plus a margin, then stops the child by its own pid."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            send.send(time_runs(make, repeats, timeout_s, budget_s))
        except BaseException as exc:  # report, never hang the parent
            send.send(Timed(status="error", notes=[f"{type(exc).__name__}: {exc}"]))
        finally:
            send.close()

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    wait_s = repeats * max(timeout_s, 1.0) + 120.0
    try:
        if recv.poll(wait_s):
            result: Timed = recv.recv()
            return result
        return Timed(status="timeout", notes=[f"no answer within {wait_s:g} s; stopped"])
    except EOFError:
        proc.join(5)
        return Timed(status="error", notes=[f"the timing process died (exit {proc.exitcode})"])
    finally:
        recv.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def rayscale_runner(inp: PlannerInput, plan_check: bool = True) -> Runner:
    """``rayscale.planner.core.plan``; launches reported in hosts (replicas x numOfHosts).
    With ``plan_check``, the first plan also goes through the shared checker's
    :func:`~rayscale.bench.checker.check_plan` (untimed): ``extra["plan_check"]`` is "ok" or
    the violation."""
    from rayscale.bench.checker import PlanViolation, check_plan
    from rayscale.planner.core import plan

    hosts = {g.name: g.num_of_hosts for g in inp.groups}
    verdict: list[str] = []

    def run() -> AnchorRun:
        t0 = time.perf_counter()
        result = plan(inp)
        elapsed = (time.perf_counter() - t0) * 1000
        launch = {
            name: d.launch * hosts.get(name, 1)
            for name, d in sorted(result.groups.items())
            if d.launch > 0
        }
        infeasible = [
            f"{u.kind.value}[{u.index}] {fmt(u.resources)} x{u.count}: {u.reason.text()}"
            for u in result.infeasible
        ]
        notes = [
            f"held back: {u.kind.value}[{u.index}] {fmt(u.resources)} x{u.count}: {u.reason.text()}"
            for u in result.held_back
        ]
        extra: dict[str, object] = {"placements": result.placements}
        if plan_check:
            if not verdict:
                try:
                    check_plan(inp, result)
                    verdict.append("ok")
                except PlanViolation as exc:
                    verdict.append(f"violation: {exc}")
            extra["plan_check"] = verdict[0]
        return AnchorRun(
            launch=launch,
            elapsed_ms=elapsed,
            infeasible=infeasible,
            notes=notes,
            extra=extra,
        )

    return run
