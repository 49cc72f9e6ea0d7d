"""Market data sources. Each yields `MarketData` steps in time order; one module per source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from runner.domain import MarketData


class Feed(Protocol):
    """A time-ordered source of market data steps."""

    interval: str
    symbols: tuple[str, ...]
    total_steps: int | None  # None for an endless feed
    skipped_rows: int  # bad rows dropped while loading (on_bad_rows: skip)
    live: bool  # timestamps are wall-clock time, so candles may close by the clock (grace)

    def __iter__(self) -> Iterator[MarketData]:
        """Yield one step per bar time, carrying each symbol that has a closed bar then."""
