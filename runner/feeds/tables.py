"""Reading OHLCV files into plain arrays, whatever layout they come in.

Accepted: column names in any case; a time column named timestamp, date, datetime or time, or
an unnamed first (index) column; epoch seconds, milliseconds, microseconds or nanoseconds, or
date/time strings; Yahoo's `Date,Open,High,Low,Close,Adj Close,Volume`; an optional `symbol`
(or `ticker`) column for one long file of many symbols. Missing open/high/low columns take the
close, a missing volume column reads as 0. Timestamps without a zone are taken in the given
zone; everything comes out as UTC nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from runner.errors import DataError

TIME_COLUMNS = ("timestamp", "date", "datetime", "time")
SYMBOL_COLUMNS = ("symbol", "ticker")
ADJ_CLOSE_COLUMNS = ("adj close", "adj_close", "adjclose", "adjusted close", "adjusted_close")
PRICE_COLUMNS = ("open", "high", "low", "close")
NAT = np.iinfo(np.int64).min


@dataclass
class OhlcvTable:
    """The rows of one file as arrays; `line` is where each row sits in the file."""

    path: str
    line_word: str  # "line" for CSV, "row" for Parquet
    columns: frozenset[str]  # the price and volume columns the file really has
    timezone: str
    line: np.ndarray
    timestamp: np.ndarray  # int64 UTC nanoseconds; NAT where not understood
    raw_time: pd.Series  # the time column as written, for messages
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.timestamp)

    def take(self, mask: np.ndarray) -> OhlcvTable:
        """The rows where `mask` is true."""
        return OhlcvTable(
            self.path, self.line_word, self.columns, self.timezone, self.line[mask],
            self.timestamp[mask], self.raw_time[mask].reset_index(drop=True),
            self.open[mask], self.high[mask], self.low[mask], self.close[mask], self.volume[mask],
            None if self.symbol is None else self.symbol[mask],
        )


def read_table(path: Path, file_format: str, timezone: str, adjusted: bool = False) -> OhlcvTable:
    """Read one CSV or Parquet file into an `OhlcvTable`.

    Raises:
        DataError: the file is missing or unreadable, or has no usable time or close column.
    """
    frame, lines = _read_frame(path, file_format)
    names = {str(column).strip().lower(): column for column in frame.columns}
    time_column = _time_column(frame, names, path)
    close_key = "close"
    if adjusted:
        close_key = next((key for key in ADJ_CLOSE_COLUMNS if key in names), None)
        if close_key is None:
            raise DataError(
                f"{path}: market_data.adjusted is true but there is no Adj Close column; "
                f"found columns: {_listing(frame)}"
            )
    if close_key not in names:
        raise DataError(f"{path}: no close column; found columns: {_listing(frame)}")
    close = _numbers(frame[names[close_key]])
    prices = {key: _numbers(frame[names[key]]) if key in names else close for key in PRICE_COLUMNS}
    if adjusted:
        factor = close / prices["close"]
        prices = {key: prices[key] * factor for key in ("open", "high", "low")} | {"close": close}
    volume = _numbers(frame[names["volume"]]) if "volume" in names else np.zeros(len(frame))
    symbol_key = next((key for key in SYMBOL_COLUMNS if key in names), None)
    raw_time = frame[time_column]
    return OhlcvTable(
        path=str(path),
        line_word="line" if file_format == "csv" else "row",
        columns=frozenset(key for key in (*PRICE_COLUMNS, "volume") if key in names),
        timezone=timezone,
        line=lines,
        timestamp=_utc_nanoseconds(frame[time_column], timezone),
        raw_time=raw_time,
        volume=volume,
        symbol=frame[names[symbol_key]].astype(str).to_numpy() if symbol_key else None,
        **prices,
    )


def _read_frame(path: Path, file_format: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's rows, and the line (CSV, header = line 1) or row (Parquet) of each."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if file_format == "csv":
            # Blank lines are read as empty rows and then dropped, so line numbers stay true.
            frame = pd.read_csv(path, skip_blank_lines=False)
            lines = np.arange(2, 2 + len(frame), dtype=np.int64)
            blank = frame.isna().all(axis=1).to_numpy()
            if blank.any():
                frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
            return frame, lines
        try:
            import pyarrow  # noqa: F401 - pandas needs it for Parquet
        except ImportError:
            raise DataError(
                "reading Parquet needs pyarrow: install the extra with pip install -e '.[parquet]'"
            ) from None
        frame = pd.read_parquet(path)
        if isinstance(frame.index, pd.DatetimeIndex) or frame.index.name:
            frame = frame.reset_index()
        return frame, np.arange(1, 1 + len(frame), dtype=np.int64)
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {file_format} file {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for corrupt files
        raise DataError(f"cannot read {file_format} file {path}: {type(exc).__name__}: {exc}") from None


def _time_column(frame: pd.DataFrame, names: dict[str, object], path: Path) -> object:
    for key in TIME_COLUMNS:
        if key in names:
            return names[key]
    if len(frame.columns):
        first = frame.columns[0]
        unnamed = str(first).strip().lower() in ("", "index") or str(first).startswith("Unnamed: 0")
        if unnamed or pd.api.types.is_datetime64_any_dtype(frame[first]):
            return first
    raise DataError(
        f"{path}: no time column; expected one named {', '.join(TIME_COLUMNS)}, or an unnamed "
        f"first column; found columns: {_listing(frame)}"
    )


def _listing(frame: pd.DataFrame) -> str:
    return ", ".join(str(column) for column in frame.columns) or "(none)"


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


_EPOCH_UNITS = ((1e17, 1), (1e14, 1_000), (1e11, 1_000_000))  # ns, us, ms; else seconds


def _utc_nanoseconds(column: pd.Series, timezone: str) -> np.ndarray:
    """Parse a time column (epoch numbers or date strings) into int64 UTC nanoseconds."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        largest = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
        factor = next((f for limit, f in _EPOCH_UNITS if largest >= limit), 1_000_000_000)
        result = np.full(len(values), NAT, dtype=np.int64)
        finite = np.isfinite(values)
        result[finite] = np.round(values[finite] * factor).astype(np.int64)
        return result
    if pd.api.types.is_datetime64_any_dtype(column):
        zoned = column.dt.tz is not None
        return _as_utc(column if zoned else column.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT"))
    text = column.astype("string")
    try:
        parsed = _parse(text, utc=False)
    except ValueError:  # zones differ from row to row, or some rows have none: split them
        return _mixed_zones(text, timezone)
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    return _as_utc(parsed)


def _mixed_zones(text: pd.Series, timezone: str) -> np.ndarray:
    # A zone counts only after a time of day, so the "-2024" of "01-02-2024" is no offset.
    has_zone = text.str.contains(
        r"\d:\d\d(?::\d\d(?:\.\d+)?)?\s*(?:Z|[+-]\d\d:?\d\d)$", regex=True
    ).fillna(False).to_numpy(dtype=bool)
    result = np.full(len(text), NAT, dtype=np.int64)
    if has_zone.any():
        result[has_zone] = _as_utc(_parse(text[has_zone], utc=True))
    if (~has_zone).any():
        naive = _parse(text[~has_zone], utc=False)
        result[~has_zone] = _as_utc(naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT"))
    return result


def _parse(text: pd.Series, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
    if parsed.isna().mean() > 0.5:  # not ISO 8601: let pandas infer each value (slower)
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=utc)
    return parsed


def _as_utc(parsed: pd.Series) -> np.ndarray:
    utc = parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    result = utc.to_numpy().view(np.int64).copy()
    result[parsed.isna().to_numpy()] = NAT
    return result
