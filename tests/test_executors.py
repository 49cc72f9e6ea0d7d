"""Threaded execution: free-running hosts in clock mode (the newest data only, overruns, bounded
queues), lockstep hosts in data mode (the records of inline), and stuck strategies."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runner.bootstrap import StrategySetup, assemble, build
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import SyntheticSymbol, load_config_text
from runner.domain import MarketData
from runner.feeds.synthetic import SyntheticFeed
from runner.portfolio import Portfolio
from runner.storage import queries
from runner.threaded import MAX_PENDING_NOTICES, ThreadedHost
from strategies.base import StrategyInterface
from tests.helpers import bar, step, wait_until

START = datetime(2024, 1, 2, tzinfo=UTC)


def threaded_runner(tmp_path: Path, setups, max_ticks: int | None, **run):
    """A threaded run over synthetic AAA and BBB (one 1m bar each per step)."""
    symbols = {"AAA": SyntheticSymbol(), "BBB": SyntheticSymbol(start_price=Decimal(50))}
    feed = SyntheticFeed(symbols, "1m", START, seed=3)
    broker = PaperBroker(
        Portfolio(Decimal(1_000_000)), BarFillModel(Decimal(0)), FeeSchedule(CommissionModel()), feed.symbols,
    )
    return assemble(
        feed=feed, broker=broker, strategies=setups, database=f"sqlite:///{tmp_path / 'runs.db'}",
        max_ticks=max_ticks, threaded=True, **run,
    )


def step_of(timestamp: datetime) -> int:
    """The 1-based step of a synthetic bar time."""
    return int((timestamp - START) / timedelta(minutes=1)) + 1


class Seen(StrategyInterface):
    """Remembers the step of each call; buys one AAA every call."""

    pause = 0.0

    def on_start(self):
        self.steps: list[int] = []

    def on_tick(self, market_data):
        self.steps.append(step_of(market_data.timestamp))
        if self.pause:
            time.sleep(self.pause)  # strategy code may take its time; the engine never sleeps
        return [{"symbol": "AAA", "action": "BUY", "quantity": 1}]


class Slow(Seen):
    pause = 0.1


# --- clock mode: free-running ----------------------------------------------------------------


def test_clock_mode_a_slow_threaded_strategy_gets_the_newest_data_and_stalls_nothing(tmp_path):
    steps, tick = 40, 0.02
    runner = threaded_runner(
        tmp_path, [StrategySetup("slow", Slow), StrategySetup("fast", Seen)], max_ticks=steps,
        mode="clock", tick_interval=tick,
    )
    depths = []
    runner.start()
    while not runner.wait(0.005):
        depths += [s.queue_depth for s in runner.snapshot().strategies]
    summary = runner.snapshot()
    stats = {s.name: s for s in summary.strategies}
    slow, fast = (next(h.strategy for h in runner.loop.hosts if h.name == n) for n in ("slow", "fast"))

    assert summary.status == "completed" and summary.steps == steps
    # The loop never waits for the slow strategy. Waiting would take at least its 40 sleeps of
    # 100 ms (4 s) on any machine; free-running takes 40 steps of 20 ms (0.8 s), so a loaded
    # machine has five times that before this fails.
    assert summary.elapsed_seconds < steps * Slow.pause
    # The slow strategy missed data (a loop that waited would hand it every step), and the fast
    # one is not held to its pace: it took more of the steps (no absolute counts, which depend
    # on the machine's load).
    assert 2 <= stats["slow"].calls < stats["fast"].calls and stats["slow"].overruns > 0
    for name, strategy in (("slow", slow), ("fast", fast)):
        s = stats[name]
        # Every step carried data for it: each was taken by a call, or skipped as an overrun
        # (what was still waiting at the end was handed over before the stop).
        assert s.calls + s.overruns + s.queue_depth == steps, name
        assert s.queue_depth == 0
        assert strategy.steps == sorted(set(strategy.steps)) and len(strategy.steps) == s.calls
        # What it skipped is exactly what it never saw, and the last data of the run reached it.
        assert steps - len(strategy.steps) == s.overruns
        assert strategy.steps[-1] == steps
        assert s.signals == s.calls  # the signals of every finished call were taken
    assert max(depths) <= 1 + MAX_PENDING_NOTICES
    with sqlite3.connect(tmp_path / "runs.db") as connection:
        stored = dict(connection.execute("select strategy, overruns from strategy_stats").fetchall())
    assert stored == {"slow": stats["slow"].overruns, "fast": stats["fast"].overruns}
    assert stats["slow"].max_ms >= 1000 * Slow.pause and stats["slow"].p95_ms >= 1000 * Slow.pause


class Blocking:
    """A bare strategy whose on_tick blocks while `gate` is clear, and which records fills."""

    def __init__(self):
        self.gate, self.entered = threading.Event(), threading.Event()
        self.ticks, self.fills = [], []

    def on_start(self):
        pass

    def on_tick(self, market_data):
        self.ticks.append(market_data.timestamp)
        self.entered.set()
        self.gate.wait(10)
        return [{"symbol": "AAA", "action": "HOLD"}]

    def on_fill(self, fill):
        self.fills.append(fill)

    def on_stop(self):
        return None


class BlockingWithoutFills(Blocking):
    on_fill = None


def free_host(strategy) -> ThreadedHost:
    faults = []
    host = ThreadedHost("busy", strategy, {"1m": ("AAA",)}, 3, faults.append, lockstep=False, timeout=10)
    host.start(None)
    return host


def test_a_busy_free_running_host_keeps_one_step_and_a_bounded_queue_of_notices_in_order():
    strategy = Blocking()
    host = free_host(strategy)
    try:
        markets = [step(minute, bar("AAA", minute, 100 + minute)) for minute in range(5)]
        host.begin_tick(markets[0], 1)
        assert strategy.entered.wait(10)
        for number, market in enumerate(markets[1:], start=2):
            host.begin_tick(market, number)  # each replaces the one before: three overruns
        for number in range(MAX_PENDING_NOTICES + 200):
            host.notify("on_fill", number, 5, None)
        assert host.queue_depth == 1 + MAX_PENDING_NOTICES  # the newest step and the notices
        assert host.stats.overruns == 3 + 200
    finally:
        strategy.gate.set()
    host.settle()
    assert host.queue_depth == 0
    assert strategy.fills == list(range(MAX_PENDING_NOTICES))  # in order, the first thousand
    assert strategy.ticks == [markets[0].timestamp, markets[-1].timestamp]  # then the newest step
    assert host.stats.calls == 2 and len(host.collect()) == 2
    host.shut_down(5, None)
    host._thread.join(5)
    assert not host._thread.is_alive()


def test_notices_for_a_hook_the_strategy_lacks_are_not_queued():
    strategy = BlockingWithoutFills()
    host = free_host(strategy)
    try:
        host.begin_tick(step(0, bar("AAA", 0, 100)), 1)
        assert strategy.entered.wait(10)
        for number in range(MAX_PENDING_NOTICES + 5):
            host.notify("on_fill", number, 1, None)
        assert host.queue_depth == 0 and host.stats.overruns == 0
    finally:
        strategy.gate.set()
    host.settle()
    host.shut_down(1, None)


# --- data mode: lockstep gives the records of inline ---------------------------------------------

SCANNER = '''
from strategies.base import StrategyInterface


class Scanner(StrategyInterface):
    """Asks for SCAN at its 30th call and trades it in and out."""

    def on_start(self):
        self.calls = 0
        self.added = []

    def on_symbol_added(self, symbol):
        self.added.append(symbol)

    def on_fill(self, fill):
        self.last_fill = fill.price

    def on_tick(self, market_data):
        self.calls += 1
        if self.calls == 30:
            self.context.add_symbol("SCAN", start_price=20, volatility=0.5)
        if "SCAN" in market_data and self.calls % 4 == 0:
            return [{"symbol": "SCAN", "action": "BUY" if self.calls % 8 else "SELL", "quantity": 3}]
        return None
'''

COMPARED = {
    "orders": "order_id", "order_events": "id", "fills": "fill_id", "positions": "strategy, symbol",
    "equity": "step", "strategy_equity": "step, strategy", "signals": "id", "strategy_errors": "id",
    "symbols_added": "symbol",
}
STATS_COUNTS = "strategy, state, calls, signals, accepted, rejected, errors, overruns, queue_depth"


def stored(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as connection:
        result = {}
        for table, order in COMPARED.items():
            cursor = connection.execute(f"select * from {table} order by {order}")
            keep = [i for i, d in enumerate(cursor.description) if d[0] not in ("run_id", "id")]
            result[table] = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
        result["strategy_stats"] = connection.execute(f"select {STATS_COUNTS} from strategy_stats order by strategy").fetchall()
    return result


def test_lockstep_threaded_equals_inline_with_subscriptions_and_symbols_added(tmp_path):
    (tmp_path / "scanner.py").write_text(SCANNER)
    config = load_config_text(
        "run: {seed: 5}\n"
        "market_data: {symbols: [AAA, BBB], add_symbols: [{symbol: LATE, after_step: 40, start_price: 30}]}\n"
        "strategies:\n"
        "  - name: ma_sub\n"
        "    type: ma_crossover\n"
        "    subscriptions: [{symbol: AAA, interval: 1m}, {symbol: BBB, interval: 5m}]\n"
        "    params: {fast: 3, slow: 8, quantity: 5}\n"
        "  - {name: hold_all, type: buy_and_hold, params: {quantity: 2}}\n"
        "  - {name: scanner, file: scanner.py, symbols: [AAA]}\n",
        str(tmp_path / "c.yaml"),
    )
    outcomes = {}
    for execution in ("inline", "threaded"):
        db = tmp_path / f"{execution}.db"
        runner = build(config.with_overrides(
            run={"execution": execution, "max_ticks": 200}, storage={"url": f"sqlite:///{db}"},
        ))
        assert runner.run().status == "completed"
        outcomes[execution] = stored(db)
    inline = outcomes["inline"]
    symbol, step, requested_by = 0, 1, 3  # columns of symbols_added (after run_id)
    assert [(r[symbol], r[step], r[requested_by]) for r in inline["symbols_added"]] == [
        ("LATE", 40, ""), ("SCAN", 30, "scanner"),
    ]
    traded = {(row[2], row[3]) for row in inline["fills"]}  # (strategy, symbol)
    for pair in [("ma_sub", "AAA"), ("ma_sub", "BBB"), ("hold_all", "LATE"), ("hold_all", "SCAN"), ("scanner", "SCAN")]:
        assert pair in traded
    assert outcomes["threaded"] == inline


# --- stuck strategies -------------------------------------------------------------------------


class Hanging(StrategyInterface):
    """Hangs in its third on_tick until `gate` is set."""

    gate: threading.Event

    def on_start(self):
        self.calls = 0
        self.returned = threading.Event()

    def on_tick(self, market_data):
        self.calls += 1
        if self.calls == 3:
            self.hung_on = market_data.timestamp
            self.gate.wait()
            self.context.add_symbol("LATE", start_price=5)
            self.returned.set()
        return [{"symbol": "BBB", "action": "BUY", "quantity": 1}]


PACES = {"data": {"mode": "data", "speed": 3000.0}, "clock": {"mode": "clock", "tick_interval": 0.02}}


@pytest.mark.parametrize("mode", ["data", "clock"])
def test_a_hanging_strategy_is_marked_stuck_while_the_others_trade_and_stop_completes(tmp_path, mode):
    gate = threading.Event()
    hanging = type("Hanging", (Hanging,), {"gate": gate})
    runner = threaded_runner(
        tmp_path, [StrategySetup("hang", hanging, interval="5m"), StrategySetup("buyer", Seen)], max_ticks=None,
        strategy_timeout=0.5, **PACES[mode],
    )
    hang = next(h for h in runner.loop.hosts if h.name == "hang")
    worker = hang._thread
    try:
        runner.start()

        def strategies():
            return {s.name: s for s in runner.snapshot().strategies}

        # Stuck is noticed while the run goes on, not only when it ends.
        wait_until(lambda: getattr(strategies().get("hang"), "state", "") == "disabled", 10, "the stuck strategy to be disabled")
        assert runner.status().value == "running"
        calls_then = strategies()["buyer"].calls
        wait_until(lambda: strategies()["buyer"].calls >= calls_then + 10, 10, "the other strategy to go on")
        runner.stop()
        assert runner.wait(10), "stop completes although a strategy never returns"
        summary = runner.snapshot()
    finally:
        gate.set()
    stats = {s.name: s for s in summary.strategies}
    assert summary.status == "stopped"
    assert stats["hang"].state == "disabled"
    assert stats["hang"].disabled_reason == "stuck: on_tick did not return within 0.5 s"
    assert stats["buyer"].state == "stopped" and stats["buyer"].errors == 0
    engine = runner.recorder.engine
    errors = [
        (e.strategy, e.hook, e.step, e.timestamp, e.error_type, e.disabled)
        for e in queries.strategy_errors(engine, runner.run_id)
    ]
    # Recorded at the step whose 5m candle it hung on (the step of its last 1m bar).
    hung_on = hang.strategy.hung_on
    assert errors == [("hang", "on_tick", step_of(hung_on) + 4, hung_on, "Timeout", True)]
    steps_of_buyer_fills = [f.timestamp for f in queries.fills(engine, runner.run_id) if f.strategy == "buyer"]
    assert len(steps_of_buyer_fills) >= 10 and step_of(max(steps_of_buyer_fills)) > 13
    worker.join(5)
    assert not worker.is_alive(), "the released worker thread ends"
    assert hang.strategy.calls == 3 and stats["hang"].queue_depth == 0  # nothing more was handed to it


@pytest.mark.parametrize("mode", ["data", "clock"])
def test_a_stuck_strategy_that_returns_late_has_no_effect(tmp_path, mode):
    gate = threading.Event()
    hanging = type("Hanging", (Hanging,), {"gate": gate})
    runner = threaded_runner(
        tmp_path, [StrategySetup("hang", hanging), StrategySetup("buyer", Seen)], max_ticks=None,
        strategy_timeout=0.3, **PACES[mode],
    )
    hang = next(h for h in runner.loop.hosts if h.name == "hang")
    runner.start()
    try:
        wait_until(lambda: hang.state.value == "disabled", 10, "the stuck strategy to be disabled")
        gate.set()
        assert hang.strategy.returned.wait(10)
        steps_then = runner.loop.steps
        wait_until(lambda: runner.loop.steps >= steps_then + 10, 10, "ten more steps")
    finally:
        gate.set()
        runner.stop()
        assert runner.wait(10)
    signals = [s for s in queries.signals(runner.recorder.engine, runner.run_id) if s.strategy == "hang"]
    assert len(signals) == 2  # from its first two calls; what the stuck call returned is dropped
    assert "LATE" not in runner.loop.broker.symbols  # and what it asked for
    assert hang.strategy.calls == 3 and runner.snapshot().status == "stopped"


# --- review findings: reading the books beside the loop, multi-interval offers, idle threads ---


class Buyer(StrategyInterface):
    """Opens a position in every symbol it has none of, three a call: the books keep growing."""

    def on_tick(self, market_data):
        wanted = [s for s in market_data if self.context.position(s).quantity == 0]
        return [{"symbol": s, "action": "BUY", "quantity": 1} for s in wanted[:3]]


class Reader(StrategyInterface):
    """Reads its positions, orders and history over and over while the loop goes on."""

    def history_size(self):
        return 3

    def on_start(self):
        self.torn = 0

    def on_tick(self, market_data):
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            self.context.positions()
            self.context.orders()
            for symbol in list(market_data)[:5]:
                stamps = self.context.history(symbol, 3).timestamp
                self.torn += int(any(stamps[1:] <= stamps[:-1]))


def test_clock_mode_strategies_read_the_books_between_steps_never_during_one(tmp_path):
    symbols = " ".join(f"S{i}," for i in range(120))
    config = load_config_text(f"""
run: {{mode: clock, tick_interval: 0.002, max_ticks: 300, execution: threaded}}
market_data: {{symbols: [{symbols}]}}
storage: {{url: "sqlite:///{tmp_path / 'books.db'}", equity_every: 50}}
strategies:
  - {{name: buyer, file: {Path(__file__).resolve()}, class: Buyer}}
  - {{name: reader, file: {Path(__file__).resolve()}, class: Reader, max_errors: 100000}}
""")
    runner = build(config)
    summary = runner.run()
    reader = next(h for h in runner.loop.hosts if h.name == "reader").strategy
    assert summary.status == "completed"
    assert summary.fills > 100  # the books grew while the reader read them
    # Without the books lock: "dictionary changed size during iteration" and bars out of order.
    assert summary.to_dict()["errors"] == {"buyer": 0, "reader": 0}
    assert reader.torn == 0


class TwoIntervals(StrategyInterface):
    def on_start(self):
        self.seen: list[tuple[int, str]] = []

    def on_tick(self, market_data):
        self.seen.append((step_of(market_data.timestamp), market_data.interval))


def test_clock_mode_a_step_with_two_closed_intervals_hands_over_both_at_once(tmp_path):
    setups = [StrategySetup("two", TwoIntervals, subscriptions={"1m": ["AAA"], "5m": ["BBB"]})]
    runner = threaded_runner(tmp_path, setups, max_ticks=60, mode="clock", tick_interval=0.01)
    summary = runner.run()
    host = runner.loop.hosts[0]
    seen = host.strategy.seen
    offered = 60 + 60 // 5  # a 1m view every step, a 5m view every fifth
    assert summary.status == "completed"
    assert len(seen) + host.stats.overruns == offered  # each view taken, or counted as missed
    five_minute_steps = {s for s, interval in seen if interval == "5m"}
    # The 5m candle labelled 10:00 closes with the 10:04 bar: the step that took it took that 1m bar too.
    assert five_minute_steps and all((s + 4, "1m") in seen for s in five_minute_steps)


def test_a_threaded_runner_built_but_never_started_holds_no_thread(tmp_path):
    before = {t.name for t in threading.enumerate()}
    threaded_runner(tmp_path, [StrategySetup("idle", Seen)], max_ticks=5)
    assert {t.name for t in threading.enumerate()} - before == set()


def test_pairs_of_one_interval_written_two_ways_are_both_routed(tmp_path):
    setups = [StrategySetup("two", TwoIntervals, subscriptions={"1m": ["AAA"], "60s": ["BBB"]})]
    runner = threaded_runner(tmp_path, setups, max_ticks=3)
    runner.run()
    assert runner.loop.hosts[0].routes == {"1m": ("AAA", "BBB")}
