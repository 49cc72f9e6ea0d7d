"""Faults of the storage under a run (issue #8): a database locked by another process, a full
disk, the database file removed or moved, SIGTERM while the writer writes, two runners on one
file. A strategy that raises or hangs is covered in test_engine.py and test_executors.py.

Every wait polls with a deadline; the sleeps here only hold a lock for a while.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config_text
from runner.storage import faults
from tests.helpers import config_text, finish

RUNNER = Path(sys.executable).parent / "runner"
MA = "  - {type: ma_crossover, params: {fast: 3, slow: 8, quantity: 5}}\n"
HOLD = "  - {type: buy_and_hold, params: {quantity: 2}}\n"


def make_runner(db: Path, run: str, symbols: str = "[AAA, BBB]"):
    return build(load_config_text(config_text(
        MA + HOLD, run=run, market_data=f"{{symbols: {symbols}, interval: 1m}}",
        storage=f"{{url: 'sqlite:///{db}'}}",
    )))


def rows(db: Path, sql: str, *params) -> list[tuple]:
    connection = sqlite3.connect(db, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def equity_steps(db: Path, run_id: str) -> list[int]:
    return [step for (step,) in rows(db, "select step from equity where run_id = ? order by step", run_id)]


def wait_for(condition, timeout: float = 20, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def committed_steps(db: Path, run_id: str, at_least: int):
    def enough() -> bool:
        try:
            return len(equity_steps(db, run_id)) >= at_least
        except sqlite3.Error:
            return False
    return enough


def counts(db: Path, run_id: str) -> dict[str, int]:
    return {
        table: rows(db, f"select count(*) from {table} where run_id = ?", run_id)[0][0]
        for table in ("orders", "order_events", "fills", "positions", "equity", "strategy_equity", "signals")
    }


def lock(db: Path) -> sqlite3.Connection:
    """Another process's write lock, as a connection of our own would hold it."""
    locker = sqlite3.connect(db, isolation_level=None, timeout=10, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


PACED = "{max_ticks: 150, seed: 5, speed: 6000}"  # 1m bars at 6000 x: 100 steps a second


# --- a database locked by another process -------------------------------------------------------


def test_a_lock_released_within_the_budget_delays_the_run_and_loses_nothing(tmp_path, caplog):
    free = make_runner(tmp_path / "free.db", "{max_ticks: 150, seed: 5, speed: 0}")
    assert free.run().status == "completed"

    db = tmp_path / "locked.db"
    runner = make_runner(db, PACED)
    runner.start()
    wait_for(committed_steps(db, runner.run_id, 10), what="10 committed steps")
    with caplog.at_level(logging.WARNING, logger="runner.storage.faults"):
        locker = lock(db)
        time.sleep(2.0)  # the other process holds the lock beyond SQLite's own wait (1 s): retries too
        locker.execute("ROLLBACK")
        locker.close()
        assert runner.wait(30)
    summary = runner.snapshot()
    assert summary.status == "completed", summary.error
    assert "is locked by another process; retrying for up to 10 s" in caplog.text  # the lock was met
    assert counts(db, runner.run_id) == counts(tmp_path / "free.db", free.run_id)
    assert equity_steps(db, runner.run_id) == list(range(1, 151))
    assert rows(db, "select status, ticks from runs") == [("completed", 150)]


def test_a_transaction_that_meets_a_lock_halfway_is_rolled_back_and_retried_whole(tmp_path, caplog):
    free = make_runner(tmp_path / "free.db", "{max_ticks: 150, seed: 5, speed: 0}")
    free.run()
    db = tmp_path / "once.db"
    runner = make_runner(db, "{max_ticks: 150, seed: 5, speed: 0}")
    met = []

    @event.listens_for(runner.recorder.engine, "before_cursor_execute")
    def locked_once(conn, cursor, statement, *_):
        # after this transaction's upserts have run: a retry that kept them would insert twice
        if not met and statement.startswith("INSERT INTO fills"):
            met.append(statement)
            raise OperationalError(statement, {}, sqlite3.OperationalError("database is locked"))

    with caplog.at_level(logging.WARNING, logger="runner.storage.faults"):
        assert runner.run().status == "completed"
    assert met and "is locked by another process; retrying" in caplog.text
    assert counts(db, runner.run_id) == counts(tmp_path / "free.db", free.run_id)
    assert runner.recorder.committed == runner.recorder.submitted + 1


def test_a_lock_held_beyond_the_budget_fails_the_run_and_keeps_what_was_committed(tmp_path):
    db = tmp_path / "locked.db"
    runner = make_runner(db, PACED)
    runner.recorder.lock_wait = 1.0
    runner.start()
    wait_for(committed_steps(db, runner.run_id, 10), what="10 committed steps")
    locker = lock(db)
    committed = equity_steps(db, runner.run_id)  # a reader is not blocked by the lock (WAL)
    started = time.monotonic()
    wait_for(lambda: runner.recorder.error is not None, what="the writer giving up")
    gave_up_after = time.monotonic() - started
    locker.execute("ROLLBACK")  # released now: the run's row can be marked failed
    locker.close()
    assert runner.wait(30)
    summary = runner.snapshot()
    assert summary.status == "failed"
    assert re.fullmatch(
        rf"the database {re.escape(str(db))} is locked by another process; gave up after \d+\.\d s \(\d+ retries\)",
        summary.error,
    ), summary.error
    assert 0.9 <= gave_up_after < 5
    assert equity_steps(db, runner.run_id)[: len(committed)] == committed == list(range(1, len(committed) + 1))
    [(status, error)] = rows(db, "select status, error from runs")
    assert status == "failed" and "is locked by another process" in error


def test_start_against_a_locked_database_exits_1_with_a_clear_error(tmp_path, monkeypatch):
    db = tmp_path / "locked.db"
    config = tmp_path / "c.yaml"
    config.write_text(config_text(MA, run="{max_ticks: 5}"), encoding="utf-8")
    cli = CliRunner()
    first = cli.invoke(app, ["start", str(config), "--db", str(db), "--run-id", "before"])
    assert first.exit_code == 0, first.output
    monkeypatch.setattr(faults, "LOCK_WAIT_SECONDS", 0.5)
    locker = lock(db)
    try:
        result = cli.invoke(app, ["start", str(config), "--db", str(db), "--run-id", "after"])
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert result.exit_code == 1
    assert re.search(r"the database \S+ is locked by another process; gave up after \d+\.\d s", " ".join(result.stderr.split()))
    assert "Traceback" not in result.output
    assert rows(db, "select id, status from runs") == [("before", "completed")]


def test_policy_set_against_a_locked_database_exits_1_with_a_clear_error(tmp_path, monkeypatch):
    db = tmp_path / "locked.db"
    cli = CliRunner()
    assert cli.invoke(app, ["policy", "set", "risk_mode", "defensive", "--db", str(db)]).exit_code == 0
    monkeypatch.setattr(faults, "LOCK_WAIT_SECONDS", 0.5)
    locker = lock(db)
    try:
        result = cli.invoke(app, ["policy", "set", "risk_mode", "aggressive", "--db", str(db)])
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert result.exit_code == 1
    assert "is locked by another process; gave up after" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert rows(db, "select value from policy") == [("defensive",)]


# --- a full disk, the database file removed or moved -----------------------------------------------


def test_a_full_disk_fails_the_run_and_keeps_what_was_committed(tmp_path):
    db = tmp_path / "full.db"
    runner = make_runner(db, "{max_ticks: 5000, seed: 5, speed: 0}", symbols="[A, B, C, D, E, F]")
    [(pages,)] = rows(db, "pragma page_count")

    @event.listens_for(runner.recorder.engine, "checkout")
    def small_disk(dbapi_connection, *_):  # SQLite refuses to grow the file beyond this
        dbapi_connection.execute(f"pragma max_page_count = {pages + 40}")

    summary = runner.run()
    assert summary.status == "failed"
    assert summary.error == (
        f"the database {db} is full (the disk, or SQLite's size limit): records from this step on are "
        "not written; those committed before are kept"
    )
    assert rows(db, "pragma integrity_check") == [("ok",)]
    steps = equity_steps(db, runner.run_id)
    assert steps == list(range(1, len(steps) + 1)) and 0 < len(steps) < 5000
    assert rows(db, "select id, status from runs") == [(runner.run_id, "failed")]


def test_a_database_file_moved_away_mid_run_fails_the_run_and_the_moved_file_keeps_every_commit(tmp_path):
    db, moved = tmp_path / "runs.db", tmp_path / "moved.db"
    runner = make_runner(db, PACED)
    runner.start()
    wait_for(committed_steps(db, runner.run_id, 10), what="10 committed steps")
    os.rename(db, moved)
    assert runner.wait(30)
    summary = runner.snapshot()
    assert summary.status == "failed"
    assert summary.error.startswith(f"the database file {db} was removed or replaced during the run")
    assert not db.exists()  # nothing recreated the file at its old path
    assert rows(moved, "pragma integrity_check") == [("ok",)]
    steps = equity_steps(moved, runner.run_id)
    assert len(steps) >= 10 and steps == list(range(1, len(steps) + 1))
    assert rows(moved, "select id, status from runs") == [(runner.run_id, "running")]  # not marked: see README


def test_the_file_check_costs_little_per_batch(tmp_path):
    path = tmp_path / "x.db"
    path.write_bytes(b"")
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        faults.file_identity(str(path))
    per_check = (time.perf_counter() - started) / rounds
    assert per_check < 50e-6, f"{per_check * 1e6:.1f} µs a check"


SLOW_CONFIG = """\
run:
  speed: 600         # 1m bars at 600 x: ten a second, and no end of its own
market_data:
  interval: 1m
  symbols: [AAA, BBB]
strategies:
  - {type: ma_crossover, params: {fast: 2, slow: 3}}
  - {type: buy_and_hold, params: {sell_on_stop: true}}
"""


def popen(tmp_path: Path, config: str, db: Path, *args: str) -> subprocess.Popen:
    (tmp_path / "c.yaml").write_text(config, encoding="utf-8")
    return subprocess.Popen(
        [str(RUNNER), "start", "c.yaml", "--db", str(db), "--quiet", *args], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )


def test_removing_the_database_file_mid_run_exits_1_with_a_clear_error(tmp_path):
    db = tmp_path / "runs.db"
    process = popen(tmp_path, SLOW_CONFIG, db, "--run-id", "gone")
    try:
        wait_for(committed_steps(db, "gone", 3), what="3 committed steps")
        db.unlink()
    finally:
        out, err = finish(process)
    assert process.returncode == 1, (out, err)
    assert "was removed or replaced during the run" in " ".join(err.split())
    assert re.search(r"status\s+failed", out), out
    assert "Traceback" not in out + err
    assert not db.exists()


# --- SIGTERM while the writer writes ----------------------------------------------------------------

HEAVY_CONFIG = """\
run: {speed: 30000, seed: 11}   # 1m bars at 30000 x: 500 steps a second, until stopped
market_data: {interval: 1m, symbols: [S01, S02, S03, S04, S05, S06, S07, S08, S09, S10, S11, S12]}
storage: {equity_every: 1}
strategies:
  - {type: ma_crossover, params: {fast: 2, slow: 4, quantity: 3}}
  - {type: buy_and_hold, params: {quantity: 1, sell_on_stop: true}}
"""


def audit(tmp_path: Path, db: Path, run_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RUNNER), "audit", run_id, "--db", str(db)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("moment", [1, 2, 3])
def test_sigterm_during_heavy_writing_stops_cleanly_with_every_step_recorded(tmp_path, moment):
    delay = random.Random(moment).uniform(0.05, 1.0)
    db = tmp_path / "heavy.db"
    process = popen(tmp_path, HEAVY_CONFIG, db, "--run-id", "term", "--json")
    try:
        wait_for(committed_steps(db, "term", 1), what="the first committed step")
        time.sleep(delay)  # a random moment of the run, not a pass condition
        process.send_signal(signal.SIGTERM)
    finally:
        out, err = finish(process)
    assert process.returncode == 0, (delay, out, err)
    assert "Traceback" not in out + err
    summary = json.loads(out)
    assert summary["status"] == "stopped"
    [(status, ticks)] = rows(db, "select status, ticks from runs where id = 'term'")
    assert (status, ticks) == ("stopped", summary["ticks"])
    assert equity_steps(db, "term") == list(range(1, ticks + 1))
    checked = audit(tmp_path, db, "term")
    assert checked.returncode == 0, (delay, checked.stdout, checked.stderr)
    assert checked.stdout.startswith("clean:")


# --- two runners on one database file --------------------------------------------------------------

BUSY_CONFIG = """\
run: {speed: 30000, max_ticks: 600, seed: SEED}   # 500 steps a second: over a second each
market_data: {interval: 1m, symbols: [S01, S02, S03, S04, S05, S06]}
strategies:
  - {type: ma_crossover, params: {fast: 2, slow: 4, quantity: 3}}
  - {type: buy_and_hold, params: {quantity: 1}}
"""


def test_engines_creating_one_new_database_at_once_all_get_its_tables(tmp_path):
    """Four engines of their own, as four processes would have, open a new file at the same moment."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from runner.storage.db import open_database

    for attempt in range(8):  # the race is between one's check for a table and its CREATE
        url = f"sqlite:///{tmp_path / f'new{attempt}.db'}"
        barrier = Barrier(4)

        def open_at_once() -> None:
            barrier.wait()
            open_database(url).dispose()

        with ThreadPoolExecutor(4) as pool:
            for opened in [pool.submit(open_at_once) for _ in range(4)]:
                opened.result(timeout=30)  # raises what open_database raised
        assert ("runs",) in rows(tmp_path / f"new{attempt}.db", "select name from sqlite_master where type = 'table'")


def test_two_runners_writing_to_one_new_file_at_once_both_complete_and_audit_clean(tmp_path):
    db = tmp_path / "shared.db"
    processes = []
    for seed in (1, 2):
        folder = tmp_path / f"runner{seed}"
        folder.mkdir()
        processes.append(popen(folder, BUSY_CONFIG.replace("SEED", str(seed)), db, "--json"))
    outputs = [finish(process, timeout=60) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, (out, err)
        assert "gave up" not in err
    summaries = [json.loads(out) for out, _ in outputs]
    assert summaries[0]["run_id"] != summaries[1]["run_id"]
    [(first_start, first_end), (second_start, second_end)] = rows(db, "select started_at, ended_at from runs")
    assert first_start < second_end and second_start < first_end, "the two runs wrote at the same time"
    for summary in summaries:
        run_id = summary["run_id"]
        assert summary["status"] == "completed" and summary["ticks"] == 600
        assert rows(db, "select status, ticks from runs where id = ?", run_id) == [("completed", 600)]
        assert equity_steps(db, run_id) == list(range(1, 601))
        assert rows(db, "select count(*) from fills where run_id = ?", run_id) == [(summary["fills"],)]
    audits = [  # both at once, as the runs went
        subprocess.Popen(
            [str(RUNNER), "audit", summary["run_id"], "--db", str(db)], cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for summary in summaries
    ]
    for process in audits:
        out, err = finish(process, timeout=60)
        assert process.returncode == 0 and out.startswith("clean:"), (out, err)
