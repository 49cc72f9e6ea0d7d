"""The `runner` command: in-process through Typer's CliRunner, and as the installed console script.

Every test runs in its own temporary directory and passes --db (or a storage.url) there, so
nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.app import app
from runner import __version__

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(sys.executable).parent / "runner"
SUMMARY_KEYS = {"run_id", "ticks", "orders", "fills", "rejections", "final_equity", "pnl", "errors"}

FAST_CONFIG = """\
run:
  speed: 0
market_data:
  interval: 1m
  symbols:
    AAA: {start_price: 50, volatility: 0.8}
    BBB: {start_price: 80, volatility: 0.5}
broker:
  starting_cash: 100000
strategies:
  - name: crosser
    type: ma_crossover
    params: {fast: 2, slow: 5, quantity: 10}
  - name: holder
    type: buy_and_hold
    symbols: [BBB]
    params: {quantity: 3, sell_on_stop: true}
"""

BAD_CONFIG = """\
run:
  max_ticks: 0
strategies:
  - type: ma_crossover
    params:
      fast: -3
"""


pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs from its temporary directory (conftest)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def fast_config(tmp_path) -> Path:
    return write(tmp_path / "fast.yaml", FAST_CONFIG)


def start_json(cli, config: Path, db: Path, *args: str) -> dict:
    result = cli.invoke(app, ["start", str(config), "--json", "--db", str(db), *args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def db_rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchall()


def one_line(text: str) -> str:
    """Collapse whitespace, so a message wrapped by the terminal width still matches."""
    return " ".join(text.split())


# --- help and version --------------------------------------------------------------------------


def test_help_lists_the_commands_with_their_help(cli):
    result = cli.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert re.search(r"\bstart\b", result.stdout)
    assert re.search(r"\bvalidate\b", result.stdout)
    assert "Paper-trade the strategies of CONFIG" in result.stdout
    assert "Check CONFIG without trading" in result.stdout
    assert "--version" in result.stdout


def test_no_arguments_shows_the_help(cli):
    result = cli.invoke(app, [])
    assert "start" in result.output and "validate" in result.output
    assert "Traceback" not in result.output


def test_start_help_lists_its_options(cli):
    result = cli.invoke(app, ["start", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for option in ("--max-ticks", "--duration", "--speed", "--db", "--run-id", "--seed", "--json", "--quiet"):
        assert option in result.stdout


def test_version(cli):
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"runner {__version__}"
    assert re.fullmatch(r"runner \d+\.\d+\.\d+\S*", result.stdout.strip())


# --- validate ------------------------------------------------------------------------------------


def test_validate_good_config(cli, fast_config):
    result = cli.invoke(app, ["validate", str(fast_config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "OK"
    assert not list(Path.cwd().glob("**/*.db"))  # validating writes nothing


def test_validate_good_config_json(cli, fast_config):
    result = cli.invoke(app, ["validate", str(fast_config), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"ok": True, "problems": []}


def test_validate_bad_config_prints_each_problem_and_exits_2(cli, tmp_path):
    write(tmp_path / "bad.yaml", BAD_CONFIG)
    result = cli.invoke(app, ["validate", "bad.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = one_line(result.stderr)
    assert "bad.yaml:2: run.max_ticks: must be an integer > 0, got 0" in errors


def test_validate_cross_field_problem(cli, tmp_path):
    write(tmp_path / "bad.yaml", "strategies:\n  - type: ma_crossover\n    params:\n      fast: -3\n")
    result = cli.invoke(app, ["validate", "bad.yaml"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "bad.yaml:4: strategies[0].params.fast: must be an integer > 0, got -3" in one_line(result.stderr)


def test_validate_prints_each_problem_on_one_line(cli, tmp_path):
    """`validate` promises every problem one a line: piped output must not be re-wrapped."""
    write(tmp_path / "bad.yaml", (
        "strategies:\n"
        "  - type: no_such_strategy_here\n"
        "  - type: ma_crossover\n"
        "    symbols: [NOT_A_SYMBOL, NOR_THIS_ONE, NOR_THAT_ONE]\n"
    ))
    result = cli.invoke(app, ["validate", "bad.yaml"], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert (
        "bad.yaml:2: strategies[0].type: unknown strategy 'no_such_strategy_here'; "
        "known strategies: buy_and_hold, fib_rsi, hybrid, ma_crossover, ml_model, rsi"
    ) in lines
    assert (
        "bad.yaml:4: strategies[1].symbols: unknown symbol(s) NOT_A_SYMBOL, NOR_THIS_ONE, "
        "NOR_THAT_ONE; market_data has: SYN"
    ) in lines
    assert len(lines) == 2


def test_validate_several_problems_all_listed(cli, tmp_path):
    write(tmp_path / "bad.yaml", "run:\n  mode: date\n  max_ticks: 0\nbrokr: {}\n")
    result = cli.invoke(app, ["validate", "bad.yaml"])
    assert result.exit_code == 2
    errors = one_line(result.stderr)
    assert "bad.yaml:2: run.mode:" in errors and "did you mean 'data'?" in errors
    assert "bad.yaml:3: run.max_ticks:" in errors
    assert "bad.yaml:4: brokr: unknown key 'brokr' (did you mean 'broker'?)" in errors


def test_validate_json_lists_problems(cli, tmp_path):
    write(tmp_path / "bad.yaml", BAD_CONFIG)
    result = cli.invoke(app, ["validate", "bad.yaml", "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    [problem] = data["problems"]
    assert problem == {
        "file": "bad.yaml", "line": 2, "column": None, "key": "run.max_ticks",
        "message": "must be an integer > 0, got 0",
    }


def test_validate_json_cross_field_problems(cli, tmp_path):
    write(tmp_path / "bad.yaml", "strategies:\n  - type: ma_crossover\n    params: {fast: -3}\n  - type: nope\n")
    result = cli.invoke(app, ["validate", "bad.yaml", "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [(p["key"], p["line"]) for p in data["problems"]] == [
        ("strategies[0].params.fast", 3), ("strategies[1].type", 4),
    ]
    assert "known strategies: buy_and_hold, fib_rsi, hybrid, ma_crossover, ml_model, rsi" in data["problems"][1]["message"]


def test_validate_missing_file(cli):
    result = cli.invoke(app, ["validate", "nope.yaml"])
    assert result.exit_code == 2
    assert "config file not found: nope.yaml" in result.stderr
    assert "Traceback" not in result.output


def test_validate_yaml_syntax_error(cli, tmp_path):
    write(tmp_path / "broken.yaml", "run:\n  mode: data\n   speed: 1\n")
    result = cli.invoke(app, ["validate", "broken.yaml"])
    assert result.exit_code == 2
    assert "broken.yaml:3:" in result.stderr
    assert "invalid YAML" in result.stderr
    assert "   speed: 1" in result.stderr
    assert "Traceback" not in result.output


# --- start: bad input --------------------------------------------------------------------------


def test_start_missing_file_exits_2_with_a_clear_message(cli, tmp_path):
    result = cli.invoke(app, ["start", "missing.yaml", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "config file not found: missing.yaml" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.db").exists()


def test_start_unknown_strategy_exits_2_listing_known_strategies(cli, tmp_path):
    write(tmp_path / "bad.yaml", "strategies:\n  - type: mean_reversion\n")
    result = cli.invoke(app, ["start", "bad.yaml", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    errors = one_line(result.stderr)
    assert "bad.yaml:2: strategies[0].type: unknown strategy 'mean_reversion'" in errors
    assert "known strategies: buy_and_hold, fib_rsi, hybrid, ma_crossover, ml_model, rsi" in errors
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_start_invalid_config_exits_2(cli, tmp_path):
    write(tmp_path / "bad.yaml", BAD_CONFIG)
    result = cli.invoke(app, ["start", "bad.yaml", "--db", str(tmp_path / "x.db"), "--json"])
    assert result.exit_code == 2
    assert "run.max_ticks: must be an integer > 0, got 0" in one_line(result.stderr)
    assert json.loads(result.stdout) == {
        "status": "error", "exit_code": 2,
        "error": "bad.yaml:2: run.max_ticks: must be an integer > 0, got 0",
    }
    assert "Traceback" not in result.output


def test_start_rejects_max_ticks_zero_on_the_command_line(cli, fast_config, tmp_path):
    result = cli.invoke(app, ["start", str(fast_config), "--max-ticks", "0", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --- start: a run --------------------------------------------------------------------------------


def test_start_json_prints_one_object_and_records_the_run(cli, fast_config, tmp_path):
    db = tmp_path / "x.db"
    result = cli.invoke(app, ["start", str(fast_config), "--max-ticks", "50", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert isinstance(summary, dict)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["ticks"] == 50
    assert summary["status"] == "completed"
    assert summary["fills"] > 0
    assert all(isinstance(summary[key], int) for key in ("orders", "fills", "rejections"))
    assert summary["orders"] >= 1
    assert set(summary["pnl"]) == {"crosser", "holder"}
    assert set(summary["errors"]) == {"crosser", "holder"}
    assert db.exists()
    runs = db_rows(db, "SELECT id, status, ticks FROM runs")
    assert runs == [(summary["run_id"], "completed", 50)]
    [(fills,)] = db_rows(db, "SELECT COUNT(*) FROM fills WHERE run_id = ?", summary["run_id"])
    assert fills == summary["fills"]
    [(equity_rows,)] = db_rows(db, "SELECT COUNT(*) FROM equity WHERE run_id = ?", summary["run_id"])
    assert equity_rows == 50
    assert not (tmp_path / "runs").exists()  # --db overrides the default storage.url


def test_start_uses_storage_url_of_the_config(cli, tmp_path):
    db = tmp_path / "sub" / "from_config.db"
    config = write(tmp_path / "c.yaml", FAST_CONFIG + f"storage:\n  url: sqlite:///{db}\n")
    result = cli.invoke(app, ["start", str(config), "--max-ticks", "10", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert db_rows(db, "SELECT id, status FROM runs") == [(summary["run_id"], "completed")]


def test_run_id_is_honoured_and_cannot_be_reused(cli, fast_config, tmp_path):
    db = tmp_path / "x.db"
    summary = start_json(cli, fast_config, db, "--max-ticks", "5", "--run-id", "my-run")
    assert summary["run_id"] == "my-run"
    assert db_rows(db, "SELECT id FROM runs") == [("my-run",)]

    again = cli.invoke(app, ["start", str(fast_config), "--max-ticks", "5", "--db", str(db), "--run-id", "my-run"])
    assert again.exit_code == 2
    assert "my-run" in again.stderr and "already exists" in again.stderr
    assert "Traceback" not in again.output
    assert db_rows(db, "SELECT id, status FROM runs") == [("my-run", "completed")]


def test_seed_changes_the_fills_and_the_same_seed_repeats_them(cli, fast_config, tmp_path):
    def fills(seed: int, run_id: str) -> list[tuple]:
        db = tmp_path / f"{run_id}.db"
        summary = start_json(cli, fast_config, db, "--max-ticks", "200", "--seed", str(seed), "--run-id", run_id)
        rows = db_rows(
            db, "SELECT strategy, symbol, side, quantity, price FROM fills WHERE run_id = ? ORDER BY fill_id", run_id,
        )
        assert len(rows) == summary["fills"] > 0
        return rows

    first, other, same = fills(1, "a"), fills(2, "b"), fills(1, "c")
    assert first == same
    assert first != other


def test_seed_is_recorded_with_the_run(cli, fast_config, tmp_path):
    db = tmp_path / "x.db"
    summary = start_json(cli, fast_config, db, "--max-ticks", "3", "--seed", "1234")
    assert db_rows(db, "SELECT seed FROM runs WHERE id = ?", summary["run_id"]) == [(1234,)]


def test_speed_zero_overrides_a_slow_config(cli, tmp_path):
    # speed 1 with 1m bars is one bar a minute: without the override this would take hours.
    # --duration is only a safety net so a broken override fails instead of hanging.
    config = write(tmp_path / "slow.yaml", FAST_CONFIG.replace("speed: 0", "speed: 1"))
    summary = start_json(cli, config, tmp_path / "x.db", "--speed", "0", "--max-ticks", "200", "--duration", "30")
    assert summary["status"] == "completed"
    assert summary["ticks"] == 200


def test_summary_mentions_run_id_final_equity_and_strategies(cli, fast_config, tmp_path):
    result = cli.invoke(
        app, ["start", str(fast_config), "--max-ticks", "20", "--db", str(tmp_path / "x.db"), "--run-id", "sum-1"],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "sum-1" in out
    assert "final equity" in out
    assert "crosser" in out and "holder" in out
    assert "completed" in out
    assert re.search(r"ticks\s+20\b", out)
    assert "Traceback" not in result.output


def test_quiet_run_still_prints_the_summary(cli, fast_config, tmp_path):
    result = cli.invoke(app, ["start", str(fast_config), "--max-ticks", "5", "--db", str(tmp_path / "x.db"), "-q"])
    assert result.exit_code == 0, result.output
    assert "final equity" in result.stdout


# --- the console script ------------------------------------------------------------------------


def run_script(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RUNNER), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


def test_console_script_is_installed():
    assert RUNNER.exists(), f"the `runner` console script is not installed next to {sys.executable}"


def test_script_validates_the_default_config():
    result = run_script("validate", "configs/default.yaml", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_script_version(tmp_path):
    result = run_script("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"runner {__version__}"


def test_script_bad_config_exits_2_without_traceback(tmp_path):
    write(tmp_path / "bad.yaml", BAD_CONFIG)
    result = run_script("start", "bad.yaml", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 2
    assert "run.max_ticks" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_script_start_json(tmp_path):
    write(tmp_path / "fast.yaml", FAST_CONFIG)
    db = tmp_path / "x.db"
    result = run_script("start", "fast.yaml", "--max-ticks", "30", "--json", "--db", str(db), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ticks"] == 30 and summary["status"] == "completed"
    assert db_rows(db, "SELECT status, ticks FROM runs") == [("completed", 30)]


SLOW_CONFIG = """\
run:
  speed: 60          # 1m bars at 60 x: one bar a second, and no end of its own
market_data:
  interval: 1m
  symbols: [AAA, BBB]
strategies:
  - name: crosser
    type: ma_crossover
    params: {fast: 2, slow: 3}
  - name: holder
    type: buy_and_hold
    params: {sell_on_stop: true}
"""


def wait_until_running(db: Path, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if db.exists():
            try:
                if db_rows(db, "SELECT status FROM runs") == [("running",)]:
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"the run did not start within {timeout} s: {process.communicate()}")


def start_then_signal(tmp_path, extra_args, signum, settle):
    """Start the slow config in a subprocess, send `signum` `settle` s after it runs, wait for the end."""
    write(tmp_path / "slow.yaml", SLOW_CONFIG)
    db = tmp_path / "slow.db"
    process = subprocess.Popen(
        [str(RUNNER), "start", "slow.yaml", "--db", str(db), *extra_args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        wait_until_running(db, process)
        time.sleep(settle)
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process, out, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_run_gracefully(tmp_path, signum):
    db = tmp_path / "slow.db"
    process, out, err = start_then_signal(tmp_path, ["--run-id", "sig-run"], signum, settle=2)
    assert process.returncode == 0, (out, err)
    assert "Traceback" not in out + err
    assert "sig-run" in out
    assert re.search(r"status\s+stopped", out), out
    assert "final equity" in out
    ticks = int(re.search(r"ticks\s+(\d+)", out).group(1))
    assert ticks >= 1
    assert db_rows(db, "SELECT status, ticks FROM runs WHERE id = 'sig-run'") == [("stopped", ticks)]
    [(equity_rows,)] = db_rows(db, "SELECT COUNT(*) FROM equity WHERE run_id = 'sig-run'")
    assert equity_rows == ticks


def test_signal_stop_with_json(tmp_path):
    db = tmp_path / "slow.db"
    process, out, err = start_then_signal(tmp_path, ["--json"], signal.SIGTERM, settle=1)
    assert process.returncode == 0, (out, err)
    summary = json.loads(out)
    assert summary["status"] == "stopped"
    [(status, ticks)] = db_rows(db, "SELECT status, ticks FROM runs WHERE id = ?", summary["run_id"])
    assert (status, ticks) == ("stopped", summary["ticks"])
    [(fills,)] = db_rows(db, "SELECT COUNT(*) FROM fills WHERE run_id = ?", summary["run_id"])
    assert fills == summary["fills"]
