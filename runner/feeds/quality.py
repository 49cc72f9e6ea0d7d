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


def bad_rows(table: OhlcvTable) -> tuple[np.ndarray, list[BadRow]]:
    """Return a mask of the bad rows and the problems of the first few of them (in file order)."""
    rules = _rules(table)
    bad = np.zeros(len(table), dtype=bool)
    for mask, _, _ in rules:
        bad |= mask
    bad |= _not_increasing(table, ~bad)
    problems = []
    for index in np.flatnonzero(bad)[:SHOWN_PROBLEMS]:
        problems.append(_describe(table, int(index), rules))
    return bad, problems


def _rules(table: OhlcvTable) -> list[tuple[np.ndarray, str, object]]:
    """(mask, column, message maker) for each row rule, in the order they are reported."""
    o, h, l, c, v = table.open, table.high, table.low, table.close, table.volume
    hint = "" if table.timezone == "UTC" else (
        f" (not a date and time, or a local time that does not exist or repeats at a clock "
        f"change in {table.timezone})"
    )
    present = [(name, getattr(table, name)) for name in ("open", "high", "low", "close", "volume") if name in table.columns]
    with np.errstate(invalid="ignore"):
        rules = [(table.timestamp == NAT, "timestamp", lambda i: f"timestamp not understood: {table.raw_time.iloc[i]!r}{hint}")]
        for name, values in present:
            rules.append((np.isnan(values), name, lambda i, n=name: f"{n} is missing or not a number"))
        for name, values in present:
            if name != "volume":
                rules.append((values <= 0, name, lambda i, n=name, x=values: f"{n} must be positive, got {x[i]:g}"))
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        rules += [
            (h < l, "high", lambda i: f"high {h[i]:g} is below low {l[i]:g}"),
            (h < top, "high", lambda i: f"high {h[i]:g} is below max(open, close) {top[i]:g}"),
            (l > bottom, "low", lambda i: f"low {l[i]:g} is above min(open, close) {bottom[i]:g}"),
            (v < 0, "volume", lambda i: f"volume must not be negative, got {v[i]:g}"),
        ]
    return rules


def _not_increasing(table: OhlcvTable, usable: np.ndarray) -> np.ndarray:
    """Rows whose timestamp does not come after every earlier usable row of the same symbol."""
    result = np.zeros(len(table), dtype=bool)
    groups = [np.arange(len(table))] if table.symbol is None else [
        np.flatnonzero(table.symbol == symbol) for symbol in pd.unique(table.symbol)
    ]
    for rows in groups:
        rows = rows[usable[rows]]
        if len(rows) < 2:
            continue
        stamps = table.timestamp[rows]
        latest_before = np.maximum.accumulate(stamps)[:-1]
        result[rows[1:][stamps[1:] <= latest_before]] = True
    return result


def _describe(table: OhlcvTable, index: int, rules) -> BadRow:
    for mask, column, message in rules:
        if mask[index]:
            return BadRow(table.path, table.line_word, int(table.line[index]), column, message(index))
    stamp = pd.Timestamp(int(table.timestamp[index]), tz="UTC").isoformat()
    return BadRow(
        table.path, table.line_word, int(table.line[index]), "timestamp",
        f"timestamp {stamp} repeats or goes back before an earlier row",
    )


def report(path: str, count: int, problems: list[BadRow]) -> str:
    """A message naming the first problems and how many more there are."""
    lines = [f"{path}: {count} bad row{'s' if count != 1 else ''} (set market_data.on_bad_rows: skip to drop them)"]
    lines += [f"  {problem}" for problem in problems]
    if count > len(problems):
        lines.append(f"  ... and {count - len(problems)} more")
    return "\n".join(lines)
