"""Reading OHLCV files into plain arrays, whatever layout they come in.

Accepted: column names in any case; a time column named timestamp, date, datetime or time, or
an unnamed first (index) column; epoch seconds, milliseconds, microseconds or nanoseconds, or
date/time strings; Yahoo's `Date,Open,High,Low,Close,Adj Close,Volume`; an optional `symbol`
(or `ticker`) column for one long file of many symbols. Missing open/high/low columns take the
close, a missing volume column reads as 0. Timestamps without a zone are taken in the given
zone; everything comes out as UTC nanoseconds.
"""

from __future__ import annotations

import warnings
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
    columns: frozenset[str]  # the price and volume columns the file really has (close always: maybe as Adj Close)
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
    unadjusted = _numbers(frame[names["close"]]) if "close" in names else close
    # A price column the file lacks is its close, before adjusting like the others.
    prices = {key: _numbers(frame[names[key]]) if key in names else unadjusted for key in PRICE_COLUMNS}
    if adjusted:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # NaN or inf: a bad row
            factor = np.where(prices["close"] > 0, close / prices["close"], np.nan)
            prices = {key: prices[key] * factor for key in ("open", "high", "low")} | {"close": close}
    volume = _numbers(frame[names["volume"]]) if "volume" in names else np.zeros(len(frame))
    symbol_key = next((key for key in SYMBOL_COLUMNS if key in names), None)
    raw_time = frame[time_column]
    return OhlcvTable(
        path=str(path),
        line_word="line" if file_format == "csv" else "row",
        columns=frozenset(key for key in (*PRICE_COLUMNS, "volume") if key in names) | {"close"},  # Adj Close too
        timezone=timezone,
        line=lines,
        timestamp=_utc_nanoseconds(frame[time_column], timezone),
        raw_time=raw_time,
        volume=volume,
        symbol=_symbols(frame[names[symbol_key]]) if symbol_key else None,
        **prices,
    )


def _read_frame(path: Path, file_format: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's rows, and the line (CSV, header = line 1) or row (Parquet) of each."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if file_format == "csv":
            # Blank lines are read as empty rows and then dropped, so line numbers stay true.
            encoding, separator = _sniff(path)
            frame = pd.read_csv(path, skip_blank_lines=False, sep=separator, encoding=encoding)
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
        if not isinstance(frame.index, pd.RangeIndex):  # a time (and symbol) index: make columns
            frame = frame.reset_index()
        for column in frame.columns:  # Arrow decodes text lazily: bad UTF-8 must fail here, as a DataError
            if pd.api.types.is_string_dtype(frame[column].dtype):
                frame[column].to_numpy()
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


def _sniff(path: Path) -> tuple[str, str]:
    """The encoding (UTF-8, UTF-16 with a byte-order mark, else Latin-1) and the separator
    (the most frequent of , ; tab | in the header line) of a CSV file."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        try:
            head.decode("utf-8")
            encoding = "utf-8-sig"
        except UnicodeDecodeError as exc:
            encoding = "utf-8-sig" if exc.start > len(head) - 4 else "latin-1"
    header = head.decode(encoding.replace("-sig", ""), errors="replace").lstrip("\ufeff").splitlines()[:1]
    counts = {sep: header[0].count(sep) for sep in (",", ";", "\t", "|")} if header else {}
    separator = max(counts, key=counts.get) if counts and max(counts.values()) else ","
    return encoding, separator


def _symbols(column: pd.Series) -> np.ndarray:
    """The symbol column as strings; an empty cell becomes "" (reported as a bad row)."""
    return column.astype(object).fillna("").astype(str).str.strip().to_numpy(dtype=object)


def _listing(frame: pd.DataFrame) -> str:
    return ", ".join(str(column) for column in frame.columns) or "(none)"


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


EPOCH_UNITS = ((1e17, 1), (1e14, 1_000), (1e11, 1_000_000))  # ns, us, ms; else seconds
# Times outside these bounds are data errors (a unit misread, a typo), not market data.
EARLIEST = np.datetime64("1971-01-01", "ns").astype(np.int64)
LATEST = np.datetime64("2200-01-01", "ns").astype(np.int64)


def _utc_nanoseconds(column: pd.Series, timezone: str) -> np.ndarray:
    """Parse a time column into int64 UTC nanoseconds (NAT where a value is not understood).

    Numbers (or numeric text) are epoch seconds, milliseconds, microseconds or nanoseconds,
    the unit told from the typical value; eight-digit numbers such as 20240102 are dates.
    Text is ISO 8601, or any other one format pandas recognises for the whole column.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        zoned = column.dt.tz is not None
        result = _as_utc(column if zoned else _localize(column, timezone))
    else:
        numbers = pd.to_numeric(column, errors="coerce") if not pd.api.types.is_bool_dtype(column) else None
        if numbers is not None and numbers.notna().mean() >= 0.9:
            result = _from_numbers(numbers.to_numpy(dtype=np.float64, na_value=np.nan), timezone)
        else:
            result = _from_text(column.astype("string"), timezone)
    result[(result != NAT) & ((result < EARLIEST) | (result >= LATEST))] = NAT
    return result


def _from_numbers(values: np.ndarray, timezone: str) -> np.ndarray:
    finite = np.isfinite(values)
    typical = float(np.median(np.abs(values[finite]))) if finite.any() else 0.0
    if 19_000_000 <= typical < 30_000_000 and np.all(values[finite] == np.floor(values[finite])):
        text = pd.Series(np.where(finite, values, 0).astype(np.int64).astype(str))
        result = _as_utc(_localize(pd.to_datetime(text, format="%Y%m%d", errors="coerce"), timezone))
        result[~finite] = NAT
        return result
    factor = next((f for limit, f in EPOCH_UNITS if typical >= limit), 1_000_000_000)
    result = np.full(len(values), NAT, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = values * factor
    usable = finite & (np.abs(scaled) < 9.2e18)
    result[usable] = np.round(scaled[usable]).astype(np.int64)
    return result


def _from_text(text: pd.Series, timezone: str) -> np.ndarray:
    try:
        parsed = _parse(text, utc=False)
    except ValueError:  # zones differ from row to row, or some rows have none: split them
        return _mixed_zones(text, timezone)
    return _as_utc(parsed if parsed.dt.tz is not None else _localize(parsed, timezone))


def _mixed_zones(text: pd.Series, timezone: str) -> np.ndarray:
    # A zone counts only after a time of day, so the "-2024" of "01-02-2024" is no offset.
    has_zone = text.str.contains(
        r"\d:\d\d(?::\d\d(?:\.\d+)?)?\s*(?:Z|[+-]\d\d:?\d\d)$", regex=True
    ).fillna(False).to_numpy(dtype=bool)
    result = np.full(len(text), NAT, dtype=np.int64)
    if has_zone.any():
        result[has_zone] = _as_utc(_parse(text[has_zone], utc=True))
    if (~has_zone).any():
        result[~has_zone] = _as_utc(_localize(_parse(text[~has_zone], utc=False), timezone))
    return result


def _parse(text: pd.Series, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
    if parsed.isna().mean() > 0.5:  # not ISO 8601: one format, inferred from the column, for all
        with warnings.catch_warnings():  # pandas says which format it chose; the rows show it
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(text, errors="coerce", utc=utc)
    return parsed


def _localize(parsed: pd.Series, timezone: str) -> pd.Series:
    """Read naive times in `timezone`; a time repeated at a DST change is told apart by the
    order of the rows when it can be, and a time that does not exist is not understood."""
    try:
        return parsed.dt.tz_localize(timezone, ambiguous="infer", nonexistent="NaT")
    except Exception:  # noqa: BLE001 - pandas cannot infer (unsorted rows): those times stay unknown
        return parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")


def _as_utc(parsed: pd.Series) -> np.ndarray:
    missing = parsed.isna().to_numpy()
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        values = naive.astype("datetime64[ns]").to_numpy().view(np.int64).copy()
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):  # years past 2262
        values = np.array([
            NAT if pd.isna(v) or not (1678 < v.year < 2262) else pd.Timestamp(v).as_unit("ns").value
            for v in naive
        ], dtype=np.int64)
    values[missing] = NAT
    return values
