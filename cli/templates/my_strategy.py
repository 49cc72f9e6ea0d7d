"""My strategy, made by `runner init`: edit it and run `runner start config.yaml` again.

Buy `quantity` when the close rises above the highest close of the last `lookback` bars while
flat; sell the whole position when it falls below the lowest one while long. Market orders.
"""

from decimal import Decimal

from pydantic import Field

from strategies.base import Action, MarketData, Signal, StrategyInterface, StrategyParams


class BreakoutParams(StrategyParams):
    lookback: int = Field(10, gt=1, description="Bars whose highest and lowest close are the range.")
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought on a breakout.")


class Breakout(StrategyInterface):
    """Buy a close above the recent range, sell a close below it."""

    Params = BreakoutParams
    description = "Close above the last `lookback` closes: buy; below them: sell."

    def history_size(self) -> int:
        return self.params.lookback + 1  # the range, and this bar

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        signals = []
        for symbol in market_data.fresh:
            closes = self.context.history(symbol, self.params.lookback + 1).close
            if len(closes) <= self.params.lookback:
                continue  # not enough bars yet
            close, earlier = closes[-1], closes[:-1]
            held = self.context.position(symbol).quantity
            if close > earlier.max() and held == 0:
                signals.append(Signal(symbol, Action.BUY, self.params.quantity, reason="breakout up"))
            elif close < earlier.min() and held > 0:
                signals.append(Signal(symbol, Action.SELL, held, reason="breakout down"))
        return signals
