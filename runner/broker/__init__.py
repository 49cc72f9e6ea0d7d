"""The simulated broker: order handling (paper.py), fill prices (fills.py), commissions (fees.py).

The loop talks to a broker through the `Broker` protocol; only bootstrap names `PaperBroker`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from runner.domain import Fill, MarketData, Order, OrderType, Side
from runner.portfolio import Portfolio

BrokerEvent = Order | Fill


class Broker(Protocol):
    portfolio: Portfolio

    def submit(
        self, strategy: str, symbol: str, side: Side, quantity: Decimal, timestamp: datetime,
        order_type: OrderType = OrderType.MARKET, reason: str = "",
    ) -> list[Order]:
        """Create an order; return its states (NEW, then ACCEPTED or REJECTED)."""

    def match(self, market: MarketData) -> list[BrokerEvent]:
        """Fill working orders against a new step."""

    def fill_at_last_price(self, order: Order, timestamp: datetime) -> list[BrokerEvent]:
        """Fill an accepted order at the last mark (used when the run stops)."""

    def cancel_all(self, timestamp: datetime, reason: str) -> list[Order]:
        """Cancel every working order."""
