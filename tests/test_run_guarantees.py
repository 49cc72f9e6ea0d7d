"""Promises of a run that hold across processes, failures and the end of the run."""

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from cli.app import _stopping_on_signals
from runner.bootstrap import StrategySetup, assemble, build
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.clock import SimClock
from runner.config import load_config, load_config_text
from runner.domain import Bar, MarketData
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.base import StrategyInterface
from strategies.buy_and_hold import BuyAndHold
from tests.helpers import config_text

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(sys.executable).parent / "runner"


def test_same_config_and_seed_give_the_same_fills_in_every_process(tmp_path):
    """String hashing differs per process; nothing the runner records may depend on it."""
    (tmp_path / "c.yaml").write_text(config_text(
        "  - {type: ma_crossover, symbols: [A, B, D, E], params: {fast: 3, slow: 8, quantity: 9}}\n",
        run="{max_ticks: 400, seed: 3}",
        market_data="{symbols: [A, B, C, D, E], interval: 1m}",
        broker="{starting_cash: 3000}",
    ))
    processes = {  # the three at once: each is its own process, so they cannot share anything
        hash_seed: subprocess.Popen(
            [str(RUNNER), "start", "c.yaml", "--db", f"{hash_seed}.db", "--json"], cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        for hash_seed in ("1", "2", "3")
    }
    try:
        outputs = {hash_seed: process.communicate(timeout=60) for hash_seed, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    results = []
    for hash_seed, (out, err) in outputs.items():
        assert processes[hash_seed].returncode == 0, err
        with sqlite3.connect(tmp_path / f"{hash_seed}.db") as connection:
            fills = connection.execute(
                "select fill_id, order_id, symbol, side, quantity, price from fills order by fill_id"
            ).fetchall()
            rejected = connection.execute("select count(*) from orders where status = 'REJECTED'").fetchone()
        results.append((fills, rejected, json.loads(out)["final_equity"]))
    assert results[0][1][0] > 0, "tight cash makes the order of signals matter"
    assert results[0] == results[1] == results[2]


def test_the_last_equity_row_includes_the_fills_made_at_stop(tmp_path):
    runner = build(load_config_text(config_text(
        "  - {type: buy_and_hold, params: {quantity: 5, sell_on_stop: true}}\n",
        storage=f"{{url: 'sqlite:///{tmp_path / 'r.db'}'}}",
        broker="{slippage_bps: 50, commission: {per_order: 3}}",
    )))
    summary = runner.run()
    rows = queries.equity(runner.recorder.engine, runner.run_id)
    assert len(rows) == summary.steps
    assert str(rows[-1].equity) == summary.to_dict()["final_equity"]
    assert rows[-1].cash == summary.cash == summary.equity, "everything was sold at stop"


def test_the_default_config_ends_by_itself_within_about_ten_seconds(tmp_path):
    clock = SimClock()
    config = load_config(ROOT / "configs" / "default.yaml").with_overrides(
        storage={"url": f"sqlite:///{tmp_path / 'd.db'}"}
    )
    summary = build(config, clock=clock).run()
    assert summary.status == "completed"
    assert clock.monotonic() <= 10.0


class LiveFeed:
    """A clock-driven feed whose bars carry wall-clock times, with one bar never arriving."""

    interval, symbols, total_steps, skipped_rows, live = "1m", ("AAA",), None, 0, True

    def __init__(self, clock: SimClock, minutes: int, missing: set[int]):
        self.clock, self.minutes, self.missing = clock, minutes, missing

    def __iter__(self):
        start = self.clock.now()
        for minute in range(self.minutes):
            stamp = start + timedelta(minutes=minute)
            price = Decimal(100 + minute)
            bars = {} if minute in self.missing else {"AAA": Bar("AAA", stamp, price, price, price, price, Decimal(1))}
            yield MarketData(stamp, "1m", bars)


class Recorder(StrategyInterface):
    def on_start(self):
        self.seen = []

    def on_tick(self, market_data):
        self.seen.append((market_data.timestamp, market_data["AAA"].close))


@pytest.mark.parametrize(("grace", "closed_at_minute"), [(0.0, 5), (90.0, 7)])
def test_a_candle_whose_last_bar_never_comes_closes_by_the_clock_plus_the_grace(tmp_path, grace, closed_at_minute):
    clock = SimClock(datetime(2024, 1, 2, 9, 0, tzinfo=UTC))
    # The 09:04 bar, last of the 09:00 5m candle, is lost, and nothing comes until 09:08.
    feed = LiveFeed(clock, minutes=10, missing={4, 5, 6, 7})
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(), FeeSchedule(CommissionModel()), feed.symbols)
    runner = assemble(
        feed=feed, broker=broker, strategies=[StrategySetup("five", Recorder, interval="5m")],
        database=f"sqlite:///{tmp_path / 'l.db'}", mode="clock", tick_interval=60.0, clock=clock,
        candle_grace_seconds=grace,
    )
    strategy = runner.loop.hosts[0].strategy
    steps_when_called = []
    original = strategy.on_tick
    strategy.on_tick = lambda market: (steps_when_called.append(runner.loop.steps), original(market))[1]
    runner.run()
    # Steps run at wall minutes 0..9; the 09:00 candle ends at 09:05 and closes at the first
    # step whose wall time is past 09:05 plus the grace; it holds bars 09:00-09:03 only.
    assert strategy.seen[0] == (datetime(2024, 1, 2, 9, 0, tzinfo=UTC), Decimal(103))
    assert steps_when_called[0] == closed_at_minute + 1


def test_a_storage_failure_fails_the_run_and_says_why(tmp_path):
    db = tmp_path / "f.db"
    runner = build(load_config_text(config_text(
        "  - {type: ma_crossover, params: {fast: 3, slow: 8}}\n", run="{max_ticks: 50000, speed: 2000}",
        storage=f"{{url: 'sqlite:///{db}'}}",
    )))
    runner.start()
    with runner.recorder.engine.begin() as connection:
        connection.execute(text("drop table equity"))
    assert runner.wait(30)
    summary = runner.snapshot()
    assert summary.status == "failed"
    assert "cannot write records to the database" in summary.error
    with sqlite3.connect(db) as connection:
        status, error = connection.execute("select status, error from runs").fetchone()
    assert status == "failed" and "equity" in error


class Exploding:
    """A feed that breaks after a few bars, as a corrupt source would."""

    interval, symbols, total_steps, skipped_rows, live = "1m", ("AAA",), None, 0, False

    def __iter__(self):
        stamp = datetime(2024, 1, 2, tzinfo=UTC)
        for minute in range(3):
            price = Decimal(10)
            yield MarketData(stamp + timedelta(minutes=minute), "1m", {"AAA": Bar("AAA", stamp, price, price, price, price, Decimal(1))})
        raise ZeroDivisionError("division by zero")


def test_a_failing_feed_stops_the_run_cleanly_as_failed(tmp_path):
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(), FeeSchedule(CommissionModel()), ("AAA",))
    runner = assemble(
        feed=Exploding(), broker=broker, strategies=[StrategySetup("hold", BuyAndHold)],
        database=f"sqlite:///{tmp_path / 'e.db'}",
    )
    summary = runner.run()
    assert summary.status == "failed" and summary.steps == 3
    assert summary.error == "market data failed: ZeroDivisionError: division by zero"
    assert queries.run(runner.recorder.engine, runner.run_id).status == "failed"
    assert len(queries.equity(runner.recorder.engine, runner.run_id)) == 3


class GapFeed:
    """Two bars: 100, then a gap up to 120."""

    interval, symbols, total_steps, skipped_rows, live = "1d", ("AAA",), 2, 0, False

    def __iter__(self):
        for day, price in enumerate((Decimal(100), Decimal(120))):
            stamp = datetime(2024, 1, 2 + day, tzinfo=UTC)
            yield MarketData(stamp, "1d", {"AAA": Bar("AAA", stamp, price, price, price, price, Decimal(1))})


def test_a_rejection_at_the_fill_counts_against_its_strategy(tmp_path):
    broker = PaperBroker(Portfolio(Decimal(100_000)), BarFillModel(), FeeSchedule(CommissionModel()), ("AAA",))
    runner = assemble(
        feed=GapFeed(), broker=broker, strategies=[StrategySetup("hold", BuyAndHold, {"quantity": 990})],
        database=f"sqlite:///{tmp_path / 'g.db'}",
    )
    summary = runner.run()
    [order] = queries.orders(runner.recorder.engine, runner.run_id)
    assert order.status == "REJECTED"
    assert order.reason == "insufficient cash at fill: needs 118800.00, has 100000.00"
    strategy = summary.strategies[0]
    assert (strategy.accepted, strategy.rejected, summary.rejections) == (1, 1, 1)


def test_a_signal_callback_that_raises_does_not_stop_the_run(tmp_path):
    def callback(event):
        raise RuntimeError("callback broke")

    runner = build(load_config_text(config_text(
        "  - {type: ma_crossover, params: {fast: 3, slow: 8}}\n",
        storage=f"{{url: 'sqlite:///{tmp_path / 'c.db'}'}}",
    )), on_signal=callback)
    summary = runner.run()
    assert summary.status == "completed" and summary.orders > 0


def test_a_second_signal_quits_at_once(monkeypatch):
    stops, exits = [], []

    class FakeRunner:
        def stop(self):
            stops.append(1)

    monkeypatch.setattr(os, "_exit", exits.append)
    guard = _stopping_on_signals(FakeRunner())
    guard._handle(2, None)
    assert stops == [1] and exits == []
    guard._handle(2, None)
    assert exits == [130]


def test_market_data_bars_of_a_partial_subscription_keep_the_strategy_order(tmp_path):
    seen = []
    runner = build(load_config_text(config_text(
        "  - {type: ma_crossover, symbols: [E, A, C]}\n",
        market_data="{symbols: [A, B, C, D, E]}", run="{max_ticks: 3}",
        storage=f"{{url: 'sqlite:///{tmp_path / 'o.db'}'}}",
    )))
    runner.loop.hosts[0].strategy.on_tick = lambda market: seen.append(list(market)) or []
    runner.run()
    assert seen == [["E", "A", "C"]] * 3


def test_equity_is_recorded_every_n_steps_and_at_the_end(tmp_path):
    runner = build(load_config_text(config_text(
        "  - {type: buy_and_hold}\n", run="{max_ticks: 23}",
        storage=f"{{url: 'sqlite:///{tmp_path / 'e.db'}', equity_every: 5}}",
    )))
    summary = runner.run()
    steps = [row.step for row in queries.equity(runner.recorder.engine, runner.run_id)]
    assert steps == [5, 10, 15, 20, 23]
    assert str(queries.equity(runner.recorder.engine, runner.run_id)[-1].equity) == summary.to_dict()["final_equity"]
