"""Buy once, hold to the end."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from strategies.base import Action, MarketData, Signal, StrategyInterface, StrategyParams


class BuyAndHoldParams(StrategyParams):
    quantity: Decimal = Field(Decimal(1), gt=0, description="Units bought of each symbol.")
    sell_on_stop: bool = Field(False, description="Sell everything when the run stops.")


class BuyAndHold(StrategyInterface):
    """Buy `quantity` of each subscribed symbol on its first bar, at market, and hold.

    Sell: only when `sell_on_stop` is true, the whole position when the run stops, filled at
    the last price (there is no next bar to meet).
    """

    Params = BuyAndHoldParams
    description = "Buy each symbol once on its first bar and hold; optionally sell on stop."

    def on_start(self) -> None:
        self._bought: set[str] = set()

    def on_tick(self, market_data: MarketData) -> list[Signal]:
        new = [symbol for symbol in market_data if symbol not in self._bought]
        self._bought.update(new)
        return [Signal(s, Action.BUY, self.params.quantity, reason="first bar") for s in new]

    def on_stop(self) -> list[Signal]:
        if not self.params.sell_on_stop:
            return []
        return [
            Signal(p.symbol, Action.SELL, p.quantity, reason="run stopped")
            for p in self.context.positions() if p.quantity > 0
        ]
