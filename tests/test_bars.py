"""CandleAggregator: derived candles equal a pandas resample of the same bars, are aligned to
their boundaries, are emitted once closed (never partial), and each symbol is built on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.bars import CandleAggregator
from runner.domain import Bar

MINUTE = timedelta(minutes=1)
DAY0 = datetime(2024, 1, 2, tzinfo=UTC)
RULES = {"5m": "5min", "15m": "15min", "1h": "1h"}
SIZES = {"5m": timedelta(minutes=5), "15m": timedelta(minutes=15), "1h": timedelta(hours=1)}


def cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def make_bar(symbol: str, when: datetime, o, h, l, c, v=100) -> Bar:  # noqa: E741
    return Bar(symbol, when, Decimal(str(o)), Decimal(str(h)), Decimal(str(l)), Decimal(str(c)), Decimal(str(v)))


def flat(symbol: str, when: datetime, price=10, volume=1) -> Bar:
    return make_bar(symbol, when, price, price, price, price, volume)


def feed(aggregator: CandleAggregator, steps: list[tuple[datetime, list[Bar]]]) -> list[tuple[datetime, Bar]]:
    """Feed steps one by one; return (step time, candle) for every candle emitted."""
    out = []
    for when, bars in steps:
        out += [(when, candle) for candle in aggregator.update(when, bars)]
    return out


def as_tuple(bar: Bar) -> tuple:
    return (bar.symbol, bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume)


# --- the property: equal to a pandas resample -------------------------------------------------


@st.composite
def minute_data(draw):
    """1-minute OHLCV rows over a few hours, with random gaps, in exact 2-place decimals."""
    hours = draw(st.integers(1, 4))
    offset = draw(st.integers(0, 59))  # the first minute need not be on a boundary
    minutes = sorted(draw(st.sets(st.integers(0, hours * 60 - 1), min_size=1, max_size=hours * 60)))
    rng = draw(st.randoms(use_true_random=False))
    start = DAY0 + timedelta(hours=9, minutes=offset)
    rows = []
    for minute in minutes:
        o, c = rng.randint(100, 20_000), rng.randint(100, 20_000)
        h = max(o, c) + rng.randint(0, 300)
        low = max(1, min(o, c) - rng.randint(0, 300))
        rows.append((start + minute * MINUTE, o, h, low, c, rng.randint(0, 10_000)))
    return rows


def resampled(rows, interval: str) -> list[tuple]:
    frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"]).set_index("timestamp")
    frame.index = pd.DatetimeIndex(frame.index)
    grouped = frame.resample(RULES[interval], label="left", closed="left", origin="epoch")
    table = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    table["count"] = grouped["open"].count()
    table = table[table["count"] > 0]
    present = {row[0] for row in rows}
    candles = [
        ("AAA", start.to_pydatetime(), cents(int(r.open)), cents(int(r.high)), cents(int(r.low)),
         cents(int(r.close)), Decimal(int(r.volume)))
        for start, r in table.iterrows()
    ]
    last_start = candles[-1][1]
    if last_start + SIZES[interval] - MINUTE not in present:
        candles.pop()  # the last candle never saw its last minute: still open at the end
    return candles


@settings(max_examples=150, deadline=None, database=None)
@given(rows=minute_data(), interval=st.sampled_from(["5m", "15m", "1h"]))
def test_candles_equal_a_pandas_resample(rows, interval):
    aggregator = CandleAggregator(interval, "1m")
    steps = [
        (when, [Bar("AAA", when, cents(o), cents(h), cents(low), cents(c), Decimal(v))])
        for when, o, h, low, c, v in rows
    ]
    emitted = feed(aggregator, steps)
    assert [as_tuple(candle) for _, candle in emitted] == resampled(rows, interval)

    # Each candle is emitted at the step of its last minute, or else at the first step past its end.
    times = [when for when, *_ in rows]
    size = SIZES[interval]
    for when, candle in emitted:
        end = candle.timestamp + size
        if end - MINUTE in times:
            assert when == end - MINUTE
        else:
            assert when == min(t for t in times if t >= end)


# --- boundaries -------------------------------------------------------------------------------


def test_15m_candles_start_on_quarter_hours():
    aggregator = CandleAggregator("15m", "1m")
    start = DAY0 + timedelta(hours=9, minutes=7)
    emitted = feed(aggregator, [(start + i * MINUTE, [flat("AAA", start + i * MINUTE)]) for i in range(60)])
    starts = [candle.timestamp for _, candle in emitted]
    assert starts == [DAY0 + timedelta(hours=9, minutes=m) for m in (0, 15, 30, 45)]
    assert [candle.volume for _, candle in emitted] == [8, 15, 15, 15]  # the first began at :07
    assert [when.minute for when, _ in emitted] == [14, 29, 44, 59]


def test_bounds_of_intraday_candles():
    aggregator = CandleAggregator("15m", "1m")
    assert aggregator.bounds(datetime(2024, 1, 2, 9, 44, 59, tzinfo=UTC)) == (
        datetime(2024, 1, 2, 9, 30, tzinfo=UTC), datetime(2024, 1, 2, 9, 45, tzinfo=UTC),
    )
    assert aggregator.bounds(datetime(2024, 1, 2, 9, 45, tzinfo=UTC))[0] == datetime(2024, 1, 2, 9, 45, tzinfo=UTC)
    hourly = CandleAggregator("4h", "1h")
    assert hourly.bounds(datetime(2024, 1, 2, 11, 0, tzinfo=UTC))[0] == datetime(2024, 1, 2, 8, tzinfo=UTC)


def test_daily_candles_in_new_york_start_at_local_midnight():
    aggregator = CandleAggregator("1d", "1h", "America/New_York")
    winter = datetime(2024, 1, 2, 12, tzinfo=UTC)
    summer = datetime(2024, 7, 2, 12, tzinfo=UTC)
    assert aggregator.bounds(winter) == (datetime(2024, 1, 2, 5, tzinfo=UTC), datetime(2024, 1, 3, 5, tzinfo=UTC))
    assert aggregator.bounds(summer) == (datetime(2024, 7, 2, 4, tzinfo=UTC), datetime(2024, 7, 3, 4, tzinfo=UTC))
    # 04:30 UTC on 2 January is still 1 January in New York
    assert aggregator.bounds(datetime(2024, 1, 2, 4, 30, tzinfo=UTC))[0] == datetime(2024, 1, 1, 5, tzinfo=UTC)
    # the days DST starts and ends last 23 and 25 hours
    assert aggregator.bounds(datetime(2024, 3, 10, 12, tzinfo=UTC)) == (
        datetime(2024, 3, 10, 5, tzinfo=UTC), datetime(2024, 3, 11, 4, tzinfo=UTC),
    )
    assert aggregator.bounds(datetime(2024, 11, 3, 12, tzinfo=UTC)) == (
        datetime(2024, 11, 3, 4, tzinfo=UTC), datetime(2024, 11, 4, 5, tzinfo=UTC),
    )


def test_daily_candles_from_hourly_bars_in_new_york():
    aggregator = CandleAggregator("1d", "1h", "America/New_York")
    start = datetime(2024, 1, 2, 0, tzinfo=UTC)
    steps = [(start + timedelta(hours=i), [flat("AAA", start + timedelta(hours=i), price=i + 1)]) for i in range(54)]
    emitted = feed(aggregator, steps)
    # 00:00-04:00 UTC on 2 Jan belong to 1 Jan (from 05:00 UTC on 1 Jan): that day's candle closes
    # with the 04:00 bar; 2 Jan (05:00 .. 04:00 next day) closes with the 04:00 bar of 3 Jan.
    assert [(when, candle.timestamp, candle.volume) for when, candle in emitted] == [
        (datetime(2024, 1, 2, 4, tzinfo=UTC), datetime(2024, 1, 1, 5, tzinfo=UTC), 5),
        (datetime(2024, 1, 3, 4, tzinfo=UTC), datetime(2024, 1, 2, 5, tzinfo=UTC), 24),
        (datetime(2024, 1, 4, 4, tzinfo=UTC), datetime(2024, 1, 3, 5, tzinfo=UTC), 24),
    ]
    second = emitted[1][1]
    assert (second.open, second.close, second.high, second.low) == (6, 29, 29, 6)


def test_daily_candles_in_utc_start_at_midnight():
    aggregator = CandleAggregator("1d", "1h")
    assert aggregator.bounds(datetime(2024, 7, 2, 23, 59, tzinfo=UTC)) == (
        datetime(2024, 7, 2, tzinfo=UTC), datetime(2024, 7, 3, tzinfo=UTC),
    )


def test_weekly_candles_start_on_monday():
    aggregator = CandleAggregator("1w", "1d")
    # 4 January 2024 is a Thursday; its week began on Monday 1 January
    assert aggregator.bounds(datetime(2024, 1, 4, 15, tzinfo=UTC)) == (
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC),
    )
    new_york = CandleAggregator("1w", "1h", "America/New_York")
    assert new_york.bounds(datetime(2024, 7, 7, 12, tzinfo=UTC))[0] == datetime(2024, 7, 1, 4, tzinfo=UTC)


@pytest.mark.parametrize("interval", ["15m", "1h"])
def test_intraday_candles_in_new_york_match_utc_across_the_end_of_dst(interval):
    # New York is a whole number of hours from UTC, so 15m and 1h candles are the same in both
    # zones, also on 3 November 2024 when 01:00-02:00 local (05:00-07:00 UTC) happens twice.
    start = datetime(2024, 11, 3, 4, tzinfo=UTC)
    steps = [(start + i * MINUTE, [flat("AAA", start + i * MINUTE)]) for i in range(240)]
    in_utc = [as_tuple(c) for _, c in feed(CandleAggregator(interval, "1m"), steps)]
    in_new_york = [as_tuple(c) for _, c in feed(CandleAggregator(interval, "1m", "America/New_York"), steps)]
    assert [c[-1] for c in in_utc] == [SIZES[interval] // MINUTE] * (240 * MINUTE // SIZES[interval])
    assert in_new_york == in_utc


# --- when a candle closes ---------------------------------------------------------------------


def test_no_partial_candle_at_the_end():
    aggregator = CandleAggregator("15m", "1m")
    start = DAY0 + timedelta(hours=9)
    emitted = feed(aggregator, [(start + i * MINUTE, [flat("AAA", start + i * MINUTE)]) for i in range(29)])
    assert [candle.timestamp for _, candle in emitted] == [start]  # 09:15-09:28 is never emitted


def test_a_candle_missing_its_last_bar_closes_in_the_first_step_past_its_end():
    aggregator = CandleAggregator("15m", "1m")
    start = DAY0 + timedelta(hours=9)
    minutes = [*range(0, 14), 17, 18]  # 09:14, 09:15 and 09:16 missing
    steps = [(start + m * MINUTE, [make_bar("AAA", start + m * MINUTE, 10 + m, 11 + m, 9 + m, 10.5 + m)])
             for m in minutes]
    emitted = feed(aggregator, steps)
    assert len(emitted) == 1
    when, candle = emitted[0]
    assert when == start + 17 * MINUTE
    assert candle.timestamp == start
    # it holds 09:00..09:13 only, not the 09:17 bar of the step that closed it
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
        Decimal(10), Decimal(24), Decimal(9), Decimal("23.5"), Decimal(1400),
    )
    # the 09:17 bar starts the next candle
    later = aggregator.update(start + 29 * MINUTE, [make_bar("AAA", start + 29 * MINUTE, 50, 51, 49, 50)])
    assert [(c.timestamp, c.open, c.close, c.volume) for c in later] == [
        (start + 15 * MINUTE, Decimal(27), Decimal(50), Decimal(300)),
    ]


def test_a_step_exactly_at_the_end_closes_the_candle_before_adding_its_bar():
    aggregator = CandleAggregator("5m", "1m")
    start = DAY0 + timedelta(hours=9)
    feed(aggregator, [(start + m * MINUTE, [flat("AAA", start + m * MINUTE, 10)]) for m in range(3)])
    closed = aggregator.update(start + 5 * MINUTE, [flat("AAA", start + 5 * MINUTE, 99)])
    assert [(c.timestamp, c.close, c.volume) for c in closed] == [(start, Decimal(10), Decimal(3))]


def test_close_due_with_a_grace():
    aggregator = CandleAggregator("5m", "1m")
    start = DAY0 + timedelta(hours=9)
    aggregator.update(start, [flat("AAA", start)])
    assert aggregator.close_due(start + 5 * MINUTE, grace_seconds=10) == []
    closed = aggregator.close_due(start + 5 * MINUTE + timedelta(seconds=10), grace_seconds=10)
    assert [c.timestamp for c in closed] == [start]
    assert aggregator.close_due(start + timedelta(hours=1)) == []


def test_two_symbols_are_aggregated_independently():
    aggregator = CandleAggregator("15m", "1m")
    start = DAY0 + timedelta(hours=9)
    steps = []
    for m in range(31):
        when = start + m * MINUTE
        bars = [make_bar("AAA", when, 10, 11 + m, 9, 10 + m, 1)]
        if m not in (14, 15, 16):  # BBB misses 09:14 to 09:16
            bars.append(make_bar("BBB", when, 100 + m, 200, 50 - m, 100, 10))
        steps.append((when, bars))
    emitted = feed(aggregator, steps)
    got = [(when.minute, c.symbol, c.timestamp.minute, c.open, c.high, c.low, c.close, c.volume) for when, c in emitted]
    assert got == [
        (14, "AAA", 0, 10, 25, 9, 24, 15),
        (15, "BBB", 0, 100, 200, 37, 100, 140),  # closed by the clock of the step, without a bar of its own
        (29, "AAA", 15, 10, 40, 9, 39, 15),
        (29, "BBB", 15, 117, 200, 21, 100, 130),
    ]


def test_late_candles_come_first_and_are_ordered_by_start_then_symbol():
    aggregator = CandleAggregator("5m", "1m")
    start = DAY0 + timedelta(hours=9)
    aggregator.update(start, [flat("BBB", start), flat("AAA", start)])
    when = start + 7 * MINUTE
    closed = aggregator.update(when, [flat("AAA", when), flat("BBB", when)])
    assert [(c.symbol, c.timestamp) for c in closed] == [("AAA", start), ("BBB", start)]
