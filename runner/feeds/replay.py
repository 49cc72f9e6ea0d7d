"""Replay of OHLCV files: several symbols aligned by timestamp, one step per distinct time.

Files are read in bulk with pandas into arrays, checked row by row (see quality.py), merged and
sorted once; iteration then walks plain arrays in chunks, so memory stays near one copy of
the data and no pandas object is made per bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from runner.domain import Bar, MarketData
from runner.errors import DataError
from runner.feeds.quality import bad_rows, report
from runner.feeds.tables import OhlcvTable, read_table
from runner.intervals import interval_seconds

CHUNK_ROWS = 65_536
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class ReplayFeed:
    """Steps through the rows of several symbols in time order.

    Args:
        series: symbol -> its rows (already checked).
        interval: the interval of the rows.
        price_precision: round prices to this many decimals; None keeps them as written.
        skipped_rows: how many bad rows were dropped while loading (reported in the summary).
    """

    def __init__(
        self, series: dict[str, OhlcvTable], interval: str, price_precision: int | None = None,
        skipped_rows: int = 0,
    ):
        self.interval = interval
        self.live = False
        self.symbols = tuple(series)
        self.skipped_rows = skipped_rows
        self.price_precision = price_precision
        self.files = tuple(dict.fromkeys(t.path for t in series.values()))  # the files read (run manifest)
        self._decimals: dict[float, Decimal] = {}
        self._volumes: dict[float, Decimal] = {}
        codes = np.concatenate([np.full(len(t), i, dtype=np.int32) for i, t in enumerate(series.values())])
        stamps = np.concatenate([t.timestamp for t in series.values()])
        order = np.lexsort((codes, stamps))
        self._codes = codes[order]
        self._stamps = stamps[order]
        self._columns = [
            np.concatenate([getattr(t, name) for t in series.values()])[order]
            for name in ("open", "high", "low", "close", "volume")
        ]
        self.total_steps = int(np.count_nonzero(np.diff(self._stamps))) + 1 if len(order) else 0
        self.rows = len(order)
        self.first_time = _datetime(int(self._stamps[0])) if len(order) else None
        self.last_time = _datetime(int(self._stamps[-1])) if len(order) else None

    def __iter__(self) -> Iterator[MarketData]:
        symbols, interval, number = self.symbols, self.interval, self._number
        prices, volumes = self._decimals, self._volumes
        bars: dict[str, Bar] = {}
        current = None
        timestamp = None
        for start in range(0, len(self._stamps), CHUNK_ROWS):
            end = start + CHUNK_ROWS
            stamps = self._stamps[start:end].tolist()
            times = self._stamps[start:end].view("datetime64[ns]").astype("datetime64[us]").tolist()  # naive, made in C
            codes = self._codes[start:end].tolist()
            o, h, l, c, v = (column[start:end].tolist() for column in self._columns)
            for i, stamp in enumerate(stamps):
                if stamp != current:
                    if bars:
                        yield MarketData(timestamp, interval, bars)
                    current, timestamp, bars = stamp, times[i].replace(tzinfo=UTC), {}
                symbol = symbols[codes[i]]
                # The decimals are looked up inline: a call per value was a tenth of the loop.
                bars[symbol] = Bar(
                    symbol, timestamp, prices.get(o[i]) or number(o[i]), prices.get(h[i]) or number(h[i]),
                    prices.get(l[i]) or number(l[i]), prices.get(c[i]) or number(c[i]),
                    volumes.get(v[i]) or self._volume(v[i]),
                )
        if bars:
            yield MarketData(timestamp, interval, bars)

    def _number(self, value: float) -> Decimal:
        """The exact decimal a float from the file stands for (as written, or rounded)."""
        number = self._decimals.get(value)
        if number is None:
            if len(self._decimals) > 100_000:  # prices repeat; keep the cache bounded anyway
                self._decimals.clear()
            rounded = value if self.price_precision is None else round(value, self.price_precision)
            number = self._decimals[value] = Decimal(repr(rounded))
        return number

    def _volume(self, value: float) -> Decimal:
        """The exact decimal of a volume from the file (volumes are never rounded)."""
        if len(self._volumes) > 100_000:
            self._volumes.clear()
        number = self._volumes[value] = Decimal(repr(value))
        return number


def load_replay(
    file_format: str, base_dir: Path, *, path: str | None = None, files: dict[str, str] | None = None,
    symbols: list[str] | None = None, interval: str | None = None, timezone: str = "UTC",
    adjusted: bool = False, on_bad_rows: str = "fail", price_precision: int | None = None,
) -> ReplayFeed:
    """Read, check and align the files a replay config names.

    Raises:
        DataError: a file is missing or unreadable, lacks a time or close column, has bad rows
            (with `on_bad_rows: fail`), or holds none of the requested symbols.
    """
    tables = _tables(file_format, base_dir, path, files, symbols, timezone, adjusted)
    failures, skipped, clean = [], 0, []
    for symbol, table in tables:
        if symbol is None and symbols:  # a long file: check only the rows that will be replayed
            table = _only(table, symbols)
        mask, problems = bad_rows(table, price_precision)
        count = int(mask.sum())
        if count and on_bad_rows == "fail":
            failures.append(report(table.path, count, problems))
        elif count:
            skipped += count
            table = table.take(~mask)
        clean.append((symbol, table))
    if failures:
        raise DataError("\n".join(failures))
    series = _by_symbol(clean, symbols)
    if not series:  # a long file without a row
        raise DataError(f"no rows to replay in {', '.join(table.path for _, table in clean)}")
    empty = [f"{symbol} ({table.path})" for symbol, table in series.items() if len(table) == 0]
    if empty:
        raise DataError(f"no rows to replay for {', '.join(empty)}")
    return ReplayFeed(series, _interval(series, interval), price_precision, skipped)


def _tables(file_format, base_dir, path, files, symbols, timezone, adjusted) -> list[tuple[str | None, OhlcvTable]]:
    def read(name: str) -> OhlcvTable:
        file = Path(name)
        return read_table(file if file.is_absolute() else base_dir / file, file_format, timezone, adjusted)

    if files:
        return [(symbol, read(name)) for symbol, name in files.items()]
    if "{symbol}" in path:
        return [(symbol, read(path.replace("{symbol}", symbol))) for symbol in symbols]  # other braces are text
    table = read(path)
    if table.symbol is None:
        if symbols and len(symbols) > 1:
            raise DataError(
                f"{table.path} has no symbol column, so it holds one symbol, but market_data.symbols "
                f"lists {len(symbols)}; use a {{symbol}} pattern or `files` for several files"
            )
        return [(symbols[0] if symbols else Path(path).stem, table)]
    return [(None, table)]


def _only(table: OhlcvTable, wanted: list[str]) -> OhlcvTable:
    """The rows of a long table that belong to the `wanted` symbols, all of which must be there."""
    found = list(dict.fromkeys(table.symbol.tolist()))
    missing = [s for s in wanted if s not in found]
    if missing:
        raise DataError(f"{table.path}: no rows for {', '.join(missing)}; symbols found: {', '.join(found)}")
    return table.take(np.isin(table.symbol, wanted))


def _by_symbol(tables: list[tuple[str | None, OhlcvTable]], wanted: list[str] | None) -> dict[str, OhlcvTable]:
    """Split long tables (symbol None) by their symbol column, in the order of `wanted` if given."""
    series: dict[str, OhlcvTable] = {}
    for symbol, table in tables:
        if symbol is not None:
            series[symbol] = table
            continue
        for name in wanted or list(dict.fromkeys(table.symbol.tolist())):
            series[name] = table.take(table.symbol == name)
    return series


def _interval(series: dict[str, OhlcvTable], configured: str | None) -> str:
    """The rows' interval: the smallest gap between consecutive rows of a symbol, which a
    configured interval must not exceed (two rows can't share one bar)."""
    gaps = np.concatenate([np.diff(np.sort(t.timestamp)) for t in series.values()])
    gaps = gaps[gaps > 0]
    smallest = int(gaps.min()) if len(gaps) else None
    if smallest is not None and smallest % 1_000_000_000:
        raise DataError(
            f"rows are {smallest / 1e9:g} s apart; the runner replays bars of whole seconds or longer"
        )
    if configured is not None:
        if smallest is not None and interval_seconds(configured) * 1_000_000_000 > smallest:
            raise DataError(
                f"market_data.interval is {configured}, but some rows are only "
                f"{_label(smallest // 1_000_000_000)} apart; set it to {_label(smallest // 1_000_000_000)} or leave it out"
            )
        return configured
    if smallest is None:
        raise DataError("cannot tell the interval from a single row per symbol; set market_data.interval")
    return _label(smallest // 1_000_000_000)


def _label(seconds: int) -> str:
    return next(f"{seconds // size}{unit}" for unit, size in _UNITS if seconds % size == 0)


def _datetime(nanoseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanoseconds // 1000)
