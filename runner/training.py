"""Training the example model of `ml_model`: next-bar direction from the six features.

`train` builds the features of each symbol with `runner.features` (the code the strategy runs
live), labels each bar 1 when the next close is above its close and 0 otherwise, holds out the
last `holdout` share of each symbol's rows, fits a `StandardScaler` and a `LogisticRegression`
on the rest, and writes `model.skops`, `scaler.skops` and `manifest.json` (each file with its
sha256, the feature names, the row counts, the holdout accuracy, the versions and the time).

scikit-learn and skops (the `ml` extra) are imported only when training.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from runner.artifacts import ML_EXTRA_MESSAGE, sha256_of
from runner.domain import MarketData
from runner.errors import ConfigError, DataError
from runner.features import FEATURE_NAMES, build_features

MODEL_FILE, SCALER_FILE, MANIFEST_FILE = "model.skops", "scaler.skops", "manifest.json"
MIN_ROWS = 100


@dataclass
class PriceSeries:
    """The bars of one symbol as float lists, oldest first."""

    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.close)


def series_from_steps(steps: Iterable[MarketData], count: int | None = None) -> dict[str, PriceSeries]:
    """Collect the fresh bars of the first `count` steps (all when None) by symbol."""
    series: dict[str, PriceSeries] = {}
    for index, market in enumerate(steps):
        if count is not None and index >= count:
            break
        for symbol in market.fresh:
            bar = market[symbol]
            rows = series.setdefault(symbol, PriceSeries())
            rows.high.append(float(bar.high))
            rows.low.append(float(bar.low))
            rows.close.append(float(bar.close))
            rows.volume.append(float(bar.volume))
    return series


def series_from_file(path: Path, timezone: str = "UTC") -> dict[str, PriceSeries]:
    """Read a CSV or Parquet OHLCV file (one symbol, or several with a symbol column), with the
    same checks as a replay.

    Raises:
        DataError: the file is missing, unreadable, of another kind, or has bad rows.
    """
    from runner.feeds.replay import load_replay

    path = Path(path)
    kinds = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
    file_format = kinds.get(path.suffix.lower())
    if file_format is None:
        raise DataError(f"{path}: expected a .csv or .parquet file")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    feed = load_replay(file_format, path.parent, path=path.name, timezone=timezone)
    return series_from_steps(feed)


def train(
    series: Mapping[str, PriceSeries], out_dir: Path, seed: int = 0, holdout: float = 0.2,
) -> dict:
    """Fit the scaler and the model on `series`, write them to `out_dir`, return the manifest.

    Raises:
        ConfigError: `holdout` is not in (0, 1).
        DataError: too few rows to train on, or only one direction in the labels.
        StrategyLoadError: the ml extra is not installed.
    """
    if not 0 < holdout < 1:
        raise ConfigError(f"holdout must be between 0 and 1, got {holdout}")
    try:
        import sklearn
        import skops
        import skops.io as sio
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        from runner.errors import StrategyLoadError

        raise StrategyLoadError(ML_EXTRA_MESSAGE) from None

    fit_parts, test_parts = [], []
    for rows in series.values():
        features, labels = _labelled(rows)
        cut = int(round(len(labels) * (1 - holdout)))
        fit_parts.append((features[:cut], labels[:cut]))
        test_parts.append((features[cut:], labels[cut:]))
    x_fit, y_fit = _stack(fit_parts)
    x_test, y_test = _stack(test_parts)
    if len(y_fit) < MIN_ROWS or len(y_test) == 0:
        raise DataError(
            f"too few bars to train on: {len(y_fit) + len(y_test)} labelled rows after the "
            f"{len(FEATURE_NAMES)}-feature warm-up; need at least {MIN_ROWS} for fitting plus a holdout"
        )
    if len(np.unique(y_fit)) < 2:
        raise DataError("the training bars only ever go one way; the model needs both up and down moves")

    scaler = StandardScaler().fit(x_fit)
    # Balanced class weights: unchanged closes count as down, so without them p_up would lean
    # below 0.5 whenever prices often repeat, and 0.5 would no longer mean "no view".
    model = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)
    model.fit(scaler.transform(x_fit), y_fit)
    accuracy = float(model.score(scaler.transform(x_test), y_test))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sio.dump(model, out_dir / MODEL_FILE)
    sio.dump(scaler, out_dir / SCALER_FILE)
    manifest = {
        "files": {name: {"sha256": sha256_of(out_dir / name)} for name in (MODEL_FILE, SCALER_FILE)},
        "features": list(FEATURE_NAMES),
        "label": "1 when the next bar's close is above this bar's close, else 0 (an unchanged close is 0)",
        "model": "StandardScaler + LogisticRegression(class_weight=balanced)",
        "symbols": list(series),
        "trained_rows": int(len(y_fit)),
        "holdout_rows": int(len(y_test)),
        "holdout_accuracy": round(accuracy, 4),
        "holdout_up_share": round(float(np.mean(y_test)), 4),
        "seed": seed,
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _labelled(rows: PriceSeries) -> tuple[np.ndarray, np.ndarray]:
    """The feature rows that are warm and have a next bar, and their labels."""
    features = build_features(rows.high, rows.low, rows.close, rows.volume)
    close = np.asarray(rows.close, dtype=float)
    labels = (close[1:] > close[:-1]).astype(np.int64)
    features = features[:-1]
    ready = ~np.isnan(features).any(axis=1)
    return features[ready], labels[ready]


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.empty((0, len(FEATURE_NAMES))), np.empty(0, dtype=np.int64)
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
