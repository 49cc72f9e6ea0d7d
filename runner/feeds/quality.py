"""Checking OHLCV rows before a replay: every bad row is found, named, and either stops the run
or is dropped and counted. Never silently."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from runner.feeds.tables import NAT, OhlcvTable

SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class BadRow:
    """One problem of one row: where it is, which column, what is wrong."""

    path: str
    line_word: str
    line: int
    column: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line_word == "line" else f"{self.path} row {self.line}"
        return f"{where}: column {self.column}: {self.problem}"


def bad_rows(table: OhlcvTable, price_precision: int | None = None) -> tuple[np.ndarray, list[BadRow]]:
    """Return a mask of the bad rows and the problems of the first few of them (in file order);
    with `price_precision`, a price that rounds to 0 is bad too."""
    rules = _rules(table, price_precision)
    bad = np.zeros(len(table), dtype=bool)
    for mask, _, _ in rules:
        bad |= mask
    spikes, behind = _out_of_order(table, ~bad)
    bad |= spikes | behind
    problems = []
    for index in np.flatnonzero(bad)[:SHOWN_PROBLEMS]:
        problems.append(_describe(table, int(index), rules, spikes))
    return bad, problems


def _rules(table: OhlcvTable, price_precision: int | None = None) -> list[tuple[np.ndarray, str, object]]:
    """(mask, column, message maker) for each row rule, in the order they are reported."""
    o, h, l, c, v = table.open, table.high, table.low, table.close, table.volume
    hint = " (not a date and time between 1971 and 2199" + (
        "" if table.timezone == "UTC" else
        f", or a local time that does not exist or repeats at a clock change in {table.timezone}"
    ) + ")"
    present = [(name, getattr(table, name)) for name in ("open", "high", "low", "close", "volume") if name in table.columns]
    with np.errstate(invalid="ignore"):
        rules = [(table.timestamp == NAT, "timestamp", lambda i: f"timestamp not understood: {_written(table.raw_time.iloc[i])}{hint}")]
        if table.symbol is not None:
            rules.append((table.symbol == "", "symbol", lambda i: "symbol is missing"))
        for name, values in present:
            rules.append((np.isnan(values), name, lambda i, n=name: f"{n} is missing or not a number"))
            rules.append((np.isinf(values), name, lambda i, n=name, x=values: f"{n} must be finite, got {_text(x[i])}"))
        for name, values in present:
            if name != "volume":
                rules.append((values <= 0, name, lambda i, n=name, x=values: f"{n} must be positive, got {_text(x[i])}"))
                if price_precision is not None:
                    rules.append((_rounds_to_zero(values, price_precision), name, lambda i, n=name, x=values: (
                        f"{n} {_text(x[i])} rounds to 0 at market_data.price_precision {price_precision}"
                    )))
        for name in ("open", "high", "low"):  # not in the file: the close, scaled by Adj Close / Close
            if name not in table.columns:
                values = getattr(table, name)
                rules.append((~np.isfinite(values), name, lambda i, n=name: (
                    f"{n} cannot be made from the close: the row's unadjusted Close is not a positive number"
                )))
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        rules += [
            (h < l, "high", lambda i: f"high {_text(h[i])} is below low {_text(l[i])}"),
            (h < top, "high", lambda i: f"high {_text(h[i])} is below max(open, close) {_text(top[i])}"),
            (l > bottom, "low", lambda i: f"low {_text(l[i])} is above min(open, close) {_text(bottom[i])}"),
            (v < 0, "volume", lambda i: f"volume must not be negative, got {_text(v[i])}"),
        ]
    return rules


def _rounds_to_zero(values: np.ndarray, places: int) -> np.ndarray:
    """Positive prices that the replay's rounding (Python's `round`) turns into 0."""
    mask = np.zeros(len(values), dtype=bool)
    small = np.flatnonzero((values > 0) & (values < 10.0 ** -places))
    mask[small] = [round(float(values[i]), places) == 0 for i in small]
    return mask


def _text(value: float) -> str:
    return f"{float(value):g}"


def _written(value: object) -> str:
    """A cell as the file had it: text quoted, numbers plain."""
    value = value.item() if hasattr(value, "item") else value
    return repr(value) if isinstance(value, str) else str(value)


def _out_of_order(table: OhlcvTable, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows out of time order, per symbol: a lone row dated after its next neighbour while its
    neighbours are in order (a typo: only that row is blamed), and rows that do not come after
    every earlier row (repeated or going back)."""
    spikes = np.zeros(len(table), dtype=bool)
    behind = np.zeros(len(table), dtype=bool)
    groups = [np.arange(len(table))] if table.symbol is None else [
        np.flatnonzero(table.symbol == symbol) for symbol in pd.unique(table.symbol)
    ]
    for rows in groups:
        rows = rows[usable[rows]]
        if len(rows) < 2:
            continue
        stamps = table.timestamp[rows]
        before = np.concatenate(([np.iinfo(np.int64).min], stamps[:-2]))
        lone = (stamps[:-1] > stamps[1:]) & (before < stamps[1:])
        spikes[rows[:-1][lone]] = True
        kept = rows[~spikes[rows]]
        kept_stamps = table.timestamp[kept]
        if len(kept) > 1:
            latest_before = np.maximum.accumulate(kept_stamps)[:-1]
            behind[kept[1:][kept_stamps[1:] <= latest_before]] = True
    return spikes, behind


def _describe(table: OhlcvTable, index: int, rules, spikes: np.ndarray) -> BadRow:
    for mask, column, message in rules:
        if mask[index]:
            return BadRow(table.path, table.line_word, int(table.line[index]), column, message(index))
    stamp = pd.Timestamp(int(table.timestamp[index]), tz="UTC").isoformat()
    problem = (
        f"timestamp {stamp} is later than the next row's (out of order)" if spikes[index]
        else f"timestamp {stamp} repeats or goes back before an earlier row"
    )
    return BadRow(table.path, table.line_word, int(table.line[index]), "timestamp", problem)


def report(path: str, count: int, problems: list[BadRow]) -> str:
    """A message naming the first problems and how many more there are."""
    lines = [f"{path}: {count} bad row{'s' if count != 1 else ''} (set market_data.on_bad_rows: skip to drop them)"]
    lines += [f"  {problem}" for problem in problems]
    if count > len(problems):
        lines.append(f"  ... and {count - len(problems)} more")
    return "\n".join(lines)
