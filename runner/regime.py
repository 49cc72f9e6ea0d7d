"""The market regime of a symbol: trending, ranging or volatile, from its latest bars.

One documented classifier over the last `REGIME_BARS` bars (floats: it feeds a decision, not
the ledger):

    ATR        = mean true range of the last 14 bars, a true range being
                 max(high, previous close) - min(low, previous close)
    volatility = ATR / last close
    slope      = (SMA(20) of the closes now - SMA(20) ten bars earlier) / 10, per bar
    trend      = |slope| / ATR

    volatile  when volatility > volatility_threshold, else
    trending  when trend > trend_threshold, else
    ranging.

Flat bars (ATR 0) are ranging. With fewer than `REGIME_BARS` bars the regime is not known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.history import BarHistory

ATR_PERIOD = 14
SMA_PERIOD = 20
SLOPE_BARS = 10
REGIME_BARS = SMA_PERIOD + SLOPE_BARS  # the oldest SMA(20) needs bars 30..11 back


@dataclass(frozen=True, slots=True)
class RegimeReading:
    """A classification and the two measures it was made from."""

    regime: str
    volatility: float
    trend: float


def classify(bars: BarHistory, volatility_threshold: float, trend_threshold: float) -> RegimeReading | None:
    """The regime of the bars' symbol at their latest bar, or None with too few bars."""
    if len(bars) < REGIME_BARS:
        return None
    close = bars.close[-REGIME_BARS:]
    previous = close[-ATR_PERIOD - 1:-1]
    true_range = np.maximum(bars.high[-ATR_PERIOD:], previous) - np.minimum(bars.low[-ATR_PERIOD:], previous)
    atr = float(true_range.mean())
    volatility = atr / float(close[-1])
    slope = (float(close[-SMA_PERIOD:].mean()) - float(close[:SMA_PERIOD].mean())) / SLOPE_BARS
    trend = abs(slope) / atr if atr > 0 else 0.0
    if volatility > volatility_threshold:
        return RegimeReading("volatile", volatility, trend)
    return RegimeReading("trending" if trend > trend_threshold else "ranging", volatility, trend)
