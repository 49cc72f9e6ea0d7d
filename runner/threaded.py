"""A strategy host that calls its strategy on a worker thread of its own.

Every call into the strategy happens on that thread; the loop talks to it through an inbox
and collects what it produced. Two disciplines, chosen by the run's mode:

- **lockstep** (data-driven): the loop hands a step to every host, then waits for each and
  takes the results in configuration order, so a threaded run records exactly what an inline
  run records while the strategies' `on_tick` calls overlap.
- **free-running** (clock-driven): nothing waits. A host still busy when new data arrives
  keeps only the newest data in a one-slot mailbox; each notification it never saw counts as
  an overrun. Fills and rejections queue (bounded) and are delivered in order. The loop picks
  up finished results at the start of each step.

A call that does not return within `timeout` seconds marks the strategy stuck (disabled, with
a Timeout fault recorded at the step of that call): in lockstep when the loop has waited that
long, when free-running at the first step after. The loop and the other strategies go on,
stopping still completes, and what the call returns or asks for should it ever end is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from runner.domain import MarketData
from runner.events import StrategyFault
from runner.host import HostState, StrategyHost

log = logging.getLogger(__name__)
MAX_PENDING_NOTICES = 1_000  # fills and rejections waiting for a busy strategy, at most


class ThreadedHost(StrategyHost):
    """Runs one strategy on its own thread; see the module docstring.

    Args:
        lockstep: wait for each call (data-driven) rather than never waiting (clock-driven).
        timeout: seconds a call may take before the strategy is marked stuck.
        (the rest as `StrategyHost`)
    """

    def __init__(self, *args, lockstep: bool = True, timeout: float = 30.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lockstep = lockstep
        self.timeout = timeout
        self._held_faults: deque[StrategyFault] = deque()  # reported by the loop thread, in order
        self._report_fault, self._on_fault = self._on_fault, self._held_faults.append
        self._wake = threading.Condition()
        self._jobs: deque[tuple[Callable[[], None], str, int, datetime | None]] = deque()  # (call, hook, step, time)
        self._latest: tuple[list[MarketData], int] | None = None  # the newest data not yet taken
        self._busy = False
        self._running: tuple[str, int, datetime | None] = ("", 0, None)  # the hook in progress, its step and time
        self._began = 0.0  # when the call in progress began (time.monotonic)
        self._closing = False
        self._stuck = False
        self._done: deque[list[Any]] = deque()  # results of finished on_tick calls
        self._thread = threading.Thread(target=self._work, name=f"strategy-{self.name}", daemon=True)

    @property
    def queue_depth(self) -> int:
        """Notifications waiting for the strategy: queued notices plus pending market data."""
        pending = self._latest
        return len(self._jobs) + (len(pending[0]) if pending is not None else 0)

    # -- market data -------------------------------------------------------------------------

    def begin_tick(self, market: MarketData, step: int) -> None:
        """Lockstep: hand a step to the strategy (take it with `tick_result`)."""
        self.offer([market], step)

    def offer(self, views: list[MarketData], step: int) -> None:
        """Hand a step's data to the strategy (a view per interval it subscribes to that closed
        a candle); data it had not taken yet is replaced, each view of it counted as an overrun."""
        with self._wake:
            if self._latest is not None:
                self.stats.overruns += len(self._latest[0])
            self._latest = (views, step)
            self._wake.notify()

    def tick_result(self) -> list[Any]:
        """Lockstep: wait for the step handed over and return its signals."""
        if not self._wait_idle():
            return []
        self._report_faults()
        return self._done.popleft() if self._done else []

    def settle(self) -> None:
        """Wait until the strategy has taken everything handed to it (or is marked stuck)."""
        self._wait_idle()

    def collect(self) -> list[list[Any]]:
        """Free-running: the signals of every call finished since the last collect. A call in
        progress for longer than the timeout marks the strategy stuck now, not at the end."""
        with self._wake:
            overdue = self._busy and not self._stuck and time.monotonic() - self._began > self.timeout
        if overdue:
            self._mark_stuck()
        self._report_faults()
        finished = []
        while self._done:
            finished.append(self._done.popleft())
        return finished

    def on_tick(self, market: MarketData, step: int) -> list[Any]:
        self.begin_tick(market, step)
        return self.tick_result()

    # -- other hooks: waited for in lockstep, queued when free-running ------------------------

    def start(self, timestamp: datetime | None) -> None:
        """Start the worker thread (not before: a runner built but never run holds none), then
        call the strategy's `on_start` on it."""
        self._thread.start()
        self._call(super().start, timestamp, hook="on_start", step=0, timestamp=timestamp)

    def run_in_lockstep(self) -> None:
        """Wait for what it is doing, then wait for every later call (as when the run stops)."""
        self.settle()
        self.lockstep = True

    def warm_up(self, history: dict, step: int, timestamp: datetime | None) -> None:
        self.warming = False
        if self.lockstep:
            self._call(super().warm_up, history, step, timestamp, hook="warmup", step=step, timestamp=timestamp)
        else:
            self._post(
                lambda: StrategyHost.warm_up(self, history, step, timestamp), "warmup", step, timestamp, bounded=False,
            )

    def on_bar(self, bar, step: int) -> list[Any]:
        if self._on_bar is None or not self.active:
            return []  # no round trip to its thread for a hook it does not have
        return self._call(super().on_bar, bar, step, hook="on_bar", step=step, timestamp=bar.timestamp) or []

    def notify(self, hook: str, value: Any, step: int, timestamp: datetime | None) -> bool:
        if getattr(self.strategy, hook, None) is None or not self.active:
            return False  # nothing to deliver: no round trip, no queue entry, no overrun
        if self.lockstep:
            called = self._call(super().notify, hook, value, step, timestamp, hook=hook, step=step, timestamp=timestamp)
            return bool(called)
        self._post(lambda: StrategyHost.notify(self, hook, value, step, timestamp), hook, step, timestamp, bounded=True)
        return False  # what it asks for is served when its results are collected

    def stop(self, step: int, timestamp: datetime | None) -> list[Any]:
        return self._call(super().stop, step, timestamp, hook="on_stop", step=step, timestamp=timestamp) or []

    def shut_down(self, step: int, timestamp: datetime | None) -> None:
        self._call(super().shut_down, step, timestamp, hook="shutdown", step=step, timestamp=timestamp)
        with self._wake:
            self._closing = True
            self._wake.notify()
        if not self._stuck and self._thread.ident is not None:
            self._thread.join(self.timeout)

    # -- the worker and the handoff ----------------------------------------------------------

    def _call(self, call: Callable, *args, hook: str, step: int, timestamp: datetime | None) -> Any:
        """Run `call` (the strategy's `hook`, for `step`) on the worker once it is free, and
        wait for its result."""
        if self._thread.ident is None or self._stuck or not self._wait_idle():
            return None  # never started, or stuck: nothing more reaches the strategy
        outcome: list[Any] = []

        def job() -> None:
            try:
                outcome.append(call(*args))
            except BaseException as exc:  # noqa: BLE001 - raised again in the loop thread
                outcome.append(exc)

        self._post(job, hook, step, timestamp, bounded=False)
        if not self._wait_idle():
            return None
        self._report_faults()
        if outcome and isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0] if outcome else None

    def _post(
        self, job: Callable[[], None], hook: str, step: int, timestamp: datetime | None, bounded: bool,
    ) -> None:
        with self._wake:
            if bounded and len(self._jobs) >= MAX_PENDING_NOTICES:
                self.stats.overruns += 1
                return
            self._jobs.append((job, hook, step, timestamp))
            self._wake.notify()

    def _wait_idle(self) -> bool:
        """Wait until the worker has nothing to do; False (and the strategy marked stuck) when
        that takes longer than the timeout."""
        if self._stuck:
            return False
        with self._wake:
            idle = self._wake.wait_for(
                lambda: not self._busy and not self._jobs and self._latest is None, self.timeout,
            )
        if not idle:
            self._mark_stuck()
        return idle

    def _mark_stuck(self) -> None:
        """Disable the strategy, drop what waits for it (should the call ever return, nothing
        more reaches it) and record a Timeout fault against the call in progress."""
        self._stuck = True
        with self._wake:
            hook, step, timestamp = self._running
            self._latest = None
            self._jobs.clear()
        reason = f"stuck: {hook} did not return within {self.timeout:g} s"
        if self.state is not HostState.DISABLED:
            self._disable(reason)
        self._report_faults()
        self._report_fault(StrategyFault(self.name, hook, step, timestamp, "Timeout", reason, True))

    def _report_faults(self) -> None:
        while self._held_faults:
            self._report_fault(self._held_faults.popleft())

    def _work(self) -> None:
        wake = self._wake
        while True:
            with wake:
                wake.wait_for(lambda: self._jobs or self._latest is not None or self._closing)
                if self._jobs:
                    job, *running = self._jobs.popleft()
                    tick = None
                elif self._latest is not None:
                    job, tick, self._latest = None, self._latest, None
                    running = ("on_tick", tick[1], tick[0][-1].timestamp)
                else:
                    return
                self._busy = True
                self._running, self._began = tuple(running), time.monotonic()
            try:
                if job is not None:
                    job()
                else:
                    raws = self._tick(*tick)
                    if self._stuck:  # disabled meanwhile: what it returns or asks for so late is dropped
                        self.strategy.context.take_requests()
                    else:
                        self._done.append(raws)
            except Exception:  # noqa: BLE001 - user code is guarded; this is a fault of the host
                log.exception("strategy host %s failed", self.name)
                if job is None:
                    self._done.append([])
            finally:
                with wake:
                    self._busy = False
                    wake.notify_all()

    def _tick(self, views: list[MarketData], step: int) -> list[Any]:
        raws = []
        for market in views:
            raws += StrategyHost.on_tick(self, market, step)
            if not self.lockstep:  # lockstep: the loop calls on_bar after taking on_tick's signals
                for symbol in market.fresh:
                    raws += StrategyHost.on_bar(self, market[symbol], step)
        return raws
