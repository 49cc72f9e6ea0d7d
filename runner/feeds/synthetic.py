"""Seeded synthetic OHLCV bars from geometric Brownian motion.

Each symbol draws from its own `random.Random` seeded with (seed, symbol), so the bars of one
symbol do not change when others are added, and the same seed gives the same bars bit for bit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from runner.domain import Bar, MarketData
from runner.intervals import interval_seconds

SECONDS_PER_YEAR = 365.25 * 24 * 3600


class SymbolPath:
    """The random walk of one symbol: yields bars whose prices are rounded to the tick size."""

    def __init__(
        self, symbol: str, start_price: Decimal, drift: float, volatility: float,
        step_seconds: int, seed: int, precision: int, base_volume: int,
    ):
        self.symbol = symbol
        self._rng = random.Random(f"{seed}:{symbol}")
        dt = step_seconds / SECONDS_PER_YEAR
        self._drift_step = (drift - 0.5 * volatility * volatility) * dt
        self._vol_step = volatility * math.sqrt(dt)
        self._tick = Decimal(1).scaleb(-precision)
        self._price = float(start_price)
        self._open = self._round(Decimal(start_price), ROUND_HALF_EVEN)
        self._base_volume = base_volume

    def _round(self, value: Decimal, rounding: str) -> Decimal:
        return max(value.quantize(self._tick, rounding=rounding), self._tick)

    def next_bar(self, timestamp: datetime) -> Bar:
        rng = self._rng
        self._price *= math.exp(self._drift_step + self._vol_step * rng.gauss(0.0, 1.0))
        open_, close = self._open, self._round(Decimal(self._price), ROUND_HALF_EVEN)
        top, bottom = max(open_, close), min(open_, close)
        wick_up = math.exp(self._vol_step * abs(rng.gauss(0.0, 0.5)))
        wick_down = math.exp(-self._vol_step * abs(rng.gauss(0.0, 0.5)))
        high = max(self._round(Decimal(float(top) * wick_up), ROUND_CEILING), top)
        low = min(self._round(Decimal(float(bottom) * wick_down), ROUND_FLOOR), bottom)
        volume = Decimal(max(1, round(self._base_volume * rng.lognormvariate(0.0, 0.5))))
        self._open = close
        return Bar(self.symbol, timestamp, open_, high, low, close, volume)


class SyntheticFeed:
    """An endless multi-symbol feed: every step carries one bar per symbol."""

    total_steps = None
    skipped_rows = 0
    live = False

    def __init__(
        self, symbols: Mapping[str, object], interval: str, start: datetime, seed: int,
        precision: int = 2, base_volume: int = 10_000,
    ):
        self.interval = interval
        self.symbols = tuple(symbols)
        self._step = timedelta(seconds=interval_seconds(interval))
        self._start = start
        self._seed, self._precision, self._base_volume = seed, precision, base_volume
        self._paths = [
            self._path(name, params.start_price, params.drift, params.volatility)
            for name, params in symbols.items()
        ]

    def _path(self, symbol: str, start_price, drift: float, volatility: float) -> SymbolPath:
        return SymbolPath(
            symbol, start_price, drift, volatility, interval_seconds(self.interval), self._seed,
            self._precision, self._base_volume,
        )

    def symbol_source(
        self, symbol: str, start_price: float | str | Decimal = 100, drift: float = 0.0,
        volatility: float = 0.2,
    ) -> Callable[[], None]:
        """Prepare a symbol to join the feed (its bars seeded like the others'); the returned
        function adds it, from the next step on.

        Raises:
            ValueError: the symbol exists already, or a number is out of range.
        """
        if symbol in self.symbols:
            raise ValueError(f"{symbol} is already in the feed")
        try:
            price = Decimal(str(start_price))
        except ArithmeticError:
            raise ValueError(f"start_price must be a number, got {start_price!r}") from None
        if not price.is_finite() or price <= 0:
            raise ValueError(f"start_price must be a number > 0, got {start_price!r}")
        if not 0 <= float(volatility) <= 5 or not -10 <= float(drift) <= 10:
            raise ValueError(f"volatility must be in [0, 5] and drift in [-10, 10], got {volatility!r}, {drift!r}")
        path = self._path(symbol, price, float(drift), float(volatility))

        def add() -> None:
            self._paths.append(path)
            self.symbols = (*self.symbols, symbol)

        return add

    def __iter__(self) -> Iterator[MarketData]:
        timestamp = self._start
        while True:
            bars = {path.symbol: path.next_bar(timestamp) for path in self._paths}
            yield MarketData(timestamp, self.interval, bars)
            timestamp += self._step
