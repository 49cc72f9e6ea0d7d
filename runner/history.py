"""Rolling bar history per (symbol, interval) as numpy arrays, bounded by the longest need.

Each series is a ring buffer written twice (at i and i + depth), so the latest n bars are
always one contiguous slice: reading them copies those n bars only, never the whole history,
and what a strategy holds never changes under it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from runner.domain import Bar

_FIELDS = ("open", "high", "low", "close", "volume")


class BarHistory:
    """The last bars of one (symbol, interval), oldest first, as arrays the strategy owns.

    Attributes `timestamp` (datetime64[ns], UTC), `open`, `high`, `low`, `close`, `volume`
    (float64). `to_frame()` makes a small pandas DataFrame of them.
    """

    __slots__ = ("timestamp", "open", "high", "low", "close", "volume")

    def __init__(self, timestamp: np.ndarray, columns: list[np.ndarray]):
        self.timestamp = timestamp
        self.open, self.high, self.low, self.close, self.volume = columns

    def __len__(self) -> int:
        return len(self.timestamp)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            {name: getattr(self, name) for name in _FIELDS},
            index=pd.DatetimeIndex(self.timestamp, tz="UTC", name="timestamp"),
        )


class _Series:
    __slots__ = ("depth", "count", "stamps", "values")

    def __init__(self, depth: int):
        self.depth = depth
        self.count = 0
        self.stamps = np.zeros(2 * depth, dtype="datetime64[ns]")
        self.values = np.zeros((5, 2 * depth), dtype=np.float64)

    def append(self, bar: Bar) -> None:
        depth = self.depth
        i = self.count % depth
        stamp = np.datetime64(bar.timestamp.replace(tzinfo=None), "ns")
        row = (float(bar.open), float(bar.high), float(bar.low), float(bar.close), float(bar.volume))
        self.stamps[i] = self.stamps[i + depth] = stamp
        self.values[:, i] = self.values[:, i + depth] = row
        self.count += 1

    def last(self, count: int | None) -> BarHistory:
        size = min(self.count, self.depth)
        n = size if count is None else max(0, min(count, size))
        end = (self.count - 1) % self.depth + 1 + self.depth if self.count else 0
        view = slice(end - n, end)
        return BarHistory(self.stamps[view].copy(), [row[view].copy() for row in self.values])


class HistoryStore:
    """Keeps the last `depth` bars of every (symbol, interval); appending is O(1) per bar."""

    def __init__(self, depth: int):
        self.depth = depth
        self._series: dict[tuple[str, str], _Series] = {}

    def append(self, interval: str, bars: Iterable[Bar]) -> None:
        if self.depth == 0:
            return
        for bar in bars:
            series = self._series.get((bar.symbol, interval))
            if series is None:
                series = self._series[(bar.symbol, interval)] = _Series(self.depth)
            series.append(bar)

    def deepen(self, depth: int) -> None:
        """Keep at least `depth` bars of every series from now on (a strategy that joins a
        running run may need more); the bars kept so far stay."""
        if depth <= self.depth:
            return
        for key, series in self._series.items():
            kept, grown = series.last(None), _Series(depth)
            n = grown.count = len(kept)
            grown.stamps[:n] = grown.stamps[depth:depth + n] = kept.timestamp
            for row, name in enumerate(_FIELDS):
                grown.values[row, :n] = grown.values[row, depth:depth + n] = getattr(kept, name)
            self._series[key] = grown
        self.depth = depth

    def count(self, symbol: str, interval: str) -> int:
        """How many bars of `symbol` at `interval` are kept now."""
        series = self._series.get((symbol, interval))
        return min(series.count, series.depth) if series else 0

    def bars(self, symbol: str, interval: str, count: int | None = None) -> BarHistory:
        """Up to `count` most recent bars of `symbol` at `interval` (all kept when None)."""
        series = self._series.get((symbol, interval))
        if series is None:
            empty = np.zeros(0)
            return BarHistory(np.zeros(0, dtype="datetime64[ns]"), [empty] * 5)
        return series.last(count)
