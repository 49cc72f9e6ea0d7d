"""`ml_model`'s signals, taken only when RSI is outside its neutral band."""

from __future__ import annotations

from pydantic import Field, model_validator

from runner.indicators import RSI
from strategies.base import Bar
from strategies.ml_model import MLModel, MLModelParams


class HybridParams(MLModelParams):
    rsi_period: int = Field(14, gt=0, description="Changes in the RSI of the close.")
    neutral_low: float = Field(40.0, ge=0, le=100, description="Lower edge of the RSI band where signals are ignored.")
    neutral_high: float = Field(60.0, ge=0, le=100, description="Upper edge of the RSI band where signals are ignored.")

    @model_validator(mode="after")
    def _low_below_high(self) -> HybridParams:
        if self.neutral_low >= self.neutral_high:
            raise ValueError(
                f"neutral_low ({self.neutral_low:g}) must be smaller than neutral_high ({self.neutral_high:g})"
            )
        return self


class Hybrid(MLModel):
    """Trade `ml_model`'s signals only when RSI(`rsi_period`) of the close is outside
    [`neutral_low`, `neutral_high`].

    Buy and sell: exactly as `ml_model` (market orders, ATR stop-loss and take-profit on buys,
    confidence from the model), but a signal on a bar whose RSI is inside the neutral band, or
    still warming up, is dropped. The reason of each signal gives the RSI.
    """

    Params = HybridParams
    description = "ml_model's signals only when RSI is outside its neutral band (40-60 by default)."

    def on_start(self) -> None:
        super().on_start()
        self._rsi = {symbol: RSI(self.params.rsi_period) for symbol in self.context.symbols}

    def _confirm(self, symbol: str, bar: Bar) -> str | None:
        rsi = self._rsi[symbol].update(float(bar.close))
        low, high = self.params.neutral_low, self.params.neutral_high
        if rsi is None or low <= rsi <= high:
            return None
        return f"; RSI {rsi:.1f} outside the neutral band {low:g}-{high:g}"
