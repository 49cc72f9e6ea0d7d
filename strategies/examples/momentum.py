"""An example of a strategy kept outside any package, loaded with `file:` in a config
(see configs/file_strategy.yaml). Strategy files are code: they run with your rights."""

from decimal import Decimal

from pydantic import Field

from strategies.base import Action, MarketData, Signal, StrategyInterface, StrategyParams


class MomentumParams(StrategyParams):
    lookback: int = Field(20, gt=1, description="Bars between the two closes compared.")
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought.")


class Momentum(StrategyInterface):
    """Buy `quantity` at market when the close is above the close `lookback` bars ago while
    flat; sell the whole position at market when it is below it while long."""

    Params = MomentumParams
    description = "Close above the close `lookback` bars ago: long; below: flat."

    def history_size(self) -> int:
        return self.params.lookback + 1

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        signals = []
        for symbol in market_data.fresh:
            closes = self.context.history(symbol, self.params.lookback + 1).close
            if len(closes) <= self.params.lookback:
                continue
            held = self.context.position(symbol).quantity
            if closes[-1] > closes[0] and held == 0:
                signals.append(Signal(symbol, Action.BUY, self.params.quantity, reason="momentum up"))
            elif closes[-1] < closes[0] and held > 0:
                signals.append(Signal(symbol, Action.SELL, held, reason="momentum down"))
        return signals
