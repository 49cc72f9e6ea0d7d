"""The simulated broker: order handling (paper.py), fill rules (fills.py), commissions (fees.py).

The loop talks to a broker through the `Broker` protocol; only bootstrap names `PaperBroker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from runner.domain import Fill, MarketData, Order, OrderRequest
from runner.portfolio import Portfolio

BrokerEvent = Order | Fill


class Broker(Protocol):
    portfolio: Portfolio
    symbols: frozenset[str]

    def add_symbol(self, symbol: str) -> None:
        """Accept orders for `symbol` from now on."""

    def submit(self, strategy: str, request: OrderRequest, timestamp: datetime) -> list[Order]:
        """Create an order; return its states (NEW, then ACCEPTED or REJECTED)."""

    def cancel(self, strategy: str, order_id: int, timestamp: datetime, reason: str) -> tuple[list[Order], str]:
        """Cancel a working order; return its new states, or a refusal."""

    def modify(
        self, strategy: str, order_id: int, timestamp: datetime, *, quantity: Decimal | None = None,
        limit_price: Decimal | None = None, stop_price: Decimal | None = None,
    ) -> tuple[list[Order], str]:
        """Change a working order's quantity or prices; return its new state, or a refusal."""

    def orders_of(self, strategy: str) -> list[Order]:
        """A strategy's working orders."""

    def match(self, market: MarketData) -> list[BrokerEvent]:
        """Fill working orders against a new step."""

    def fill_at_last_price(self, order: Order, timestamp: datetime) -> list[BrokerEvent]:
        """Fill an accepted order at the last mark (used when the run stops)."""

    def cancel_all(self, timestamp: datetime, reason: str) -> list[Order]:
        """Cancel every working order."""

    def restore(self, working: Sequence[Order], next_order_id: int, next_fill_id: int) -> None:
        """Take over a resumed run's working orders and continue its ids."""
