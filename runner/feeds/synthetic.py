"""Seeded synthetic OHLCV bars from geometric Brownian motion.

Each symbol draws from its own `random.Random` seeded with (seed, symbol), so the bars of one
symbol do not change when others are added, and the same seed gives the same bars bit for bit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
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
        self._paths = [
            SymbolPath(
                name, params.start_price, params.drift, params.volatility,
                interval_seconds(interval), seed, precision, base_volume,
            )
            for name, params in symbols.items()
        ]

    def __iter__(self) -> Iterator[MarketData]:
        timestamp = self._start
        while True:
            bars = {path.symbol: path.next_bar(timestamp) for path in self._paths}
            yield MarketData(timestamp, self.interval, bars)
            timestamp += self._step
