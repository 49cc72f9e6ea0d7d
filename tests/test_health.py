"""Heartbeats and `runner health`: a running run is alive and healthy, a finished one reports
its final status, a stale heartbeat (as after SIGKILL) or a disabled strategy is unhealthy,
and unknown runs or databases are usage errors."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.clock import SimClock
from runner.config import load_config_text
from runner.events import Heartbeat
from runner.health import assess, stale_after
from runner.storage import queries
from runner.storage.db import open_database
from tests.helpers import config_text

DEADLINE_SECONDS = 60  # generous: the suite runs on a loaded two-core machine
MA = "  - {type: ma_crossover, name: crosser, params: {fast: 2, slow: 5, quantity: 10}}\n"
HOLD = "  - {type: buy_and_hold, name: holder, params: {quantity: 2}}\n"
BROKEN = '''
from strategies.base import StrategyInterface


class Broken(StrategyInterface):
    """Fails to start, so it is disabled at once."""

    def on_start(self):
        raise RuntimeError("no connection to the model server")

    def on_tick(self, market_data):
        return None
'''


def make_runner(tmp_path, strategies=MA + HOLD, run="{max_ticks: 40, seed: 3}", clock=None):
    config = config_text(strategies, run=run, storage=f"{{url: 'sqlite:///{tmp_path / 'h.db'}'}}")
    return build(load_config_text(config, str(tmp_path / "h.yaml")), clock=clock)


def health(tmp_path, *args: str):
    """Run `runner health --json` on the test database: (exit code, JSON)."""
    result = CliRunner().invoke(app, ["health", "--db", str(tmp_path / "h.db"), "--json", *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None


def sql(tmp_path, statement: str, *params) -> None:
    with sqlite3.connect(tmp_path / "h.db") as connection:
        connection.execute(statement, params)


def test_a_running_run_is_alive_and_healthy_then_stopped(tmp_path):
    runner = make_runner(tmp_path, run="{mode: clock, tick_interval: 0.02, max_ticks: 1000000, seed: 3}")
    runner.start()
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            code, data = health(tmp_path)
            if code == 0 and data["last_heartbeat"] is not None and data["last_step"] >= 3:
                break
            assert time.monotonic() < deadline, f"no healthy heartbeat within {DEADLINE_SECONDS} s: {data}"
            time.sleep(0.05)
    finally:
        runner.stop()
        assert runner.wait(DEADLINE_SECONDS)
    assert data["run_id"] == runner.run_id and data["status"] == "running"
    assert data["alive"] is True and data["healthy"] is True and data["reasons"] == []
    assert data["expected_every_seconds"] == 1.0 and data["stale_after_seconds"] == 5.0
    assert 0 <= data["seconds_since_heartbeat"] <= 5
    assert datetime.fromisoformat(data["last_heartbeat"]).tzinfo is not None
    assert data["last_bar_time"].endswith("+00:00")
    assert data["strategies"] == {
        "crosser": {"state": "running", "disabled": False, "disabled_reason": "", "errors": 0},
        "holder": {"state": "running", "disabled": False, "disabled_reason": "", "errors": 0},
    }
    code, data = health(tmp_path, "--run-id", runner.run_id)
    assert code == 0
    assert data["status"] == "stopped" and data["alive"] is False and data["healthy"] is True
    assert data["last_step"] == runner.snapshot().steps  # the final heartbeat, written at the end
    assert {s["state"] for s in data["strategies"].values()} == {"stopped"}


def test_a_completed_run_is_healthy_and_the_text_says_so(tmp_path):
    runner = make_runner(tmp_path)
    assert runner.run().status == "completed"
    code, data = health(tmp_path)
    assert code == 0
    assert data["status"] == "completed" and data["healthy"] is True and data["alive"] is False
    assert data["last_step"] == 40
    result = CliRunner().invoke(app, ["health", "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 0
    assert "healthy    yes" in result.stdout and "alive      no, the run has ended" in result.stdout
    assert "crosser" in result.stdout


def test_a_stale_heartbeat_is_unhealthy_as_after_a_kill(tmp_path):
    runner = make_runner(tmp_path)
    runner.run()
    old = (datetime.now(UTC) - timedelta(seconds=60)).replace(tzinfo=None)
    sql(tmp_path, "update runs set status = 'running', ended_at = null where id = ?", runner.run_id)
    sql(tmp_path, "update heartbeats set wall_time = ? where run_id = ?", old.isoformat(sep=" "), runner.run_id)
    code, data = health(tmp_path)
    assert code == 1
    assert data["status"] == "running" and data["alive"] is False and data["healthy"] is False
    assert 59 <= data["seconds_since_heartbeat"] < 600
    assert data["reasons"][0].startswith("no heartbeat for 6")
    assert "stale after 5 s" in data["reasons"][0]
    result = CliRunner().invoke(app, ["health", "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 1
    assert "unhealthy: no heartbeat for" in " ".join(result.stdout.split())


def test_a_run_killed_before_its_first_heartbeat_goes_stale_from_its_start(tmp_path):
    runner = make_runner(tmp_path)
    runner.run()
    started = (datetime.now(UTC) - timedelta(seconds=30)).replace(tzinfo=None)
    sql(tmp_path, "update runs set status = 'running', started_at = ? where id = ?", started.isoformat(sep=" "), runner.run_id)
    sql(tmp_path, "delete from heartbeats")
    code, data = health(tmp_path)
    assert code == 1
    assert data["last_heartbeat"] is None and data["seconds_since_heartbeat"] is None
    assert data["reasons"][0].startswith("no heartbeat since the run started 3")


def test_the_staleness_rule_follows_the_announced_period(tmp_path):
    runner = make_runner(tmp_path)
    runner.run()
    sql(tmp_path, "update runs set status = 'running' where id = ?", runner.run_id)
    engine = open_database(f"sqlite:///{tmp_path / 'h.db'}", create=False)
    run, beat = queries.run(engine, runner.run_id), queries.heartbeat(engine, runner.run_id)
    at = beat.wall_time.replace(tzinfo=UTC)
    assert assess(engine, run, at + timedelta(seconds=4.9)).alive
    assert not assess(engine, run, at + timedelta(seconds=5.1)).alive
    sql(tmp_path, "update heartbeats set expected_every_seconds = 10 where run_id = ?", runner.run_id)
    assert assess(engine, run, at + timedelta(seconds=29)).alive
    assert not assess(engine, run, at + timedelta(seconds=31)).healthy
    engine.dispose()
    assert stale_after(0.5) == 5 and stale_after(1) == 5 and stale_after(60) == 180


def test_a_disabled_strategy_or_a_failed_run_is_unhealthy(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN)
    runner = make_runner(tmp_path, MA + "  - {file: broken.py, name: broken}\n")
    assert runner.run().status == "completed"
    code, data = health(tmp_path)
    assert code == 1
    assert data["strategies"]["broken"] == {
        "state": "disabled", "disabled": True, "errors": 1,
        "disabled_reason": "RuntimeError in on_start: no connection to the model server",
    }
    assert data["reasons"] == ["strategy broken is disabled: RuntimeError in on_start: no connection to the model server"]
    sql(tmp_path, "update runs set status = 'failed', error = 'cannot write records' where id = ?", runner.run_id)
    code, data = health(tmp_path)
    assert code == 1 and data["reasons"][0] == "the run failed: cannot write records"


def test_a_disabled_strategy_shows_while_the_run_goes_on(tmp_path):
    """Before the end-of-run stats exist, the heartbeat and the error records tell."""
    (tmp_path / "broken.py").write_text(BROKEN)
    runner = make_runner(tmp_path, MA + "  - {file: broken.py, name: broken}\n")
    runner.run()
    sql(tmp_path, "update runs set status = 'running' where id = ?", runner.run_id)
    sql(tmp_path, "delete from strategy_stats")
    sql(tmp_path, "update heartbeats set wall_time = ?", datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" "))
    code, data = health(tmp_path)
    assert code == 1 and data["alive"] is True
    assert data["strategies"]["broken"]["disabled"] is True
    assert data["strategies"]["crosser"]["state"] == "stopped"


def test_unknown_runs_and_databases_are_usage_errors(tmp_path):
    make_runner(tmp_path).run()
    result = CliRunner().invoke(app, ["health", "--db", str(tmp_path / "h.db"), "--run-id", "no-such-run"])
    assert result.exit_code == 2
    assert "no run 'no-such-run'" in result.stderr
    result = CliRunner().invoke(app, ["health", "--db", str(tmp_path / "nowhere.db"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["exit_code"] == 2
    assert "no database at" in result.stderr


def test_a_database_from_before_heartbeats_is_read(tmp_path):
    make_runner(tmp_path).run()
    sql(tmp_path, "drop table heartbeats")
    code, data = health(tmp_path)
    assert code == 0 and data["last_heartbeat"] is None and data["status"] == "completed"


# --- the heartbeats the loop writes ------------------------------------------------------------


class Capture:
    """A sink between the loop and storage that keeps the heartbeats."""

    def __init__(self, sink):
        self.sink, self.heartbeats = sink, []

    def submit(self, records):
        self.heartbeats += [r for r in records if type(r) is Heartbeat]
        self.sink.submit(records)


def test_heartbeats_are_throttled_to_about_one_a_second_of_clock_time(tmp_path):
    runner = make_runner(tmp_path, run="{max_ticks: 300, seed: 3}", clock=SimClock())
    capture = runner.loop.sink = Capture(runner.loop.sink)
    runner.run()
    # The simulated clock stands still in an unpaced run: the first step and the end write one.
    assert [(h.step, h.expected_every_seconds) for h in capture.heartbeats] == [(1, 1.0), (300, 1.0)]


def test_a_long_wait_for_the_next_step_announces_itself(tmp_path):
    runner = make_runner(tmp_path, run="{mode: clock, tick_interval: 30, max_ticks: 4, seed: 3}", clock=SimClock())
    capture = runner.loop.sink = Capture(runner.loop.sink)
    runner.run()
    beats = [(h.step, h.expected_every_seconds) for h in capture.heartbeats]
    # Each step writes one (at most one a second), and each wait for the next step says how long.
    assert beats == [(1, 1.0), (1, 30.0), (2, 1.0), (2, 30.0), (3, 1.0), (3, 30.0), (4, 1.0), (4, 1.0)]
    assert {s.name: s.state for s in capture.heartbeats[1].strategies} == {"crosser": "running", "holder": "running"}
    engine = runner.recorder.engine
    assert queries.heartbeat(engine, runner.run_id).step == 4  # one row per run, the latest


def test_a_paced_replay_announces_its_step_period(tmp_path):
    runner = make_runner(tmp_path, run="{speed: 6, max_ticks: 3, seed: 3}", clock=SimClock())
    capture = runner.loop.sink = Capture(runner.loop.sink)
    runner.run()
    # 1m bars at speed 6: ten seconds between steps, announced before each wait.
    beats = [(h.step, h.expected_every_seconds) for h in capture.heartbeats]
    assert beats == [(1, 1.0), (1, 10.0), (2, 1.0), (2, 10.0), (3, 1.0), (3, 1.0)]


def test_a_run_whose_process_was_killed_goes_unhealthy(tmp_path):
    """A real `runner start` killed with SIGKILL: healthy while it runs, then, once its heartbeat
    is older than the staleness bound, unhealthy with the reason (exit 1)."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    config = tmp_path / "h.yaml"
    config.write_text(config_text(MA + HOLD, run="{mode: clock, tick_interval: 0.05, seed: 3}"))
    runner_script = Path(sys.executable).parent / "runner"
    process = subprocess.Popen(
        [str(runner_script), "start", str(config), "--db", str(tmp_path / "h.db"), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the run ended by itself"
            if (tmp_path / "h.db").exists():
                code, report = health(tmp_path)
                if code == 0 and report["last_step"]:
                    break
            assert time.monotonic() < deadline, "the run never reported healthy"
            time.sleep(0.2)
        assert report["alive"] and report["status"] == "running"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        deadline = time.monotonic() + 60  # the bound is 5 s here; a loaded machine gets room
        while (result := health(tmp_path))[0] == 0:
            assert time.monotonic() < deadline, "the killed run still looks healthy"
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    code, report = result
    assert code == 1 and report["status"] == "running" and not report["alive"]
    assert any("heartbeat" in reason for reason in report["reasons"]), report["reasons"]
