"""PaperBroker: accepts or rejects orders, fills working orders on later bars, books the fills.

The broker is owned by the loop thread. Every order state it reaches is returned to the caller
as an `Order` value, and every execution as a `Fill`, so the loop can record them; nothing is
changed behind the caller's back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from runner.broker import BrokerEvent
from runner.broker.fees import CommissionModel
from runner.broker.fills import NextOpenFillModel
from runner.domain import ZERO, Fill, MarketData, Order, OrderStatus, OrderType, Side
from runner.portfolio import Portfolio


class PaperBroker:
    """A simulated broker for market orders on bar data.

    Args:
        portfolio: the books fills are applied to.
        fill_model: decides fill prices.
        commission: decides the commission of each fill.
        symbols: the tradable symbols; orders for others are rejected.
        allow_short: when False, a sell larger than the strategy's position is rejected.
    """

    def __init__(
        self, portfolio: Portfolio, fill_model: NextOpenFillModel, commission: CommissionModel,
        symbols: tuple[str, ...], allow_short: bool = False,
    ):
        self.portfolio = portfolio
        self.fill_model = fill_model
        self.commission = commission
        self.symbols = frozenset(symbols)
        self.allow_short = allow_short
        self._working: dict[int, Order] = {}
        self._next_order_id = 1
        self._next_fill_id = 1

    @property
    def working_orders(self) -> list[Order]:
        return list(self._working.values())

    def submit(
        self, strategy: str, symbol: str, side: Side, quantity: Decimal, timestamp: datetime,
        order_type: OrderType = OrderType.MARKET, reason: str = "",
    ) -> list[Order]:
        """Create an order; return its states: NEW, then ACCEPTED or REJECTED with the reason."""
        order = Order(
            self._next_order_id, strategy, symbol, side, quantity, order_type, timestamp,
            reason=reason, updated_at=timestamp,
        )
        self._next_order_id += 1
        refusal = self._refusal(order)
        if refusal:
            return [order, replace(order, status=OrderStatus.REJECTED, reason=refusal)]
        accepted = replace(order, status=OrderStatus.ACCEPTED)
        self._working[order.id] = accepted
        return [order, accepted]

    def match(self, market: MarketData) -> list[BrokerEvent]:
        """Fill every working order whose symbol has a bar in this step."""
        events: list[BrokerEvent] = []
        for order in list(self._working.values()):
            bar = market.get(order.symbol)
            if bar is not None:
                price = self.fill_model.market_price(order.side, bar)
                events.extend(self._execute(order, price, market.timestamp))
        return events

    def fill_at_last_price(self, order: Order, timestamp: datetime) -> list[BrokerEvent]:
        """Fill an accepted order at the symbol's last mark plus slippage.

        Used only when the run stops: orders placed in `on_stop` have no next bar to meet.
        """
        last = self.portfolio.last_prices.get(order.symbol)
        if last is None:
            return [self._reject(order, "no price known for the symbol", timestamp)]
        return self._execute(order, self.fill_model.slipped(order.side, last), timestamp)

    def cancel_all(self, timestamp: datetime, reason: str) -> list[Order]:
        """Cancel every working order, as when the run stops."""
        cancelled = [
            replace(order, status=OrderStatus.CANCELLED, reason=reason, updated_at=timestamp)
            for order in self._working.values()
        ]
        self._working.clear()
        return cancelled

    def _refusal(self, order: Order) -> str | None:
        if order.quantity <= 0:
            return f"quantity must be positive, got {order.quantity}"
        if order.symbol not in self.symbols:
            return f"unknown symbol {order.symbol!r}; tradable: {', '.join(sorted(self.symbols))}"
        if order.order_type is not OrderType.MARKET:
            return f"order type {order.order_type.value} is not supported by this broker yet"
        if order.side is Side.SELL and not self.allow_short:
            held = self.portfolio.quantity(order.strategy, order.symbol) - self._pending_sells(order)
            if order.quantity > held:
                return (
                    f"short selling not allowed: sell {order.quantity} exceeds the position of "
                    f"{max(held, ZERO)} (set broker.allow_short: true to allow it)"
                )
        if order.side is Side.BUY:
            needed = self._estimated_cost(order)
            available = self.portfolio.cash - self._reserved_cash()
            if needed is not None and needed > available:
                return f"insufficient cash: needs about {needed:.2f}, available {available:.2f}"
        return None

    def _pending_sells(self, order: Order) -> Decimal:
        return sum(
            (o.quantity for o in self._working.values()
             if o.side is Side.SELL and o.strategy == order.strategy and o.symbol == order.symbol),
            ZERO,
        )

    def _estimated_cost(self, order: Order) -> Decimal | None:
        last = self.portfolio.last_prices.get(order.symbol)
        if last is None:
            return None
        price = self.fill_model.slipped(Side.BUY, last)
        return order.quantity * price + self.commission.commission(order.quantity, price)

    def _reserved_cash(self) -> Decimal:
        return sum(
            (self._estimated_cost(o) or ZERO for o in self._working.values() if o.side is Side.BUY),
            ZERO,
        )

    def _execute(self, order: Order, price: Decimal, timestamp: datetime) -> list[BrokerEvent]:
        self._working.pop(order.id, None)
        commission = self.commission.commission(order.quantity, price)
        if order.side is Side.BUY and order.quantity * price + commission > self.portfolio.cash:
            cost = order.quantity * price + commission
            return [self._reject(
                order, f"insufficient cash at fill: needs {cost:.2f}, has {self.portfolio.cash:.2f}",
                timestamp,
            )]
        fill = Fill(
            self._next_fill_id, order.id, order.strategy, order.symbol, order.side,
            order.quantity, price, commission, timestamp,
        )
        self._next_fill_id += 1
        self.portfolio.apply_fill(fill)
        filled = replace(
            order, status=OrderStatus.FILLED, filled_quantity=order.quantity,
            average_price=price, updated_at=timestamp,
        )
        return [fill, filled]

    def _reject(self, order: Order, reason: str, timestamp: datetime) -> Order:
        self._working.pop(order.id, None)
        return replace(order, status=OrderStatus.REJECTED, reason=reason, updated_at=timestamp)
