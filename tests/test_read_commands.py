"""The read commands `runs`, `status`, `orders`, `fills` and `positions` over recorded runs.

Two real runs are recorded once for the module (the second is the latest); each command is
checked in-process with and without --json and with each filter against counts read directly
with sqlite3, then once through a real process.
"""

from __future__ import annotations

import json
import sqlite3
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.app import app


RUNNER = Path(sys.executable).parent / "runner"
COMMANDS = ("runs", "status", "orders", "fills", "positions")
FIRST, SECOND = "read-first", "read-second"

CONFIG = """\
run:
  speed: 0
  max_ticks: 120
market_data:
  interval: 1m
  start: 2024-01-02T14:30:00Z
  symbols:
    AAA: {start_price: 50, volatility: 0.8}
    BBB: {start_price: 80, volatility: 0.5}
broker:
  starting_cash: 100000
  commission: {per_order: 1}
strategies:
  - name: crosser
    type: ma_crossover
    params: {fast: 3, slow: 8, quantity: 10}
  - name: holder
    type: buy_and_hold
    symbols: [BBB]
    params: {quantity: 3}
"""



def command_line(workdir: Path) -> list[str]:
    """The argv prefix that runs the command in a new process."""
    return [str(RUNNER)]


APP = app


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """A database with two runs; the second (latest) is longer and holds open positions."""
    from cli.app import app

    workdir = tmp_path_factory.mktemp("read")
    config = workdir / "read.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    db = workdir / "records.db"
    cli = CliRunner()
    for run_id, seed, ticks in ((FIRST, 1, 60), (SECOND, 2, 120)):
        result = cli.invoke(app, ["start", str(config), "--db", str(db), "--run-id", run_id,
                                  "--seed", str(seed), "--max-ticks", str(ticks), "--json"])
        assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def cli(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(cli: CliRunner, *args: str, env: dict | None = None):
    return cli.invoke(APP, [str(a) for a in args], env=env)


def read_json(cli: CliRunner, *args: str):
    result = invoke(cli, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)  # stdout holds the JSON and nothing else


def sql(db: Path, query: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(query, params).fetchall()


def count(db: Path, query: str, *params) -> int:
    [(n,)] = sql(db, query, *params)
    return n


def stored_time(iso: str) -> str:
    """An ISO time as the records store it (UTC, no offset), for comparing in SQL."""
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def plain(text: str) -> None:
    """Not a terminal: no colour codes, no box rules, no trailing blanks."""
    assert "\x1b[" not in text
    assert not set("─━│┃╭╰") & set(text)
    assert all(line == line.rstrip() for line in text.splitlines())


# --- runs ------------------------------------------------------------------------------------------


def test_runs_lists_the_runs_newest_first(cli, records):
    result = invoke(cli, "runs", "--db", records)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index(SECOND) < out.index(FIRST)
    for column in ("status", "started", "ticks", "final equity", "P&L", "strategies"):
        assert column in out
    assert "crosser, holder" in out
    plain(out)


def test_runs_json(cli, records):
    rows = read_json(cli, "runs", "--db", records)
    assert [row["id"] for row in rows] == [SECOND, FIRST]
    for row in rows:
        [(summary, ticks)] = sql(records, "SELECT summary, ticks FROM runs WHERE id = ?", row["id"])
        summary = json.loads(summary)
        assert row["status"] == "completed"
        assert row["ticks"] == ticks
        assert row["final_equity"] == summary["final_equity"]
        assert Decimal(row["pnl"]) == Decimal(summary["final_equity"]) - Decimal(summary["starting_cash"])
        assert row["strategies"] == ["crosser", "holder"]
        assert row["started_at"].endswith("+00:00") and row["ended_at"].endswith("+00:00")


def test_runs_limit(cli, records):
    assert [row["id"] for row in read_json(cli, "runs", "--db", records, "--limit", "1")] == [SECOND]


# --- status ----------------------------------------------------------------------------------------


def test_status_of_the_latest_run(cli, records):
    result = invoke(cli, "status", "--db", records)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert SECOND in out and FIRST not in out
    for word in ("completed", "cash", "equity", "P&L", "crosser", "holder", "open positions", "unrealised"):
        assert word in out
    [(equity,)] = sql(records, "SELECT equity FROM equity WHERE run_id = ? ORDER BY step DESC LIMIT 1", SECOND)
    assert f"{Decimal(equity):,.2f}" in out  # money with 2 decimals
    plain(out)


def test_status_json(cli, records):
    data = read_json(cli, "status", "--db", records)
    assert isinstance(data, dict)
    assert data["run_id"] == SECOND and data["status"] == "completed" and data["ticks"] == 120
    [(cash, equity)] = sql(records, "SELECT cash, equity FROM equity WHERE run_id = ? ORDER BY step DESC LIMIT 1", SECOND)
    assert (data["cash"], data["equity"]) == (cash, equity)  # exact strings
    assert Decimal(data["pnl"]) == Decimal(equity) - Decimal(data["starting_cash"]) == Decimal(equity) - 100000
    summary = json.loads(sql(records, "SELECT summary FROM runs WHERE id = ?", SECOND)[0][0])
    assert [s["name"] for s in data["strategies"]] == ["crosser", "holder"]
    for s in data["strategies"]:
        assert s["pnl"] == summary["strategies"][s["name"]]["pnl"]
        assert s["state"] == summary["strategies"][s["name"]]["state"]
        assert s["errors"] == 0
        held = sql(records, "SELECT symbol, quantity, average_cost, last_price FROM positions "
                   "WHERE run_id = ? AND strategy = ? AND CAST(quantity AS REAL) != 0 ORDER BY symbol", SECOND, s["name"])
        assert [(p["symbol"], p["quantity"], p["average_cost"], p["last_price"]) for p in s["positions"]] == held
        for p in s["positions"]:
            expected = (Decimal(p["last_price"]) - Decimal(p["average_cost"])) * Decimal(p["quantity"])
            assert Decimal(p["unrealized_pnl"]) == expected
    assert any(s["positions"] for s in data["strategies"])  # holder keeps its shares


def test_status_of_a_named_run(cli, records):
    data = read_json(cli, "status", FIRST, "--db", records)
    assert data["run_id"] == FIRST and data["ticks"] == 60


# --- orders ----------------------------------------------------------------------------------------


def test_orders_table(cli, records):
    result = invoke(cli, "orders", "--db", records)
    assert result.exit_code == 0, result.output
    for column in ("id", "time", "strategy", "symbol", "side", "type", "quantity", "limit/stop", "status",
                   "filled", "avg price", "reason"):
        assert column in result.stdout
    assert "MARKET" in result.stdout and "FILLED" in result.stdout
    plain(result.stdout)


def test_orders_json_newest_last_and_limited(cli, records):
    total = count(records, "SELECT COUNT(*) FROM orders WHERE run_id = ?", SECOND)
    assert total > 5
    every = read_json(cli, "orders", "--db", records, "--limit", "0")
    assert len(every) == total
    ids = [o["order_id"] for o in every]
    assert ids == sorted(ids)
    latest = read_json(cli, "orders", "--db", records, "--limit", "5")
    assert [o["order_id"] for o in latest] == ids[-5:]
    assert len(read_json(cli, "orders", "--db", records)) == min(total, 50)
    first = every[0]
    [(quantity, price)] = sql(records, "SELECT quantity, average_price FROM orders WHERE run_id = ? AND order_id = ?",
                              SECOND, first["order_id"])
    assert (first["quantity"], first["average_price"]) == (quantity, price)  # exact strings
    assert first["created_at"].endswith("+00:00")
    assert first["run_id"] == SECOND


@pytest.mark.parametrize("args, where, params", [
    (["--strategy", "holder"], "strategy = ?", ["holder"]),
    (["--symbol", "aaa"], "symbol = ?", ["AAA"]),
    (["--status", "filled"], "status = ?", ["FILLED"]),
    (["--strategy", "crosser", "--symbol", "BBB"], "strategy = ? AND symbol = ?", ["crosser", "BBB"]),
    (["--strategy", "crosser", "--status", "FILLED", "--limit", "3"], "strategy = ? AND status = ? LIMIT 3", ["crosser", "FILLED"]),
])
def test_orders_filters(cli, records, args, where, params):
    expected = len(sql(records, f"SELECT 1 FROM orders WHERE run_id = ? AND {where}", SECOND, *params))
    assert expected > 0
    rows = read_json(cli, "orders", "--db", records, "--limit", "0", *args)
    assert len(rows) == expected


@pytest.mark.parametrize("args", [["--strategy", "nobody"], ["--symbol", "ZZZ"], ["--status", "expired"]])
def test_orders_filters_matching_nothing(cli, records, args):
    assert read_json(cli, "orders", "--db", records, *args) == []


def test_orders_since(cli, records):
    from datetime import datetime, timedelta, timezone

    times = [t for (t,) in sql(records, "SELECT created_at FROM orders WHERE run_id = ? ORDER BY order_id", SECOND)]
    middle = times[len(times) // 2].replace(" ", "T") + "Z"
    expected = count(records, "SELECT COUNT(*) FROM orders WHERE run_id = ? AND created_at >= ?", SECOND, stored_time(middle))
    rows = read_json(cli, "orders", "--db", records, "--limit", "0", "--since", middle)
    assert 0 < len(rows) == expected < len(times)
    assert all(datetime.fromisoformat(row["created_at"]) >= datetime.fromisoformat(middle) for row in rows)
    # the same instant with another offset; a date alone
    in_paris = datetime.fromisoformat(middle).astimezone(timezone(timedelta(hours=1))).isoformat()
    assert len(read_json(cli, "orders", "--db", records, "--limit", "0", "--since", in_paris)) == expected
    assert len(read_json(cli, "orders", "--db", records, "--limit", "0", "--since", "2024-01-02")) == len(times)
    assert read_json(cli, "orders", "--db", records, "--since", "2030-01-01") == []


def test_orders_of_a_named_run(cli, records):
    rows = read_json(cli, "orders", FIRST, "--db", records, "--limit", "0")
    assert len(rows) == count(records, "SELECT COUNT(*) FROM orders WHERE run_id = ?", FIRST)
    assert {row["run_id"] for row in rows} == {FIRST}


def test_orders_none_match(cli, records):
    result = invoke(cli, "orders", "--db", records, "--strategy", "nobody")
    assert result.exit_code == 0
    assert "no orders match" in result.stdout


# --- fills -----------------------------------------------------------------------------------------


def test_fills_table(cli, records):
    result = invoke(cli, "fills", "--db", records)
    assert result.exit_code == 0, result.output
    for column in ("time", "order", "strategy", "symbol", "side", "quantity", "price", "commission", "notional"):
        assert column in result.stdout
    assert "1.00" in result.stdout  # the commission, with 2 decimals
    plain(result.stdout)


def test_fills_json(cli, records):
    total = count(records, "SELECT COUNT(*) FROM fills WHERE run_id = ?", SECOND)
    rows = read_json(cli, "fills", "--db", records, "--limit", "0")
    assert len(rows) == total > 5
    stored = sql(records, "SELECT fill_id, quantity, price, commission FROM fills WHERE run_id = ? ORDER BY fill_id", SECOND)
    assert [(r["fill_id"], r["quantity"], r["price"], r["commission"]) for r in rows] == stored
    for row in rows:
        assert Decimal(row["notional"]) == Decimal(row["quantity"]) * Decimal(row["price"])
        assert row["timestamp"].endswith("+00:00")
    assert [r["fill_id"] for r in read_json(cli, "fills", "--db", records, "--limit", "3")] == [r[0] for r in stored[-3:]]


@pytest.mark.parametrize("args, where, params", [
    (["--strategy", "crosser"], "strategy = ?", ["crosser"]),
    (["--symbol", "bbb"], "symbol = ?", ["BBB"]),
    (["--strategy", "holder", "--symbol", "BBB"], "strategy = ? AND symbol = ?", ["holder", "BBB"]),
])
def test_fills_filters(cli, records, args, where, params):
    expected = count(records, f"SELECT COUNT(*) FROM fills WHERE run_id = ? AND {where}", SECOND, *params)
    assert expected > 0
    assert len(read_json(cli, "fills", "--db", records, "--limit", "0", *args)) == expected


def test_fills_since(cli, records):
    times = [t for (t,) in sql(records, "SELECT timestamp FROM fills WHERE run_id = ? ORDER BY fill_id", SECOND)]
    middle = times[len(times) // 2].replace(" ", "T")  # no offset: UTC
    expected = count(records, "SELECT COUNT(*) FROM fills WHERE run_id = ? AND timestamp >= ?", SECOND, stored_time(middle + "Z"))
    assert 0 < expected < len(times)
    assert len(read_json(cli, "fills", "--db", records, "--limit", "0", "--since", middle)) == expected


# --- positions -------------------------------------------------------------------------------------


def test_positions_table(cli, records):
    result = invoke(cli, "positions", "--db", records)
    assert result.exit_code == 0, result.output
    for column in ("strategy", "symbol", "quantity", "avg cost", "last", "realised", "unrealised", "fees", "net"):
        assert column in result.stdout
    plain(result.stdout)


def test_positions_json_and_exact_pnl(cli, records):
    rows = read_json(cli, "positions", "--db", records)
    stored = sql(records, "SELECT strategy, symbol, quantity, average_cost, last_price, realized_pnl, fees "
                 "FROM positions WHERE run_id = ? ORDER BY strategy, symbol", SECOND)
    assert [(r["strategy"], r["symbol"], r["quantity"], r["average_cost"], r["last_price"], r["realized_pnl"], r["fees"])
            for r in rows] == stored
    for r in rows:
        unrealized = (Decimal(r["last_price"]) - Decimal(r["average_cost"])) * Decimal(r["quantity"])
        assert Decimal(r["unrealized_pnl"]) == unrealized
        assert Decimal(r["net_pnl"]) == Decimal(r["realized_pnl"]) + unrealized - Decimal(r["fees"])


@pytest.mark.parametrize("args, where, params", [
    (["--strategy", "holder"], "strategy = ?", ["holder"]),
    (["--symbol", "aaa"], "symbol = ?", ["AAA"]),
    (["--open-only"], "CAST(quantity AS REAL) != 0", []),
    (["--open-only", "--strategy", "crosser"], "CAST(quantity AS REAL) != 0 AND strategy = ?", ["crosser"]),
])
def test_positions_filters(cli, records, args, where, params):
    expected = count(records, f"SELECT COUNT(*) FROM positions WHERE run_id = ? AND {where}", SECOND, *params)
    rows = read_json(cli, "positions", "--db", records, *args)
    assert len(rows) == expected
    if "--open-only" in args:
        assert all(Decimal(r["quantity"]) != 0 for r in rows)


def test_gains_and_losses_are_coloured_on_a_terminal(cli, records):
    result = invoke(cli, "positions", "--db", records, env={"FORCE_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0
    assert "\x1b[32m" in result.stdout  # green: some position gained
    assert "\x1b[31m" in result.stdout  # red: some position lost


# --- user errors: exit 2, a message, no traceback --------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
def test_missing_database_exits_2(cli, tmp_path, command):
    missing = tmp_path / "nowhere" / "none.db"
    result = invoke(cli, command, "--db", missing)
    assert result.exit_code == 2
    assert f"no database at {missing}" in " ".join(result.stderr.split())
    assert result.stdout == ""
    no_traceback(result)
    assert not missing.parent.exists()  # reading creates nothing


def test_default_database_is_runs_runner_db(cli, tmp_path):
    result = invoke(cli, "status")
    assert result.exit_code == 2
    assert "no database at runs/runner.db" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_database_json_is_an_error_object(cli, tmp_path):
    result = invoke(cli, "runs", "--db", tmp_path / "none.db", "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["status"] == "error" and data["exit_code"] == 2 and "no database at" in data["error"]


@pytest.mark.parametrize("command", ["status", "orders", "fills", "positions"])
def test_unknown_run_id_exits_2_listing_the_latest(cli, records, command):
    result = invoke(cli, command, "no-such-run", "--db", records)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "'no-such-run'" in message
    assert f"latest runs: {SECOND}, {FIRST}" in message
    no_traceback(result)


@pytest.mark.parametrize("command", ["orders", "fills"])
@pytest.mark.parametrize("since", ["yesterday", "2024-13-01", "02/01/2024"])
def test_malformed_since_exits_2_naming_the_format(cli, records, command, since):
    result = invoke(cli, command, "--db", records, "--since", since)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "--since" in message and "ISO 8601" in message and "2024-01-02T14:30:00Z" in message
    assert repr(since) in message
    no_traceback(result)


def test_unknown_order_status_exits_2_listing_the_statuses(cli, records):
    result = invoke(cli, "orders", "--db", records, "--status", "done")
    assert result.exit_code == 2
    assert "FILLED" in result.stderr and "'done'" in result.stderr
    no_traceback(result)


def test_a_file_that_is_not_a_runner_database_exits_2(cli, tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just some text that is long enough" * 20)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    for path, expected in ((text, "is not a SQLite database"), (other, "is not a runner database")):
        result = invoke(cli, "runs", "--db", path)
        assert result.exit_code == 2, result.output
        assert expected in " ".join(result.stderr.split())
        no_traceback(result)


def test_empty_database_has_no_runs(cli, tmp_path):
    from runner.storage.db import open_database, sqlite_url

    db = tmp_path / "empty.db"
    open_database(sqlite_url(db)).dispose()
    assert read_json(cli, "runs", "--db", db) == []
    result = invoke(cli, "status", "--db", db)
    assert result.exit_code == 2
    assert "no runs in" in result.stderr


def test_negative_limit_is_bad_usage(cli, records):
    result = invoke(cli, "runs", "--db", records, "--limit", "-1")
    assert result.exit_code == 2
    no_traceback(result)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_has_an_example_for_the_command_and_each_option(cli, command):
    result = invoke(cli, command, "--help", env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "Example:  runner " + command in result.stdout
    options = [p for p in typer.main.get_command(APP).commands[command].params if p.param_type_name == "option"]
    for option in options:
        assert "Example: " in (option.help or ""), option.name


# --- through a real process --------------------------------------------------------------------


@pytest.mark.parametrize("command, args, kind", [
    ("runs", [], list),
    ("status", [], dict),
    ("orders", ["--strategy", "crosser", "--limit", "5"], list),
    ("fills", ["--symbol", "BBB"], list),
    ("positions", ["--open-only"], list),
])
def test_command_in_a_process(records, tmp_path, command, args, kind):
    argv = command_line(tmp_path) + [command, "--db", str(records), *args, "--json"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, kind) and data


@pytest.mark.parametrize("command, first_line", [
    ("runs", "runs"),
    ("status", f"run      {SECOND}"),
    ("orders", f"orders of {SECOND}"),
    ("fills", f"fills of {SECOND}"),
    ("positions", f"positions of {SECOND}"),
    ("report", f"run {SECOND} (completed)"),
])
def test_command_in_a_process_as_a_table(records, tmp_path, command, first_line):
    argv = command_line(tmp_path) + [command, "--db", str(records)]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].rstrip() == first_line
    assert "Traceback" not in result.stderr


def test_table_on_a_pipe_is_plain_and_unwrapped(records, tmp_path):
    argv = command_line(tmp_path) + ["orders", "--db", str(records), "--limit", "3"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert result.returncode == 0, result.stderr
    plain(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0] == f"orders of {SECOND}"
    assert len(lines) == 1 + 1 + 3 + 1  # title, header, 3 orders, caption: no row wrapped


def test_a_run_still_running_reads_from_its_tables(cli, records, tmp_path):
    """Before the summary is written: equity from the latest snapshot, starting cash from the
    config, strategies from the records."""
    db = tmp_path / "running.db"
    with sqlite3.connect(records) as source, sqlite3.connect(db) as copy:
        source.backup(copy)  # a file copy could miss what is still in the write-ahead log
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE runs SET summary = '', status = 'running', ended_at = NULL WHERE id = ?", (SECOND,))
    [(cash, equity)] = sql(db, "SELECT cash, equity FROM equity WHERE run_id = ? ORDER BY step DESC LIMIT 1", SECOND)
    data = read_json(cli, "status", "--db", db)
    assert (data["status"], data["ended_at"], data["cash"], data["equity"]) == ("running", None, cash, equity)
    assert Decimal(data["pnl"]) == Decimal(equity) - 100000
    assert [s["name"] for s in data["strategies"]] == ["crosser", "holder"]
    assert {s["state"] for s in data["strategies"]} == {"running"}
    net = {s: Decimal(0) for s in ("crosser", "holder")}
    for p in read_json(cli, "positions", "--db", db):
        net[p["strategy"]] += Decimal(p["net_pnl"])
    assert {s["name"]: Decimal(s["pnl"]) for s in data["strategies"]} == net
    [latest, _] = read_json(cli, "runs", "--db", db)
    assert (latest["id"], latest["final_equity"], latest["strategies"]) == (SECOND, equity, ["crosser", "holder"])
    result = invoke(cli, "status", "--db", db)
    assert result.exit_code == 0 and "running" in result.stdout
