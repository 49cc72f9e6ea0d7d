"""The run manifest: what a run records about its inputs (runs.manifest), and how two
manifests are compared."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import runner
from cli.app import app
from runner.config import load_config
from runner.manifest import FileDigest, RunManifest, build_manifest, changed_files, manifest_problems, manifest_warnings
from runner.storage import queries
from runner.storage.db import open_database, sqlite_url
from strategies.base import NoParams, StrategyInterface, StrategyParams

ROOT = Path(__file__).resolve().parent.parent


def copy_project(tmp_path: Path) -> Path:
    """The example configs, sample data and example strategy, in a folder of their own."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    shutil.copytree(ROOT / "strategies" / "examples", tmp_path / "strategies" / "examples")
    return tmp_path


def start(config: Path, db: Path, run_id: str, *extra: str) -> None:
    result = CliRunner().invoke(app, [
        "start", str(config), "--db", str(db), "--run-id", run_id, "--speed", "0", "--max-ticks", "200",
        "--json", "-q", *extra,
    ])
    assert result.exit_code == 0, result.output


def recorded_manifest(db: Path, run_id: str) -> RunManifest:
    engine = open_database(sqlite_url(db))
    try:
        return RunManifest.from_json(queries.run(engine, run_id).manifest)
    finally:
        engine.dispose()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_csv_replay_run_records_its_data_files_time_range_seed_and_version(tmp_path):
    project = copy_project(tmp_path)
    start(project / "configs" / "replay_csv.yaml", tmp_path / "r.db", "csv", "--seed", "5")
    manifest = recorded_manifest(tmp_path / "r.db", "csv")

    files = {Path(f.path).name: f for f in manifest.data.files}
    assert set(files) == {"AAPL.csv", "MSFT.csv"}
    for name, digest in files.items():
        on_disk = project / "data" / "sample" / name
        assert digest.path == str(on_disk.resolve())
        assert digest.sha256 == sha256(on_disk)
        assert digest.size == on_disk.stat().st_size
    times = pd.concat([pd.read_csv(project / "data" / "sample" / n)["timestamp"] for n in files])
    stamps = pd.to_datetime(times, utc=True)
    assert manifest.data.first_time == stamps.min().isoformat()
    assert manifest.data.last_time == stamps.max().isoformat()
    assert manifest.data.rows == len(times)
    assert manifest.data.source == "csv"
    assert manifest.seed == 5 and manifest.run["seed"] == 5  # the --seed given, not the config's
    assert manifest.mode == "data"
    assert manifest.package_version == runner.__version__
    assert manifest.python_version == platform.python_version()
    config_text = (project / "configs" / "replay_csv.yaml").read_text()
    assert manifest.config_text == config_text
    assert manifest.config_sha256 == hashlib.sha256(config_text.encode()).hexdigest()
    assert manifest.config_path == str((project / "configs" / "replay_csv.yaml").resolve())
    assert manifest.broker["slippage_bps"] == "1" and manifest.broker["limit_fill"] == "touch"
    assert manifest.broker["commission"]["per_share"] == "0.005"
    assert manifest.market_data["path"] == "../data/sample/{symbol}.csv"
    built_in = manifest.strategies["ma_1m"]
    assert (built_in.loaded_by, built_in.spec) == ("type", "ma_crossover")
    assert built_in.source.sha256 == sha256(ROOT / "strategies" / "ma_crossover.py")


def test_a_file_strategy_run_records_the_sha256_of_the_strategy_file(tmp_path):
    project = copy_project(tmp_path)
    start(project / "configs" / "file_strategy.yaml", tmp_path / "r.db", "file")
    manifest = recorded_manifest(tmp_path / "r.db", "file")

    strategy_file = project / "strategies" / "examples" / "momentum.py"
    momentum = manifest.strategies["momentum"]  # named for the file
    assert (momentum.loaded_by, momentum.spec) == ("file", "../strategies/examples/momentum.py")
    assert momentum.class_name.endswith(":Momentum")
    assert momentum.source == FileDigest(str(strategy_file.resolve()), sha256(strategy_file), strategy_file.stat().st_size)
    assert manifest.seed == 11
    assert manifest.data.source == "synthetic" and manifest.data.files == ()


def test_the_manifest_is_stored_as_json_and_reads_back_equal(tmp_path):
    project = copy_project(tmp_path)
    start(project / "configs" / "replay_csv.yaml", tmp_path / "r.db", "csv")
    engine = open_database(sqlite_url(tmp_path / "r.db"))
    text = queries.run(engine, "csv").manifest
    engine.dispose()
    assert RunManifest.from_json(text).to_json() == json.dumps(json.loads(text), sort_keys=True)


class _Pinned(StrategyParams):
    folder: str = "models"

    def artifact_paths(self, base_dir: Path) -> list[Path]:
        return [base_dir / self.folder / "model.bin"]


class _WithModel(StrategyInterface):
    Params = _Pinned

    def on_tick(self, market_data):
        return []


def test_model_files_named_by_params_are_hashed(tmp_path):
    """Params with `artifact_paths` (as MLModelParams has) name model files; their sha256 goes in."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.bin").write_bytes(b"weights")
    config_file = tmp_path / "c.yaml"
    config_file.write_text("strategies:\n  - module: tests.test_manifest\n    class: _WithModel\n")
    config = load_config(config_file)
    manifest = build_manifest(config, object(), [(config.strategies[0], _WithModel)])
    (artifact,) = manifest.strategies["_WithModel"].artifacts
    assert artifact.path == str((tmp_path / "models" / "model.bin").resolve())
    assert artifact.sha256 == hashlib.sha256(b"weights").hexdigest()


def test_ml_model_params_name_the_files_load_model_reads(tmp_path):
    from strategies.ml_model import MLModelParams  # needs the ml extra

    params = MLModelParams(artifacts="m", model_file="a.skops", scaler_file="b.skops")
    assert params.artifact_paths(tmp_path) == [tmp_path / "m" / "a.skops", tmp_path / "m" / "b.skops"]


def _manifest(tmp_path: Path, **changes) -> RunManifest:
    data_file = tmp_path / "AAA.csv"
    if not data_file.exists():
        data_file.write_text("timestamp,close\n2024-01-02T14:30:00Z,1\n")
    config_file = tmp_path / "c.yaml"
    config_file.write_text("strategies:\n  - type: buy_and_hold\n")
    config = load_config(config_file)
    from strategies.buy_and_hold import BuyAndHold

    class Feed:
        files = (str(data_file),)
        first_time = last_time = None
        rows = 1

    return replace(build_manifest(config, Feed(), [(config.strategies[0], BuyAndHold)]), **changes)


def test_a_changed_data_file_is_named_with_both_hashes(tmp_path):
    before = _manifest(tmp_path)
    (tmp_path / "AAA.csv").write_text("timestamp,close\n2024-01-02T14:30:00Z,2\n")
    after = _manifest(tmp_path)
    old, new = before.data.files[0].sha256, after.data.files[0].sha256
    assert manifest_problems(before, after) == [
        f"data file {(tmp_path / 'AAA.csv').resolve()} changed: sha256 {old} -> {new}"
    ]
    assert manifest_problems(before, before) == []
    assert changed_files(before) == [f"data file {(tmp_path / 'AAA.csv').resolve()} changed: sha256 {old} -> {new}"]
    assert changed_files(after) == []


def test_a_missing_file_is_named(tmp_path):
    before = _manifest(tmp_path)
    (tmp_path / "AAA.csv").unlink()
    assert changed_files(before) == [f"data file {(tmp_path / 'AAA.csv').resolve()} is missing"]


def test_a_different_version_warns_but_does_not_refuse(tmp_path):
    before = _manifest(tmp_path, package_version="0.0.1", python_version="3.0.0")
    now = _manifest(tmp_path)
    assert manifest_problems(before, now) == []
    assert manifest_warnings(before, now) == [
        f"runner version differs: 0.0.1 -> {runner.__version__}",
        f"Python version differs: 3.0.0 -> {platform.python_version()}",
    ]


def test_other_differences_are_problems(tmp_path):
    before = _manifest(tmp_path)
    now = _manifest(tmp_path, seed=7, policy_overrides={"risk_mode": "defensive"}, broker={})
    assert manifest_problems(before, now) == [
        "seed differs: 42 -> 7", "broker settings differ",
        "the database's policy overrides differ: none -> risk_mode=defensive (see `runner policy show`)",
    ]


def test_an_older_database_gains_the_manifest_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE runs (id VARCHAR PRIMARY KEY, started_at DATETIME NOT NULL, ended_at DATETIME, "
            "status VARCHAR NOT NULL, config_path VARCHAR NOT NULL, config_text VARCHAR NOT NULL, "
            "config_sha256 VARCHAR NOT NULL, seed INTEGER NOT NULL, ticks INTEGER NOT NULL, "
            "summary VARCHAR NOT NULL, error VARCHAR NOT NULL)"
        )
        connection.execute("INSERT INTO runs VALUES ('old', '2024-01-02 00:00:00', NULL, 'completed', 'c', '', '', 1, 3, '', '')")
    engine = open_database(sqlite_url(path))
    record = queries.run(engine, "old")
    engine.dispose()
    assert (record.manifest, record.replay_of) == ("", "")


def test_a_strategy_records_the_sources_of_the_strategies_it_inherits_from(tmp_path):
    from strategies.hybrid import Hybrid  # needs the ml extra

    config_file = tmp_path / "c.yaml"
    config_file.write_text("strategies:\n  - type: hybrid\n")
    config = load_config(config_file)
    inputs = build_manifest(config, object(), [(config.strategies[0], Hybrid)]).strategies["hybrid"]
    assert inputs.source.path == str(ROOT / "strategies" / "hybrid.py")
    assert [digest.path for digest in inputs.inherited] == [str(ROOT / "strategies" / "ml_model.py")]
    assert inputs.inherited[0].sha256 == sha256(ROOT / "strategies" / "ml_model.py")
