"""Bad rows in replay files: each is named by file, line and column, and either stops the run
or, with `on_bad_rows: skip`, is dropped and counted everywhere the run reports."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from runner.bootstrap import build
from runner.config import load_config_text
from runner.errors import DataError
from runner.feeds.replay import load_replay

HEADER = "timestamp,open,high,low,close,volume"
START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def stamp(minute: int) -> str:
    return (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def good_row(minute: int) -> str:
    price = 10 + minute
    return f"{stamp(minute)},{price},{price + 1},{price - 1},{price + 0.5},1000"


def write_file(folder: Path, rows: list[str], name: str = "AAA.csv", header: str = HEADER) -> Path:
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def with_bad_row(bad: str, at: int = 2, count: int = 6) -> list[str]:
    """`count` good rows with row `at` (0-based; CSV line at + 2) replaced by `bad`."""
    rows = [good_row(minute) for minute in range(count)]
    rows[at] = bad
    return rows


def load(folder: Path, name: str = "AAA.csv", fmt: str = "csv", **options):
    return load_replay(fmt, folder, path=name, **options)


def failure(folder: Path, name: str = "AAA.csv", fmt: str = "csv", **options) -> str:
    with pytest.raises(DataError) as error:
        load(folder, name, fmt, **options)
    return str(error.value)


# Each kind of bad row, written at CSV line 4 (the third data row, minute 2).
BAD_ROWS = [
    ("nan open", f"{stamp(2)},nan,13,11,12.5,1000", "column open: open is missing or not a number"),
    ("empty close", f"{stamp(2)},12,13,11,,1000", "column close: close is missing or not a number"),
    ("text high", f"{stamp(2)},12,abc,11,12.5,1000", "column high: high is missing or not a number"),
    ("text volume", f"{stamp(2)},12,13,11,12.5,lots", "column volume: volume is missing or not a number"),
    ("zero close", f"{stamp(2)},12,13,11,0,1000", "column close: close must be positive, got 0"),
    ("negative low", f"{stamp(2)},12,13,-1,12.5,1000", "column low: low must be positive, got -1"),
    ("negative open", f"{stamp(2)},-12,13,11,12.5,1000", "column open: open must be positive, got -12"),
    ("high below low", f"{stamp(2)},9.5,9,10,9.5,1000", "column high: high 9 is below low 10"),
    ("high below close", f"{stamp(2)},10,10.5,9,11,1000", "column high: high 10.5 is below max(open, close) 11"),
    ("high below open", f"{stamp(2)},12,11.5,9,11,1000", "column high: high 11.5 is below max(open, close) 12"),
    ("low above close", f"{stamp(2)},10,11,9.8,9.5,1000", "column low: low 9.8 is above min(open, close) 9.5"),
    ("low above open", f"{stamp(2)},10,11,10.2,10.5,1000", "column low: low 10.2 is above min(open, close) 10"),
    ("negative volume", f"{stamp(2)},12,13,11,12.5,-5", "column volume: volume must not be negative, got -5"),
    ("duplicate time", f"{stamp(1)},12,13,11,12.5,1000",
     f"column timestamp: timestamp {START + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}+00:00 repeats or goes back"),
    ("time going back", f"{stamp(0)},12,13,11,12.5,1000",
     f"column timestamp: timestamp {START:%Y-%m-%dT%H:%M:%S}+00:00 repeats or goes back"),
    ("unparseable time", "not-a-time,12,13,11,12.5,1000", "column timestamp: timestamp not understood: 'not-a-time'"),
    ("impossible date", "2024-02-30T14:32:00Z,12,13,11,12.5,1000",
     "column timestamp: timestamp not understood: '2024-02-30T14:32:00Z'"),
]


@pytest.mark.parametrize(("row", "problem"), [case[1:] for case in BAD_ROWS], ids=[case[0] for case in BAD_ROWS])
def test_each_kind_of_bad_row_is_named_with_its_line_and_column(tmp_path, row, problem):
    write_file(tmp_path, with_bad_row(row))
    message = failure(tmp_path)
    assert "AAA.csv: 1 bad row (set market_data.on_bad_rows: skip to drop them)" in message
    assert f"AAA.csv:4: {problem}" in message
    assert len(message.splitlines()) == 2  # the count, the one bad row, no "... and N more"


def test_the_message_pinned_in_the_docs(tmp_path):
    write_file(tmp_path, with_bad_row(f"{stamp(2)},9.5,9,10,9.5,1000"))
    assert "AAA.csv:4: column high: high 9 is below low 10" in failure(tmp_path)


def test_a_bad_row_at_the_first_and_last_lines(tmp_path):
    rows = with_bad_row(f"{stamp(0)},10,11,9,10.5,-1", at=0)
    rows[-1] = f"{stamp(5)},15,16,14,0,1000"
    write_file(tmp_path, rows)
    message = failure(tmp_path)
    assert "AAA.csv: 2 bad rows" in message
    assert "AAA.csv:2: column volume: volume must not be negative, got -1" in message
    assert "AAA.csv:7: column close: close must be positive, got 0" in message


def test_problems_are_listed_in_file_order_with_the_time_order_ones_in_place(tmp_path):
    rows = [good_row(minute) for minute in range(6)]
    rows[1] = f"{stamp(1)},11,12,10,11.5,-3"  # line 3
    rows[3] = f"{stamp(2)},13,14,12,13.5,1000"  # line 5: repeats line 4's time
    write_file(tmp_path, rows)
    lines = failure(tmp_path).splitlines()
    assert lines[1].endswith("AAA.csv:3: column volume: volume must not be negative, got -3")
    assert "AAA.csv:5: column timestamp:" in lines[2] and "repeats or goes back" in lines[2]


def test_more_than_five_bad_rows_shows_five_and_counts_the_rest(tmp_path):
    rows = [good_row(minute) for minute in range(12)]
    for index in (1, 2, 4, 5, 7, 8, 10, 11):  # 8 bad rows: lines 3, 4, 6, 7, 9, 10, 12, 13
        rows[index] = f"{stamp(index)},10,11,9,10.5,-{index}"
    write_file(tmp_path, rows)
    message = failure(tmp_path)
    lines = message.splitlines()
    assert "AAA.csv: 8 bad rows" in lines[0]
    assert [line.strip().split(": column")[0].rsplit(":", 1)[1] for line in lines[1:6]] == ["3", "4", "6", "7", "9"]
    assert lines[6].strip() == "... and 3 more"
    assert len(lines) == 7
    assert "AAA.csv:10:" not in message


def test_exactly_five_bad_rows_have_no_more_line(tmp_path):
    rows = [good_row(minute) for minute in range(8)]
    for index in range(5):
        rows[index] = f"{stamp(index)},10,11,9,10.5,-1"
    write_file(tmp_path, rows)
    message = failure(tmp_path)
    assert "AAA.csv: 5 bad rows" in message
    assert "more" not in message


def test_every_failing_file_is_reported_at_once(tmp_path):
    write_file(tmp_path, with_bad_row(f"{stamp(2)},12,13,11,12.5,-5"), "AAA.csv")
    write_file(tmp_path, with_bad_row(f"{stamp(3)},12,13,11,0,1000", at=3), "BBB.csv")
    with pytest.raises(DataError) as error:
        load_replay("csv", tmp_path, path="{symbol}.csv", symbols=["AAA", "BBB"])
    message = str(error.value)
    assert "AAA.csv:4: column volume" in message
    assert "BBB.csv:5: column close: close must be positive, got 0" in message


def test_parquet_rows_are_counted_from_one(tmp_path):
    frame = pd.DataFrame({
        "timestamp": pd.date_range(START, periods=4, freq="1min"),
        "open": [10.0, 11, 9.5, 13], "high": [11.0, 12, 9, 14], "low": [9.0, 10, 10, 12],
        "close": [10.5, 11.5, 9.5, 13.5], "volume": [1000] * 4,
    })
    frame.to_parquet(tmp_path / "AAA.parquet")
    message = failure(tmp_path, "AAA.parquet", "parquet")
    assert "AAA.parquet row 3: column high: high 9 is below low 10" in message


def test_a_bad_close_in_a_close_only_file_names_the_close_column(tmp_path):
    # With no open/high/low columns they are copies of the close: the problem is in `close`.
    write_file(tmp_path, [f"{stamp(0)},10", f"{stamp(1)},-1", f"{stamp(2)},11"], header="timestamp,close")
    assert "AAA.csv:3: column close: close must be positive, got -1" in failure(tmp_path)


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "AAA.csv"
    path.write_text(
        f"{HEADER}\n{good_row(0)}\n\n{good_row(1)}\n{stamp(2)},12,13,11,12.5,-5\n", encoding="utf-8"
    )
    # line 1 header, 2 a row, 3 blank, 4 a row, 5 the bad row
    assert "AAA.csv:5: column volume: volume must not be negative, got -5" in failure(tmp_path)


# --- skipping bad rows ------------------------------------------------------------------------


def test_skip_drops_the_bad_rows_and_counts_them(tmp_path):
    rows = [good_row(minute) for minute in range(8)]
    rows[1] = f"{stamp(1)},11,12,10,11.5,-3"
    rows[3] = f"{stamp(2)},13,14,12,13.5,1000"  # repeats minute 2
    rows[5] = "garbage,1,1,1,1,1"
    write_file(tmp_path, rows)
    feed = load(tmp_path, on_bad_rows="skip")
    assert feed.skipped_rows == 3
    assert [step.timestamp for step in feed] == [START + timedelta(minutes=m) for m in (0, 2, 4, 6, 7)]
    assert feed.total_steps == 5


def test_no_bad_rows_skips_nothing(tmp_path):
    write_file(tmp_path, [good_row(minute) for minute in range(4)])
    assert load(tmp_path, on_bad_rows="skip").skipped_rows == 0
    assert load(tmp_path).skipped_rows == 0


def test_skip_counts_across_files(tmp_path):
    write_file(tmp_path, with_bad_row(f"{stamp(2)},12,13,11,12.5,-5"), "AAA.csv")
    bbb = with_bad_row(f"{stamp(3)},12,13,11,0,1000", at=3)
    bbb[4] = f"{stamp(4)},12,11,13,12,1"
    write_file(tmp_path, bbb, "BBB.csv")
    feed = load_replay("csv", tmp_path, path="{symbol}.csv", symbols=["AAA", "BBB"], on_bad_rows="skip")
    assert feed.skipped_rows == 3


def test_a_file_of_only_bad_rows_has_nothing_to_replay(tmp_path):
    write_file(tmp_path, [f"{stamp(m)},10,11,9,10.5,-1" for m in range(3)])
    with pytest.raises(DataError, match="no rows to replay for AAA"):
        load(tmp_path, on_bad_rows="skip")


CONFIG = """\
run: {{mode: data}}
market_data:
  source: csv
  path: AAA.csv
  on_bad_rows: {policy}
storage: {{url: 'sqlite:///{db}'}}
strategies:
  - {{type: buy_and_hold, params: {{quantity: 1}}}}
"""


def test_skipped_rows_reach_the_summary_and_the_run_record(tmp_path):
    rows = [good_row(minute) for minute in range(10)]
    rows[2] = f"{stamp(2)},9.5,9,10,9.5,1000"
    rows[6] = f"{stamp(5)},15,16,14,15.5,1000"  # repeats minute 5
    write_file(tmp_path, rows)
    db = tmp_path / "runs.db"
    runner = build(load_config_text(CONFIG.format(policy="skip", db=db), str(tmp_path / "cfg.yaml")))
    assert runner.feed.skipped_rows == 2
    summary = runner.run()
    assert summary.status == "completed"
    assert summary.steps == 8
    assert summary.skipped_rows == 2
    assert summary.to_dict()["skipped_rows"] == 2
    with sqlite3.connect(db) as connection:
        (text,) = connection.execute("select summary from runs where id = ?", (runner.run_id,)).fetchone()
    assert json.loads(text)["skipped_rows"] == 2


def test_a_clean_run_reports_zero_skipped_rows(tmp_path):
    write_file(tmp_path, [good_row(minute) for minute in range(4)])
    db = tmp_path / "runs.db"
    runner = build(load_config_text(CONFIG.format(policy="fail", db=db), str(tmp_path / "cfg.yaml")))
    summary = runner.run()
    assert summary.skipped_rows == 0 and summary.to_dict()["skipped_rows"] == 0
    with sqlite3.connect(db) as connection:
        (text,) = connection.execute("select summary from runs").fetchone()
    assert json.loads(text)["skipped_rows"] == 0


def test_fail_stops_before_the_run_is_recorded(tmp_path):
    write_file(tmp_path, with_bad_row(f"{stamp(2)},9.5,9,10,9.5,1000"))
    db = tmp_path / "runs.db"
    with pytest.raises(DataError, match="AAA.csv:4: column high: high 9 is below low 10"):
        build(load_config_text(CONFIG.format(policy="fail", db=db), str(tmp_path / "cfg.yaml")))
    assert not db.exists()


# --- one long file with a symbol column -------------------------------------------------------


def long_rows(entries: list[tuple[int, str, float]]) -> list[str]:
    return [f"{stamp(m)},{s},{p},{p + 1},{p - 1},{p},100" for m, s, p in entries]


LONG_HEADER = "timestamp,symbol,open,high,low,close,volume"


def test_the_same_time_for_two_symbols_is_fine(tmp_path):
    write_file(tmp_path, long_rows([(0, "AAA", 10), (0, "BBB", 20), (1, "AAA", 11), (1, "BBB", 21)]),
               "all.csv", LONG_HEADER)
    feed = load(tmp_path, "all.csv")
    assert feed.skipped_rows == 0
    assert [sorted(step) for step in feed] == [["AAA", "BBB"], ["AAA", "BBB"]]


def test_duplicates_are_per_symbol(tmp_path):
    write_file(tmp_path, long_rows([
        (0, "AAA", 10), (0, "BBB", 20), (1, "AAA", 11), (1, "BBB", 21), (1, "AAA", 12), (2, "BBB", 22),
    ]), "all.csv", LONG_HEADER)
    message = failure(tmp_path, "all.csv")
    assert "all.csv: 1 bad row" in message
    assert f"all.csv:6: column timestamp: timestamp {START + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}+00:00 repeats" in message


def test_time_going_back_is_per_symbol(tmp_path):
    # BBB's rows come after AAA's in the file but are in order for BBB: fine. AAA going back is not.
    write_file(tmp_path, long_rows([
        (0, "AAA", 10), (1, "AAA", 11), (2, "AAA", 12), (0, "BBB", 20), (1, "BBB", 21), (1, "AAA", 13),
    ]), "all.csv", LONG_HEADER)
    message = failure(tmp_path, "all.csv")
    assert "all.csv: 1 bad row" in message
    assert "all.csv:7: column timestamp:" in message


def test_skip_in_a_long_file(tmp_path):
    write_file(tmp_path, long_rows([
        (0, "AAA", 10), (0, "BBB", 20), (1, "AAA", 11), (1, "AAA", 12), (1, "BBB", 21), (2, "BBB", -1),
    ]), "all.csv", LONG_HEADER)
    feed = load(tmp_path, "all.csv", on_bad_rows="skip")
    assert feed.skipped_rows == 2
    bars = [(step.timestamp, s, float(b.close)) for step in feed for s, b in step.items()]
    assert bars == [
        (START, "AAA", 10.0), (START, "BBB", 20.0),
        (START + timedelta(minutes=1), "AAA", 11.0), (START + timedelta(minutes=1), "BBB", 21.0),
    ]
