"""The six model features of one symbol, computed bar by bar, and the same over whole arrays.

Training (`build_features`) and live trading (`FeatureBuilder.update`) run the same builder,
so a model sees identical numbers in both. The order of the values is `FEATURE_NAMES`:

    return_1            close / previous close - 1
    rsi                 RSI(14) of the close, 0..100
    macd_histogram      MACD(12, 26, 9) histogram of the close, divided by the close (so
                        symbols at different price levels are comparable)
    bollinger_position  where the close sits in Bollinger(20, 2): 0 at the lower band, 1 at the upper
    volume_ratio        volume / SMA(volume, 20) including this bar; 1 when that average is 0
    range               (high - low) / close

Values are floats; the builder warms up for `WARMUP_BARS` bars (the MACD signal line is the
slowest) and returns None until then.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runner.domain import Bar
from runner.indicators import MACD, RSI, SMA, Bollinger

FEATURE_NAMES = (
    "return_1", "rsi", "macd_histogram", "bollinger_position", "volume_ratio", "range",
)
WARMUP_BARS = 34  # MACD: 26 bars for the slow EMA, then 9 MACD values for its signal line


class FeatureBuilder:
    """Streaming features of one symbol: O(1) per bar.

    Feed every bar of the symbol, in time order, to `update`; it returns the six features of
    that bar in the order of `FEATURE_NAMES`, or None while warming up.
    """

    __slots__ = ("_previous", "_rsi", "_macd", "_bollinger", "_volume")

    def __init__(self) -> None:
        self._previous: float | None = None
        self._rsi = RSI(14)
        self._macd = MACD(12, 26, 9)
        self._bollinger = Bollinger(20, 2.0)
        self._volume = SMA(20)

    def update(self, bar: Bar) -> list[float] | None:
        """Add one bar; return its features, or None while warming up."""
        return self.update_values(float(bar.high), float(bar.low), float(bar.close), float(bar.volume))

    def update_values(self, high: float, low: float, close: float, volume: float) -> list[float] | None:
        """Add one bar given as floats; return its features, or None while warming up."""
        previous, self._previous = self._previous, close
        rsi = self._rsi.update(close)
        histogram = self._macd.update(close)
        position = self._bollinger.update(close)
        average_volume = self._volume.update(volume)
        if previous is None or rsi is None or histogram is None or position is None or average_volume is None:
            return None
        return [
            close / previous - 1.0 if previous else 0.0,
            rsi,
            histogram / close if close else 0.0,
            position,
            volume / average_volume if average_volume else 1.0,
            (high - low) / close if close else 0.0,
        ]


def build_features(
    high: Sequence[float], low: Sequence[float], close: Sequence[float], volume: Sequence[float],
) -> np.ndarray:
    """Run one `FeatureBuilder` over a symbol's bars; return an (n, 6) float array whose rows
    are NaN while warming up."""
    builder = FeatureBuilder()
    rows = np.full((len(close), len(FEATURE_NAMES)), np.nan)
    for i, values in enumerate(zip(
        np.asarray(high, dtype=float).tolist(), np.asarray(low, dtype=float).tolist(),
        np.asarray(close, dtype=float).tolist(), np.asarray(volume, dtype=float).tolist(),
    )):
        features = builder.update_values(*values)
        if features is not None:
            rows[i] = features
    return rows
