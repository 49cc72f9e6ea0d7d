"""Strategy hosts: the one guard around user code.

Every call into a strategy goes through `StrategyHost._guard`, which catches the exception,
logs it with the strategy, hook and step, reports a `StrategyFault`, and disables the strategy
after `max_errors` consecutive failures. A failing strategy never stops the loop or the others.
"""

from __future__ import annotations

import logging
from time import perf_counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from runner.domain import MarketData
from runner.events import StrategyFault
from runner.risk import SignalValidator, no_validation
from runner.timing import LatencyHistogram
from strategies.base import StrategyInterface

log = logging.getLogger(__name__)


class HostState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    DISABLED = "disabled"


@dataclass
class StrategyStats:
    """Counters of one strategy. `calls`, `errors` and `latency` are written by the thread that
    calls the strategy, the rest by the loop thread."""

    calls: int = 0
    signals: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    overruns: int = 0  # market data it never saw because it was still busy (clock-driven, threaded)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)  # of on_tick calls


class StrategyHost:
    """Runs one strategy inline in the loop thread.

    Args:
        name: the strategy's name in records.
        strategy: the user's object.
        routes: its subscriptions, (symbols in order) per candle interval; the first interval
            is its own (the one `history` and `warmup` use). It sees only these.
        max_errors: consecutive errors after which it is disabled.
        on_fault: called with each fault, to record it.
        validator: checks each of its signals before sizing (see risk.py).
        history_depth: bars per symbol its `history_size()` asked for (read once, at creation).
        follows_new_symbols: it subscribes to every symbol, so symbols added mid-run join it.

    Optional hooks are called only when the strategy defines them: `load_model()` before
    `on_start` (returning False or raising disables the strategy), `warmup(history)` once its
    history is full (`on_tick` is not called before), `on_bar(bar)` after `on_tick` for each
    new bar, `on_fill`, `on_order_rejected`, `on_symbol_added(symbol)`, and `shutdown()` at
    the very end.
    """

    def __init__(
        self, name: str, strategy: StrategyInterface, routes: dict[str, tuple[str, ...]],
        max_errors: int, on_fault: Callable[[StrategyFault], None],
        validator: SignalValidator = no_validation, history_depth: int = 0,
        follows_new_symbols: bool = False,
    ):
        self.name = name
        self.strategy = strategy
        self.routes = {interval: tuple(symbols) for interval, symbols in routes.items()}
        self.interval = next(iter(self.routes))
        self.symbols = frozenset(s for symbols in self.routes.values() for s in symbols)
        self.validator = validator
        self.history_depth = history_depth
        self.follows_new_symbols = follows_new_symbols
        self.warming = callable(getattr(strategy, "warmup", None)) and history_depth > 0
        self.max_errors = max_errors
        self.state = HostState.CREATED
        self.stats = StrategyStats()
        self.disabled_reason = ""
        self._consecutive_errors: dict[str, int] = {}  # per hook: a hook that always fails is caught
        self._on_fault = on_fault
        self._on_bar = getattr(strategy, "on_bar", None)  # looked up once: it is called per bar

    @property
    def ordered_symbols(self) -> tuple[str, ...]:
        """The symbols of its own interval, in configuration order."""
        return self.routes[self.interval]

    def subscribe(self, symbol: str, interval: str) -> None:
        """Add a (symbol, interval) pair; the strategy's context lists the new symbol too."""
        symbols = self.routes.get(interval, ())
        if symbol not in symbols:
            self.routes[interval] = (*symbols, symbol)
            self.symbols = self.symbols | {symbol}
            self.strategy.context.symbols = tuple(dict.fromkeys((*self.strategy.context.symbols, symbol)))

    queue_depth = 0  # an inline strategy is called at once: nothing waits for it

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
        call = self._on_bar
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
        started = perf_counter()
        try:  # `_guard` written out: this is the call made for every strategy at every step
            result = self.strategy.on_tick(market)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            self._fail("on_tick", step, market.timestamp, exc)
            result = None
        else:
            self._consecutive_errors["on_tick"] = 0
        stats.latency.add(perf_counter() - started)
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
