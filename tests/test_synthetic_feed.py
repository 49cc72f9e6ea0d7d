"""Synthetic market data: seeded, consistent OHLCV, on the interval."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.config import SyntheticSymbol
from runner.feeds.synthetic import SyntheticFeed

START = datetime(2024, 1, 2, tzinfo=UTC)


def take(feed, n):
    return list(islice(iter(feed), n))


def feed(seed=1, symbols=None, interval="1m", precision=2, **params):
    symbols = symbols or {"AAA": SyntheticSymbol(**params), "BBB": SyntheticSymbol(start_price=Decimal(50))}
    return SyntheticFeed(symbols, interval, START, seed, precision)


def test_same_seed_same_bars_bit_for_bit():
    assert take(feed(seed=3), 500) == take(feed(seed=3), 500)
    assert take(feed(seed=3), 50) != take(feed(seed=4), 50)


def test_adding_a_symbol_leaves_the_others_unchanged():
    one = {"AAA": SyntheticSymbol()}
    two = {"AAA": SyntheticSymbol(), "ZZZ": SyntheticSymbol()}
    assert [m["AAA"] for m in take(feed(symbols=one), 100)] == [m["AAA"] for m in take(feed(symbols=two), 100)]


def test_timestamps_step_by_the_interval_and_every_symbol_is_present():
    steps = take(feed(interval="15m"), 10)
    assert [m.timestamp for m in steps] == [START + timedelta(minutes=15 * i) for i in range(10)]
    assert all(set(m) == {"AAA", "BBB"} for m in steps)
    assert all(m.interval == "15m" for m in steps)


def test_first_open_is_the_start_price_and_each_open_is_the_previous_close():
    steps = take(feed(start_price=Decimal("123.45")), 50)
    assert steps[0]["AAA"].open == Decimal("123.45")
    for before, after in zip(steps, steps[1:]):
        assert after["AAA"].open == before["AAA"].close


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    volatility=st.floats(0, 3),
    drift=st.floats(-1, 1),
    precision=st.integers(0, 6),
    start=st.decimals(min_value="0.5", max_value="100000", places=2),
)
def test_bars_are_consistent(seed, volatility, drift, precision, start):
    symbols = {"AAA": SyntheticSymbol(start_price=start, volatility=volatility, drift=drift)}
    tick = Decimal(1).scaleb(-precision)
    for market in take(feed(seed, symbols, precision=precision), 200):
        b = market["AAA"]
        assert b.high >= max(b.open, b.close)
        assert b.low <= min(b.open, b.close)
        assert b.low > 0 and b.volume > 0
        for price in (b.open, b.high, b.low, b.close):
            assert price == price.quantize(tick)
