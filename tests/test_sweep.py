"""`runner sweep` and `runner sweep-report` on the local process pool: the grid, the records,
the ranking, bad input, an interrupted sweep, and results independent of the workers (a worker
that dies, and Ray: tests/test_sweep_ray.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.config import load_config
from runner.errors import ConfigError
from runner.grid import build_grid, parse_values
from runner.storage.db import sqlite_url
from runner.sweep import SweepRequest, plan_sweep, run_sweep
from tests.sweep_helpers import assert_same_results, sweep_rows, write_config


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def sweep_json(*args: str) -> dict:
    result = invoke("sweep", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- the grid -----------------------------------------------------------------------------------


def test_lists_and_ranges_expand_with_the_stop_included():
    grid = build_grid({"fast": "5,10,20", "slow": "30:90:10", "quantity": [1, 2]})
    assert grid.values == {"fast": (5, 10, 20), "slow": (30, 40, 50, 60, 70, 80, 90), "quantity": (1, 2)}
    assert grid.size == 3 * 7 * 2
    assert next(grid.combinations()) == {"fast": 5, "slow": 30, "quantity": 1}


def test_a_decimal_range_is_exact():
    assert parse_values("k", "0.1:0.5:0.1") == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert parse_values("k", "1:2:0.25") == (1.0, 1.25, 1.5, 1.75, 2.0)


@pytest.mark.parametrize(("spec", "message"), [
    ("90:30:10", "range '90:30:10' is empty (start 90 is above stop 30)"),
    ("a:b:1", "range 'a:b:1' is not numeric; expected numbers start:stop:step"),
    ("1:5:0", "has step 0; the step must be > 0"),
    ("1:5", "must be start:stop:step"),
    (",", "no values in ','"),
])
def test_a_bad_spec_names_the_parameter_and_what_was_expected(spec, message):
    with pytest.raises(ConfigError, match="parameter 'slow': ") as caught:
        parse_values("slow", spec)
    assert message in str(caught.value)


# --- a sweep, recorded ------------------------------------------------------------------------

GRID = ["--param", "fast=3,5", "--param", "slow=5:15:5"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A sweep of GRID on two workers: (its folder, its JSON summary)."""
    folder = tmp_path_factory.mktemp("swept")
    return folder, sweep_json(str(write_config(folder)), *GRID, "--workers", "2")


def test_every_combination_is_a_recorded_run_tagged_with_the_sweep(swept):
    folder, outcome = swept
    db = folder / "runs.db"

    assert outcome["status"] == "completed" and outcome["combinations"] == 6
    assert outcome["counts"] == {"completed": 5, "skipped": 1}  # fast >= slow: 5, 5
    rows = sweep_rows(db, outcome["sweep_id"])
    assert [(n, json.loads(p), s) for n, _, p, s, _ in rows] == [
        (1, {"fast": 3, "slow": 5}, "completed"), (2, {"fast": 3, "slow": 10}, "completed"),
        (3, {"fast": 3, "slow": 15}, "completed"), (4, {"fast": 5, "slow": 5}, "skipped"),
        (5, {"fast": 5, "slow": 10}, "completed"), (6, {"fast": 5, "slow": 15}, "completed"),
    ]
    assert rows[3][4] == "fast (5) must be smaller than slow (5)"
    with sqlite3.connect(db) as connection:
        runs = dict(connection.execute("SELECT id, status FROM runs WHERE id LIKE 'sweep-%'").fetchall())
        texts = dict(connection.execute("SELECT id, config_text FROM runs").fetchall())
        sweep = connection.execute(
            "SELECT status, executor, workers, combinations FROM sweeps WHERE id = ?", (outcome["sweep_id"],),
        ).fetchone()
        fills = connection.execute("SELECT count(*) FROM fills WHERE run_id = ?", (rows[1][1],)).fetchone()[0]
    assert {run_id: runs[run_id] for _, run_id, _, status, _ in rows if status == "completed"} == {
        run_id: "completed" for _, run_id, _, status, _ in rows if status == "completed"
    }
    assert "fast: 3" in texts[rows[1][1]] and "slow: 10" in texts[rows[1][1]]
    assert sweep == ("completed", "local", 2, 6)
    assert fills > 0


def test_results_do_not_depend_on_the_number_of_workers(swept):
    folder, two = swept
    one = sweep_json(str(folder / "sweep.yaml"), *GRID, "--workers", "1")
    assert_same_results(folder / "runs.db", one["sweep_id"], two["sweep_id"])


def test_the_sweep_section_of_the_config_is_used_and_options_override_it(tmp_path):
    config = write_config(tmp_path, sweep="sweep:\n  params: {fast: '3,4', slow: [10, 11]}\n  workers: 1\n")
    from_config = invoke("sweep", str(config), "--max-runs", "3")
    assert from_config.exit_code == 2
    assert "the grid has 4 combinations, more than --max-runs 3" in from_config.stderr
    overridden = sweep_json(str(config), "--param", "fast=2,3", "--max-runs", "1", "--yes")
    assert [r["params"] for r in overridden["runs"]] == [{"fast": 2}, {"fast": 3}]
    assert overridden["workers"] == 1 and overridden["counts"] == {"completed": 2}
    sweep_id = overridden["sweep_id"]
    one_parameter = invoke("sweep-report", sweep_id, "--db", str(tmp_path / "runs.db"), "--plot", str(tmp_path / "h.png"))
    assert one_parameter.exit_code == 2
    assert "a heat map needs two different swept parameters; this sweep has: fast" in one_parameter.stderr
    assert not (tmp_path / "h.png").exists()


# --- the report ---------------------------------------------------------------------------------


def test_the_report_ranks_the_runs_and_the_best_one_replays_identically(swept):
    folder, outcome = swept
    db, sweep_id = folder / "runs.db", outcome["sweep_id"]

    result = invoke("sweep-report", sweep_id, "--db", str(db), "--json", "--sort", "return", "--top", "3",
                    "--plot", str(folder / "heat.png"))

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    returns = [row["overall"]["total_return"] for row in report["best"]]
    assert len(returns) == 3 and returns == sorted(returns, reverse=True)
    assert report["counts"] == {"completed": 5, "skipped": 1} and report["grid"] == {"fast": [3, 5], "slow": [5, 10, 15]}
    assert (folder / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    everything = json.loads(invoke("sweep-report", sweep_id, "--db", str(db), "--json", "--top", "6").stdout)
    assert len(everything["best"]) == 5
    assert returns[0] == max(row["overall"]["total_return"] for row in everything["best"])
    sharpes = [row["overall"]["sharpe"] for row in everything["best"]]
    assert sharpes == sorted(sharpes, reverse=True)

    best = report["best"][0]["run_id"]
    plain = invoke("sweep-report", sweep_id, "--db", str(db), "--top", "2", "--sort", "return")
    assert plain.exit_code == 0, plain.output
    assert "best 2 by return" in plain.stdout and best in plain.stdout
    replayed = invoke("replay", best, "--db", str(db), "--json")
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["identical"] is True


def test_a_report_of_an_unknown_sweep_lists_the_latest(swept):
    folder, outcome = swept
    result = invoke("sweep-report", "sweep-nope", "--db", str(folder / "runs.db"))
    assert result.exit_code == 2
    assert "no sweep 'sweep-nope' in this database; latest sweeps: " in result.stderr
    assert outcome["sweep_id"] in result.stderr


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "fastest=1,2"], "strategy 'ma' has no parameter 'fastest'; it declares: fast, slow, quantity"),
    (["--param", "slow=90:30:10"], "parameter 'slow': range '90:30:10' is empty"),
    (["--param", "slow=a:b:c"], "parameter 'slow': range 'a:b:c' is not numeric"),
    (["--param", "slow"], "--param 'slow': expected NAME=VALUES"),
    (["--param", "fast=1:30:1", "--param", "slow=31:40:1", "--max-runs", "100"],
     "the grid has 300 combinations, more than --max-runs 100; narrow it, raise --max-runs, or pass --yes"),
    (["--param", "fast=20,30", "--param", "slow=10"], "strategy 'ma' refuses every combination of the grid: "
     "fast (20) must be smaller than slow (10); fast (30) must be smaller than slow (10)"),
    (["--param", "fast=3", "--strategy", "other"], "no enabled strategy 'other'"),
])
def test_bad_input_exits_2_with_a_message_and_records_nothing(tmp_path, args, message):
    config = write_config(tmp_path)
    result = invoke("sweep", str(config), *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs.db").exists()


def test_an_unreachable_ray_address_exits_1_and_records_nothing(tmp_path):
    config = write_config(tmp_path)
    result = invoke("sweep", str(config), "--param", "fast=3", "--executor", "ray", "--ray-address", "127.0.0.1:9")
    assert result.exit_code == 1, result.output
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in result.stderr
    assert not (tmp_path / "runs.db").exists()


# --- failures -----------------------------------------------------------------------------------


def test_ctrl_c_stops_the_workers_and_marks_the_unfinished_runs(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "runs.db"
    command = [str(Path(sys.executable).with_name("runner")), "sweep", str(config), "--param", "fast=2:9:1",
               "--param", "slow=20", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _completed(db):  # polled: a run is recorded once done
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 1, err
    assert "interrupted: finished runs are recorded, the others marked interrupted" in err
    assert "Traceback" not in err and "storage write failed" not in err
    statuses = [status for *_, status, _ in sweep_rows(db, _sweep_id(db))]
    assert "interrupted" in statuses and "pending" not in statuses
    assert set(statuses) <= {"completed", "interrupted"}
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT status FROM sweeps").fetchone() == ("interrupted",)
        runs = connection.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    assert runs == [("completed", statuses.count("completed"))]


def _completed(db) -> bool:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT count(*) FROM sweep_runs WHERE status = 'completed'").fetchone()[0] > 0
    except sqlite3.Error:  # not made yet
        return False


def _sweep_id(db) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT id FROM sweeps").fetchone()[0]


def test_an_interrupted_sweep_marks_its_unfinished_runs(tmp_path):
    config = load_config(write_config(tmp_path))
    request = SweepRequest({"fast": "2,3,4", "slow": "9"}, workers=1)
    plan = plan_sweep(config, request)

    def interrupt(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, request, sqlite_url(tmp_path / "runs.db"), on_result=interrupt)

    rows = sweep_rows(tmp_path / "runs.db", plan.sweep_id)
    assert [status for *_, status, _ in rows] == ["completed", "interrupted", "interrupted"]
    assert rows[1][4] == "interrupted (Ctrl-C)"
    with sqlite3.connect(tmp_path / "runs.db") as connection:
        assert connection.execute("SELECT status FROM sweeps").fetchone() == ("interrupted",)
        assert connection.execute("SELECT id, status FROM runs").fetchall() == [(rows[0][1], "completed")]
