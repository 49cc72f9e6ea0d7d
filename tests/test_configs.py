"""Every ready-to-run config in configs/ validates and runs (briefly) to completion."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS, "configs/ holds no *.yaml"
    assert "default.yaml" in {path.name for path in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_config_validates(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "OK"


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_config_runs_briefly(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything relative lands in tmp, never in the repository
    db = tmp_path / "run.db"
    result = CliRunner().invoke(
        app, ["start", str(config), "--max-ticks", "30", "--speed", "0", "--db", str(db), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed", summary
    assert 0 < summary["ticks"] <= 30
    assert summary["error"] == ""
    assert all(count == 0 for count in summary["errors"].values()), summary["errors"]
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT id, status FROM runs").fetchall()
    assert rows == [(summary["run_id"], "completed")]
