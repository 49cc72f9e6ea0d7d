"""StrategyRunner: owns the loop thread; start, stop, pause, resume, status, snapshot."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from enum import Enum
from typing import Protocol

from runner.clock import Clock
from runner.domain import MarketData
from runner.errors import FeedError, RunnerError
from runner.events import RunFinished, RunResumed, RunStarted
from runner.feeds import Feed
from runner.loop import TickLoop
from runner.pacing import Pacer
from runner.snapshot import RunSnapshot

log = logging.getLogger(__name__)


class RunRecorder(Protocol):
    """The storage writer as the runner sees it."""

    error: RunnerError | None

    def start(self, started: RunStarted) -> None: ...

    def resume(self, resumed: RunResumed) -> None: ...

    def submit(self, records: list[object]) -> None: ...

    def close(self, finished: RunFinished) -> None: ...


class MetricsEndpoint(Protocol):
    """Where the run's metrics are served while it goes on (see runner/metrics.py)."""

    url: str

    def open(self) -> None: ...

    def close(self) -> None: ...


class Watcher(Protocol):
    """A helper thread that lives as long as the run (the policy table's watcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Resumption(Protocol):
    """How a resumed run takes up where its records end (runner/resume.py)."""

    resumed: RunResumed

    def catch_up(self, loop: TickLoop, steps: Iterator[MarketData]) -> None:
        """Bring the loop to the run's last recorded step, taking the steps it needs from
        `steps` (called in the loop thread, after the strategies started)."""


class Companion(Protocol):
    """Something that works beside the loop for the run (the live feed's poller, the recording
    of its bars, the signal webhook): reported in the snapshot under `key`, closed as the run
    ends (after the strategies stop, before storage is flushed)."""

    key: str

    def report(self) -> dict: ...

    def close(self) -> None: ...


class RunStatus(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"  # ended by itself: max_ticks, duration, or the end of the data
    STOPPED = "stopped"  # ended by stop(), Ctrl-C or SIGTERM
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED)


class StrategyRunner:
    """Runs a `TickLoop` over a feed in its own thread, and records the run.

    Args:
        run_id: the id every record of this run carries.
        feed: the market data.
        loop: one step of the run.
        recorder: the storage writer.
        pacer: when each step is due.
        clock: time for pacing and `duration`.
        started: what to record about the run when it starts.
        max_ticks: stop after this many steps.
        duration: stop after this many seconds of clock time.
        metrics: serves the run's metrics from `start` until the run has ended.
        database: where the records go (shown in the summary).
        watcher: started with the run, stopped as it ends (before storage is flushed).
        companions: reported in every snapshot and closed as the run ends, in this order.

    `resumption`, when set before `start` (runner/resume.py), makes the run continue a recorded
    one: the run record is taken up again instead of created, and the loop catches up to the
    last recorded step before its first step.
    """

    def __init__(
        self, run_id: str, feed: Feed, loop: TickLoop, recorder: RunRecorder, pacer: Pacer,
        clock: Clock, started: RunStarted, max_ticks: int | None = None,
        duration: float | None = None, database: str = "", metrics: MetricsEndpoint | None = None,
        watcher: Watcher | None = None, companions: tuple[Companion, ...] = (),
    ):
        self.run_id = run_id
        self.feed = feed
        self.loop = loop
        self.recorder = recorder
        self.pacer = pacer
        self.clock = clock
        self.started = started
        self.max_ticks = max_ticks
        self.duration = duration
        self.database = database
        self.metrics = metrics
        self.watcher = watcher
        self.resumption: Resumption | None = None
        self.companions = companions
        self._status = RunStatus.CREATED
        self._status_lock = threading.Lock()
        self._error = ""
        self._ended_at: float | None = None
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runner-loop", daemon=True)
        self._started_at = 0.0
        self._wall_timed = pacer.mode == "clock" and getattr(feed, "live", False)

    def start(self) -> None:
        """Open the metrics endpoint (if any), record the run and start the loop thread.

        Raises:
            ConfigError: the metrics endpoint cannot listen (nothing is recorded then).
            StorageError: the run cannot be recorded.
            RuntimeError: the runner was already started.
        """
        if self._status is not RunStatus.CREATED:
            raise RuntimeError(f"run {self.run_id} was already started")
        if self.metrics is not None:
            self.metrics.open()
        try:
            if self.resumption is None:
                self.recorder.start(self.started)
            else:
                self.recorder.resume(self.resumption.resumed)
        except BaseException:
            self._close_metrics()
            raise
        self._started_at = self.clock.monotonic()
        self._status = RunStatus.RUNNING
        if self.watcher is not None:
            self.watcher.start()
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to stop after the current step; returns at once (see `wait`)."""
        self._stop.set()
        self._resume.set()

    def pause(self) -> None:
        """Hold the loop before its next step (a no-op unless running)."""
        with self._status_lock:
            if self._status is RunStatus.RUNNING:
                self._resume.clear()
                self._status = RunStatus.PAUSED

    def resume(self) -> None:
        with self._status_lock:
            if self._status is RunStatus.PAUSED:
                self._status = RunStatus.RUNNING
                self._resume.set()

    def add_symbol(self, symbol: str, **spec) -> None:
        """Trade `symbol` from the step after the current one (safe from any thread, also while
        running). Strategies that take every symbol subscribe to it and are told through
        `on_symbol_added`. `spec` describes a synthetic symbol: start_price, drift, volatility.

        Raises:
            ValueError: the market data cannot add symbols, the symbol is traded already, or
                the spec is wrong.
        """
        source = self.loop.symbol_source
        if source is None:
            raise ValueError("this market data cannot add symbols during a run (the synthetic feed can)")
        if symbol in self.loop.broker.symbols or self.loop.symbol_requested(symbol):
            raise ValueError(f"symbol {symbol!r} is already traded (or about to be)")
        try:
            add = source(symbol, **spec)
        except TypeError as exc:
            raise ValueError(f"cannot add symbol {symbol!r}: {exc}") from None
        self.loop.request_symbol(symbol, add)

    def status(self) -> RunStatus:
        return self._status

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; return True when it has."""
        return self._done.wait(timeout)

    def run(self) -> RunSnapshot:
        """Start, wait for the end, and return the summary."""
        self.start()
        self.wait()
        return self.snapshot()

    def snapshot(self) -> RunSnapshot:
        """The latest published state, with the run's id, status and elapsed time."""
        end = self._ended_at if self._ended_at is not None else self.clock.monotonic()
        elapsed = end - self._started_at if self._started_at else 0.0
        total = getattr(self.feed, "total_steps", None)
        if self.max_ticks is not None:
            total = self.max_ticks if total is None else min(total, self.max_ticks)
        return replace(
            self.loop.snapshot(), run_id=self.run_id, status=self._status.value,
            error=self._error, elapsed_seconds=elapsed, database=self.database,
            total_steps=total, skipped_rows=getattr(self.feed, "skipped_rows", 0),
            overruns=self.pacer.overruns,
            companions=tuple((c.key, c.report()) for c in self.companions),
        )

    def _run(self) -> None:
        status = RunStatus.COMPLETED
        try:
            status = self._steps()
        except RunnerError as exc:
            status, self._error = RunStatus.FAILED, str(exc)
            log.error("run %s failed: %s", self.run_id, exc)
        except Exception as exc:  # noqa: BLE001 - recorded, and the run still shuts down cleanly
            status, self._error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
            log.exception("run %s failed", self.run_id)
        finally:
            status = self._shutdown(status)
            self._close_metrics()
            with self._status_lock:
                self._status = status
            self._done.set()

    def _steps(self) -> RunStatus:
        for host in self.loop.hosts:
            host.start(None)
        steps = _guarded(self.feed)
        if self.resumption is not None:
            self.resumption.catch_up(self.loop, steps)
        limit = self._started_at + self.duration if self.duration else None
        for market in steps:
            if self._stop.is_set() or self._paused_then_stopped():
                return RunStatus.STOPPED
            if self.pacer.wait(market.timestamp, self._stop, limit):
                return RunStatus.STOPPED
            if limit is not None and self.clock.monotonic() >= limit:
                return RunStatus.COMPLETED
            self.loop.step(market, self.clock.now() if self._wall_timed else None)
            if self.recorder.error is not None:
                raise self.recorder.error
            if self.max_ticks is not None and self.loop.steps >= self.max_ticks:
                return RunStatus.COMPLETED
        return RunStatus.COMPLETED

    def _close_metrics(self) -> None:
        if self.metrics is None:
            return
        try:
            self.metrics.close()
        except Exception:  # noqa: BLE001 - the run's records matter more than its metrics
            log.exception("run %s: the metrics endpoint did not close cleanly", self.run_id)

    def _paused_then_stopped(self) -> bool:
        if self._resume.is_set():
            return False
        paused_at = self.clock.monotonic()
        self._resume.wait()
        self.pacer.shift(self.clock.monotonic() - paused_at)
        return self._stop.is_set()

    def _shutdown(self, status: RunStatus) -> RunStatus:
        """Stop the strategies and flush storage, whatever ended the run."""
        if self.watcher is not None:
            self.watcher.stop()  # its connection must close before storage's, see Recorder.close
        try:
            self.loop.finish(self.clock.now())
        except Exception as exc:  # noqa: BLE001
            log.exception("run %s: error while stopping", self.run_id)
            status, self._error = RunStatus.FAILED, self._error or f"{type(exc).__name__}: {exc}"
        for companion in self.companions:
            try:
                companion.close()
            except Exception as exc:  # noqa: BLE001 - the run's records matter more
                log.exception("run %s: %s did not close cleanly", self.run_id, companion.key)
                status, self._error = RunStatus.FAILED, self._error or f"{companion.key}: {type(exc).__name__}: {exc}"
        self._ended_at = self.clock.monotonic()
        summary = self.snapshot()
        summary = replace(summary, status=status.value, error=self._error)
        finished = RunFinished(
            self.run_id, self.clock.now(), status.value, self.loop.steps,
            json.dumps(summary.to_dict(), sort_keys=True), self._error,
        )
        try:
            self.recorder.close(finished)
        except RunnerError as exc:
            status, self._error = RunStatus.FAILED, self._error or str(exc)
        return status


def _guarded(feed: Feed) -> Iterator[MarketData]:
    """Iterate a feed, turning any failure inside it into a `FeedError` that names it."""
    steps = iter(feed)
    while True:
        try:
            market = next(steps)
        except StopIteration:
            return
        except RunnerError:
            raise
        except Exception as exc:  # noqa: BLE001 - a feed may fail in any way; the run stops cleanly
            raise FeedError(f"market data failed: {type(exc).__name__}: {exc}") from exc
        yield market
