"""Differential test: the runner and backtrader trade the same moving-average crossover alike.

~3,000 one-minute bars of one symbol (seeded GBM, 2-decimal prices, consistent OHLC, with two
flat stretches where the averages are equal) are written to a CSV for the runner's replay and
handed to backtrader as the same pandas DataFrame. Both engines run the same rule - fast 10,
slow 30; buy 100 on an upward cross while flat, sell the whole position on a downward cross
while long; a cross needs previous fast < previous slow and current fast > current slow (the
mirror for down), equal averages are no cross - with market orders filled at the next bar's
open. The runner uses MACrossover; the backtrader strategy recomputes the rule itself with
exact Decimal sums (bt.indicators.CrossOver treats equal averages differently). Trades and the
final equity must agree, without fees and with a 0.1 % commission.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from decimal import Decimal

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.feeds.replay import load_replay
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.ma_crossover import MACrossover

BARS = 3_000
FAST, SLOW, QUANTITY = 10, 30, 100
CASH = 1_000_000
SYMBOL = "XYZ"


def gbm_bars(seed: int = 20240611, count: int = BARS) -> pd.DataFrame:
    """One-minute OHLCV bars: a seeded geometric Brownian motion rounded to cents, each bar
    opening near the previous close, with two flat stretches (all four prices equal)."""
    rng = np.random.default_rng(seed)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0.0, 0.0015, count))), 2)
    flat = np.zeros(count, dtype=bool)
    flat[1000:1045] = flat[2200:2235] = True
    rows, previous = [], 100.0
    for i in range(count):
        if flat[i]:
            open_ = close = high = low = previous
        else:
            open_ = round(previous + round(float(rng.normal(0.0, 0.02)), 2), 2)
            close = float(closes[i])
            high = round(max(open_, close) + abs(float(rng.normal(0.0, 0.05))), 2)
            low = round(min(open_, close) - abs(float(rng.normal(0.0, 0.05))), 2)
        rows.append((open_, high, low, close, float(rng.integers(1_000, 50_000))))
        previous = close
    index = pd.date_range(datetime(2024, 6, 11, 13, 30), periods=count, freq="1min", name="timestamp")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"])
    assert (frame.low <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame[["open", "close"]].max(axis=1) <= frame.high).all()
    assert (frame.low > 0).all()
    return frame


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return gbm_bars()


# -- the runner ------------------------------------------------------------------------------------


def run_runner(frame: pd.DataFrame, folder, commission: CommissionModel) -> tuple[list[tuple], Decimal]:
    frame.to_csv(folder / f"{SYMBOL}.csv", float_format="%.2f", date_format="%Y-%m-%dT%H:%M:%SZ")
    feed = load_replay("csv", folder, path=f"{SYMBOL}.csv", symbols=[SYMBOL], price_precision=2)
    broker = PaperBroker(Portfolio(Decimal(CASH)), BarFillModel(), FeeSchedule(commission), feed.symbols)
    runner = assemble(
        feed=feed, broker=broker,
        strategies=[StrategySetup("ma", MACrossover, {"fast": FAST, "slow": SLOW, "quantity": QUANTITY})],
        database=f"sqlite:///{folder / 'runs.db'}",
    )
    summary = runner.run()
    assert summary.status == "completed", summary.error
    assert summary.steps == len(frame)
    trades = [
        (_naive_utc(fill.timestamp), fill.side, fill.price, fill.quantity)
        for fill in queries.fills(runner.recorder.engine, runner.run_id)
    ]
    return trades, summary.equity


def _naive_utc(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


# -- backtrader ------------------------------------------------------------------------------------


class DecimalCross(bt.Strategy):
    """The crossover rule on exact Decimal sums of the closes; market orders of `size`."""

    params = (("fast", FAST), ("slow", SLOW), ("size", QUANTITY))

    def __init__(self):
        self.closes: deque[Decimal] = deque(maxlen=self.p.slow + 1)
        self.trades: list[tuple] = []

    def _sign(self, window: list[Decimal]) -> int:
        """Sign of (fast average - slow average) over the last `slow` closes of `window`,
        compared exactly: fast_sum x slow against slow_sum x fast."""
        fast_sum = sum(window[-self.p.fast:], Decimal(0))
        slow_sum = sum(window[-self.p.slow:], Decimal(0))
        difference = fast_sum * self.p.slow - slow_sum * self.p.fast
        return (difference > 0) - (difference < 0)

    def next(self):
        self.closes.append(Decimal(f"{self.data.close[0]:.2f}"))
        if len(self.closes) <= self.p.slow:
            return
        window = list(self.closes)
        previous, current = self._sign(window[:-1]), self._sign(window)
        if previous < 0 < current and self.position.size == 0:
            self.buy(size=self.p.size)
        elif previous > 0 > current and self.position.size > 0:
            self.sell(size=self.position.size)

    def notify_order(self, order):
        if order.status in (order.Margin, order.Rejected, order.Canceled):
            raise AssertionError(f"backtrader refused an order: {order.getstatusname()}")
        if order.status == order.Completed:
            self.trades.append((
                self.data.datetime.datetime(0), "BUY" if order.isbuy() else "SELL",
                order.executed.price, abs(order.executed.size),
            ))


def run_backtrader(frame: pd.DataFrame, commission: float) -> tuple[list[tuple], float]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(
        dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=1, openinterest=None,
    ))
    cerebro.addstrategy(DecimalCross)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=commission)
    [strategy] = cerebro.run()
    return strategy.trades, cerebro.broker.getvalue()


# -- the comparison --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runner_commission", "backtrader_commission"),
    [(CommissionModel(), 0.0), (CommissionModel(percent=Decimal("0.1")), 0.001)],
    ids=["no-fees", "0.1%-commission"],
)
def test_runner_and_backtrader_make_the_same_trades_and_end_with_the_same_equity(
    bars, tmp_path, runner_commission, backtrader_commission,
):
    ours, our_equity = run_runner(bars, tmp_path, runner_commission)
    theirs, their_equity = run_backtrader(bars, backtrader_commission)

    assert len(ours) >= 20, "the data must cross often enough to compare something"
    assert {side for _, side, _, _ in ours} == {"BUY", "SELL"}
    assert [(stamp, side) for stamp, side, _, _ in ours] == [(stamp, side) for stamp, side, _, _ in theirs]
    for (stamp, _, price, size), (_, _, their_price, their_size) in zip(ours, theirs):
        assert abs(float(price) - their_price) < 1e-9, (stamp, price, their_price)
        assert price == Decimal(f"{their_price:.2f}"), (stamp, price, their_price)
        assert size == QUANTITY == their_size, (stamp, size, their_size)
        assert price == Decimal(f"{bars.loc[pd.Timestamp(stamp), 'open']:.2f}"), "a market order fills at the open"
    assert abs(float(our_equity) - their_equity) <= 1e-6, (our_equity, their_equity)


def test_the_data_tells_strict_crosses_from_crosses_over_equal_averages(bars):
    """The comparison above is only worth something if the data has bars where the averages
    are equal: there the strict rule (equal is no cross) and a rule that carries the last
    non-zero difference over them (as bt.indicators.CrossOver does) disagree."""
    closes = [Decimal(f"{close:.2f}") for close in bars.close]
    signs = []
    for end in range(SLOW, len(closes) + 1):
        difference = sum(closes[end - FAST:end]) * SLOW - sum(closes[end - SLOW:end]) * FAST
        signs.append((difference > 0) - (difference < 0))
    strict = {i for i in range(1, len(signs)) if signs[i - 1] * signs[i] < 0}
    carried, last = set(), 0
    for i, sign in enumerate(signs):
        if sign:
            if last and sign != last:
                carried.add(i)
            last = sign
    assert signs.count(0) >= 10, "the flat stretches make the averages equal"
    assert strict < carried, "some crosses happen only across equal averages"
