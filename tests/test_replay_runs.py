"""Whole runs over generated CSV files: derived-interval strategies, alignment of symbols with
gaps, the history API, determinism, pacing, and the shipped replay config."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runner.bootstrap import StrategySetup, assemble, build
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.clock import SimClock
from runner.config import load_config, load_config_text
from runner.feeds.replay import load_replay
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.base import StrategyInterface

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def write_minutes(path: Path, minutes, seed: int = 1, price: float = 100.0) -> list[tuple[datetime, float]]:
    """Write 1-minute bars at `minutes` after START as a random walk; return (time, close) rows."""
    rng = random.Random(seed)
    lines, closes = ["timestamp,open,high,low,close,volume"], []
    for minute in minutes:
        open_ = price
        price = round(max(1.0, price + rng.uniform(-1, 1)), 2)
        high = round(max(open_, price) + rng.uniform(0, 0.5), 2)
        low = round(min(open_, price) - rng.uniform(0, 0.5), 2)
        when = START + minute * MINUTE
        lines.append(f"{when:%Y-%m-%dT%H:%M:%SZ},{open_:.2f},{high:.2f},{low:.2f},{price:.2f},{rng.randint(100, 999)}")
        closes.append((when, price))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return closes


def db_url(tmp_path: Path, name: str = "runs.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def run_setups(tmp_path: Path, symbols, setups, name="runs.db", **options):
    """A runner over tmp_path/{symbol}.csv with the given strategies; returns (runner, summary)."""
    feed = load_replay("csv", tmp_path, path="{symbol}.csv", symbols=list(symbols))
    broker = PaperBroker(
        Portfolio(Decimal(100_000)), BarFillModel(Decimal(0)), FeeSchedule(CommissionModel()), feed.symbols,
    )
    runner = assemble(feed=feed, broker=broker, strategies=setups, database=db_url(tmp_path, name), **options)
    return runner, runner.run()


def strategy(runner, name: str):
    return next(host.strategy for host in runner.loop.hosts if host.name == name)


def calls(summary, name: str) -> int:
    return next(s.calls for s in summary.strategies if s.name == name)


class Recorder(StrategyInterface):
    """Remembers what each call saw."""

    def on_start(self):
        self.seen = []

    def on_tick(self, market_data):
        self.seen.append({
            "timestamp": market_data.timestamp,
            "interval": market_data.interval,
            "fresh": tuple(market_data.fresh),
            "present": frozenset(market_data),
            "is_fresh": {s: market_data.is_fresh(s) for s in market_data},
            "bars": {s: market_data[s] for s in market_data},
        })


# --- a strategy on a derived interval ---------------------------------------------------------


def test_a_15m_strategy_is_called_once_per_closed_15m_candle(tmp_path):
    rng = random.Random(5)
    minutes = [m for m in range(180) if m % 15 == 0 or m == 179 or rng.random() > 0.3]
    closes = dict(write_minutes(tmp_path / "AAA.csv", minutes))
    runner, summary = run_setups(
        tmp_path, ["AAA"], [StrategySetup("q", Recorder, interval="15m"), StrategySetup("m", Recorder)],
    )
    seen = strategy(runner, "q").seen
    starts = [START + timedelta(minutes=15 * k) for k in range(12)]
    assert [call["timestamp"] for call in seen] == starts
    assert calls(summary, "q") == 12
    assert calls(summary, "m") == len(minutes) == summary.steps
    assert all(call["interval"] == "15m" for call in seen)
    assert all(call["timestamp"].minute % 15 == 0 and call["timestamp"].second == 0 for call in seen)
    assert all(call["fresh"] == ("AAA",) for call in seen)
    for call in seen:  # each candle closes at the last 1m close inside it
        start = call["timestamp"]
        inside = [t for t in closes if start <= t < start + 15 * MINUTE]
        bar = call["bars"]["AAA"]
        assert bar.timestamp == start
        assert float(bar.close) == closes[max(inside)]
    assert {call["interval"] for call in strategy(runner, "m").seen} == {"1m"}


def test_the_unfinished_last_candle_is_never_dispatched(tmp_path):
    write_minutes(tmp_path / "AAA.csv", range(40))  # 14:30-15:09: 15:00 is unfinished
    runner, summary = run_setups(tmp_path, ["AAA"], [StrategySetup("q", Recorder, interval="15m")])
    assert [call["timestamp"] for call in strategy(runner, "q").seen] == [START, START + 15 * MINUTE]
    assert calls(summary, "q") == 2


def test_a_15m_strategy_on_two_symbols_sees_each_candle_once(tmp_path):
    write_minutes(tmp_path / "AAA.csv", range(60), seed=1)
    write_minutes(tmp_path / "BBB.csv", [m for m in range(60) if m not in (3, 20, 31)], seed=2)
    runner, summary = run_setups(tmp_path, ["AAA", "BBB"], [StrategySetup("q", Recorder, interval="15m")])
    seen = strategy(runner, "q").seen
    assert [call["timestamp"] for call in seen] == [START + 15 * k * MINUTE for k in range(4)]
    assert all(call["fresh"] == ("AAA", "BBB") for call in seen)
    assert calls(summary, "q") == 4


def test_a_candle_closed_late_for_one_symbol_is_delivered_fresh_once(tmp_path):
    # BBB lacks 14:44, so its 14:30 candle closes one step after AAA's: the strategy hears of
    # the 14:30 candle twice, once per symbol, and every candle of each symbol is fresh once.
    write_minutes(tmp_path / "AAA.csv", range(60), seed=1)
    write_minutes(tmp_path / "BBB.csv", [m for m in range(60) if m != 14], seed=2)
    runner, summary = run_setups(tmp_path, ["AAA", "BBB"], [StrategySetup("q", Recorder, interval="15m")])
    seen = strategy(runner, "q").seen
    starts = [START + 15 * k * MINUTE for k in range(4)]
    for symbol in ("AAA", "BBB"):
        assert [c["timestamp"] for c in seen if symbol in c["fresh"]] == starts
        assert all(c["bars"][symbol].timestamp == c["timestamp"] for c in seen if symbol in c["fresh"])
    assert [(c["timestamp"], c["fresh"]) for c in seen[:2]] == [(START, ("AAA",)), (START, ("BBB",))]
    assert calls(summary, "q") == 5


def test_15m_through_a_config(tmp_path):
    write_minutes(tmp_path / "AAA.csv", range(90))
    config = load_config_text(
        "market_data: {source: csv, path: AAA.csv, derived_intervals: [5m]}\n"
        f"storage: {{url: '{db_url(tmp_path)}'}}\n"
        "strategies:\n"
        "  - {name: slow, type: ma_crossover, interval: 15m, params: {fast: 2, slow: 3}}\n"
        "  - {name: fast, type: ma_crossover, params: {fast: 2, slow: 3}}\n",
        str(tmp_path / "cfg.yaml"),
    )
    summary = build(config).run()
    assert summary.status == "completed"
    assert summary.to_dict()["strategies"]["slow"]["calls"] == 6
    assert summary.to_dict()["strategies"]["fast"]["calls"] == 90


# --- alignment of symbols with gaps -----------------------------------------------------------


def test_symbols_with_gaps_are_aligned_and_stale_bars_are_not_fresh(tmp_path):
    aaa = dict(write_minutes(tmp_path / "AAA.csv", [0, 1, 2, 3, 4, 5], seed=1))
    bbb = dict(write_minutes(tmp_path / "BBB.csv", [1, 2, 4, 6], seed=2, price=50))
    runner, summary = run_setups(
        tmp_path, ["AAA", "BBB"],
        [StrategySetup("both", Recorder), StrategySetup("only_b", Recorder, symbols=["BBB"])],
    )
    assert summary.steps == 7
    seen = strategy(runner, "both").seen
    t = [START + m * MINUTE for m in range(7)]
    assert [(c["timestamp"], c["fresh"], c["present"]) for c in seen] == [
        (t[0], ("AAA",), {"AAA"}),
        (t[1], ("AAA", "BBB"), {"AAA", "BBB"}),
        (t[2], ("AAA", "BBB"), {"AAA", "BBB"}),
        (t[3], ("AAA",), {"AAA", "BBB"}),
        (t[4], ("AAA", "BBB"), {"AAA", "BBB"}),
        (t[5], ("AAA",), {"AAA", "BBB"}),
        (t[6], ("BBB",), {"AAA", "BBB"}),
    ]
    # a symbol without a bar in the step keeps its latest bar, marked not fresh
    step3 = seen[3]
    assert step3["is_fresh"] == {"AAA": True, "BBB": False}
    assert step3["bars"]["BBB"].timestamp == t[2] and float(step3["bars"]["BBB"].close) == bbb[t[2]]
    assert float(step3["bars"]["AAA"].close) == aaa[t[3]]
    step6 = seen[6]
    assert step6["is_fresh"] == {"AAA": False, "BBB": True}
    assert step6["bars"]["AAA"].timestamp == t[5]
    # a strategy on BBB alone is called only when BBB has a bar
    only_b = strategy(runner, "only_b").seen
    assert [(c["timestamp"], c["fresh"], c["present"]) for c in only_b] == [
        (t[m], ("BBB",), {"BBB"}) for m in (1, 2, 4, 6)
    ]


# --- the history API --------------------------------------------------------------------------


class HistoryReader(StrategyInterface):
    def history_size(self):
        return 5

    def on_start(self):
        self.checked = 0
        self.frames = []
        self.kept = None

    def on_tick(self, market_data):
        if self.kept is not None:  # what a strategy holds does not change under it
            array, values = self.kept
            assert array.tolist() == values
        for symbol in market_data.fresh:
            history = self.context.history(symbol, 3)
            assert isinstance(history.close, np.ndarray) and history.close.dtype == np.float64
            assert isinstance(history.timestamp, np.ndarray)
            assert 1 <= len(history) <= 3 and len(history.open) == len(history)
            assert history.close[-1] == float(market_data[symbol].close)
            assert history.high[-1] == float(market_data[symbol].high)
            assert history.volume[-1] == float(market_data[symbol].volume)
            assert pd.Timestamp(history.timestamp[-1], tz="UTC") == market_data[symbol].timestamp
            self.kept = (history.close, history.close.tolist())
            everything = self.context.history(symbol)
            assert len(everything) <= 5 and everything.close[-1] == history.close[-1]
            self.checked += 1
        self.frames.append(self.context.history(market_data.fresh[0], 4).to_frame())


def test_history_returns_numpy_arrays_and_a_frame(tmp_path):
    closes = write_minutes(tmp_path / "AAA.csv", range(20), seed=3)
    write_minutes(tmp_path / "BBB.csv", range(0, 20, 3), seed=4)
    runner, summary = run_setups(
        tmp_path, ["AAA", "BBB"], [StrategySetup("h", HistoryReader), StrategySetup("h5", HistoryReader, interval="5m")],
    )
    reader = strategy(runner, "h")
    assert reader.checked == 20 + 7
    assert summary.errors == 0
    frame = reader.frames[-1]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert list(frame["close"]) == [c for _, c in closes[-4:]]  # the last call: minute 19, AAA only
    assert list(frame.index) == [pd.Timestamp(t) for t, _ in closes[-4:]]
    five = strategy(runner, "h5")
    # AAA closes the 5m candles of 14:30, :35, :40, :45; BBB (every third minute) those of :30,
    # :35, :40 only: its :45 candle lacks 14:49 and no step comes after it.
    assert five.checked == 4 + 3
    last = five.frames[-1]
    assert list(last.index) == [pd.Timestamp(START + k * 5 * MINUTE) for k in range(4)]
    assert last["close"].iloc[-1] == dict(closes)[START + 19 * MINUTE]


# --- determinism and pacing -------------------------------------------------------------------

RUN_CONFIG = """\
run: {{mode: data, speed: {speed}}}
market_data:
  source: csv
  path: '{{symbol}}.csv'
  symbols: [AAA, BBB]
  derived_intervals: [5m]
broker: {{slippage_bps: 3, commission: {{per_share: 0.01, minimum: 1}}}}
storage: {{url: '{url}'}}
strategies:
  - {{name: fast, type: ma_crossover, params: {{fast: 3, slow: 8, quantity: 5}}}}
  - {{name: slow, type: ma_crossover, interval: 5m, params: {{fast: 2, slow: 4, quantity: 7}}}}
  - {{name: hold, type: buy_and_hold, symbols: [BBB], params: {{quantity: 2, sell_on_stop: true}}}}
"""


def write_pair(tmp_path: Path):
    write_minutes(tmp_path / "AAA.csv", range(240), seed=11)
    write_minutes(tmp_path / "BBB.csv", [m for m in range(240) if m % 7 != 3], seed=12, price=40)


def config_run(tmp_path: Path, name: str, speed: float = 0, clock=None):
    config = load_config_text(RUN_CONFIG.format(speed=speed, url=db_url(tmp_path, name)), str(tmp_path / "cfg.yaml"))
    runner = build(config, clock=clock)
    return runner, runner.run()


def order_rows(runner):
    return [
        (o.order_id, o.strategy, o.symbol, o.side, o.order_type, o.quantity, o.status, o.filled_quantity,
         o.average_price, o.created_at, o.updated_at)
        for o in queries.orders(runner.recorder.engine, runner.run_id)
    ]


def fill_rows(runner):
    return [
        (f.fill_id, f.order_id, f.strategy, f.symbol, f.side, f.quantity, f.price, f.commission, f.timestamp)
        for f in queries.fills(runner.recorder.engine, runner.run_id)
    ]


def test_a_replay_run_is_deterministic(tmp_path):
    write_pair(tmp_path)
    first, one = config_run(tmp_path, "a.db")
    second, two = config_run(tmp_path, "b.db")
    assert first.run_id != second.run_id
    assert len(fill_rows(first)) > 10
    assert fill_rows(first) == fill_rows(second)
    assert order_rows(first) == order_rows(second)
    assert one.to_dict()["final_equity"] == two.to_dict()["final_equity"]
    assert without_timing(one) == without_timing(two)


def test_paced_and_unpaced_runs_trade_the_same(tmp_path):
    write_pair(tmp_path)
    fast, fast_summary = config_run(tmp_path, "fast.db", speed=0)
    clock = SimClock()
    paced, paced_summary = config_run(tmp_path, "paced.db", speed=120, clock=clock)
    assert clock.monotonic() == pytest.approx(239 * 60 / 120)
    assert len(order_rows(fast)) > 10
    assert order_rows(fast) == order_rows(paced)
    assert fill_rows(fast) == fill_rows(paced)
    assert fast_summary.steps == paced_summary.steps == 240
    assert fast_summary.equity == paced_summary.equity


def test_speed_60_advances_the_clock_by_bar_time_over_60(tmp_path):
    minutes = [0, 1, 2, 5, 6, 7, 30, 31, 44]  # gaps count: pacing follows the bar timestamps
    write_minutes(tmp_path / "AAA.csv", minutes)
    clock = SimClock()
    runner, summary = run_setups(tmp_path, ["AAA"], [StrategySetup("r", Recorder)], clock=clock, speed=60.0)
    assert summary.steps == len(minutes)
    assert clock.monotonic() == pytest.approx(44 * 60 / 60)


def test_speed_0_takes_no_clock_time(tmp_path):
    write_minutes(tmp_path / "AAA.csv", range(30))
    clock = SimClock()
    run_setups(tmp_path, ["AAA"], [StrategySetup("r", Recorder)], clock=clock, speed=0.0)
    assert clock.monotonic() == 0.0


def test_a_wall_clock_paced_run_takes_about_the_bar_time_over_speed(tmp_path):
    write_minutes(tmp_path / "AAA.csv", range(50))
    speed = 49 * 60 / 0.5  # 49 minutes of bars in half a second
    started = time.monotonic()
    runner, summary = run_setups(tmp_path, ["AAA"], [StrategySetup("r", Recorder)], speed=speed)
    elapsed = time.monotonic() - started
    assert summary.status == "completed" and summary.steps == 50
    assert 0.4 <= elapsed <= 3.0, elapsed


# --- the shipped example ----------------------------------------------------------------------


def test_the_replay_csv_config_runs_to_completion(tmp_path):
    config = load_config(ROOT / "configs" / "replay_csv.yaml")
    config = config.with_overrides(storage={"url": db_url(tmp_path)})
    runner = build(config)
    summary = runner.run()
    assert summary.status == "completed", summary.error
    assert summary.skipped_rows == 0
    assert summary.steps == runner.feed.total_steps == 3 * 390
    strategies = summary.to_dict()["strategies"]
    assert strategies["ma_15m"]["calls"] == 78  # 26 quarter hours a day, three days
    assert strategies["ma_1m"]["calls"] == 3 * 390
    assert all(s["errors"] == 0 for s in strategies.values())
    record = queries.run(runner.recorder.engine, runner.run_id)
    assert record.status == "completed" and record.ticks == summary.steps


def without_timing(summary):
    """The per-strategy counters of a summary, less the time on_tick took (which varies)."""
    return {
        name: {k: v for k, v in counters.items() if k not in ("mean_ms", "p95_ms", "max_ms")}
        for name, counters in summary.to_dict()["strategies"].items()
    }
