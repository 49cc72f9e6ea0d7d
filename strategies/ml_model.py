"""A scikit-learn model's next-bar direction, traded long only with ATR brackets."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from runner.artifacts import load_artifact, require_ml, sha256_of
from runner.errors import StrategyLoadError
from runner.features import FEATURE_NAMES, FeatureBuilder
from runner.indicators import ATR
from strategies.base import Action, Bar, MarketData, Signal, StrategyInterface, StrategyParams

require_ml()  # without the ml extra, stop here: the registry then names the extra to install

_SHA256 = re.compile(r"[0-9a-f]{64}")


class MLModelParams(StrategyParams):
    artifacts: str = Field(
        "models/example", description="Folder of the model and scaler files; relative to the config file's folder.",
    )
    model_file: str = Field("model.skops", description="The model's file in `artifacts`.")
    scaler_file: str = Field("scaler.skops", description="The feature scaler's file in `artifacts`.")
    format: Literal["skops", "pickle"] = Field(
        "skops", description="skops (safe), or pickle/joblib (loaded only with a matching sha256 pin).",
    )
    sha256: dict[str, str] = Field(
        default_factory=dict, description="File name -> expected hex sha256; required for each pickle file.",
    )
    threshold: float = Field(
        0.65, gt=0.5, lt=1, description="Probability the model must give a direction before acting on it.",
    )
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought on a buy signal.")
    stop_atr: float = Field(2.0, gt=0, description="Stop-loss distance below the close, in ATRs.")
    take_atr: float = Field(3.0, gt=0, description="Take-profit distance above the close, in ATRs.")
    atr_period: int = Field(14, gt=0, description="Bars in the average true range.")

    def artifact_paths(self, base_dir: Path) -> list[Path]:
        """The model file and the scaler file, as `load_model` reads them (the run manifest
        records their sha256)."""
        folder = base_dir / self.artifacts
        return [folder / self.model_file, folder / self.scaler_file]

    @field_validator("sha256")
    @classmethod
    def _hex_digests(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned = {name: digest.strip().lower() for name, digest in value.items()}
        wrong = [name for name, digest in cleaned.items() if not _SHA256.fullmatch(digest)]
        if wrong:
            raise ValueError(f"not a 64-character hex sha256: {', '.join(wrong)}")
        return cleaned

    @model_validator(mode="after")
    def _pickles_are_pinned(self) -> MLModelParams:
        if self.format == "pickle":
            missing = [name for name in (self.model_file, self.scaler_file) if name not in self.sha256]
            if missing:
                raise ValueError(
                    f"format pickle runs code from the file when loading; pin its sha256 for "
                    f"{', '.join(missing)} under sha256 (file name -> hex digest)"
                )
        return self


class _SymbolState:
    __slots__ = ("features", "atr")

    def __init__(self, atr_period: int):
        self.features = FeatureBuilder()
        self.atr = ATR(atr_period)


class MLModel(StrategyInterface):
    """Trade a scikit-learn model's probability that the next close is higher, long only.

    Model: `load_model` reads the model and the feature scaler from `artifacts` (skops by
    default; pickle only with pinned sha256s), checks that the model has `predict_proba` or
    `predict`, the scaler has `transform`, and both take the six features of
    `runner.features`, and caches them so entries sharing files load them once.
    On each new bar: p_up is `predict_proba(scaled features)` of the model's last class (1 or
    True: up); a model with only `predict` gives 1.0 when its output is positive, else 0.0.
    Buy: while flat with no working order, when p_up >= `threshold`, buy `quantity` at market
    with a stop-loss at close - `stop_atr` x ATR and a take-profit at close + `take_atr` x ATR
    (rounded to the close's decimals; no buy when the stop would not be above 0 or the two
    would not straddle the close), confidence p_up.
    Sell: while long, when 1 - p_up >= `threshold`, sell the whole position at market and
    cancel its working stop-loss and take-profit orders, confidence 1 - p_up.
    Nothing happens during the 34-bar feature warm-up or the ATR warm-up.
    """

    Params = MLModelParams
    description = "A scikit-learn model's up/down probability, long only, market orders with ATR stops."

    _cache: ClassVar[dict[tuple[str, ...], Any]] = {}  # (path, format, sha256, pin, role)

    def load_model(self) -> None:
        """Load and check the model and the scaler (called once by the runner before `on_start`).

        Raises:
            StrategyLoadError: a file is missing, unsafe, unreadable or of the wrong shape, or
                the ml extra is not installed; the message names the file and the problem.
        """
        params = self.params
        model, scaler = params.artifact_paths(Path(getattr(self.context, "base_dir", None) or Path.cwd()))
        self._model = self._load(model, "model")
        self._scaler = self._load(scaler, "scaler")

    def on_start(self) -> None:
        self._states = {symbol: _SymbolState(self.params.atr_period) for symbol in self.context.symbols}

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        signals = []
        for symbol in market_data.fresh:
            bar = market_data[symbol]
            state = self._states[symbol]
            features = state.features.update(bar)
            atr = state.atr.update(float(bar.high), float(bar.low), float(bar.close))
            note = self._confirm(symbol, bar)
            if features is None or atr is None or note is None:
                continue
            signal = self._decide(symbol, bar, self._p_up(features), atr, note)
            if signal is not None:
                signals.append(signal)
        return signals

    def _confirm(self, symbol: str, bar: Bar) -> str | None:
        """See every new bar; return text to add to the reason to take the model's signal on
        it, or None to skip it (a subclass's filter; this one takes every signal)."""
        return ""

    def _decide(self, symbol: str, bar: Bar, p_up: float, atr: float, note: str) -> Signal | None:
        params = self.params
        held = self.context.position(symbol).quantity
        if p_up >= params.threshold and held == 0:
            if any(order.symbol == symbol for order in self.context.orders()):
                return None
            close = bar.close
            stop = _price(float(close) - params.stop_atr * atr, close)
            take = _price(float(close) + params.take_atr * atr, close)
            if not 0 < stop < close < take:
                return None
            return Signal(
                symbol, Action.BUY, params.quantity, stop_loss=stop, take_profit=take, confidence=p_up,
                reason=f"model p_up {p_up:.3f} >= {params.threshold:g}{note}",
            )
        if 1 - p_up >= params.threshold and held > 0:
            for order in self.context.orders():
                if order.symbol == symbol:
                    self.context.cancel(order.id)
            return Signal(
                symbol, Action.SELL, held, confidence=1 - p_up,
                reason=f"model p_down {1 - p_up:.3f} >= {params.threshold:g}{note}",
            )
        return None

    def _p_up(self, features: list[float]) -> float:
        scaled = self._scaler.transform([features])
        if hasattr(self._model, "predict_proba"):
            return float(self._model.predict_proba(scaled)[0][1])
        return 1.0 if float(self._model.predict(scaled)[0]) > 0 else 0.0

    def _load(self, path: Path, role: str) -> Any:
        params = self.params
        if path.is_dir():
            raise StrategyLoadError(f"{role} file {path} is a folder; expected the {role} file itself")
        if not path.is_file():
            raise StrategyLoadError(
                f"{role} file not found: {path} (artifacts: {params.artifacts!r}, relative to the "
                f"config file's folder); train one with: runner model train --synthetic --out {path.parent}"
            )
        # The pin is part of the key: an entry with a wrong pin must not load from the cache.
        key = (str(path.resolve()), params.format, sha256_of(path), params.sha256.get(path.name) or "", role)
        cached = MLModel._cache.get(key)
        if cached is None:
            cached = load_artifact(path, params.format, params.sha256.get(path.name))
            _check(cached, role, path)
            MLModel._cache[key] = cached
        return cached


def _check(obj: Any, role: str, path: Path) -> None:
    """The model predicts and the scaler transforms, both on the six features."""
    kind = type(obj).__name__
    if role == "model" and not (hasattr(obj, "predict_proba") or hasattr(obj, "predict")):
        raise StrategyLoadError(f"{path}: a {kind} has neither predict_proba nor predict; the model needs one")
    if role == "scaler" and not hasattr(obj, "transform"):
        raise StrategyLoadError(f"{path}: a {kind} has no transform method; the scaler needs one")
    count = getattr(obj, "n_features_in_", None)
    if count != len(FEATURE_NAMES):
        found = f"expects {count} features" if count is not None else "does not say how many features it takes (not fitted?)"
        raise StrategyLoadError(
            f"{path}: the {role} ({kind}) {found}, but ml_model gives it {len(FEATURE_NAMES)}: "
            f"{', '.join(FEATURE_NAMES)}"
        )
    classes = getattr(obj, "classes_", None)
    if role == "model" and hasattr(obj, "predict_proba") and (classes is None or len(classes) != 2):
        found = "none" if classes is None else ", ".join(str(c) for c in classes)
        raise StrategyLoadError(
            f"{path}: the model must have two classes, down then up (such as 0, 1); found: {found}"
        )


def _price(value: float, like: Decimal) -> Decimal:
    """`value` rounded to the decimal places of `like`."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(like.as_tuple().exponent))
