"""run.execution: threaded gives exactly the records of inline, in data-driven runs."""

import sqlite3
import threading
from pathlib import Path

import pytest

from runner.bootstrap import build
from runner.config import load_config, load_config_text

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "orders": "order_id", "order_events": "id", "fills": "fill_id", "positions": "strategy, symbol",
    "equity": "step", "strategy_equity": "step, strategy", "signals": "id", "strategy_errors": "id",
}

FAULTY = """
from strategies.base import StrategyInterface

class Faulty(StrategyInterface):
    def on_start(self):
        self.calls = 0

    def on_tick(self, market_data):
        self.calls += 1
        if self.calls % 7 == 0:
            raise ValueError(f"bad call {self.calls}")
        if self.calls % 5 == 0:
            return [{"symbol": "AAA", "action": "BUY", "quantity": 1, "stop_loss": 1e9}]
        if self.calls % 3 == 0:
            return [{"symbol": "AAA", "action": "BUY", "quantity": 2}, "junk"]
"""


def records(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as connection:
        result = {}
        for table, order in TABLES.items():
            cursor = connection.execute(f"select * from {table} order by {order}")
            names = [d[0] for d in cursor.description]
            keep = [i for i, n in enumerate(names) if n not in ("run_id", "id")]
            result[table] = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
    return result


def run_both(tmp_path, config, name):
    outcomes = []
    for execution in ("inline", "threaded"):
        db = tmp_path / f"{name}-{execution}.db"
        runner = build(config.with_overrides(
            run={"execution": execution, "speed": 0, "max_ticks": 400}, storage={"url": f"sqlite:///{db}"},
        ))
        summary = runner.run()
        assert summary.status == "completed"
        outcomes.append(records(db))
    return outcomes


@pytest.mark.parametrize("name", ["default", "replay_csv", "file_strategy", "policy"])
def test_threaded_equals_inline_on_the_shipped_configs(tmp_path, name):
    inline, threaded = run_both(tmp_path, load_config(ROOT / "configs" / f"{name}.yaml"), name)
    assert inline["fills"], "the run traded"
    assert threaded == inline


def test_threaded_equals_inline_with_errors_rejections_and_brackets(tmp_path):
    (tmp_path / "faulty.py").write_text(FAULTY)
    config = load_config_text(
        "market_data: {symbols: [AAA, BBB]}\n"
        "broker: {starting_cash: 2000}\n"
        "strategies:\n"
        "  - {file: faulty.py, symbols: [AAA], max_errors: 100}\n"
        "  - {type: fib_rsi, params: {window: 10, rsi_period: 3, rsi_confirm: 60, tolerance: 0.01}}\n"
        "  - {type: rsi, symbols: [BBB], params: {period: 3, quantity: 5}}\n",
        str(tmp_path / "c.yaml"),
    )
    inline, threaded = run_both(tmp_path, config, "faulty")
    assert inline["strategy_errors"] and inline["fills"]
    accepted = -4  # the signals columns end with accepted, rejection, order_id, rule
    assert any(row for row in inline["signals"] if row[accepted] == 0), "some signals were refused"
    assert threaded == inline


def test_each_threaded_strategy_runs_in_its_own_thread_and_the_threads_end(tmp_path):
    seen = {}
    before = threading.active_count()
    config = load_config_text(
        "run: {execution: threaded, max_ticks: 20}\n"
        f"storage: {{url: 'sqlite:///{tmp_path / 't.db'}'}}\n"
        "strategies: [{type: ma_crossover, name: a}, {type: buy_and_hold, name: b}]\n"
    )
    runner = build(config)
    for host in runner.loop.hosts:
        original = host.strategy.on_tick
        host.strategy.on_tick = lambda market, original=original, name=host.name: (
            seen.setdefault(name, set()).add(threading.current_thread().name), original(market))[1]
    runner.run()
    assert seen == {"a": {"strategy-a"}, "b": {"strategy-b"}}
    assert threading.active_count() <= before + 0
