"""The runner end to end in-process: determinism, records, isolation of failing strategies, pacing."""

import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from runner.bootstrap import StrategySetup, assemble, build
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.clock import SimClock
from runner.config import SyntheticSymbol, load_config_text
from runner.engine import RunStatus
from runner.feeds.synthetic import SyntheticFeed
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.base import StrategyInterface
from strategies.buy_and_hold import BuyAndHold
from strategies.ma_crossover import MACrossover
from tests.helpers import config_text, wait_until

MA = "  - {type: ma_crossover, params: {fast: 5, slow: 20, quantity: 10}}\n"
HOLD = "  - {type: buy_and_hold, params: {quantity: 2}}\n"


def db_url(tmp_path, name="runs.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def run_config(tmp_path, strategies=MA + HOLD, name="runs.db", clock=None, **sections):
    sections.setdefault("storage", f"{{url: '{db_url(tmp_path, name)}'}}")
    runner = build(load_config_text(config_text(strategies, **sections)), clock=clock)
    return runner, runner.run()


def fill_rows(runner):
    return [
        (f.fill_id, f.order_id, f.strategy, f.symbol, f.side, f.quantity, f.price, f.commission, f.timestamp)
        for f in queries.fills(runner.recorder.engine, runner.run_id)
    ]


def test_two_runs_with_one_seed_give_identical_fills(tmp_path):
    first, _ = run_config(tmp_path, name="a.db")
    second, _ = run_config(tmp_path, name="b.db")
    other, _ = run_config(tmp_path, name="c.db", run="{max_ticks: 300, seed: 8}")
    assert len(fill_rows(first)) > 10
    assert fill_rows(first) == fill_rows(second)
    assert fill_rows(first) != fill_rows(other)


def test_every_record_lands_in_the_database(tmp_path):
    runner, summary = run_config(tmp_path)
    engine = runner.recorder.engine
    run = queries.run(engine, runner.run_id)
    assert run.status == "completed" and run.ticks == 300 == summary.steps
    assert run.config_sha256 == runner.started.config_sha256 and "ma_crossover" in run.config_text
    assert len(queries.orders(engine, runner.run_id)) == summary.orders
    assert len(queries.fills(engine, runner.run_id)) == summary.fills
    assert len(queries.equity(engine, runner.run_id)) == 300
    assert runner.recorder.committed == runner.recorder.submitted + 1  # + the run's final state
    final = queries.equity(engine, runner.run_id)[-1]
    assert str(final.equity) == summary.to_dict()["final_equity"]
    assert sum(1 for s in queries.signals(engine, runner.run_id) if s.accepted) == summary.orders


def test_order_history_and_positions_are_recorded(tmp_path):
    runner, summary = run_config(tmp_path)
    engine = runner.recorder.engine
    history = {}
    for event in queries.order_events(engine, runner.run_id):
        history.setdefault(event.order_id, []).append(event.status)
    assert set(map(tuple, history.values())) == {("NEW", "ACCEPTED", "FILLED")}
    positions = {(p.strategy, p.symbol): p for p in queries.positions(engine, runner.run_id)}
    assert positions[("buy_and_hold", "AAA")].quantity == Decimal(2)
    fills = queries.fills(engine, runner.run_id)
    for (strategy, symbol), position in positions.items():
        signed = sum(
            (f.quantity if f.side == "BUY" else -f.quantity)
            for f in fills if (f.strategy, f.symbol) == (strategy, symbol)
        )
        assert position.quantity == signed


def test_money_is_stored_as_exact_text(tmp_path):
    runner, _ = run_config(tmp_path)
    with sqlite3.connect(tmp_path / "runs.db") as db:
        kinds = db.execute(
            "select distinct typeof(price), typeof(quantity), typeof(commission) from fills"
        ).fetchall()
        cash_kinds = db.execute("select distinct typeof(cash), typeof(equity) from equity").fetchall()
    assert kinds == [("text", "text", "text")]
    assert cash_kinds == [("text", "text")]


class Exploding(StrategyInterface):
    def on_tick(self, market_data):
        raise RuntimeError("boom")


class Malformed(StrategyInterface):
    def on_tick(self, market_data):
        return [{"symbol": "AAA", "action": "JUMP"}, "nonsense"]


def make_runner(tmp_path, setups, max_ticks=200, name="runs.db", clock=None, **run):
    symbols = {"AAA": SyntheticSymbol(), "BBB": SyntheticSymbol(start_price=Decimal(50))}
    feed = SyntheticFeed(symbols, "1m", datetime(2024, 1, 2, tzinfo=UTC), seed=11)
    broker = PaperBroker(
        Portfolio(Decimal(100_000)), BarFillModel(Decimal(5)),
        FeeSchedule(CommissionModel(per_order=Decimal(1))), feed.symbols,
    )
    return assemble(
        feed=feed, broker=broker, strategies=setups, database=db_url(tmp_path, name),
        max_ticks=max_ticks, clock=clock, **run,
    )


def ma_setup(name="ma"):
    return StrategySetup(name, MACrossover, {"fast": 5, "slow": 20, "quantity": 10})


def test_a_raising_strategy_is_recorded_disabled_and_harms_no_other(tmp_path):
    alone = make_runner(tmp_path, [ma_setup()], name="alone.db")
    alone.run()
    both = make_runner(tmp_path, [StrategySetup("bad", Exploding, max_errors=3), ma_setup()], name="both.db")
    summary = both.run()

    assert summary.status == "completed"
    bad = {s.name: s for s in summary.strategies}["bad"]
    assert bad.errors == 3 and bad.state == "disabled"
    assert "3 consecutive errors in on_tick, last RuntimeError: boom" in bad.disabled_reason
    errors = queries.strategy_errors(both.recorder.engine, both.run_id)
    assert [(e.strategy, e.hook, e.error_type, e.message) for e in errors] == [("bad", "on_tick", "RuntimeError", "boom")] * 3
    assert errors[-1].disabled and not errors[0].disabled
    assert fill_rows(both) == fill_rows(alone)


def test_malformed_signals_are_recorded_as_rejected(tmp_path):
    runner = make_runner(tmp_path, [StrategySetup("odd", Malformed)], max_ticks=3)
    summary = runner.run()
    signals = queries.signals(runner.recorder.engine, runner.run_id)
    assert len(signals) == 6 and not any(s.accepted for s in signals)
    assert "malformed signal: action must be one of BUY, SELL, HOLD, CLOSE, got 'JUMP'" in signals[0].rejection
    assert "a signal must be a Signal or a dict, got str" in signals[1].rejection
    assert summary.rejections == 6 and summary.orders == 0


def test_orders_placed_at_stop_fill_at_the_last_price_and_working_orders_are_cancelled(tmp_path):
    runner = make_runner(
        tmp_path, [StrategySetup("hold", BuyAndHold, {"quantity": 3, "sell_on_stop": True})], max_ticks=1,
    )
    summary = runner.run()
    engine = runner.recorder.engine
    # The buys of bar 1 never met a next bar: cancelled at stop; nothing to sell then.
    assert [o.status for o in queries.orders(engine, runner.run_id)] == ["CANCELLED", "CANCELLED"]
    assert all(o.reason == "run stopped" for o in queries.orders(engine, runner.run_id))
    assert summary.fills == 0

    runner = make_runner(
        tmp_path, [StrategySetup("hold", BuyAndHold, {"quantity": 3, "sell_on_stop": True})],
        max_ticks=5, name="two.db",
    )
    runner.run()
    engine = runner.recorder.engine
    fills = queries.fills(engine, runner.run_id)
    assert [f.side for f in fills] == ["BUY", "BUY", "SELL", "SELL"]
    assert all(p.quantity == 0 for p in queries.positions(engine, runner.run_id))
    sells = [f for f in fills if f.side == "SELL"]
    marks = runner.loop.portfolio.last_prices
    assert all(f.price == marks[f.symbol] * (1 - Decimal(5) / 10_000) for f in sells)


def test_stopping_mid_run_keeps_every_record(tmp_path):
    runner = make_runner(tmp_path, [ma_setup()], max_ticks=None, mode="data", speed=6000.0)
    runner.start()
    wait_until(lambda: runner.loop.steps >= 3, 10, "the run to take a few steps")
    runner.stop()
    assert runner.wait(10)
    summary = runner.snapshot()
    engine = runner.recorder.engine
    assert summary.status == RunStatus.STOPPED.value
    assert 0 < summary.steps < 1000
    assert queries.run(engine, runner.run_id).status == "stopped"
    assert len(queries.equity(engine, runner.run_id)) == summary.steps
    assert len(queries.orders(engine, runner.run_id)) == summary.orders
    assert len(queries.fills(engine, runner.run_id)) == summary.fills
    assert runner.recorder.committed == runner.recorder.submitted + 1


def test_pause_holds_the_loop_and_resume_continues(tmp_path):
    runner = make_runner(tmp_path, [ma_setup()], max_ticks=None, speed=6000.0)
    runner.start()
    time.sleep(0.2)
    runner.pause()
    assert runner.status() is RunStatus.PAUSED
    time.sleep(0.1)
    held = runner.loop.steps
    time.sleep(0.3)
    assert runner.loop.steps == held
    runner.resume()
    time.sleep(0.3)
    assert runner.loop.steps > held
    runner.stop()
    assert runner.wait(10)
    assert runner.status() is RunStatus.STOPPED


def test_data_mode_speed_paces_by_bar_time(tmp_path):
    clock = SimClock()
    runner = make_runner(tmp_path, [ma_setup()], max_ticks=10, clock=clock, speed=60.0)
    runner.run()
    # Ten 1-minute bars at 60 x: the last is due 9 minutes / 60 = 9 s after the first.
    assert clock.monotonic() == pytest.approx(9.0)


def test_clock_mode_steps_every_tick_interval(tmp_path):
    clock = SimClock()
    runner = make_runner(tmp_path, [ma_setup()], max_ticks=5, clock=clock, mode="clock", tick_interval=2.0)
    runner.run()
    assert clock.monotonic() == pytest.approx(8.0)
    assert runner.pacer.overruns == 0


def test_duration_ends_the_run(tmp_path):
    clock = SimClock()
    runner = make_runner(tmp_path, [ma_setup()], max_ticks=None, clock=clock, speed=60.0, duration=30.0)
    summary = runner.run()
    assert summary.status == "completed"
    assert summary.steps == 30


def test_signal_callback_sees_every_signal(tmp_path):
    seen = []
    runner = make_runner(tmp_path, [ma_setup()])
    runner.loop.on_signal = seen.append
    summary = runner.run()
    assert len(seen) == sum(s.signals for s in summary.strategies) > 0
    assert [e.order_id for e in seen if e.accepted] == [
        s.order_id for s in queries.signals(runner.recorder.engine, runner.run_id) if s.accepted
    ]


def test_reusing_a_run_id_is_refused(tmp_path):
    from runner.errors import ConfigError

    first = make_runner(tmp_path, [ma_setup()], max_ticks=2, run_id="fixed")
    first.run()
    with pytest.raises(ConfigError, match="run id 'fixed' already exists"):
        make_runner(tmp_path, [ma_setup()], max_ticks=2, run_id="fixed")


def test_a_slow_step_in_clock_mode_counts_an_overrun_and_the_clock_keeps_its_slots(tmp_path):
    clock = SimClock()

    class Slow(StrategyInterface):
        calls = 0

        def on_tick(self, market_data):
            Slow.calls += 1
            if Slow.calls == 1:  # only the first step is slow
                clock.advance(5.0)

    runner = make_runner(tmp_path, [StrategySetup("slow", Slow)], max_ticks=4, clock=clock,
                         mode="clock", tick_interval=2.0)
    runner.run()
    assert runner.pacer.overruns == 1
    # The first step overran to t=5: the slots at 2 and 4 are skipped, the next steps run at 6, 8, 10.
    assert clock.monotonic() == pytest.approx(10.0)
