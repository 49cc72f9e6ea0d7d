"""The strategy catalogue: `runner catalog add|list|show|promote|archive|backtest`, the gate to
LIVE, and runs of `strategies_from: catalog` that follow promotions and archivals while they go.

Waits poll the database with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.catalog import Status
from runner.config import load_config_text
from runner.domain import Bar
from runner.history import HistoryStore
from runner.storage import catalog_store
from runner.storage.db import open_database, sqlite_url
from runner.validators import config_problems

MA = ["--type", "ma_crossover", "--params", "{fast: 3, slow: 8, quantity: 5}", "--symbols", "AAA"]

# A strategy that buys at market on its first bar, leaves a limit order far below the price
# resting, and sells what it holds when stopped.
RESTING = '''
from strategies.base import StrategyInterface, NoParams

class Resting(StrategyInterface):
    Params = NoParams

    def on_start(self):
        self.placed = False

    def on_tick(self, market_data):
        if self.placed:
            return []
        self.placed = True
        symbol = next(iter(market_data))
        price = market_data[symbol].close
        return [
            {"symbol": symbol, "action": "BUY", "quantity": 2},
            {"symbol": symbol, "action": "BUY", "quantity": 1, "order_type": "limit", "limit_price": price / 2},
        ]

    def on_stop(self):
        return [{"symbol": p.symbol, "action": "SELL", "quantity": p.quantity}
                for p in self.context.positions() if p.quantity > 0]
'''


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli() -> Callable[..., Any]:
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["catalog", *args, "--db", "cat.db"])

    return invoke


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_bars(path: Path, rows: int = 60) -> Path:
    """A CSV of 1m bars of symbol AAA (named after the file) that fall and rise by turns, so
    moving averages cross."""
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(rows):
        price = 100 + abs(10 - i % 20) + i / 10  # the drift keeps the averages from tying
        lines.append(f"{(start + timedelta(minutes=i)).isoformat()},{price},{price + 1},{price - 1},{price},1000")
    path.write_text("\n".join(lines) + "\n")
    return path


def rows(db: str, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchall()


# --- add, list, show ----------------------------------------------------------------------------


def test_add_records_a_draft_entry_that_list_and_show_report(cli):
    added = cli("add", "ma", *MA, "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["status"] == "DRAFT"
    listed = json.loads(cli("list", "--json").stdout)
    assert [(e["name"], e["status"], e["target"], e["params"], e["symbols"]) for e in listed] == [
        ("ma", "DRAFT", "ma_crossover", {"fast": 3, "slow": 8, "quantity": 5}, ["AAA"]),
    ]
    shown = json.loads(cli("show", "ma", "--json").stdout)
    assert [(h["from"], h["to"], h["reason"]) for h in shown["history"]] == [(None, "DRAFT", "added")]
    table = cli("list").stdout
    assert "ma" in table and "DRAFT" in table and "type: ma_crossover" in table


@pytest.mark.parametrize("args, message", [
    (["--type", "ma_crossoverr"], "catalog entry 'bad': type: unknown strategy 'ma_crossoverr'; known strategies: buy_and_hold"),
    (["--type", "ma_crossover", "--params", "{fast: x}"], "catalog entry 'bad': params.fast: must be an integer > 0, got 'x'"),
    (["--type", "ma_crossover", "--params", "{fats: 3}"], "params.fats: unknown key 'fats' (did you mean 'fast'?)"),
    (["--type", "ma_crossover", "--params", "[1, 2]"], "--params: expected a mapping such as '{fast: 10, slow: 30}'"),
    (["--type", "ma_crossover", "--interval", "7q"], "catalog entry 'bad': interval:"),
    (["--file", "missing.py"], "strategy file not found:"),
    ([], "name the strategy with exactly one of --type (registered name), --module (dotted module) or --file"),
])
def test_add_refuses_what_a_config_entry_would_not_take(cli, args, message):
    result = cli("add", "bad", *args)
    assert result.exit_code == 2
    assert message in one_line(result.stderr)
    assert "Traceback" not in result.output
    assert not Path("cat.db").exists()  # nothing written


def test_add_takes_a_strategy_file_by_absolute_path(cli, tmp_path):
    (tmp_path / "resting.py").write_text(RESTING)
    result = cli("add", "rest", "--file", "resting.py", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["target"] == str(tmp_path / "resting.py")


# --- the lifecycle and the gate ----------------------------------------------------------------


def test_lifecycle_from_draft_to_live_through_the_gate_then_archived(cli, tmp_path):
    data = write_bars(tmp_path / "AAA.csv")
    assert cli("add", "ma", *MA).exit_code == 0
    refused = cli("promote", "ma")  # DRAFT -> BACKTEST needs nothing
    assert refused.exit_code == 0 and "ma: DRAFT -> BACKTEST" in refused.stdout

    without_replay = cli("promote", "ma")
    assert without_replay.exit_code == 2
    assert ("promotion of 'ma' to LIVE refused: no replay run of it is recorded; make one with "
            "`runner catalog backtest ma --data FILE`") in one_line(without_replay.stderr)

    replay = cli("backtest", "ma", "--data", str(data), "--json")
    assert replay.exit_code == 0, replay.output
    run = json.loads(replay.stdout)
    assert run["status"] == "completed" and run["ticks"] == 60 and run["fills"] > 0

    promoted = cli("promote", "ma", "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout) == {
        "name": "ma", "from": "BACKTEST", "to": "LIVE", "run_id": run["run_id"], "database": "cat.db",
    }
    last = cli("promote", "ma")
    assert last.exit_code == 2 and "catalogue entry 'ma' is LIVE, which cannot be promoted: the last stage" in one_line(last.stderr)

    assert cli("archive", "ma", "--reason", "drawdown").exit_code == 0
    again = cli("archive", "ma")
    assert again.exit_code == 2 and "catalogue entry 'ma' is archived already" in again.stderr
    dead = cli("promote", "ma")
    assert dead.exit_code == 2 and "add it again to start over" in dead.stderr

    history = json.loads(cli("show", "ma", "--json").stdout)["history"]
    assert [(h["from"], h["to"], h["reason"], h["run_id"]) for h in history] == [
        (None, "DRAFT", "added", None),
        ("DRAFT", "BACKTEST", "promoted", None),
        ("BACKTEST", "LIVE", f"replay run {run['run_id']} accepted", run["run_id"]),
        ("LIVE", "ARCHIVED", "drawdown", None),
    ]
    assert cli("add", "ma", *MA).exit_code == 0  # the only way back
    assert json.loads(cli("show", "ma", "--json").stdout)["history"][-1]["to"] == "DRAFT"


def test_the_gate_refuses_a_replay_of_other_parameters_and_names_the_difference(cli, tmp_path):
    data = write_bars(tmp_path / "AAA.csv")
    cli("add", "ma", *MA)
    assert cli("backtest", "ma", "--data", str(data)).exit_code == 0
    cli("archive", "ma")
    cli("add", "ma", "--type", "ma_crossover", "--params", "{fast: 4, slow: 8, quantity: 5}", "--symbols", "AAA")
    cli("promote", "ma")
    refused = cli("promote", "ma")
    assert refused.exit_code == 2
    message = one_line(refused.stderr)
    assert "promotion of 'ma' to LIVE refused: no completed replay run of its definition; run " in message
    assert "it ran params {'fast': 3, 'quantity': 5, 'slow': 8} (the entry has {'fast': 4, 'quantity': 5, 'slow': 8})" in message
    assert json.loads(cli("show", "ma", "--json").stdout)["status"] == "BACKTEST"  # unchanged


def test_the_gate_refuses_a_replay_of_strategy_code_that_changed_since(cli, tmp_path):
    data = write_bars(tmp_path / "AAA.csv")
    strategy = tmp_path / "resting.py"
    strategy.write_text(RESTING)
    cli("add", "rest", "--file", "resting.py", "--symbols", "AAA")
    cli("promote", "rest")
    assert cli("backtest", "rest", "--data", str(data)).exit_code == 0
    strategy.write_text(RESTING + "\n# tuned after the replay\n")
    refused = cli("promote", "rest")
    assert refused.exit_code == 2
    assert f"its strategy's code or model changed since: strategy rest source {strategy} changed: sha256" in one_line(refused.stderr)


def test_the_gate_refuses_a_replay_that_did_not_complete(cli, tmp_path):
    data = write_bars(tmp_path / "AAA.csv")
    cli("add", "ma", *MA)
    cli("promote", "ma")
    run_id = json.loads(cli("backtest", "ma", "--data", str(data), "--json").stdout)["run_id"]
    with sqlite3.connect("cat.db") as connection:
        connection.execute("UPDATE runs SET status = 'failed', error = 'disk full' WHERE id = ?", (run_id,))
    refused = cli("promote", "ma")
    assert refused.exit_code == 2
    assert f"run {run_id}: it is failed (disk full), not completed" in one_line(refused.stderr)


def test_unknown_entries_and_missing_databases_are_usage_errors(cli):
    assert cli("promote", "ma").exit_code == 2  # no database yet
    cli("add", "ma_fast", *MA)
    result = cli("archive", "ma_fsat")
    assert result.exit_code == 2
    assert "no catalogue entry 'ma_fsat' (did you mean 'ma_fast'?); the entries are: ma_fast" in one_line(result.stderr)
    bad_status = cli("list", "--status", "bogus")
    assert bad_status.exit_code == 2
    assert "--status: expected one of DRAFT, BACKTEST, LIVE, ARCHIVED; got 'bogus'" in bad_status.stderr
    bad_data = cli("backtest", "ma_fast", "--data", "bars.txt")
    assert bad_data.exit_code == 2 and "--data: expected a .csv or .parquet file, got bars.txt" in bad_data.stderr


def test_catalogue_runs_take_no_strategies_list():
    config = load_config_text("strategies_from: catalog\nstrategies: [{type: rsi}]\n", "c.yaml")
    assert [p.message for p in config_problems(config)] == [
        "must be empty with strategies_from: catalog (the run takes the catalogue's LIVE entries); "
        "add these with `runner catalog add`, or set strategies_from: config"
    ]
    assert config_problems(load_config_text("strategies_from: catalog\npolicy: {allowlist: [ma_fast]}\n", "c.yaml")) == []


# --- a running run follows the catalogue ---------------------------------------------------------


def set_status(db: str, name: str, status: Status, counted: bool = True) -> None:
    """Move an entry straight to `status` (the gate is tested above). Without `counted` the
    change counter stays put, so only a full re-read (refresh_interval) finds the change."""
    engine = open_database(sqlite_url(db))
    try:
        row = catalog_store.entry(engine, name)
        before, row.status = row.status, status.value
        if counted:
            catalog_store.change_status(engine, row, before, datetime.now(UTC), "test")
        else:
            with sqlite3.connect(db) as connection:
                connection.execute("UPDATE catalog SET status = ? WHERE name = ?", (status.value, name))
    finally:
        engine.dispose()


def poll(found: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"nothing within {timeout} s")


def catalogue_run(execution: str, refresh_interval: float = 300):
    config = load_config_text(textwrap.dedent(f"""
        run: {{mode: clock, tick_interval: 0.02, execution: {execution}, max_ticks: 100000}}
        market_data: {{symbols: [AAA, BBB], interval: 1m}}
        storage: {{url: "sqlite:///cat.db"}}
        strategies_from: catalog
        catalog: {{refresh_interval: {refresh_interval}}}
    """), "catalogue.yaml")
    return build(config)


def changes(run_id: str) -> list[tuple]:
    return rows("cat.db", "SELECT strategy, action, reason FROM catalog_changes WHERE run_id = ? ORDER BY id", run_id)


@pytest.mark.parametrize("execution", ["inline", "threaded"])
def test_a_running_run_starts_promoted_and_stops_archived_strategies(cli, execution, tmp_path):
    (tmp_path / "resting.py").write_text(RESTING)
    assert cli("add", "first", "--file", "resting.py", "--symbols", "AAA").exit_code == 0
    assert cli("add", "second", "--type", "buy_and_hold", "--symbols", "BBB").exit_code == 0
    set_status("cat.db", "first", Status.LIVE)
    runner = catalogue_run(execution)
    runner.start()
    try:
        run_id = runner.run_id
        poll(lambda: rows("cat.db", "SELECT 1 FROM orders WHERE run_id = ? AND order_type = 'LIMIT' AND status = 'ACCEPTED'", run_id))
        set_status("cat.db", "second", Status.LIVE)
        set_status("cat.db", "first", Status.ARCHIVED)
        poll(lambda: len(changes(run_id)) == 3)
        poll(lambda: rows("cat.db", "SELECT 1 FROM fills WHERE run_id = ? AND strategy = 'second'", run_id))
    finally:
        runner.stop()
        runner.wait(30)
    assert runner.status().value == "stopped"
    assert changes(run_id) == [
        ("first", "started", "LIVE in the catalogue at the start"),
        ("first", "stopped", "archived in the catalogue"),
        ("second", "started", "promoted to LIVE"),
    ]
    started, stopped = rows(
        "cat.db", "SELECT step FROM catalog_changes WHERE run_id = ? AND strategy = 'first' ORDER BY id", run_id,
    )
    assert started == (0,) and stopped[0] > 0
    # Stopped like the end of a run: its resting limit order cancelled, on_stop's sale filled.
    assert rows("cat.db", "SELECT order_type, status, reason FROM orders WHERE run_id = ? AND strategy = 'first' "
                "AND order_type = 'LIMIT'", run_id) == [("LIMIT", "CANCELLED", "archived in the catalogue")]
    assert rows("cat.db", "SELECT side, quantity FROM fills WHERE run_id = ? AND strategy = 'first' ORDER BY fill_id",
                run_id) == [("BUY", "2"), ("SELL", "2")]
    assert rows("cat.db", "SELECT quantity FROM positions WHERE run_id = ? AND strategy = 'first'", run_id) == [("0",)]
    assert rows("cat.db", "SELECT state FROM strategy_stats WHERE run_id = ? ORDER BY strategy", run_id) == [
        ("stopped",), ("stopped",),
    ]
    listed = json.loads(cli("changes", run_id, "--json").stdout)
    assert [(c["step"] > 0, c["strategy"], c["action"]) for c in listed] == [
        (False, "first", "started"), (True, "first", "stopped"), (True, "second", "started"),
    ]


def test_the_full_re_read_finds_changes_the_counter_missed_and_skips_what_cannot_run(cli):
    cli("add", "elsewhere", "--type", "buy_and_hold", "--symbols", "ZZZ")
    cli("add", "late", "--type", "buy_and_hold", "--symbols", "AAA")
    set_status("cat.db", "elsewhere", Status.LIVE)
    runner = catalogue_run("inline", refresh_interval=0.3)
    runner.start()
    try:
        run_id = runner.run_id
        set_status("cat.db", "late", Status.LIVE, counted=False)
        poll(lambda: ("late", "started", "promoted to LIVE") in changes(run_id))
    finally:
        runner.stop()
        runner.wait(30)
    assert changes(run_id)[0] == ("elsewhere", "skipped", "unknown symbol(s) ZZZ; the data has: AAA, BBB")
    assert [c for c in changes(run_id) if c[0] == "elsewhere"] == [changes(run_id)[0]]  # not retried each read


def test_history_deepens_without_losing_bars():
    history = HistoryStore(2)
    start = datetime(2024, 1, 2, tzinfo=UTC)

    def bar(i: int) -> Bar:
        return Bar("AAA", start + timedelta(minutes=i), i, i, i, i, 1)

    history.append("1m", [bar(0)])
    history.append("1m", [bar(1)])
    history.deepen(4)
    history.append("1m", [bar(2)])
    assert list(history.bars("AAA", "1m").close) == [0, 1, 2]
    history.append("1m", [bar(3)])
    history.append("1m", [bar(4)])
    assert list(history.bars("AAA", "1m").close) == [1, 2, 3, 4]


def test_a_catalogue_run_is_not_replayed_from_a_catalogue_that_moved_on(cli):
    cli("add", "hold", "--type", "buy_and_hold", "--symbols", "AAA")
    set_status("cat.db", "hold", Status.LIVE)
    config = load_config_text(
        "run: {max_ticks: 5}\nmarket_data: {symbols: [AAA]}\nstorage: {url: 'sqlite:///cat.db'}\n"
        "strategies_from: catalog\n", "catalogue.yaml",
    )
    run_id = build(config).run().run_id
    result = CliRunner().invoke(app, ["replay", run_id, "--db", "cat.db"])
    assert result.exit_code == 2
    assert "it ran the strategy catalogue's LIVE entries (strategies_from: catalog) as they were then" in one_line(result.stderr)
