"""Rolling bar history per symbol, shared by every strategy and bounded by the longest need."""

from __future__ import annotations

from collections import deque

from runner.domain import Bar, MarketData


class HistoryStore:
    """Keeps the last `depth` bars of each symbol; appending is O(1) per bar."""

    def __init__(self, depth: int):
        self.depth = depth
        self._bars: dict[str, deque[Bar]] = {}

    def append(self, market: MarketData) -> None:
        if self.depth == 0:
            return
        for symbol, bar in market.items():
            bars = self._bars.get(symbol)
            if bars is None:
                bars = self._bars[symbol] = deque(maxlen=self.depth)
            bars.append(bar)

    def bars(self, symbol: str, count: int | None = None) -> tuple[Bar, ...]:
        """Return up to `count` most recent bars of `symbol`, oldest first."""
        bars = self._bars.get(symbol, ())
        if count is None or count >= len(bars):
            return tuple(bars)
        return tuple(bars)[-count:]
