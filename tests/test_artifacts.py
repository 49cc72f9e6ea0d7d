"""Safe loading of model files, and `runner model train`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import joblib
import skops.io as skops_io

import typer
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from typer.testing import CliRunner

from cli.model import model_app
from runner.artifacts import load_artifact, require_ml, sha256_of
from runner.errors import StrategyLoadError

X = np.arange(24, dtype=float).reshape(4, 6)


def scaler() -> StandardScaler:
    return StandardScaler().fit(X)


def test_a_skops_file_loads_back(tmp_path):
    skops_io.dump(scaler(), tmp_path / "scaler.skops")
    loaded = load_artifact(tmp_path / "scaler.skops")
    assert np.array_equal(loaded.transform(X), scaler().transform(X))


def test_a_skops_file_with_a_type_outside_sklearn_and_numpy_is_refused(tmp_path):
    skops_io.dump(FunctionTransformer(func=os.system), tmp_path / "evil.skops")
    with pytest.raises(StrategyLoadError, match=r"evil.skops: refusing to load what is not a scikit-learn or NumPy class: (posix|nt)\.system"):
        load_artifact(tmp_path / "evil.skops")


def test_a_pickle_without_a_pin_is_refused(tmp_path):
    joblib.dump(scaler(), tmp_path / "scaler.joblib")
    digest = sha256_of(tmp_path / "scaler.joblib")
    with pytest.raises(StrategyLoadError, match=rf"without a pinned hash.*pin its sha256 .*scaler.joblib: {digest}"):
        load_artifact(tmp_path / "scaler.joblib", "pickle")


def test_a_pinned_pickle_loads(tmp_path):
    joblib.dump(scaler(), tmp_path / "scaler.joblib")
    loaded = load_artifact(tmp_path / "scaler.joblib", "pickle", sha256_of(tmp_path / "scaler.joblib").upper())
    assert np.array_equal(loaded.mean_, scaler().mean_)


def test_a_tampered_pickle_is_refused_naming_both_hashes(tmp_path):
    path = tmp_path / "scaler.joblib"
    joblib.dump(scaler(), path)
    pinned = sha256_of(path)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(StrategyLoadError, match=rf"sha256 mismatch, refusing to load: expected {pinned}, actual {sha256_of(path)}"):
        load_artifact(path, "pickle", pinned)


def test_missing_and_damaged_files_are_named(tmp_path):
    with pytest.raises(StrategyLoadError, match=r"model file not found: .*absent.skops"):
        load_artifact(tmp_path / "absent.skops")
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(StrategyLoadError, match=r"junk.skops: not a readable skops file"):
        load_artifact(tmp_path / "junk.skops")


def test_without_the_ml_extra_the_message_names_it(tmp_path, monkeypatch):
    skops_io.dump(scaler(), tmp_path / "scaler.skops")
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(StrategyLoadError, match=r"the model strategies \(ml_model, hybrid\) need the ml extra: pip install -e '\.\[ml\]'"):
        load_artifact(tmp_path / "scaler.skops")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ImportError, match="No module named 'sklearn'"):
        require_ml()


# -- runner model train ---------------------------------------------------------------------------

def invoke(*args: str):
    app = typer.Typer()
    app.add_typer(model_app, name="model")
    return CliRunner().invoke(app, ["model", "train", *args])


def test_train_synthetic_writes_the_files_and_their_hashes(tmp_path):
    result = invoke("--synthetic", "--bars", "400", "--seed", "3", "--out", str(tmp_path / "m"), "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "model.skops", "scaler.skops"]
    assert manifest == json.loads((tmp_path / "m" / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_of(tmp_path / "m" / name)
    assert manifest["symbols"] == ["SYN", "VOLATILE"] and manifest["trained_rows"] > 400
    assert 0 <= manifest["holdout_accuracy"] <= 1
    assert load_artifact(tmp_path / "m" / "model.skops").n_features_in_ == 6


def test_train_on_a_csv_file(tmp_path):
    from datetime import UTC, datetime

    from runner.config import SyntheticSymbol
    from runner.feeds.synthetic import SyntheticFeed

    feed = SyntheticFeed({"AAA": SyntheticSymbol()}, "1h", datetime(2024, 1, 1, tzinfo=UTC), seed=5)
    rows = ["timestamp,open,high,low,close,volume"]
    for _, market in zip(range(300), feed):
        b = market["AAA"]
        rows.append(f"{b.timestamp.isoformat()},{b.open},{b.high},{b.low},{b.close},{b.volume}")
    (tmp_path / "aaa.csv").write_text("\n".join(rows) + "\n")
    result = invoke("--data", str(tmp_path / "aaa.csv"), "--out", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert "holdout accuracy" in result.stdout and "sha256" in result.stdout
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["symbols"] == ["aaa"]
    assert manifest["trained_rows"] + manifest["holdout_rows"] == 300 - 34  # warm-up and last bar


@pytest.mark.parametrize("args", [[], ["--synthetic", "--data", "x.csv"]], ids=["neither", "both"])
def test_train_needs_exactly_one_source(tmp_path, args):
    result = invoke(*args, "--out", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert "give exactly one of --data FILE or --synthetic" in result.output
    assert not (tmp_path / "m").exists()


def test_train_on_a_missing_file_exits_2(tmp_path):
    result = invoke("--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert "data file not found" in result.output


def test_the_example_model_matches_its_manifest():
    folder = Path(__file__).resolve().parents[1] / "models" / "example"
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_of(folder / name), f"{name} changed; retrain (see models/example/README.md)"
        assert load_artifact(folder / name, "skops", entry["sha256"]).n_features_in_ == 6


def test_a_numpy_function_inside_a_skops_file_is_refused(tmp_path):
    import numpy
    from sklearn.preprocessing import FunctionTransformer

    skops_io.dump(FunctionTransformer(func=numpy.save), tmp_path / "sneaky.skops")
    with pytest.raises(StrategyLoadError, match=r"not a scikit-learn or NumPy class: numpy.*save"):
        load_artifact(tmp_path / "sneaky.skops")


def test_a_folder_where_a_model_file_should_be_is_named(tmp_path):
    (tmp_path / "model.skops").mkdir()
    with pytest.raises(StrategyLoadError, match=r"model.skops is a folder; expected a model file"):
        load_artifact(tmp_path / "model.skops")


def test_choosing_ml_model_without_the_extra_names_it(monkeypatch):
    from runner.registry import strategy_class

    for module in ("strategies.ml_model", "strategies.hybrid", "sklearn"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(StrategyLoadError, match=r"strategy 'ml_model' needs the ml extra: pip install -e '\.\[ml\]'"):
        strategy_class("ml_model")
