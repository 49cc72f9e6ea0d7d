"""Moving-average crossover on closing prices."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from pydantic import Field, model_validator

from strategies.base import Action, MarketData, Signal, StrategyInterface, StrategyParams


class MACrossoverParams(StrategyParams):
    fast: int = Field(10, gt=0, description="Bars in the fast simple moving average.")
    slow: int = Field(30, gt=0, description="Bars in the slow simple moving average.")
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought on an upward cross.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MACrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class _Averages:
    """Running sums of the last `fast` and `slow` closes, exact in Decimal."""

    __slots__ = ("closes", "fast_sum", "slow_sum", "previous")

    def __init__(self, slow: int):
        self.closes: deque[Decimal] = deque(maxlen=slow)
        self.fast_sum = Decimal(0)
        self.slow_sum = Decimal(0)
        self.previous: int | None = None  # sign of (fast - slow) on the previous bar


class MACrossover(StrategyInterface):
    """Buy on an upward cross of the fast SMA over the slow one; sell everything on a downward one.

    Buy: while flat, when the previous fast average was below the previous slow one and the
    current fast average is above the current slow one, buy `quantity` at market.
    Sell: while long, on the mirror cross, sell the whole position at market.
    Equal averages are no cross. Averages are compared exactly (fast_sum x slow against
    slow_sum x fast, in Decimal), so a cross never depends on float rounding.
    """

    Params = MACrossoverParams
    description = "Fast/slow simple moving average crossover, long only, market orders."

    def on_start(self) -> None:
        self._averages = {symbol: _Averages(self.params.slow) for symbol in self.context.symbols}

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        signals = []
        for symbol in market_data.fresh:
            side = self._update(self._averages[symbol], market_data[symbol].close)
            if side is None:
                continue
            held = self.context.position(symbol).quantity
            if side > 0 and held == 0:
                signals.append(Signal(symbol, Action.BUY, self.params.quantity, reason="upward cross"))
            elif side < 0 and held > 0:
                signals.append(Signal(symbol, Action.SELL, held, reason="downward cross"))
        return signals

    def _update(self, avg: _Averages, close: Decimal) -> int | None:
        """Add a close; return +1 on an upward cross, -1 on a downward one, None otherwise."""
        fast, slow = self.params.fast, self.params.slow
        closes = avg.closes
        if len(closes) == slow:
            avg.slow_sum -= closes[0]
        if len(closes) >= fast:
            avg.fast_sum -= closes[-fast]
        closes.append(close)
        avg.fast_sum += close
        avg.slow_sum += close
        if len(closes) < slow:
            return None
        difference = avg.fast_sum * slow - avg.slow_sum * fast
        current = (difference > 0) - (difference < 0)
        previous, avg.previous = avg.previous, current
        if previous is None or current == 0 or previous == 0 or previous == current:
            return None
        return current
