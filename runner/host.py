"""Strategy hosts: the one guard around user code.

Every call into a strategy goes through `StrategyHost._guard`, which catches the exception,
logs it with the strategy, hook and step, reports a `StrategyFault`, and disables the strategy
after `max_errors` consecutive failures. A failing strategy never stops the loop or the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from runner.domain import MarketData
from runner.events import StrategyFault
from runner.risk import SignalValidator, no_validation
from strategies.base import StrategyInterface

log = logging.getLogger(__name__)


class HostState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    DISABLED = "disabled"


@dataclass
class StrategyStats:
    """Counters of one strategy, owned by the loop thread."""

    calls: int = 0
    signals: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    busy_seconds: float = 0.0  # time spent in on_tick
    slowest_seconds: float = 0.0

    @property
    def mean_ms(self) -> float:
        return 1000 * self.busy_seconds / self.calls if self.calls else 0.0


class StrategyHost:
    """Runs one strategy inline in the loop thread.

    Args:
        name: the strategy's name in records.
        strategy: the user's object.
        symbols: symbols it subscribes to; it sees only these.
        max_errors: consecutive errors after which it is disabled.
        on_fault: called with each fault, to record it.
        sees_all: True when `symbols` are all the feed's symbols, so steps need no filtering.
        interval: the candle interval it is called on.
        validator: checks each of its signals before sizing (see risk.py).
        history_depth: bars per symbol its `history_size()` asked for (read once, at creation).

    Optional hooks are called only when the strategy defines them: `load_model()` before
    `on_start` (returning False or raising disables the strategy), `warmup(history)` once its
    history is full (`on_tick` is not called before), `on_bar(bar)` after `on_tick` for each
    new bar, `on_fill`, `on_order_rejected`, and `shutdown()` at the very end.
    """

    def __init__(
        self, name: str, strategy: StrategyInterface, symbols: tuple[str, ...], max_errors: int,
        on_fault: Callable[[StrategyFault], None], sees_all: bool = False, interval: str = "",
        validator: SignalValidator = no_validation, history_depth: int = 0,
    ):
        self.name = name
        self.strategy = strategy
        self.symbols = frozenset(symbols)
        self.ordered_symbols = symbols
        self.sees_all = sees_all
        self.interval = interval
        self.validator = validator
        self.history_depth = history_depth
        self.warming = callable(getattr(strategy, "warmup", None)) and history_depth > 0
        self.max_errors = max_errors
        self.state = HostState.CREATED
        self.stats = StrategyStats()
        self.disabled_reason = ""
        self._consecutive_errors: dict[str, int] = {}  # per hook: a hook that always fails is caught
        self._on_fault = on_fault

    @property
    def active(self) -> bool:
        return self.state is HostState.RUNNING

    def start(self, timestamp: datetime | None) -> None:
        """Load the strategy's model (if it has `load_model`), then call `on_start`."""
        if self.state is not HostState.CREATED:
            raise RuntimeError(f"strategy {self.name!r} cannot start from state {self.state.value}")
        self.state = HostState.RUNNING
        load_model = getattr(self.strategy, "load_model", None)
        if callable(load_model):
            loaded = self._guard("load_model", 0, timestamp, load_model)
            if self.state is not HostState.RUNNING:
                return
            if loaded is False:
                self._disable("load_model returned False")
                return
        self._guard("on_start", 0, timestamp, self.strategy.on_start)

    def warm_up(self, history: dict, step: int, timestamp: datetime | None) -> None:
        """Hand the full history to `warmup` once; `on_tick` is called from then on."""
        self.warming = False
        self._guard("warmup", step, timestamp, self.strategy.warmup, history)

    def on_bar(self, bar, step: int) -> list[Any]:
        """Call `on_bar` for one new bar, if the strategy has it."""
        call = getattr(self.strategy, "on_bar", None)
        if call is None or self.state is not HostState.RUNNING:
            return []
        return _as_list(self._guard("on_bar", step, bar.timestamp, call, bar))

    def shut_down(self, step: int, timestamp: datetime | None) -> None:
        """Call `shutdown` at the very end, if the strategy has it (disabled ones too: it frees
        what they hold)."""
        call = getattr(self.strategy, "shutdown", None)
        if callable(call) and self.state is not HostState.CREATED:
            self._guard("shutdown", step, timestamp, call)

    def on_tick(self, market: MarketData, step: int) -> list[Any]:
        """Call `on_tick`; return what it returned as a list (empty on error or None)."""
        stats = self.stats
        stats.calls += 1
        started = time.perf_counter()
        result = self._guard("on_tick", step, market.timestamp, self.strategy.on_tick, market)
        took = time.perf_counter() - started
        stats.busy_seconds += took
        if took > stats.slowest_seconds:
            stats.slowest_seconds = took
        return _as_list(result)

    def notify(self, hook: str, value: Any, step: int, timestamp: datetime | None) -> bool:
        """Call an optional hook (`on_fill`, `on_order_rejected`) if the strategy has it and
        is running; return True when it was called."""
        call = getattr(self.strategy, hook, None)
        if call is None or self.state is not HostState.RUNNING:
            return False
        self._guard(hook, step, timestamp, call, value)
        return True

    def stop(self, step: int, timestamp: datetime | None) -> list[Any]:
        """Call `on_stop` once, unless disabled; return the signals it emitted."""
        if self.state is not HostState.RUNNING:
            return []
        result = self._guard("on_stop", step, timestamp, self.strategy.on_stop)
        if self.state is HostState.RUNNING:
            self.state = HostState.STOPPED
        return _as_list(result)

    def _disable(self, reason: str) -> None:
        self.state = HostState.DISABLED
        self.disabled_reason = reason
        log.error("strategy %s disabled: %s", self.name, reason)

    def _guard(self, hook: str, step: int, timestamp: datetime | None, call: Callable, *args):
        try:
            result = call(*args)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            self._fail(hook, step, timestamp, exc)
            return None
        self._consecutive_errors[hook] = 0
        return result

    def _fail(self, hook: str, step: int, timestamp: datetime | None, exc: Exception) -> None:
        self.stats.errors += 1
        errors = self._consecutive_errors[hook] = self._consecutive_errors.get(hook, 0) + 1
        disable = errors >= self.max_errors or hook in _FATAL_HOOKS
        log.error(
            "strategy %s raised in %s at step %d: %s: %s", self.name, hook, step,
            type(exc).__name__, exc, exc_info=exc,
        )
        if disable and self.state is not HostState.DISABLED:
            self._disable(
                f"{type(exc).__name__} in {hook}: {exc}" if hook in _FATAL_HOOKS
                else f"{errors} consecutive errors in {hook}, last {type(exc).__name__}: {exc}"
            )
        self._on_fault(StrategyFault(
            self.name, hook, step, timestamp, type(exc).__name__, str(exc), disabled=disable,
        ))


_FATAL_HOOKS = frozenset({"load_model", "on_start", "warmup"})  # a failure here leaves no usable strategy


def _as_list(result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


class ThreadedHost(StrategyHost):
    """Runs one strategy in a worker thread of its own, in lockstep with the loop.

    Every call into the strategy happens on its thread. The loop hands each step to every
    threaded host (`begin_tick`), then collects their results in configuration order
    (`tick_result`), so the runs are as deterministic as inline ones while the strategies'
    `on_tick` calls overlap. Faults are reported when collected, in that same order.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._held_faults: list[StrategyFault] = []  # reported by the loop thread, in order
        self._report_fault, self._on_fault = self._on_fault, self._held_faults.append
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=f"strategy-{self.name}", daemon=True)
        self._thread.start()

    def begin_tick(self, market: MarketData, step: int) -> None:
        self._jobs.put((super().on_tick, (market, step)))

    def tick_result(self) -> list[Any]:
        return self._result()

    def on_tick(self, market: MarketData, step: int) -> list[Any]:
        self.begin_tick(market, step)
        return self.tick_result()

    def start(self, timestamp: datetime | None) -> None:
        self._run(super().start, timestamp)

    def warm_up(self, history: dict, step: int, timestamp: datetime | None) -> None:
        self._run(super().warm_up, history, step, timestamp)

    def on_bar(self, bar, step: int) -> list[Any]:
        return self._run(super().on_bar, bar, step)

    def notify(self, hook: str, value: Any, step: int, timestamp: datetime | None) -> bool:
        return self._run(super().notify, hook, value, step, timestamp)

    def stop(self, step: int, timestamp: datetime | None) -> list[Any]:
        return self._run(super().stop, step, timestamp)

    def shut_down(self, step: int, timestamp: datetime | None) -> None:
        self._run(super().shut_down, step, timestamp)
        self._jobs.put(None)
        self._thread.join()

    def _run(self, call: Callable, *args):
        self._jobs.put((call, args))
        return self._result()

    def _result(self):
        outcome = self._results.get()
        faults = list(self._held_faults)
        self._held_faults.clear()
        for fault in faults:
            self._report_fault(fault)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, args = job
            try:
                self._results.put(call(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the loop thread, raised there
                self._results.put(exc)
