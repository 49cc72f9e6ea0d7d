"""PostgreSQL storage (issue #11 part 4): every command on a server URL, many runners writing to
one database at once, a lost connection retried, schema upgrades and copying a SQLite file's
runs into PostgreSQL.

The tests that need a server use the one RUNNER_TEST_POSTGRES_URL names, or start their own
when the server binaries are installed (tests/postgres_server.py); without either they are
skipped with a message that says how to run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from typer.testing import CliRunner

from cli.app import app
from runner.errors import StorageError
from runner.storage import faults
from tests.helpers import finish
from tests.postgres_server import HOW_TO_RUN, fresh_database, server_url

RUNNER = Path(sys.executable).parent / "runner"
CONFIG = """\
run: {max_ticks: 120, seed: SEED}
market_data: {interval: 1m, symbols: [AAA, BBB]}
broker: {slippage_bps: 5, commission: {per_share: 0.01, minimum: 1}}
strategies:
  - {type: ma_crossover, params: {fast: 2, slow: 4, quantity: 3}}
  - {type: buy_and_hold, params: {quantity: 1, sell_on_stop: true}}
"""
cli = CliRunner()


@pytest.fixture
def pg_url() -> str:
    """An empty database of its own on the test server."""
    server = server_url()
    if server is None:
        pytest.skip(HOW_TO_RUN)
    return fresh_database(server)


def config(tmp_path: Path, seed: int = 7, **replace: str) -> Path:
    body = CONFIG.replace("SEED", str(seed))
    for old, new in replace.items():
        body = body.replace(old, new)
    path = tmp_path / f"c{seed}.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def invoke(*args: str):
    return cli.invoke(app, [str(a) for a in args])


def json_of(*args: str):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sql(url: str, statement: str, **params) -> list[tuple]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            result = connection.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


# --- every command, on a server ---------------------------------------------------------------------


def test_a_run_recorded_in_postgresql_reads_like_the_same_run_in_sqlite(tmp_path, pg_url):
    path = config(tmp_path)
    sqlite_db = tmp_path / "same.db"
    for db in (pg_url, sqlite_db):
        assert invoke("start", path, "--db", db, "--run-id", "r1", "--quiet").exit_code == 0
    wall_times = dict.fromkeys(("started_at", "ended_at"))  # when each run ran: all else is the same
    for command in ("fills", "orders", "positions", "status", "report"):
        on_server, on_file = (json_of(command, "r1", "--db", db) for db in (pg_url, sqlite_db))
        if isinstance(on_server, dict):
            on_server, on_file = on_server | wall_times, on_file | wall_times
        assert on_server == on_file, command
    [listed] = json_of("runs", "--db", pg_url)
    assert (listed["id"], listed["status"], listed["ticks"]) == ("r1", "completed", 120)
    audited = invoke("audit", "r1", "--db", pg_url)
    assert audited.exit_code == 0 and audited.stdout.startswith("clean:"), audited.output
    assert invoke("health", "--run-id", "r1", "--db", pg_url).exit_code == 0
    replayed = json_of("replay", "r1", "--db", pg_url)
    assert replayed["identical"] is True and replayed["fills"]["original"] == replayed["fills"]["replay"] > 0
    assert json_of("policy", "set", "min_confidence", "0.4", "--db", pg_url)["previous"] is None
    shown = json_of("policy", "show", "--db", pg_url)
    assert shown["policy"]["min_confidence"] == 0.4 and shown["database"] == pg_url


# --- many runners, one database ---------------------------------------------------------------------

PACED = {"max_ticks: 120": "max_ticks: 100000, speed: 6000"}  # 100 steps a second until stopped


def start_process(tmp_path: Path, seed: int, db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(RUNNER), "start", str(config(tmp_path, seed, **PACED)), "--db", db, "--quiet", "--json", *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until(url: str, statement: str, processes: list[subprocess.Popen], what: str) -> None:
    """Poll the database until `statement` returns a row, for up to a minute (the runners must live on)."""
    deadline, pause = time.monotonic() + 60, threading.Event()
    while not _rows_if_tables(url, statement):
        assert time.monotonic() < deadline, f"not seen within a minute: {what}"
        assert all(p.poll() is None for p in processes), f"a runner ended before {what}"
        pause.wait(0.05)


def _rows_if_tables(url: str, statement: str) -> list[tuple]:
    try:
        return sql(url, statement)
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42P01":  # undefined table: the runners have not made it yet
            raise
        return []


def test_four_runners_writing_to_one_new_database_at_once_all_stop_cleanly_and_audit_clean(tmp_path, pg_url):
    processes = [start_process(tmp_path, seed, pg_url, "--run-id", f"run{seed}") for seed in range(1, 5)]
    try:  # the four create the schema together, then write together: seen in the database
        wait_until(pg_url, "select 1 from equity where step >= 20 having count(distinct run_id) = 4",
                   processes, "all four runs writing at once")
    finally:
        for process in processes:
            process.terminate()
        outputs = [finish(process, timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, (out, err)
    summaries = {s["run_id"]: s for s in (json.loads(out) for out, _ in outputs)}
    assert sorted(summaries) == ["run1", "run2", "run3", "run4"]
    for run_id, summary in summaries.items():
        ticks = summary["ticks"]
        assert summary["status"] == "stopped" and ticks >= 20
        assert sql(pg_url, "select count(*), min(step), max(step) from equity where run_id = :r", r=run_id) == [(ticks, 1, ticks)]
        assert sql(pg_url, "select count(*) from fills where run_id = :r", r=run_id) == [(summary["fills"],)]
        audited = invoke("audit", run_id, "--db", pg_url)
        assert audited.exit_code == 0 and audited.stdout.startswith("clean:"), audited.output
    assert len(sql(pg_url, "select id from schema_version")) == 1  # the schema was created once, not four times


def test_a_connection_the_server_drops_mid_run_is_replaced_and_nothing_is_lost(tmp_path, pg_url):
    slow = {"max_ticks: 120": "max_ticks: 60, speed: 600"}  # ten steps a second: six seconds
    path = config(tmp_path, 3, **slow)
    assert invoke("db", "upgrade", "--db", pg_url).exit_code == 0  # the tables, for the poll below
    process = subprocess.Popen(
        [str(RUNNER), "start", str(path), "--db", pg_url, "--quiet", "--json", "--run-id", "dropped"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(pg_url, "select 1 from equity where run_id = 'dropped' and step >= 5", [process], "step 5")
        dropped = sql(
            pg_url, "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()",
        )
        assert dropped and all(ok for (ok,) in dropped)
    finally:
        out, err = finish(process, timeout=120)
    assert process.returncode == 0, (out, err)
    assert json.loads(out)["status"] == "completed"
    assert sql(pg_url, "select count(*), max(step) from equity where run_id = 'dropped'") == [(60, 60)]
    assert invoke("audit", "dropped", "--db", pg_url).exit_code == 0


class _DriverError(Exception):
    """What psycopg raises: an error with its SQLSTATE."""

    def __init__(self, sqlstate: str):
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "08006", "57P01"])
def test_serialization_failures_deadlocks_and_lost_connections_are_retried(sqlstate):
    attempts = []

    def attempt() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("INSERT ...", {}, _DriverError(sqlstate))
        return "committed"

    assert faults.with_lock_retries(attempt, "the database", wait_seconds=5) == "committed"
    assert len(attempts) == 3


def test_a_failure_that_does_not_pass_gives_up_with_a_clear_error_and_other_errors_are_not_retried(monkeypatch):
    def lost() -> None:
        raise OperationalError("INSERT ...", {}, _DriverError("08006"))

    with pytest.raises(StorageError, match=r"the database db\.example lost the connection \(sqlstate 08006\); "
                                           r"gave up after \d+\.\d s \(\d+ retries\)"):
        faults.with_lock_retries(lost, "db.example", wait_seconds=0.3)
    attempts = []

    def unique_violation() -> None:
        attempts.append(1)
        raise OperationalError("INSERT ...", {}, _DriverError("23505"))

    with pytest.raises(OperationalError):
        faults.with_lock_retries(unique_violation, "db.example", wait_seconds=5)
    assert len(attempts) == 1


# --- unreachable servers and bad URLs ----------------------------------------------------------------

NOBODY = "postgresql+psycopg://runner@127.0.0.1:9/runs"  # the discard port: nothing listens there


@pytest.mark.parametrize("command", [["runs"], ["audit"], ["db", "upgrade"], ["policy", "set", "risk_mode", "normal"]])
def test_an_unreachable_server_exits_1_naming_it(command):
    result = invoke(*command, "--db", NOBODY)
    assert result.exit_code == 1, result.output
    assert "127.0.0.1:9/runs" in result.output and "Connection refused" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_start_against_an_unreachable_server_exits_1(tmp_path):
    result = invoke("start", config(tmp_path), "--db", NOBODY)
    assert result.exit_code == 1 and "cannot open database postgresql+psycopg://runner@127.0.0.1:9/runs" in result.output


def test_a_database_url_the_runner_does_not_support_exits_2():
    result = invoke("runs", "--db", "mysql://runner@127.0.0.1/runs")
    assert result.exit_code == 2
    assert "unsupported database 'mysql'; supported: sqlite, postgresql" in result.output


def test_a_password_in_the_url_is_never_shown():
    result = invoke("runs", "--db", "postgresql+psycopg://runner:s3cret@127.0.0.1:9/runs")
    assert result.exit_code == 1 and "s3cret" not in result.output and "runner:***@127.0.0.1:9" in result.output


# --- schema upgrades ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path) -> str:
    """A path of a SQLite file, or an empty PostgreSQL database's URL."""
    return str(tmp_path / "old.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def url_of(db: str) -> str:
    return db if "://" in db else f"sqlite:///{db}"


def test_a_database_an_older_runner_made_is_refused_by_reads_and_upgraded_by_db_upgrade(tmp_path, any_db):
    assert invoke("start", config(tmp_path), "--db", any_db, "--run-id", "old", "--quiet").exit_code == 0
    for statement in ("alter table runs drop column replay_of", "alter table strategy_errors drop column disabled",
                      "drop table schema_version", "drop table symbols_added"):
        sql(url_of(any_db), statement)  # what a database made before these existed looks like

    refused = invoke("runs", "--db", any_db)
    assert refused.exit_code == 2
    assert (
        "it was made by an older runner and lacks table schema_version, table symbols_added, column runs.replay_of, "
        f"column strategy_errors.disabled; upgrade it with `runner db upgrade --db {any_db}`"
    ) in " ".join(refused.output.split())
    check = invoke("db", "upgrade", "--db", any_db, "--check", "--json")
    assert check.exit_code == 1
    assert json.loads(check.stdout)["changes"] == [
        "add table schema_version", "add table symbols_added", "add column runs.replay_of",
        "add column strategy_errors.disabled",
    ]
    upgraded = json_of("db", "upgrade", "--db", any_db)
    assert upgraded["status"] == "upgraded" and len(upgraded["changes"]) == 4
    assert [h["changes"] for h in upgraded["history"]] == [upgraded["changes"]]
    assert json_of("db", "upgrade", "--db", any_db)["status"] == "up to date"
    [run] = json_of("runs", "--db", any_db)
    assert (run["id"], run["replay_of"]) == ("old", "")  # the added column's default
    assert invoke("audit", "old", "--db", any_db).exit_code == 0
    assert invoke("start", config(tmp_path), "--db", any_db, "--run-id", "new", "--quiet").exit_code == 0


def test_db_upgrade_of_a_file_that_is_not_there_or_not_a_runners_exits_2(tmp_path):
    missing = invoke("db", "upgrade", "--db", tmp_path / "nope.db")
    assert missing.exit_code == 2 and f"no database at {tmp_path / 'nope.db'}" in " ".join(missing.output.split())
    other = tmp_path / "other.db"
    sql(f"sqlite:///{other}", "create table notes (id integer)")
    refused = invoke("db", "upgrade", "--db", other)
    assert refused.exit_code == 2 and "is not a runner database (it has no runs table)" in refused.output
    assert sql(f"sqlite:///{other}", "select name from sqlite_master") == [("notes",)]  # unchanged


# --- copying a SQLite file's runs into PostgreSQL ----------------------------------------------------


def test_migrate_from_copies_every_run_whole_and_again_only_what_is_new(tmp_path, pg_url):
    source = tmp_path / "local.db"
    for seed in (1, 2):
        assert invoke("start", config(tmp_path, seed), "--db", source, "--run-id", f"r{seed}", "--quiet").exit_code == 0
    assert invoke("policy", "set", "risk_mode", "defensive", "--db", source).exit_code == 0
    records = {(command, run_id): json_of(command, run_id, "--db", source)
               for command in ("fills", "orders", "positions") for run_id in ("r1", "r2")}
    sql(f"sqlite:///{source}", "alter table runs drop column replay_of")  # made by an older runner: copies too

    copied = json_of("db", "migrate-from", source, "--to", pg_url)
    assert [c["run_id"] for c in copied["copied"]] == ["r1", "r2"] and copied["skipped"] == []
    for (command, run_id), expected in records.items():
        assert json_of(command, run_id, "--db", pg_url) == expected, (command, run_id)
    for run_id in ("r1", "r2"):
        assert invoke("audit", run_id, "--db", pg_url).exit_code == 0
    assert json_of("policy", "show", "--db", pg_url)["policy"]["risk_mode"] == "defensive"
    assert sql(pg_url, "select count(*) from equity") == sql(f"sqlite:///{source}", "select count(*) from equity")

    assert invoke("start", config(tmp_path, 3), "--db", source, "--run-id", "r3", "--quiet").exit_code == 0
    again = invoke("db", "migrate-from", source, "--to", pg_url)
    assert again.exit_code == 0
    assert again.stdout.startswith("copied 1 runs (") and f"from {source} to {pg_url}" in again.stdout
    assert "left 2 runs the target already had: r1, r2" in again.stdout
    assert [r["id"] for r in json_of("runs", "--db", pg_url)] == ["r3", "r2", "r1"]


def test_migrate_from_into_the_same_database_or_from_a_missing_file_exits_2(tmp_path):
    missing = invoke("db", "migrate-from", tmp_path / "none.db", "--to", tmp_path / "x.db")
    assert missing.exit_code == 2 and "no database at" in missing.output
    source = tmp_path / "a.db"
    assert invoke("start", config(tmp_path), "--db", source, "--quiet").exit_code == 0
    same = invoke("db", "migrate-from", source, "--to", f"sqlite:///{source}")
    assert same.exit_code == 2 and "--to names the database being copied" in same.output


NUL_STRATEGY = """\
from strategies.base import Action, Signal, StrategyInterface


class Nul(StrategyInterface):
    def on_tick(self, market_data):
        if market_data.timestamp.minute == 3:
            raise ValueError("bad\\x00byte")
        return [Signal("AAA", Action.BUY, 1, reason="why\\x00not")]
"""


def test_a_strategy_whose_words_hold_a_nul_neither_stops_the_run_nor_the_others(tmp_path, pg_url):
    (tmp_path / "nul.py").write_text(NUL_STRATEGY, encoding="utf-8")
    path = config(tmp_path, **{"strategies:\n": "strategies:\n  - {file: nul.py, symbols: [AAA]}\n"})
    summary = json_of("start", path, "--db", pg_url, "--run-id", "nul", "--quiet")
    assert summary["status"] == "completed" and summary["ticks"] == 120
    assert sql(pg_url, "select distinct message from strategy_errors where run_id = 'nul'") == [("bad\ufffdbyte",)]
    assert ("why\ufffdnot",) in sql(pg_url, "select distinct reason from signals where run_id = 'nul'")
    assert invoke("audit", "nul", "--db", pg_url).exit_code == 0
