"""A run killed with SIGKILL at any moment leaves a database that opens cleanly and whose books
agree (`runner audit`), and the writer never holds more than MAX_UNCOMMITTED_STEPS steps of
records that a kill could lose (the durability promise in the README's Reliability section)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config_text
from runner.storage.recorder import MAX_UNCOMMITTED_STEPS, Recorder

RUNNER = Path(sys.executable).parent / "runner"

BUSY = """\
run: {{max_ticks: {ticks}, speed: 0, seed: 11}}
market_data: {{source: synthetic, symbols: [AAA, BBB, CCC], interval: 1m}}
broker: {{commission: {{percent: 0.05, minimum: 0.5}}, slippage_bps: 2}}
storage: {{url: "sqlite:///{db}", equity_every: 1}}
strategies:
  - {{name: fast, type: ma_crossover, params: {{fast: 2, slow: 5, quantity: 3}}}}
  - {{name: slow, type: ma_crossover, params: {{fast: 5, slow: 12, quantity: 2}}}}
  - {{name: hold, type: buy_and_hold}}
"""


def rows(db: Path, statement: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(statement).fetchall()


@pytest.mark.parametrize("after_steps", [300, 1500, 4000])
def test_a_run_killed_at_any_moment_leaves_books_that_agree(tmp_path, after_steps):
    db = tmp_path / "killed.db"
    config = tmp_path / "busy.yaml"
    config.write_text(BUSY.format(ticks=10_000_000, db=db))
    process = subprocess.Popen(
        [str(RUNNER), "start", str(config), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # kill it once this many steps are committed, in the middle of its writing
            assert process.poll() is None, "the run ended by itself"
            assert time.monotonic() < deadline, "the run did not get going"
            try:
                if db.exists() and (rows(db, "SELECT max(step) FROM equity")[0][0] or 0) >= after_steps:
                    break
            except sqlite3.Error:
                pass  # the tables are being created
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    [(run_id, status)] = rows(db, "SELECT id, status FROM runs")
    assert status == "running"  # it never got to say otherwise
    steps = [step for (step,) in rows(db, "SELECT step FROM equity ORDER BY step")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= after_steps  # whole steps, no gap
    assert rows(db, "SELECT count(*) FROM fills")[0][0] > 0
    audit = CliRunner().invoke(app, ["audit", run_id, "--db", str(db)])
    assert audit.exit_code == 0, audit.output  # fills have their orders, statuses agree, books replay
    assert "clean" in audit.output


def test_the_writer_never_holds_more_than_the_promised_steps(tmp_path, monkeypatch):
    """With a writer much slower than the loop, the loop waits rather than run further ahead."""
    real_write = Recorder._write

    def slow_write(self, batches):
        # A disk so slow that the loop gets more than half the promised steps ahead before each
        # write lands (polled, with a deadline: the last writes of the run wait for nothing).
        deadline = time.monotonic() + 1.0
        while self.steps_submitted - self.steps_committed <= MAX_UNCOMMITTED_STEPS // 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        real_write(self, batches)

    monkeypatch.setattr(Recorder, "_write", slow_write)
    runner = build(load_config_text(BUSY.format(ticks=6_000, db=tmp_path / "slow.db"), str(tmp_path / "b.yaml")))
    recorder, lags = runner.recorder, []
    real_submit = recorder.submit

    def submit(records):
        real_submit(records)
        lags.append(recorder.steps_submitted - recorder.steps_committed)

    monkeypatch.setattr(recorder, "submit", submit)  # the loop hands its records over through it
    runner.loop.sink = recorder
    summary = runner.run()
    assert summary.status == "completed" and summary.steps == 6_000
    assert max(lags) <= MAX_UNCOMMITTED_STEPS
    assert max(lags) > MAX_UNCOMMITTED_STEPS // 2  # the bound was reached: the loop did wait
    assert rows(tmp_path / "slow.db", "SELECT count(*) FROM equity")[0][0] == 6_000  # and nothing was lost
