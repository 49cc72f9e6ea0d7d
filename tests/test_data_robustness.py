"""Hostile and odd data files: each gives a clear bad-row report or the right bars, never a
traceback or a silently wrong time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from runner.bars import CandleAggregator
from runner.domain import Bar
from runner.errors import DataError
from runner.feeds.replay import load_replay

HEADER = "timestamp,open,high,low,close,volume"


def rows(times, price="10") -> str:
    return "\n".join(f"{t},{price},{price},{price},{price},5" for t in times)


def load(tmp_path, text, name="AAA.csv", encoding="utf-8", **options):
    (tmp_path / name).write_bytes(text.encode(encoding))
    return load_replay("csv", tmp_path, path=name, **options)


def times_of(feed):
    return [step.timestamp for step in feed]


def problems(tmp_path, text, **options) -> str:
    with pytest.raises(DataError) as error:
        load(tmp_path, text, **options)
    return str(error.value)


def test_infinite_prices_are_bad_rows(tmp_path):
    text = HEADER + "\n2024-01-02T10:00:00Z,10,inf,9,10,5\n2024-01-02T10:01:00Z,10,11,9,10,5\n"
    assert "AAA.csv:2: column high: high must be finite, got inf" in problems(tmp_path, text)


def test_eight_digit_numbers_are_dates(tmp_path):
    feed = load(tmp_path, "date,close\n20240102,10\n20240103,11\n")
    assert times_of(feed) == [datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)]


def test_one_huge_epoch_value_does_not_change_the_unit_of_the_others(tmp_path):
    text = "timestamp,close\n1704189600,10\n1704189660,11\n1e30,12\n1704189780,13\n"
    message = problems(tmp_path, text)
    assert "AAA.csv:4: column timestamp: timestamp not understood: 1e+30" in message
    assert "1 bad row " in message
    feed = load(tmp_path, text, on_bad_rows="skip")
    assert times_of(feed)[0] == datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def test_dates_far_outside_market_history_are_bad_rows(tmp_path):
    text = HEADER + "\n" + rows(["2024-01-02T10:00:00Z", "9999-12-31T00:00:00Z", "2024-01-02T10:02:00Z"])
    assert "AAA.csv:3: column timestamp: timestamp not understood: '9999-12-31T00:00:00Z'" in problems(tmp_path, text)


def test_a_single_mistyped_future_date_blames_only_that_row(tmp_path):
    times = [f"2024-01-02T10:0{m}:00Z" for m in range(6)]
    times[2] = "2042-01-02T10:02:00Z"
    message = problems(tmp_path, HEADER + "\n" + rows(times))
    assert "1 bad row " in message
    assert "AAA.csv:4: column timestamp: timestamp 2042-01-02T10:02:00+00:00 is later than the next row's (out of order)" in message


def test_a_missing_symbol_in_a_long_file_is_a_bad_row(tmp_path):
    text = "timestamp,symbol,close\n2024-01-02T10:00:00Z,AAA,10\n2024-01-02T10:00:00Z,,11\n2024-01-02T10:01:00Z,AAA,12\n"
    assert "AAA.csv:3: column symbol: symbol is missing" in problems(tmp_path, text)


def test_rows_less_than_a_second_apart_are_refused_clearly(tmp_path):
    text = "timestamp,close\n2024-01-02T10:00:00.000Z,10\n2024-01-02T10:00:00.500Z,11\n"
    assert "rows are 0.5 s apart" in problems(tmp_path, text)


@pytest.mark.parametrize(("text", "encoding"), [
    ("timestamp;open;high;low;close;volume\n2024-01-02T10:00:00Z;10;11;9;10;5\n2024-01-02T10:01:00Z;10;11;9;10;5\n", "utf-8"),
    ("timestamp\topen\thigh\tlow\tclose\tvolume\n2024-01-02T10:00:00Z\t10\t11\t9\t10\t5\n2024-01-02T10:01:00Z\t10\t11\t9\t10\t5\n", "utf-8"),
    ("timestamp,open,high,low,close,volume,note\n2024-01-02T10:00:00Z,10,11,9,10,5,caf\u00e9\n2024-01-02T10:01:00Z,10,11,9,10,5,x\n", "latin-1"),
    ("timestamp,open,high,low,close,volume\n2024-01-02T10:00:00Z,10,11,9,10,5\n2024-01-02T10:01:00Z,10,11,9,10,5\n", "utf-16"),
])
def test_other_separators_and_encodings_are_read(tmp_path, text, encoding):
    feed = load(tmp_path, text, encoding=encoding)
    assert [float(step["AAA"].high) for step in feed] == [11.0, 11.0]


def test_day_first_dates_are_read_with_one_format_for_the_whole_column(tmp_path):
    feed = load(tmp_path, "date,close\n13/02/2024,10\n14/02/2024,11\n")
    assert times_of(feed) == [datetime(2024, 2, 13, tzinfo=UTC), datetime(2024, 2, 14, tzinfo=UTC)]


def test_epoch_numbers_written_as_text_with_one_bad_cell(tmp_path):
    text = "timestamp,close\n1704189600,10\n1704189660,11\nnever,12\n1704189780,13\n1704189840,14\n1704189900,15\n1704189960,16\n1704190020,17\n1704190080,18\n1704190140,19\n"
    message = problems(tmp_path, text)
    assert message.count("timestamp not understood") == 1 and "AAA.csv:4" in message


def test_parquet_with_a_symbol_and_time_index(tmp_path):
    frame = pd.DataFrame({
        "symbol": ["AAA", "AAA", "BBB"],
        "timestamp": pd.to_datetime(["2024-01-02 10:00", "2024-01-02 10:01", "2024-01-02 10:00"], utc=True),
        "close": [10.0, 11.0, 20.0],
    }).set_index(["symbol", "timestamp"])
    frame.to_parquet(tmp_path / "all.parquet")
    feed = load_replay("parquet", tmp_path, path="all.parquet")
    assert feed.symbols == ("AAA", "BBB") and feed.total_steps == 2


def test_a_derived_interval_equal_to_the_data_is_the_data_itself(tmp_path):
    from runner.bootstrap import build
    from runner.config import load_config_text

    (tmp_path / "AAA.csv").write_text(HEADER + "\n" + rows([f"2024-01-02T10:0{m}:00Z" for m in range(5)]))
    config = load_config_text(
        f"market_data: {{source: csv, path: AAA.csv, derived_intervals: [1m, 60s]}}\n"
        f"storage: {{url: 'sqlite:///{tmp_path / 'r.db'}'}}\n"
        "strategies: [{type: buy_and_hold, interval: 60s}]\n", str(tmp_path / "c.yaml"),
    )
    summary = build(config).run()
    assert summary.status == "completed" and summary.strategies[0].calls == 5


def test_seven_minute_candles_start_at_midnight_and_never_cross_it():
    aggregator = CandleAggregator("7m", "1m", "UTC")
    start = datetime(2024, 1, 2, 23, 50, tzinfo=UTC)
    closed = []
    for minute in range(20):
        stamp = start + timedelta(minutes=minute)
        price = Decimal(10 + minute)
        closed += aggregator.update(stamp, [Bar("AAA", stamp, price, price, price, price, Decimal(1))])
    labels = [(c.timestamp.strftime("%d %H:%M"), c.volume) for c in closed]
    # 23:48-23:55 is partial at the start of the data; 23:55-00:00 is cut at midnight (5 bars);
    # the next day counts again from 00:00.
    assert labels[:3] == [("02 23:48", 5), ("02 23:55", 5), ("03 00:00", 7)]
