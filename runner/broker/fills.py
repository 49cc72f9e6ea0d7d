"""Fill prices for bar data: where an eligible order executes on the bar it meets.

An order submitted while handling bar t is first eligible on bar t+1. A market order fills at
that bar's open, moved against the trader by `slippage_bps` (a buy pays more, a sell gets less)
but never outside the bar's [low, high] range.
"""

from __future__ import annotations

from decimal import Decimal

from runner.domain import Bar, Side

_BPS = Decimal(10_000)


class NextOpenFillModel:
    """Market orders at the next bar's open plus slippage in basis points."""

    def __init__(self, slippage_bps: Decimal = Decimal(0)):
        self.slippage_bps = Decimal(slippage_bps)
        self._up = 1 + self.slippage_bps / _BPS
        self._down = 1 - self.slippage_bps / _BPS

    def slipped(self, side: Side, price: Decimal) -> Decimal:
        """Move `price` against the trader by the configured slippage."""
        return price * (self._up if side is Side.BUY else self._down)

    def market_price(self, side: Side, bar: Bar) -> Decimal:
        return min(max(self.slipped(side, bar.open), bar.low), bar.high)
