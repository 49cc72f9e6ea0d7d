"""Relative strength index: buy oversold, sell overbought."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from runner.indicators import RSI
from strategies.base import Action, MarketData, Signal, StrategyInterface, StrategyParams


class RSIParams(StrategyParams):
    period: int = Field(14, gt=0, description="Price changes in the RSI (Wilder's smoothing).")
    lower: float = Field(30.0, gt=0, lt=100, description="Buy while flat when the RSI falls below this.")
    upper: float = Field(70.0, gt=0, lt=100, description="Sell while long when the RSI rises above this.")
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought on an oversold reading.")

    @model_validator(mode="after")
    def _lower_below_upper(self) -> RSIParams:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower:g}) must be smaller than upper ({self.upper:g})")
        return self


class RSIStrategy(StrategyInterface):
    """Buy when the RSI of the close is below `lower`; sell everything when it is above `upper`.

    Buy: while flat, on a bar whose RSI is strictly below `lower`, buy `quantity` at market.

    Sell: while long, on a bar whose RSI is strictly above `upper`, sell the whole position at
    market.

    Long only. The RSI (`runner.indicators.RSI`, Wilder's smoothing) needs `period` changes, so
    the first signal can come on bar `period`, counting from 0.
    """

    Params = RSIParams
    description = "RSI below lower buys, above upper sells everything; long only, market orders."

    def on_start(self) -> None:
        self._rsi = {symbol: RSI(self.params.period) for symbol in self.context.symbols}

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        signals = []
        lower, upper = self.params.lower, self.params.upper
        for symbol in market_data.fresh:
            value = self._rsi[symbol].update(float(market_data[symbol].close))
            if value is None:
                continue
            held = self.context.position(symbol).quantity
            if held == 0 and value < lower:
                reason = f"rsi {value:.1f} below {lower:g}"
                signals.append(Signal(symbol, Action.BUY, self.params.quantity, reason=reason))
            elif held > 0 and value > upper:
                signals.append(Signal(symbol, Action.SELL, held, reason=f"rsi {value:.1f} above {upper:g}"))
        return signals
