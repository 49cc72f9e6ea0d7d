"""ml_model and hybrid end to end, with a model trained in the test on synthetic bars."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

import skops.io as skops_io

from pydantic import ValidationError

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import SyntheticSymbol
from runner.errors import StrategyLoadError
from runner.features import FEATURE_NAMES, WARMUP_BARS, FeatureBuilder, build_features
from runner.feeds.synthetic import SyntheticFeed
from runner.host import HostState
from runner.indicators import RSI
from runner.portfolio import Portfolio
from runner.storage import queries
from runner.training import series_from_steps, train
from strategies.base import StrategyContext
from strategies.hybrid import Hybrid, HybridParams
from strategies.ma_crossover import MACrossover
from strategies.ml_model import MLModel, MLModelParams

START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
SYMBOLS = {"SYN": SyntheticSymbol(), "VOLATILE": SyntheticSymbol(start_price=50, volatility=0.6)}
THRESHOLD = 0.51  # a random walk gives the model little to be sure of; see README


def synthetic(seed: int) -> SyntheticFeed:
    return SyntheticFeed(SYMBOLS, "1m", START, seed)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    manifest = train(series_from_steps(synthetic(7), 1500), folder, seed=7)
    assert manifest["features"] == list(FEATURE_NAMES)
    return folder


def run(tmp_path, *setups: StrategySetup, ticks: int = 300, seed: int = 42):
    feed = synthetic(seed)
    broker = PaperBroker(Portfolio(Decimal(100_000)), BarFillModel(), FeeSchedule(CommissionModel()), feed.symbols)
    runner = assemble(feed=feed, broker=broker, strategies=list(setups), database=f"sqlite:///{tmp_path / 'r.db'}", max_ticks=ticks)
    return runner, runner.run()


def params(artifacts, **extra) -> dict:
    return {"artifacts": str(artifacts), "threshold": THRESHOLD, "quantity": 10, **extra}


def test_ml_model_trades_brackets_with_its_confidence(tmp_path, artifacts):
    runner, summary = run(tmp_path, StrategySetup("ml", MLModel, params(artifacts)))
    assert summary.status == "completed" and summary.errors == 0
    signals = queries.signals(runner.recorder.engine, runner.run_id)
    buys = [s for s in signals if s.action == "BUY"]
    assert len(buys) >= 3 and all(s.accepted for s in signals)
    assert all(s.confidence >= THRESHOLD for s in signals)
    assert all(s.reason.startswith(("model p_up", "model p_down")) for s in signals)
    orders = queries.orders(runner.recorder.engine, runner.run_id)
    entries = [o for o in orders if o.parent_id is None and o.side == "BUY"]
    assert entries and all(o.stop_loss is not None and o.take_profit is not None for o in entries)
    legs = [o for o in orders if o.parent_id is not None]
    assert {o.order_type for o in legs} == {"STOP", "LIMIT"}
    assert all(o.stop_loss < o.take_profit for o in entries)
    assert any(o.reason == "cancelled by the strategy" for o in legs)  # a model sell drops the legs


def test_entries_share_one_load_of_the_same_files(tmp_path, artifacts):
    runner, summary = run(
        tmp_path, StrategySetup("a", MLModel, params(artifacts)), StrategySetup("b", Hybrid, params(artifacts)), ticks=40,
    )
    first, second = (host.strategy for host in runner.loop.hosts)
    assert first._model is second._model and first._scaler is second._scaler


def test_features_are_the_same_in_training_and_live():
    steps = list(zip(range(200), synthetic(3)))
    builder = FeatureBuilder()
    live = [builder.update(market["SYN"]) for _, market in steps]
    trained = build_features(**vars(series_from_steps((m for _, m in steps))["SYN"]))
    assert [row is None for row in live] == [True] * (WARMUP_BARS - 1) + [False] * (200 - WARMUP_BARS + 1)
    assert np.isnan(trained[: WARMUP_BARS - 1]).all()
    assert np.array_equal(np.array(live[WARMUP_BARS - 1:]), trained[WARMUP_BARS - 1:])
    bar, previous = steps[-1][1]["SYN"], steps[-2][1]["SYN"]
    return_1, rsi, _, position, _, spread = live[-1]
    assert return_1 == pytest.approx(float(bar.close / previous.close) - 1)
    assert spread == pytest.approx(float((bar.high - bar.low) / bar.close))
    assert 0 <= rsi <= 100 and -1 < position < 2


def five_feature_model(folder, artifacts):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5))
    skops_io.dump(LogisticRegression().fit(x, x[:, 0] > 0), folder / "model.skops")
    (folder / "scaler.skops").write_bytes((artifacts / "scaler.skops").read_bytes())
    return folder


def test_load_model_refuses_a_model_expecting_five_features(tmp_path, artifacts):
    folder = five_feature_model(tmp_path, artifacts)
    strategy = MLModel(StrategyContext("ml", MLModelParams(artifacts=str(folder)), ("SYN",), None, None))
    with pytest.raises(StrategyLoadError, match=r"model.skops: the model \(LogisticRegression\) expects 5 features, but ml_model gives it 6"):
        strategy.load_model()


def test_a_bad_model_disables_only_its_strategy(tmp_path, artifacts):
    folder = five_feature_model(tmp_path, artifacts)
    runner, summary = run(
        tmp_path, StrategySetup("ml", MLModel, params(folder)), StrategySetup("ma", MACrossover, {"fast": 5, "slow": 20}), ticks=60,
    )
    ml, ma = runner.loop.hosts
    assert summary.status == "completed"
    assert ml.state is HostState.DISABLED and "expects 5 features" in ml.disabled_reason
    assert ma.state is HostState.STOPPED


def test_missing_artifacts_name_the_folder_and_the_train_command(tmp_path):
    strategy = MLModel(StrategyContext("ml", MLModelParams(artifacts=str(tmp_path / "nowhere")), ("SYN",), None, None))
    with pytest.raises(StrategyLoadError, match=r"model file not found: .*nowhere/model.skops .*runner model train --synthetic"):
        strategy.load_model()


def test_hybrid_takes_fewer_signals_and_none_inside_the_neutral_band(tmp_path, artifacts):
    runner, summary = run(
        tmp_path, StrategySetup("ml", MLModel, params(artifacts)),
        StrategySetup("hybrid", Hybrid, params(artifacts, neutral_low=40, neutral_high=60)),
    )
    assert summary.errors == 0
    signals = queries.signals(runner.recorder.engine, runner.run_id)
    counts = Counter(s.strategy for s in signals)
    assert 0 < counts["hybrid"] < counts["ml"]
    rsi = {symbol: RSI(14) for symbol in SYMBOLS}
    rsi_at = {}
    for _, market in zip(range(300), synthetic(42)):
        for symbol in SYMBOLS:
            rsi_at[market.timestamp.replace(tzinfo=None), symbol] = rsi[symbol].update(float(market[symbol].close))
    for s in (s for s in signals if s.strategy == "hybrid"):
        value = rsi_at[s.timestamp.replace(tzinfo=None), s.symbol]
        assert value is not None and not 40 <= value <= 60, (s, value)
        assert f"RSI {value:.1f} outside the neutral band 40-60" in s.reason


def test_params_are_checked():
    with pytest.raises(ValidationError, match="pin its sha256 for model.joblib, scaler.joblib"):
        MLModelParams(format="pickle", model_file="model.joblib", scaler_file="scaler.joblib")
    with pytest.raises(ValidationError, match="not a 64-character hex sha256: model.skops"):
        MLModelParams(sha256={"model.skops": "abc"})
    with pytest.raises(ValidationError, match="threshold"):
        MLModelParams(threshold=0.5)
    with pytest.raises(ValidationError, match=r"neutral_low \(60\) must be smaller than neutral_high \(40\)"):
        HybridParams(neutral_low=60, neutral_high=40)


def test_pinned_pickles_load_and_a_tampered_one_is_refused(tmp_path, artifacts):
    import joblib

    from runner.artifacts import sha256_of

    for name in ("model", "scaler"):
        joblib.dump(skops_io.load(artifacts / f"{name}.skops"), tmp_path / f"{name}.joblib")
    pins = {f"{name}.joblib": sha256_of(tmp_path / f"{name}.joblib") for name in ("model", "scaler")}
    settings = MLModelParams(
        artifacts=str(tmp_path), format="pickle", model_file="model.joblib", scaler_file="scaler.joblib", sha256=pins,
    )
    strategy = MLModel(StrategyContext("ml", settings, ("SYN",), None, None))
    strategy.load_model()
    assert strategy._model.n_features_in_ == 6
    with open(tmp_path / "model.joblib", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(StrategyLoadError, match=rf"model.joblib: sha256 mismatch, refusing to load: expected {pins['model.joblib']}, actual [0-9a-f]{{64}}"):
        MLModel(StrategyContext("ml", settings, ("SYN",), None, None)).load_model()
