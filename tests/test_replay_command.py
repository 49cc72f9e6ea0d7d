"""`runner replay RUN_ID`: a recorded run re-executed from its manifest gives the same orders
and fills, and is refused, with the reason, when it cannot be."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.reproduce import compare_runs
from runner.storage.db import open_database, sqlite_url
from tests.test_manifest import copy_project, sha256, start


def replay(db: Path, run_id: str, *extra: str):
    return CliRunner().invoke(app, ["replay", run_id, "--db", str(db), *extra])


def recorded(tmp_path: Path, config: str, run_id: str = "original") -> tuple[Path, Path]:
    """A copy of the project, and a database holding a 200-step run of one of its configs."""
    project = copy_project(tmp_path)
    db = tmp_path / "r.db"
    start(project / "configs" / config, db, run_id)
    return project, db


@pytest.mark.parametrize("config", ["default.yaml", "replay_csv.yaml", "file_strategy.yaml"])
def test_a_replay_of_a_data_driven_run_is_identical(tmp_path, config):
    project, db = recorded(tmp_path, config)

    result = replay(db, "original", "--json")

    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["run_id"] == "original" and outcome["replay_run_id"] != "original"
    assert outcome["identical"] is True and outcome["differences"] == []
    assert outcome["orders"]["original"] == outcome["orders"]["replay"] > 0
    assert outcome["fills"]["original"] == outcome["fills"]["replay"] > 0
    with sqlite3.connect(db) as connection:
        rows = dict(connection.execute("SELECT id, replay_of FROM runs").fetchall())
        ticks = dict(connection.execute("SELECT id, ticks FROM runs").fetchall())
    assert rows == {"original": "", outcome["replay_run_id"]: "original"}
    assert ticks["original"] == ticks[outcome["replay_run_id"]] == 200


def test_the_plain_output_says_identical(tmp_path):
    project, db = recorded(tmp_path, "replay_csv.yaml")
    result = replay(db, "original")
    assert result.exit_code == 0, result.output
    assert "replay of original: run " in result.stdout
    assert "identical: yes" in result.stdout


def test_a_run_stopped_early_replays_the_same_steps(tmp_path):
    project = copy_project(tmp_path)
    db = tmp_path / "r.db"
    result = CliRunner().invoke(app, [
        "start", str(project / "configs" / "replay_csv.yaml"), "--db", str(db), "--run-id", "short",
        "--max-ticks", "37", "--json", "-q",
    ])
    assert result.exit_code == 0, result.output
    outcome = json.loads(replay(db, "short", "--json").stdout)
    with sqlite3.connect(db) as connection:
        (ticks,) = connection.execute("SELECT ticks FROM runs WHERE id = ?", (outcome["replay_run_id"],)).fetchone()
    assert ticks == 37 and outcome["identical"] is True


def test_a_changed_data_file_refuses_naming_the_file_and_both_hashes(tmp_path):
    project, db = recorded(tmp_path, "replay_csv.yaml")
    data_file = project / "data" / "sample" / "AAPL.csv"
    before = sha256(data_file)
    lines = data_file.read_text().splitlines(keepends=True)
    data_file.write_text("".join(lines[:-1]))  # the last row dropped
    after = sha256(data_file)

    result = replay(db, "original")

    assert result.exit_code == 2
    assert "cannot replay run original:" in result.stderr
    assert f"data file {data_file.resolve()} changed: sha256 {before} -> {after}" in result.stderr
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (1,)  # nothing was run


def test_a_data_file_that_no_longer_loads_is_reported_as_changed(tmp_path):
    project, db = recorded(tmp_path, "replay_csv.yaml")
    data_file = project / "data" / "sample" / "MSFT.csv"
    before = sha256(data_file)
    data_file.write_text("not,a,price,file\n")
    result = replay(db, "original")
    assert result.exit_code == 2
    assert f"data file {data_file.resolve()} changed: sha256 {before} -> {sha256(data_file)}" in result.stderr


def test_a_missing_data_file_refuses(tmp_path):
    project, db = recorded(tmp_path, "replay_csv.yaml")
    (project / "data" / "sample" / "MSFT.csv").unlink()
    result = replay(db, "original", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert f"data file {(project / 'data' / 'sample' / 'MSFT.csv').resolve()} is missing" in error


def test_a_changed_strategy_file_refuses_naming_the_file_and_both_hashes(tmp_path):
    project, db = recorded(tmp_path, "file_strategy.yaml")
    strategy_file = project / "strategies" / "examples" / "momentum.py"
    before = sha256(strategy_file)
    strategy_file.write_text(strategy_file.read_text() + "\n# changed\n")
    after = sha256(strategy_file)

    result = replay(db, "original")

    assert result.exit_code == 2
    assert (
        f"strategy momentum source {strategy_file.resolve()} changed: sha256 {before} -> {after}"
        in result.stderr
    )


def test_a_clock_mode_run_is_refused(tmp_path):
    config = tmp_path / "clock.yaml"
    config.write_text(
        "run: {mode: clock, tick_interval: 0.01}\n"
        "strategies:\n  - type: buy_and_hold\n    params: {quantity: 1}\n"
    )
    db = tmp_path / "r.db"
    result = CliRunner().invoke(app, [
        "start", str(config), "--db", str(db), "--run-id", "clocked", "--max-ticks", "3", "--json", "-q",
    ])
    assert result.exit_code == 0, result.output
    result = replay(db, "clocked")
    assert result.exit_code == 2
    assert "cannot replay run clocked:" in result.stderr
    assert "it ran in clock mode" in result.stderr


def test_an_unknown_run_id_is_refused(tmp_path):
    project, db = recorded(tmp_path, "default.yaml")
    result = replay(db, "nope")
    assert result.exit_code == 2
    assert f"no run 'nope' in {db}; latest runs: original" in result.stderr


def test_a_missing_database_is_refused(tmp_path):
    result = replay(tmp_path / "none.db", "x")
    assert result.exit_code == 2
    assert f"no database at {tmp_path / 'none.db'}" in result.stderr


def test_a_run_without_a_manifest_is_refused(tmp_path):
    project, db = recorded(tmp_path, "default.yaml")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE runs SET manifest = ''")
    result = replay(db, "original")
    assert result.exit_code == 2
    assert "it has no manifest" in result.stderr


def test_compare_runs_lists_the_first_differences(tmp_path):
    project, db = recorded(tmp_path, "replay_csv.yaml", "a")
    outcome = json.loads(replay(db, "a", "--json").stdout)
    other = outcome["replay_run_id"]
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE fills SET price = '1.23' WHERE run_id = ? AND fill_id = 2", (other,))
        connection.execute("DELETE FROM orders WHERE run_id = ? AND order_id = 3", (other,))
    engine = open_database(sqlite_url(db))
    try:
        result = compare_runs(engine, "a", other)
    finally:
        engine.dispose()
    assert result.identical is False
    assert result.orders == (outcome["orders"]["original"], outcome["orders"]["original"] - 1)
    assert result.differences[0] == "order 3: only in the original run"
    assert any(d.startswith("fill 2: price ") and d.endswith(" vs 1.23 (replay)") for d in result.differences)
