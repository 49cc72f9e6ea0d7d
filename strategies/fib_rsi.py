"""Fibonacci retracement of an up-swing, confirmed by a low RSI, with a bracket exit."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from pydantic import Field, field_validator

from runner.indicators import RSI
from strategies.base import Action, MarketData, Signal, StrategyInterface, StrategyParams

FIBONACCI = (0.236, 0.382, 0.5, 0.618, 0.786)


class FibRSIParams(StrategyParams):
    window: int = Field(50, ge=3, description="Bars, this one included, that hold the swing high and low.")
    rsi_period: int = Field(14, gt=0, description="Price changes in the RSI (Wilder's smoothing).")
    rsi_confirm: float = Field(40.0, gt=0, le=100, description="An entry needs the RSI strictly below this.")
    levels: list[float] = Field(
        default_factory=lambda: list(FIBONACCI),
        description="Retracement ratios, each strictly between 0 and 1; kept sorted ascending.",
    )
    tolerance: float = Field(
        0.002, ge=0, description="How close to a level, as a fraction of the close, counts as at it.",
    )
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought on an entry.")

    @field_validator("levels")
    @classmethod
    def _ratios(cls, levels: list[float]) -> list[float]:
        if not levels:
            raise ValueError("levels must name at least one ratio")
        outside = [r for r in levels if not 0 < r < 1]
        if outside:
            raise ValueError(f"levels must be strictly between 0 and 1, got {outside}")
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels must not repeat, got {levels}")
        return sorted(levels)


class _Swing:
    """The last `window` highs and lows of one symbol, and its RSI."""

    __slots__ = ("highs", "lows", "rsi")

    def __init__(self, window: int, rsi_period: int):
        self.highs: deque[Decimal] = deque(maxlen=window)
        self.lows: deque[Decimal] = deque(maxlen=window)
        self.rsi = RSI(rsi_period)


class FibRSI(StrategyInterface):
    """Buy a pullback to a Fibonacci level of an up-swing when the RSI confirms; exit by bracket.

    Swing: over the last `window` bars (this one included), H is the highest high and L the
    lowest low (the first bar holding each when tied). The swing is up when H comes on a later
    bar than L; otherwise (H first, both on one bar, or H == L) there is no entry. The level of
    ratio r is H - r x (H - L), computed exactly in Decimal.

    Buy: while flat, once `window` bars are in, when the close is within `tolerance` x close of a
    level (the nearest, if several) and the RSI of the close is strictly below `rsi_confirm`,
    buy `quantity` with a market order that carries a bracket.

    Stop and target: stop_loss is the next level below the matched one (L below the lowest
    level), take_profit the next level above (H above the highest), both rounded to the close's
    decimal places. The entry is skipped unless stop_loss < close < take_profit.

    Sell: the broker's bracket legs sell the whole fill, the stop-loss as a stop order and the
    take-profit as a limit order; when one fills, the other is cancelled. The strategy itself
    never sells.
    """

    Params = FibRSIParams
    description = "Buy a Fibonacci pullback of an up-swing on a low RSI; bracket stop and target."

    def on_start(self) -> None:
        params = self.params
        self._swings = {s: _Swing(params.window, params.rsi_period) for s in self.context.symbols}

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        signals = []
        for symbol in market_data.fresh:
            bar, swing = market_data[symbol], self._swings[symbol]
            swing.highs.append(bar.high)
            swing.lows.append(bar.low)
            rsi = swing.rsi.update(float(bar.close))
            if rsi is None or rsi >= self.params.rsi_confirm or len(swing.highs) < self.params.window:
                continue
            if self.context.position(symbol).quantity != 0:
                continue
            signal = self._entry(symbol, bar.close, swing, rsi)
            if signal is not None:
                signals.append(signal)
        return signals

    def _entry(self, symbol: str, close: Decimal, swing: _Swing, rsi: float) -> Signal | None:
        highs, lows = list(swing.highs), list(swing.lows)
        top, bottom = max(highs), min(lows)
        # Up-swings only; H == L puts both on the first bar, so it is no swing either.
        if highs.index(top) <= lows.index(bottom):
            return None
        span = top - bottom
        # Sorted by ratio, so prices run from the highest level down to the lowest.
        ratios = [Decimal(str(r)) for r in self.params.levels]
        prices = [top - r * span for r in ratios]
        tolerance = Decimal(str(self.params.tolerance)) * close
        distance, at = min((abs(close - price), i) for i, price in enumerate(prices))
        if distance > tolerance:
            return None
        quantum = Decimal(1).scaleb(min(close.as_tuple().exponent, 0))
        above = top if at == 0 else prices[at - 1]
        below = bottom if at == len(prices) - 1 else prices[at + 1]
        stop_loss, take_profit = below.quantize(quantum), above.quantize(quantum)
        if not stop_loss < close < take_profit:
            return None
        reason = f"fib {self.params.levels[at]:g} at {prices[at].quantize(quantum)}, rsi {rsi:.1f}"
        return Signal(
            symbol, Action.BUY, self.params.quantity, stop_loss=stop_loss, take_profit=take_profit,
            reason=reason,
        )
