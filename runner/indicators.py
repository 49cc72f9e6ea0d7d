"""Streaming indicators: each `update` takes one bar's value(s) in O(1) and returns the current
value, or None while the indicator is still warming up.

Indicators work in floats: they feed decisions, not the ledger (see ARCHITECTURE.md, "Money").
Definitions follow the usual conventions: EMA seeded with the SMA of its first `period` values;
RSI and ATR with Wilder's smoothing; Bollinger bands with the population standard deviation.
"""

from __future__ import annotations

import math
from collections import deque


class SMA:
    """Simple moving average of the last `period` values."""

    def __init__(self, period: int):
        self.period = period
        self._window: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if len(self._window) == self.period:
            self._sum -= self._window[0]
        self._window.append(x)
        self._sum += x
        self.value = self._sum / self.period if len(self._window) == self.period else None
        return self.value


class EMA:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the first SMA."""

    def __init__(self, period: int):
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self._seed = SMA(period)
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is None:
            self.value = self._seed.update(x)
        else:
            self.value += self.alpha * (x - self.value)
        return self.value


class RSI:
    """Relative strength index (0..100) over `period` changes, Wilder's smoothing."""

    def __init__(self, period: int = 14):
        self.period = period
        self._previous: float | None = None
        self._gains: list[float] = []
        self._losses: list[float] = []
        self._gain = self._loss = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        previous, self._previous = self._previous, x
        if previous is None:
            return None
        change = x - previous
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if len(self._gains) < self.period:
            self._gains.append(gain)
            self._losses.append(loss)
            if len(self._gains) < self.period:
                return None
            self._gain, self._loss = sum(self._gains) / self.period, sum(self._losses) / self.period
        else:
            self._gain = (self._gain * (self.period - 1) + gain) / self.period
            self._loss = (self._loss * (self.period - 1) + loss) / self.period
        if self._loss == 0:
            self.value = 100.0 if self._gain > 0 else 50.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self.value


class MACD:
    """MACD line (fast EMA - slow EMA), its signal EMA, and the histogram (line - signal)."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9):
        self._fast, self._slow, self._signal = EMA(fast), EMA(slow), EMA(signal)
        self.line: float | None = None
        self.signal: float | None = None
        self.histogram: float | None = None

    def update(self, x: float) -> float | None:
        fast, slow = self._fast.update(x), self._slow.update(x)
        if fast is None or slow is None:
            return None
        self.line = fast - slow
        self.signal = self._signal.update(self.line)
        self.histogram = None if self.signal is None else self.line - self.signal
        return self.histogram


class Bollinger:
    """Bands at mean +- k standard deviations over `period` values; `position` says where the
    latest value sits: 0 at the lower band, 1 at the upper one."""

    def __init__(self, period: int = 20, k: float = 2.0):
        self.period, self.k = period, k
        self._window: deque[float] = deque(maxlen=period)
        self._mean = self._m2 = 0.0  # Welford's running mean and sum of squared deviations
        self.middle = self.upper = self.lower = None
        self.position: float | None = None

    def update(self, x: float) -> float | None:
        # Welford's update, sliding: a sum of squares minus the squared mean loses every digit
        # when prices barely move (2.0 and 2.00001), this does not.
        window, mean = self._window, self._mean
        if len(window) == self.period:
            old = window[0]
            self._mean = mean + (x - old) / self.period
            self._m2 += (x - old) * (x - self._mean + old - mean)
        else:
            self._mean = mean + (x - mean) / (len(window) + 1)
            self._m2 += (x - mean) * (x - self._mean)
        window.append(x)
        if len(window) < self.period:
            return None
        mean = self._mean
        deviation = math.sqrt(max(self._m2 / self.period, 0.0))
        self.middle, self.upper, self.lower = mean, mean + self.k * deviation, mean - self.k * deviation
        width = self.upper - self.lower
        self.position = 0.5 if width == 0 else (x - self.lower) / width
        return self.position


class ATR:
    """Average true range over `period` bars, Wilder's smoothing."""

    def __init__(self, period: int = 14):
        self.period = period
        self._close: float | None = None
        self._ranges: list[float] = []
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        previous, self._close = self._close, close
        true_range = high - low if previous is None else max(high - low, abs(high - previous), abs(low - previous))
        if self.value is None:
            self._ranges.append(true_range)
            if len(self._ranges) == self.period:
                self.value = sum(self._ranges) / self.period
        else:
            self.value = (self.value * (self.period - 1) + true_range) / self.period
        return self.value
