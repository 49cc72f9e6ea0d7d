"""Symbols added during a run: from Python (`StrategyRunner.add_symbol`), from the config's
`market_data.add_symbols` schedule, and by a strategy's request; and the refusals."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runner.bootstrap import StrategySetup, assemble, build
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import SyntheticSymbol, load_config_text
from runner.errors import ConfigError
from runner.feeds.replay import load_replay
from runner.feeds.synthetic import SyntheticFeed
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.base import StrategyInterface
from tests.helpers import wait_until
from tests.test_replay_runs import write_minutes

START = datetime(2024, 1, 2, tzinfo=UTC)


def step_of(timestamp: datetime) -> int:
    return int((timestamp - START) / timedelta(minutes=1)) + 1


class Watcher(StrategyInterface):
    """Records each call (step, symbols) and each `on_symbol_added`, in one sequence."""

    def on_start(self):
        self.events: list[tuple] = []

    def on_tick(self, market_data):
        self.events.append(("tick", step_of(market_data.timestamp), tuple(market_data)))
        return None

    def on_symbol_added(self, symbol):
        self.events.append(("added", symbol))

    def ticks(self) -> list[tuple[int, tuple[str, ...]]]:
        return [event[1:] for event in self.events if event[0] == "tick"]

    def added(self) -> list[str]:
        return [event[1] for event in self.events if event[0] == "added"]

    def bars_of(self, symbol: str) -> list:
        return self.bars.get(symbol, [])


class BarKeeper(Watcher):
    """A watcher that also keeps every bar it was given."""

    def on_start(self):
        super().on_start()
        self.bars: dict[str, list] = {}

    def on_tick(self, market_data):
        for symbol, bar in market_data.items():
            self.bars.setdefault(symbol, []).append(bar)
        return super().on_tick(market_data)


class Scanner(Watcher):
    """Asks for `ask` (with `spec`) at its second call; buys 5 of each symbol it is given that
    it holds none of."""

    ask, spec = "NEW", {"start_price": 50}

    def on_tick(self, market_data):
        super().on_tick(market_data)
        if len(self.ticks()) == 2:
            self.context.add_symbol(self.ask, **self.spec)
        return [
            {"symbol": s, "action": "BUY", "quantity": 5}
            for s in market_data if s == self.ask and not self.context.position(s).quantity
            and not self.context.orders()
        ]


def synthetic_runner(tmp_path: Path, setups, name: str = "runs.db", seed: int = 3, **options):
    symbols = {"AAA": SyntheticSymbol(), "BBB": SyntheticSymbol(start_price=Decimal(80))}
    feed = SyntheticFeed(symbols, "1m", START, seed=seed)
    broker = PaperBroker(
        Portfolio(Decimal(1_000_000)), BarFillModel(Decimal(0)), FeeSchedule(CommissionModel()), feed.symbols,
    )
    return assemble(feed=feed, broker=broker, strategies=setups, database=f"sqlite:///{tmp_path / name}", **options)


def strategy(runner, name: str):
    return next(host.strategy for host in runner.loop.hosts if host.name == name)


def symbols_added(runner) -> list[tuple]:
    with sqlite3.connect(runner.database.removeprefix("sqlite:///")) as connection:
        return connection.execute(
            "select symbol, step, timestamp is not null, requested_by from symbols_added where run_id = ? order by step",
            (runner.run_id,),
        ).fetchall()


# --- from Python, while running ------------------------------------------------------------------


@pytest.mark.parametrize("execution", ["inline", "threaded"])
def test_add_symbol_while_running_reaches_the_strategies_that_take_every_symbol(tmp_path, execution):
    runner = synthetic_runner(
        tmp_path, [StrategySetup("every", BarKeeper), StrategySetup("explicit", Watcher, symbols=["AAA", "BBB"])],
        max_ticks=None, speed=3000.0, threaded=execution == "threaded",  # one 1m bar every 20 ms
    )
    every, explicit = strategy(runner, "every"), strategy(runner, "explicit")
    runner.start()
    try:
        wait_until(lambda: runner.loop.steps >= 3, 10, "the run to begin")
        runner.add_symbol("NEW", start_price=50)
        wait_until(lambda: any("NEW" in symbols for _, symbols in every.ticks()[-1:]), 10, "the first NEW bar")
        wait_until(lambda: len(every.bars_of("NEW")) >= 3, 10, "more NEW bars")
    finally:
        runner.stop()
        assert runner.wait(10)

    [(symbol, added_after, has_time, requested_by)] = symbols_added(runner)
    assert (symbol, has_time, requested_by) == ("NEW", True, "")
    ticks = every.ticks()
    first_new = next(number for number, symbols in ticks if "NEW" in symbols)
    assert first_new == added_after + 1  # from the next step on
    assert all(symbols == ("AAA", "BBB", "NEW") for number, symbols in ticks if number > added_after)
    assert all(symbols == ("AAA", "BBB") for number, symbols in ticks if number <= added_after)
    # It is told once, between the last step without the symbol and the first with it.
    assert every.added() == ["NEW"]
    told = every.events.index(("added", "NEW"))
    assert every.events[told - 1][1] == added_after and every.events[told + 1][1] == first_new
    assert every.bars_of("NEW")[0].open == Decimal("50.00")
    # A strategy with its own symbols list keeps it.
    assert explicit.added() == [] and all(symbols == ("AAA", "BBB") for _, symbols in explicit.ticks())
    with pytest.raises(ValueError, match="symbol 'NEW' is already traded"):
        runner.add_symbol("NEW")


def test_add_symbol_refuses_a_traded_symbol_a_bad_spec_and_file_replays(tmp_path):
    runner = synthetic_runner(tmp_path, [StrategySetup("every", Watcher)], max_ticks=2)
    with pytest.raises(ValueError, match="symbol 'AAA' is already traded"):
        runner.add_symbol("AAA")
    with pytest.raises(ValueError, match=r"start_price must be a number > 0, got -1"):
        runner.add_symbol("NEW", start_price=-1)
    with pytest.raises(ValueError, match=r"cannot add symbol 'NEW': .*unexpected keyword argument 'colour'"):
        runner.add_symbol("NEW", colour="red")
    runner.add_symbol("NEW")  # not started: it joins after the first step
    with pytest.raises(ValueError, match="symbol 'NEW' is already traded \\(or about to be\\)"):
        runner.add_symbol("NEW")

    write_minutes(tmp_path / "AAA.csv", range(5))
    feed = load_replay("csv", tmp_path, path="{symbol}.csv", symbols=["AAA"])
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(Decimal(0)), FeeSchedule(CommissionModel()), feed.symbols)
    replay = assemble(feed=feed, broker=broker, strategies=[StrategySetup("every", Watcher)], database=f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ValueError, match=r"this market data cannot add symbols during a run \(the synthetic feed can\)"):
        replay.add_symbol("NEW", start_price=10)


# --- the config's schedule ------------------------------------------------------------------------


def scheduled_run(tmp_path: Path, name: str, seed: int = 9, after_step: int = 3):
    config = load_config_text(
        f"run: {{max_ticks: 8, seed: {seed}}}\n"
        "market_data:\n"
        "  symbols: [AAA]\n"
        "  start: 2024-01-02T00:00:00Z\n"
        f"  add_symbols: [{{symbol: NEW, after_step: {after_step}, start_price: 50, drift: 0.1, volatility: 0.4}}]\n"
        f"storage: {{url: 'sqlite:///{tmp_path / name}'}}\n"
        "strategies:\n"
        "  - {name: every, module: tests.test_symbols, class: BarKeeper}\n"
        "  - {name: explicit, module: tests.test_symbols, class: Watcher, symbols: [AAA]}\n"
        "  - {name: pairs, module: tests.test_symbols, class: Watcher, subscriptions: [{symbol: AAA, interval: 1m}]}\n"
    )
    runner = build(config)
    assert runner.run().status == "completed"
    return runner


def test_the_config_schedule_adds_a_symbol_after_its_step(tmp_path):
    runner = scheduled_run(tmp_path, "a.db")
    assert symbols_added(runner) == [("NEW", 3, True, "")]
    every = strategy(runner, "every")
    assert [number for number, symbols in every.ticks() if "NEW" in symbols] == [4, 5, 6, 7, 8]
    assert every.added() == ["NEW"]
    for name in ("explicit", "pairs"):  # their own symbols lists stay as they are
        assert strategy(runner, name).added() == []
        assert {symbols for _, symbols in strategy(runner, name).ticks()} == {("AAA",)}
    assert every.bars_of("NEW")[0].timestamp == START + timedelta(minutes=3)  # the fourth step's bar


def test_a_symbol_cannot_be_scheduled_before_the_first_step(tmp_path):
    with pytest.raises(ConfigError, match=r"market_data\.add_symbols\[0\]\.after_step: .*>= 1"):
        scheduled_run(tmp_path, "zero.db", after_step=0)


def test_the_same_seed_gives_the_added_symbol_the_same_bars(tmp_path):
    first = strategy(scheduled_run(tmp_path, "a.db"), "every").bars_of("NEW")
    second = strategy(scheduled_run(tmp_path, "b.db"), "every").bars_of("NEW")
    other = strategy(scheduled_run(tmp_path, "c.db", seed=10), "every").bars_of("NEW")
    assert len(first) == 5
    assert first == second
    assert [b.close for b in first] != [b.close for b in other]


# --- a strategy's request ------------------------------------------------------------------------


@pytest.mark.parametrize("execution", ["inline", "threaded"])
def test_a_strategy_that_asks_for_a_symbol_gets_it_and_trades_it(tmp_path, execution):
    runner = synthetic_runner(
        tmp_path,
        [StrategySetup("scanner", Scanner, symbols=["AAA"]), StrategySetup("explicit", Watcher, symbols=["AAA"]),
         StrategySetup("every", Watcher)],
        max_ticks=6, threaded=execution == "threaded",
    )
    summary = runner.run()
    assert summary.status == "completed"
    assert symbols_added(runner) == [("NEW", 2, True, "scanner")]
    scanner, explicit, every = (strategy(runner, name) for name in ("scanner", "explicit", "every"))
    assert scanner.added() == ["NEW"] and every.added() == ["NEW"] and explicit.added() == []
    assert [symbols for _, symbols in scanner.ticks()] == [("AAA",)] * 2 + [("AAA", "NEW")] * 4
    assert all(symbols == ("AAA",) for _, symbols in explicit.ticks())
    assert scanner.context.symbols == ("AAA", "NEW")
    fills = [(f.strategy, f.symbol, f.side, f.quantity) for f in queries.fills(runner.recorder.engine, runner.run_id)]
    assert fills == [("scanner", "NEW", "BUY", Decimal(5))]
    assert [(p.symbol, p.quantity) for p in queries.positions(runner.recorder.engine, runner.run_id)
            if p.strategy == "scanner"] == [("NEW", Decimal(5))]


def test_two_strategies_asking_for_one_symbol_both_get_it_and_it_is_recorded_once(tmp_path):
    runner = synthetic_runner(
        tmp_path, [StrategySetup("one", Scanner, symbols=["AAA"]), StrategySetup("two", Scanner, symbols=["AAA"])],
        max_ticks=4,
    )
    summary = runner.run()
    assert summary.status == "completed", summary.error
    assert symbols_added(runner) == [("NEW", 2, True, "one")]
    for name in ("one", "two"):
        assert strategy(runner, name).added() == ["NEW"]
        assert strategy(runner, name).ticks()[-1][1] == ("AAA", "NEW")


def test_asking_for_a_symbol_the_run_already_has_subscribes_without_recording_an_addition(tmp_path):
    scanner = type("BScanner", (Scanner,), {"ask": "BBB", "spec": {}})
    runner = synthetic_runner(tmp_path, [StrategySetup("scanner", scanner, symbols=["AAA"])], max_ticks=4)
    summary = runner.run()
    assert summary.status == "completed", summary.error
    assert symbols_added(runner) == []
    assert strategy(runner, "scanner").added() == ["BBB"]
    assert [symbols for _, symbols in strategy(runner, "scanner").ticks()] == [("AAA",)] * 2 + [("AAA", "BBB")] * 2


def refusals(runner) -> list[tuple[str, str]]:
    return [(s.strategy, s.rejection) for s in queries.signals(runner.recorder.engine, runner.run_id) if not s.accepted]


@pytest.mark.parametrize(("ask", "spec", "reason"), [
    ("AAA", {}, "add_symbol refused: symbol 'AAA' is already traded"),
    ("NEW", {"start_price": 0}, "add_symbol refused: cannot add symbol 'NEW': start_price must be a number > 0, got 0"),
])
def test_a_request_the_runner_cannot_meet_is_recorded_as_refused(tmp_path, ask, spec, reason):
    scanner = type("Asker", (Scanner,), {"ask": ask, "spec": spec})
    runner = synthetic_runner(tmp_path, [StrategySetup("scanner", scanner, symbols=["AAA"])], max_ticks=4)
    summary = runner.run()
    assert summary.status == "completed"
    assert refusals(runner) == [("scanner", reason)]
    assert symbols_added(runner) == []
    assert {s.name: s.rejected for s in summary.strategies} == {"scanner": 1}


def test_a_request_on_a_file_replay_is_recorded_as_refused(tmp_path):
    write_minutes(tmp_path / "AAA.csv", range(5))
    feed = load_replay("csv", tmp_path, path="{symbol}.csv", symbols=["AAA"])
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(Decimal(0)), FeeSchedule(CommissionModel()), feed.symbols)
    runner = assemble(
        feed=feed, broker=broker, strategies=[StrategySetup("scanner", Scanner)], database=f"sqlite:///{tmp_path / 'r.db'}",
    )
    summary = runner.run()
    assert summary.status == "completed" and summary.steps == 5
    assert refusals(runner) == [("scanner", "add_symbol refused: this market data cannot add symbols during a run")]
    assert strategy(runner, "scanner").added() == []
