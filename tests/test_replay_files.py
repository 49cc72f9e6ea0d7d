"""Replay files: every accepted layout gives the same bars, and bad input stops with a clear error."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.config import load_config_text
from runner.errors import ConfigError, DataError
from runner.feeds.replay import load_replay

# --- the reference data: six 1-minute bars of one symbol -------------------------------------

TIMES = list(pd.date_range("2024-01-02 14:30", periods=6, freq="1min", tz="UTC"))
OPEN = [100.0, 100.5, 101.0, 100.75, 101.25, 101.5]
HIGH = [o + 1 for o in OPEN]
LOW = [o - 1 for o in OPEN]
CLOSE = [o + 0.25 for o in OPEN]
VOLUME = [1000, 1100, 1200, 1300, 1400, 1500]
ROWS = list(zip(TIMES, OPEN, HIGH, LOW, CLOSE, VOLUME))


def expected(symbol="AAA", volume=True, ohl=True):
    return [
        (t.to_pydatetime(), symbol, o if ohl else c, h if ohl else c, low if ohl else c, c, v if volume else 0.0)
        for t, o, h, low, c, v in ROWS
    ]


def reference_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": TIMES, "open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME,
    })


def bars_of(feed) -> list[tuple]:
    """Every bar of a feed as (timestamp, symbol, open, high, low, close, volume) in floats."""
    return [
        (b.timestamp, b.symbol, float(b.open), float(b.high), float(b.low), float(b.close), float(b.volume))
        for step in feed for b in step.values()
    ]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def csv_text(header: str, times: list[str], columns: str = "ohlcv") -> str:
    """A CSV with the reference prices and the given time texts; `columns` picks o/h/l/c/v."""
    lines = [header]
    for text, (_, o, h, low, c, v) in zip(times, ROWS):
        values = {"o": o, "h": h, "l": low, "c": c, "v": v}
        lines.append(",".join([text] + [repr(values[k]) for k in columns]))
    return "\n".join(lines) + "\n"


ISO_Z = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in TIMES]


def replay(tmp_path, name="AAA.csv", fmt="csv", **options):
    return load_replay(fmt, tmp_path, path=name, **options)


# --- column names and the time column ---------------------------------------------------------


@pytest.mark.parametrize("header", [
    "timestamp,open,high,low,close,volume",
    "Timestamp,Open,High,Low,Close,Volume",
    "TIMESTAMP,OPEN,HIGH,LOW,CLOSE,VOLUME",
    " timestamp , open , high , low , close , volume ",
    "date,open,high,low,close,volume",
    "Date,Open,High,Low,Close,Volume",
    "datetime,open,high,low,close,volume",
    "Datetime,Open,High,Low,Close,Volume",
    "time,open,high,low,close,volume",
    "Time,Open,High,Low,Close,Volume",
    ",open,high,low,close,volume",
])
def test_every_header_layout_gives_the_same_bars(tmp_path, header):
    write(tmp_path / "AAA.csv", csv_text(header, ISO_Z))
    feed = replay(tmp_path)
    assert bars_of(feed) == expected()
    assert feed.symbols == ("AAA",) and feed.interval == "1m"


def test_columns_in_another_order_give_the_same_bars(tmp_path):
    frame = reference_frame()[["volume", "close", "low", "timestamp", "high", "open"]]
    frame.to_csv(tmp_path / "AAA.csv", index=False)
    assert bars_of(replay(tmp_path)) == expected()


def test_pandas_to_csv_with_an_unnamed_index(tmp_path):
    frame = reference_frame().set_index("timestamp")
    frame.index.name = None
    frame.to_csv(tmp_path / "AAA.csv")
    assert (tmp_path / "AAA.csv").read_text().startswith(",open,high")
    assert bars_of(replay(tmp_path)) == expected()


def test_pandas_to_csv_with_a_named_index(tmp_path):
    reference_frame().set_index("timestamp").to_csv(tmp_path / "AAA.csv")
    assert bars_of(replay(tmp_path)) == expected()


def test_missing_volume_reads_zero_and_missing_open_high_low_take_the_close(tmp_path):
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close", ISO_Z, "ohlc"))
    assert bars_of(replay(tmp_path)) == expected(volume=False)
    write(tmp_path / "BBB.csv", csv_text("timestamp,close,volume", ISO_Z, "cv"))
    assert bars_of(replay(tmp_path, "BBB.csv")) == expected("BBB", ohl=False)
    write(tmp_path / "CCC.csv", csv_text("timestamp,close", ISO_Z, "c"))
    assert bars_of(replay(tmp_path, "CCC.csv")) == expected("CCC", volume=False, ohl=False)


def test_a_single_file_is_named_by_its_stem_or_by_the_one_symbol_listed(tmp_path):
    write(tmp_path / "prices.csv", csv_text("timestamp,open,high,low,close,volume", ISO_Z))
    assert {b[1] for b in bars_of(replay(tmp_path, "prices.csv"))} == {"prices"}
    assert bars_of(replay(tmp_path, "prices.csv", symbols=["XYZ"])) == expected("XYZ")


# --- Yahoo and adjusted prices ----------------------------------------------------------------

YAHOO = """\
Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,100.0,110.0,90.0,105.0,52.5,1000
2024-01-03,105.0,108.0,100.0,104.0,104.0,2000
2024-01-04,104.0,120.0,104.0,120.0,60.0,3000
"""
DAYS = [datetime(2024, 1, day, tzinfo=UTC) for day in (2, 3, 4)]


def test_yahoo_layout_uses_close_unless_adjusted(tmp_path):
    write(tmp_path / "SPY.csv", YAHOO)
    feed = replay(tmp_path, "SPY.csv")
    assert feed.interval == "1d"
    assert bars_of(feed) == [
        (DAYS[0], "SPY", 100.0, 110.0, 90.0, 105.0, 1000.0),
        (DAYS[1], "SPY", 105.0, 108.0, 100.0, 104.0, 2000.0),
        (DAYS[2], "SPY", 104.0, 120.0, 104.0, 120.0, 3000.0),
    ]


def test_yahoo_adjusted_takes_adj_close_and_scales_open_high_low(tmp_path):
    write(tmp_path / "SPY.csv", YAHOO)
    got = bars_of(replay(tmp_path, "SPY.csv", adjusted=True))
    want = [
        (DAYS[0], "SPY", 50.0, 55.0, 45.0, 52.5, 1000.0),  # factor 0.5
        (DAYS[1], "SPY", 105.0, 108.0, 100.0, 104.0, 2000.0),  # factor 1
        (DAYS[2], "SPY", 52.0, 60.0, 52.0, 60.0, 3000.0),  # factor 0.5
    ]
    assert [row[:2] for row in got] == [row[:2] for row in want]
    for got_row, want_row in zip(got, want):
        assert got_row[2:] == pytest.approx(want_row[2:], rel=1e-12)


def test_adjusted_through_the_config(tmp_path):
    write(tmp_path / "SPY.csv", YAHOO)
    from runner.bootstrap import load_feed

    config = load_config_text(
        "market_data: {source: csv, path: SPY.csv, adjusted: true}\n"
        "strategies:\n  - {type: buy_and_hold}\n",
        str(tmp_path / "cfg.yaml"),
    )
    closes = [float(b.close) for step in load_feed(config) for b in step.values()]
    assert closes == pytest.approx([52.5, 104.0, 60.0])



def test_price_precision_rounds_adjusted_prices(tmp_path):
    write(tmp_path / "SPY.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n"
          "2024-01-02,3.0,3.3,2.7,3.0,1.0,10\n2024-01-03,3.0,3.0,3.0,3.0,1.0,10\n")
    feed = replay(tmp_path, "SPY.csv", adjusted=True, price_precision=2)
    bar = next(iter(feed))["SPY"]
    # unrounded, the high 3.3 x (1 / 3) would be 1.0999999999999999
    assert (bar.open, bar.high, bar.low, bar.close) == (Decimal(1), Decimal("1.1"), Decimal("0.9"), Decimal(1))

# --- time encodings ---------------------------------------------------------------------------


def test_epoch_seconds_and_milliseconds(tmp_path):
    seconds = [str(int(t.timestamp())) for t in TIMES]
    millis = [str(int(t.timestamp()) * 1000) for t in TIMES]
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", seconds))
    assert bars_of(replay(tmp_path)) == expected()
    write(tmp_path / "BBB.csv", csv_text("time,open,high,low,close,volume", millis))
    assert bars_of(replay(tmp_path, "BBB.csv")) == expected("BBB")


def test_epoch_microseconds_and_nanoseconds(tmp_path):
    micros = [str(int(t.timestamp()) * 1_000_000) for t in TIMES]
    nanos = [str(int(t.timestamp()) * 1_000_000_000) for t in TIMES]
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", micros))
    assert bars_of(replay(tmp_path)) == expected()
    write(tmp_path / "BBB.csv", csv_text("timestamp,open,high,low,close,volume", nanos))
    assert bars_of(replay(tmp_path, "BBB.csv")) == expected("BBB")


def test_iso_strings_with_an_offset_are_converted_to_utc(tmp_path):
    plus_two = [(t + pd.Timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00") for t in TIMES]
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", plus_two))
    assert bars_of(replay(tmp_path)) == expected()
    # the offset overrides the configured zone
    assert bars_of(replay(tmp_path, timezone="America/New_York")) == expected()
    minus_five = [(t - pd.Timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S-05:00") for t in TIMES]
    write(tmp_path / "BBB.csv", csv_text("timestamp,open,high,low,close,volume", minus_five))
    assert bars_of(replay(tmp_path, "BBB.csv")) == expected("BBB")


def test_naive_strings_are_utc_by_default(tmp_path):
    naive = [t.strftime("%Y-%m-%d %H:%M:%S") for t in TIMES]
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", naive))
    assert bars_of(replay(tmp_path)) == expected()


def test_naive_strings_are_taken_in_the_configured_zone_across_dst(tmp_path):
    write(tmp_path / "AAA.csv", (
        "timestamp,close\n"
        "2024-03-08 09:30:00,10\n"  # EST, UTC-5
        "2024-03-08 09:31:00,11\n"
        "2024-03-11 09:30:00,12\n"  # EDT, UTC-4 (DST began on 10 March)
        "2024-03-11 09:31:00,13\n"
        "2024-11-04 09:30:00,14\n"  # EST again (DST ended on 3 November)
    ))
    feed = replay(tmp_path, timezone="America/New_York")
    assert [b[0] for b in bars_of(feed)] == [
        datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
        datetime(2024, 3, 8, 14, 31, tzinfo=UTC),
        datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
        datetime(2024, 3, 11, 13, 31, tzinfo=UTC),
        datetime(2024, 11, 4, 14, 30, tzinfo=UTC),
    ]


def test_naive_dates_in_a_zone_start_at_local_midnight(tmp_path):
    write(tmp_path / "AAA.csv", "Date,Close\n2024-01-02,10\n2024-07-02,11\n")
    got = [b[0] for b in bars_of(replay(tmp_path, timezone="America/New_York", interval="1d"))]
    assert got == [datetime(2024, 1, 2, 5, tzinfo=UTC), datetime(2024, 7, 2, 4, tzinfo=UTC)]


def test_naive_us_style_dates_are_taken_in_the_configured_zone(tmp_path):
    # "01-02-2024" has no zone: it must be read in America/New_York like "2024-01-02" is.
    write(tmp_path / "AAA.csv", "Date,Close\n01-02-2024,10\n01-03-2024,11\n")
    got = [b[0] for b in bars_of(replay(tmp_path, timezone="America/New_York"))]
    assert got == [datetime(2024, 1, 2, 5, tzinfo=UTC), datetime(2024, 1, 3, 5, tzinfo=UTC)]


# --- naming the files -------------------------------------------------------------------------

TWO = {
    "AAA": [("2024-01-02T14:30:00Z", 10.0), ("2024-01-02T14:31:00Z", 11.0), ("2024-01-02T14:32:00Z", 12.0)],
    "BBB": [("2024-01-02T14:30:00Z", 50.0), ("2024-01-02T14:32:00Z", 52.0)],
    "CCC": [("2024-01-02T14:31:00Z", 7.0)],
}


def two_expected(symbols=("AAA", "BBB")):
    rows = [
        (datetime.fromisoformat(t.replace("Z", "+00:00")), s, c, c, c, c, 0.0)
        for s in symbols for t, c in TWO[s]
    ]
    return sorted(rows, key=lambda r: (r[0], symbols.index(r[1])))


def write_per_symbol(folder: Path, symbols=("AAA", "BBB", "CCC")):
    for symbol in symbols:
        write(folder / f"{symbol}.csv", "timestamp,close\n" + "".join(f"{t},{c}\n" for t, c in TWO[symbol]))


def write_long(path: Path, header="timestamp,symbol,close"):
    rows = sorted((t, s, c) for s in TWO for t, c in TWO[s])
    write(path, header + "\n" + "".join(f"{t},{s},{c}\n" for t, s, c in rows))


def test_one_file_per_symbol_with_a_pattern(tmp_path):
    write_per_symbol(tmp_path / "data")
    feed = load_replay("csv", tmp_path, path="data/{symbol}.csv", symbols=["AAA", "BBB"])
    assert feed.symbols == ("AAA", "BBB")
    assert bars_of(feed) == two_expected()


def test_explicit_files_map(tmp_path):
    write_per_symbol(tmp_path / "data")
    (tmp_path / "data" / "AAA.csv").rename(tmp_path / "data" / "first.csv")
    absolute = str(tmp_path / "data" / "BBB.csv")
    feed = load_replay("csv", tmp_path, files={"AAA": "data/first.csv", "BBB": absolute})
    assert feed.symbols == ("AAA", "BBB")
    assert bars_of(feed) == two_expected()


@pytest.mark.parametrize("header", ["timestamp,symbol,close", "Timestamp,Symbol,Close", "date,ticker,close"])
def test_one_long_file_with_a_symbol_column(tmp_path, header):
    write_long(tmp_path / "all.csv", header)
    feed = replay(tmp_path, "all.csv")
    assert set(feed.symbols) == {"AAA", "BBB", "CCC"}
    assert sorted(bars_of(feed), key=lambda r: (r[0], r[1])) == sorted(
        two_expected(("AAA", "BBB", "CCC")), key=lambda r: (r[0], r[1])
    )


def test_a_long_file_filtered_by_symbols(tmp_path):
    write_long(tmp_path / "all.csv")
    feed = replay(tmp_path, "all.csv", symbols=["AAA", "BBB"])
    assert feed.symbols == ("AAA", "BBB")
    assert bars_of(feed) == two_expected()


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    from runner.bootstrap import load_feed

    write_per_symbol(tmp_path / "cfgs" / "data")
    config = load_config_text(
        "market_data: {source: csv, path: 'data/{symbol}.csv', symbols: [AAA, BBB]}\n"
        "strategies:\n  - {type: buy_and_hold}\n",
        str(tmp_path / "cfgs" / "cfg.yaml"),
    )
    assert bars_of(load_feed(config)) == two_expected()


# --- Parquet ----------------------------------------------------------------------------------


def test_parquet_with_the_time_as_a_column(tmp_path):
    reference_frame().to_parquet(tmp_path / "AAA.parquet")
    assert bars_of(replay(tmp_path, "AAA.parquet", "parquet")) == expected()


def test_parquet_with_a_named_datetime_index(tmp_path):
    reference_frame().set_index("timestamp").to_parquet(tmp_path / "AAA.parquet")
    assert bars_of(replay(tmp_path, "AAA.parquet", "parquet")) == expected()


def test_parquet_with_an_unnamed_datetime_index(tmp_path):
    frame = reference_frame().set_index("timestamp")
    frame.index.name = None
    frame.to_parquet(tmp_path / "AAA.parquet")
    assert bars_of(replay(tmp_path, "AAA.parquet", "parquet")) == expected()


def test_parquet_with_naive_times_takes_them_in_the_zone(tmp_path):
    frame = reference_frame()
    frame["timestamp"] = frame["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    frame.to_parquet(tmp_path / "AAA.parquet")
    assert bars_of(replay(tmp_path, "AAA.parquet", "parquet", timezone="America/New_York")) == expected()


def test_parquet_long_file_with_capitalised_columns(tmp_path):
    frame = pd.DataFrame({
        "Date": TIMES * 2, "Symbol": ["AAA"] * 6 + ["BBB"] * 6,
        "Open": OPEN * 2, "High": HIGH * 2, "Low": LOW * 2, "Close": CLOSE * 2, "Volume": VOLUME * 2,
    })
    frame.to_parquet(tmp_path / "all.parquet")
    feed = replay(tmp_path, "all.parquet", "parquet")
    got = bars_of(feed)
    assert [r for r in got if r[1] == "AAA"] == expected("AAA")
    assert [r for r in got if r[1] == "BBB"] == expected("BBB")


# --- the interval -----------------------------------------------------------------------------


def test_interval_is_the_most_common_gap(tmp_path):
    minutes = [0, 5, 10, 15, 30, 35, 40, 60, 65, 125, 130]  # gaps of 15, 20 and 60 minutes
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    write(tmp_path / "AAA.csv", "timestamp,close\n" + "".join(
        f"{(start + pd.Timedelta(minutes=m)).isoformat()},10\n" for m in minutes
    ))
    assert replay(tmp_path).interval == "5m"


@pytest.mark.parametrize(("step", "word"), [(30, "30s"), (3600, "1h"), (7200, "2h"), (86400, "1d"), (90, "90s")])
def test_interval_names(tmp_path, step, word):
    write(tmp_path / "AAA.csv", "timestamp,close\n" + "".join(
        f"{1704205800 + i * step},10\n" for i in range(4)
    ))
    assert replay(tmp_path).interval == word


def test_a_configured_interval_is_used_when_no_rows_are_closer(tmp_path):
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", ISO_Z))
    assert replay(tmp_path, interval="1m").interval == "1m"
    assert replay(tmp_path, interval="30s").interval == "30s"


def test_a_configured_interval_longer_than_the_rows_gap_is_refused(tmp_path):
    """Two rows inside one bar would make candles that overlap."""
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", ISO_Z))
    with pytest.raises(DataError, match="market_data.interval is 5m, but some rows are only 1m apart; set it to 1m or leave it out"):
        replay(tmp_path, interval="5m")


# --- bad input --------------------------------------------------------------------------------


def test_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.csv"):
        replay(tmp_path, "nope.csv")
    write_per_symbol(tmp_path)
    with pytest.raises(DataError, match="data file not found: .*ZZZ.csv"):
        load_replay("csv", tmp_path, path="{symbol}.csv", symbols=["AAA", "ZZZ"])


def test_an_empty_file(tmp_path):
    write(tmp_path / "AAA.csv", "")
    with pytest.raises(DataError, match="cannot read csv file .*AAA.csv"):
        replay(tmp_path)


def test_a_file_with_only_a_header(tmp_path):
    write(tmp_path / "AAA.csv", "timestamp,close\n")
    with pytest.raises(DataError, match="no rows to replay for AAA"):
        replay(tmp_path)


def test_an_unreadable_parquet_file(tmp_path):
    (tmp_path / "AAA.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match="cannot read parquet file .*AAA.parquet"):
        replay(tmp_path, "AAA.parquet", "parquet")


def test_no_time_column_lists_the_columns_found(tmp_path):
    write(tmp_path / "AAA.csv", "when,open,close\n2024-01-02,1,2\n")
    with pytest.raises(DataError) as error:
        replay(tmp_path)
    assert "AAA.csv: no time column" in str(error.value)
    assert "found columns: when, open, close" in str(error.value)


def test_no_close_column_lists_the_columns_found(tmp_path):
    write(tmp_path / "AAA.csv", "timestamp,open,price\n2024-01-02T00:00:00Z,1,2\n")
    with pytest.raises(DataError) as error:
        replay(tmp_path)
    assert "AAA.csv: no close column; found columns: timestamp, open, price" in str(error.value)


def test_adjusted_without_an_adj_close_column(tmp_path):
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", ISO_Z))
    with pytest.raises(DataError) as error:
        replay(tmp_path, adjusted=True)
    message = str(error.value)
    assert "adjusted is true but there is no Adj Close column" in message
    assert "found columns: timestamp, open, high, low, close, volume" in message


def test_a_long_file_lacking_a_requested_symbol_lists_the_ones_found(tmp_path):
    write_long(tmp_path / "all.csv")
    with pytest.raises(DataError) as error:
        replay(tmp_path, "all.csv", symbols=["AAA", "ZZZ"])
    assert "all.csv: no rows for ZZZ; symbols found: AAA, BBB, CCC" in str(error.value)


def test_several_symbols_from_one_file_without_a_symbol_column(tmp_path):
    write(tmp_path / "AAA.csv", csv_text("timestamp,open,high,low,close,volume", ISO_Z))
    with pytest.raises(DataError, match="has no symbol column"):
        replay(tmp_path, symbols=["AAA", "BBB"])


def test_a_single_row_needs_an_interval(tmp_path):
    write(tmp_path / "AAA.csv", "timestamp,close\n2024-01-02T00:00:00Z,10\n")
    with pytest.raises(DataError, match="set market_data.interval"):
        replay(tmp_path)
    assert len(bars_of(replay(tmp_path, interval="1d"))) == 1


REPLAY_CONFIG = """\
market_data:
  source: csv
  path: AAA.csv
{extra}
strategies:
  - {{type: buy_and_hold}}
"""


def test_an_unknown_timezone_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config_text(REPLAY_CONFIG.format(extra="  timezone: Mars/Olympus"), str(tmp_path / "cfg.yaml"))
    message = str(error.value)
    assert "cfg.yaml:4: market_data.timezone: unknown time zone 'Mars/Olympus'" in message


def test_an_unknown_interval_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config_text(REPLAY_CONFIG.format(extra="  interval: 7x"), str(tmp_path / "cfg.yaml"))
    assert "market_data.interval: interval '7x' not understood" in str(error.value)
    with pytest.raises(ConfigError, match="derived_intervals.*'7x' not understood"):
        load_config_text(REPLAY_CONFIG.format(extra="  derived_intervals: [5m, 7x]"), str(tmp_path / "cfg.yaml"))


def test_path_and_files_are_exclusive_and_a_pattern_needs_symbols(tmp_path):
    with pytest.raises(ConfigError, match="either `path`"):
        load_config_text(REPLAY_CONFIG.format(extra="  files: {AAA: AAA.csv}"), str(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError, match="needs `symbols`"):
        load_config_text(
            "market_data: {source: csv, path: '{symbol}.csv'}\nstrategies:\n  - {type: buy_and_hold}\n",
            str(tmp_path / "c.yaml"),
        )


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_exits_2_without_traceback_and_records_nothing_for_a_missing_data_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "cfg.yaml", REPLAY_CONFIG.format(extra="  symbols: [AAA]"))
    result = CliRunner().invoke(app, ["start", "cfg.yaml", "--db", "tmp/x.db"])
    assert result.exit_code == 2, result.output
    assert "data file not found" in result.stderr
    assert "AAA.csv" in result.stderr
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, DataError)  # handled, not propagated
    db = tmp_path / "tmp" / "x.db"
    if db.exists():
        with sqlite3.connect(db) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master")}
            if "runs" in tables:
                assert connection.execute("select count(*) from runs").fetchone() == (0,)
