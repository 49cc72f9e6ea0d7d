"""Small builders shared by the tests: bars and steps from plain numbers."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from runner.domain import Bar, MarketData, Position
from runner.history import HistoryStore
from strategies.base import StrategyContext

T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)


def D(value) -> Decimal:
    return Decimal(str(value))


def bar(symbol: str, minute: int, open_, high=None, low=None, close=None, volume=1000) -> Bar:
    close = open_ if close is None else close
    high = max(open_, close) if high is None else high
    low = min(open_, close) if low is None else low
    return Bar(symbol, T0 + timedelta(minutes=minute), D(open_), D(high), D(low), D(close), D(volume))


def step(minute: int, *bars: Bar) -> MarketData:
    return MarketData(T0 + timedelta(minutes=minute), "1m", {b.symbol: b for b in bars})


def closes_to_steps(symbol: str, closes: list) -> list[MarketData]:
    """One step per close; each bar opens at the previous close."""
    steps, previous = [], closes[0]
    for minute, close in enumerate(closes):
        steps.append(step(minute, bar(symbol, minute, previous, close=close)))
        previous = close
    return steps


def config_text(strategies: str, **sections: str) -> str:
    """A YAML config: `strategies` is the YAML list body; other sections are inline mappings."""
    defaults = {
        "run": "{max_ticks: 300, seed: 7}",
        "market_data": "{symbols: [AAA, BBB], interval: 1m}",
        "broker": "{slippage_bps: 5, commission: {per_order: 1}}",
    }
    defaults.update(sections)
    body = "".join(f"{name}: {value}\n" for name, value in defaults.items())
    return body + "strategies:\n" + strategies


class ListFeed:
    """A feed of hand-made steps (lists of bars), for runs whose prices a test must control."""

    live = False
    skipped_rows = 0

    def __init__(self, steps: list[list[Bar]], interval: str = "1m"):
        self.steps = steps
        self.interval = interval
        self.symbols = tuple(dict.fromkeys(b.symbol for bars in steps for b in bars))
        self.total_steps = len(steps)

    def __iter__(self):
        for bars in self.steps:
            yield MarketData(bars[0].timestamp, self.interval, {b.symbol: b for b in bars})


class FakeBooks:
    """Positions the test sets by hand."""

    def __init__(self):
        self.cash = D(100_000)
        self.held: dict[str, Decimal] = {}

    def cash_of(self, strategy):
        return self.cash

    def position(self, strategy, symbol):
        return Position(strategy, symbol, self.held.get(symbol, D(0)))

    def positions(self, strategy=None):
        return [self.position(strategy, s) for s in self.held]


def make(cls, symbols=("AAA",), **params):
    """A started strategy of class `cls` over FakeBooks, and the books."""
    books = FakeBooks()
    context = StrategyContext("test", cls.Params(**params), symbols, books, HistoryStore(0))
    strategy = cls(context)
    strategy.on_start()
    return strategy, books


def wait_until(condition, seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds` (a deadline, not a pause)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def finish(process: subprocess.Popen, timeout: float = 30) -> tuple[str, str]:
    """The output of a runner process once it ends by itself; killed if not within `timeout` s."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
