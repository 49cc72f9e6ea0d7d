"""PaperBroker: accepts or rejects orders, fills working orders on later bars, books the fills.

The broker is owned by the loop thread. Every order state it reaches is returned to the caller
as an `Order` value, and every execution as a `Fill`, so the loop can record them; nothing is
changed behind the caller's back. Fill prices and quantities come from the fill model
(fills.py), commissions from the fee schedule (fees.py), cash and positions live in the
portfolio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from runner.broker import BrokerEvent
from runner.broker.fees import FeeSchedule
from runner.broker.fills import BarFillModel
from runner.domain import (
    ZERO, Bar, Fill, MarketData, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce,
)
from runner.order_rules import NEEDS_LIMIT, NEEDS_STOP, bracket_problem, entry_price, price_problem
from runner.portfolio import Portfolio

_NOTHING_LEFT = "the rest is cancelled: another order already closed the position"


class PaperBroker:
    """A simulated broker for bar data: market, limit, stop and stop-limit orders, GTC / DAY /
    IOC, brackets with one-cancels-other legs, partial fills, shorting with a margin rule.

    Args:
        portfolio: the books fills are applied to.
        fill_model: decides fill prices and quantities.
        fees: decides the commission of each fill.
        symbols: the tradable symbols; orders for others are rejected.
        allow_short: when False, a sell larger than the strategy's position is rejected.
        short_margin: share of a short position's value the account must hold on top of the
            short sale's proceeds (0.5: 150 % of the short value in cash).
        max_position: the largest position (in units, long or short) a strategy may hold in
            one symbol, counting working orders; None for no limit.
        timezone: where a DAY order's day ends (midnight).
    """

    def __init__(
        self, portfolio: Portfolio, fill_model: BarFillModel, fees: FeeSchedule,
        symbols: tuple[str, ...], allow_short: bool = False, short_margin: Decimal = Decimal("0.5"),
        max_position: Decimal | None = None, timezone: str = "UTC",
    ):
        self.portfolio = portfolio
        self.fill_model = fill_model
        self.fees = fees
        self.symbols = frozenset(symbols)
        self.allow_short = allow_short
        self.short_margin = Decimal(short_margin)
        self.max_position = max_position
        self.zone = ZoneInfo(timezone)
        self._working: dict[int, Order] = {}
        self._day_of: dict[int, date] = {}  # a DAY order's day: that of the first bar it could fill on
        self._next_order_id = 1
        self._next_fill_id = 1

    def add_symbol(self, symbol: str) -> None:
        """Accept orders for `symbol` from now on (a symbol added during the run)."""
        self.symbols = self.symbols | {symbol}

    def orders_of(self, strategy: str) -> list[Order]:
        """The working orders of a strategy, oldest first."""
        return [order for order in self._working.values() if order.strategy == strategy]

    @property
    def working_orders(self) -> list[Order]:
        return list(self._working.values())

    def restore(self, working: Sequence[Order], next_order_id: int, next_fill_id: int) -> None:
        """Take over a resumed run's recorded working orders and continue its order and fill ids.

        What the records do not hold (a stop-limit order's trigger, a DAY order's day) is kept
        from the order of the same id this broker already works, if any (the run's catch-up).
        """
        known = self._working
        self._working = {
            order.id: replace(order, triggered=known[order.id].triggered) if order.id in known else order
            for order in working
        }
        self._day_of = {order_id: day for order_id, day in self._day_of.items() if order_id in self._working}
        self._next_order_id, self._next_fill_id = next_order_id, next_fill_id

    # -- requests --------------------------------------------------------------------------------

    def submit(self, strategy: str, request: OrderRequest, timestamp: datetime) -> list[Order]:
        """Create an order; return its states: NEW, then ACCEPTED or REJECTED with the reason."""
        order = Order(
            self._take_order_id(), strategy, request.symbol, request.side, request.quantity,
            request.order_type, timestamp, reason=request.reason, updated_at=timestamp,
            limit_price=request.limit_price, stop_price=request.stop_price,
            time_in_force=request.time_in_force, stop_loss=request.stop_loss,
            take_profit=request.take_profit,
        )
        refusal = self._refusal(order)
        if refusal:
            return [order, replace(order, status=OrderStatus.REJECTED, reason=refusal)]
        accepted = replace(order, status=OrderStatus.ACCEPTED)
        self._working[order.id] = accepted
        return [order, accepted]

    def cancel(self, strategy: str, order_id: int, timestamp: datetime, reason: str) -> tuple[list[Order], str]:
        """Cancel a strategy's working order; return its new state, or a refusal."""
        order = self._working.get(order_id)
        refusal = _not_its_working_order(order, order_id, strategy)
        if refusal:
            return [], refusal
        cancelled = self._close(order, OrderStatus.CANCELLED, reason, timestamp)
        return [cancelled, *self._activate(self._legs_after(cancelled, timestamp))], ""

    def modify(
        self, strategy: str, order_id: int, timestamp: datetime, *, quantity: Decimal | None = None,
        limit_price: Decimal | None = None, stop_price: Decimal | None = None,
    ) -> tuple[list[Order], str]:
        """Replace the quantity or prices of a working order in place; it keeps its id and
        works with the new terms from the next bar. Return its new state, or a refusal."""
        order = self._working.get(order_id)
        refusal = _not_its_working_order(order, order_id, strategy)
        if refusal:
            return [], refusal
        changes = {k: v for k, v in (("quantity", quantity), ("limit_price", limit_price), ("stop_price", stop_price)) if v is not None}
        if quantity is not None and quantity <= order.filled_quantity:
            return [], f"quantity {quantity} is not above the {order.filled_quantity} already filled"
        for field, used_by in (("limit_price", NEEDS_LIMIT), ("stop_price", NEEDS_STOP)):
            if field in changes and order.order_type not in used_by:
                return [], f"{field} does not apply to a {order.order_type.value} order"
        changed = replace(order, **changes, updated_at=timestamp)
        del self._working[order_id]
        refusal = self._terms_refusal(changed) or (
            None if order.parent_id is not None
            else self._bracket_refusal(changed) or self._exposure_refusal(changed)
        )
        if refusal:
            self._working[order_id] = order
            return [], refusal
        described = ", ".join(f"{key} {getattr(order, key)} -> {value}" for key, value in changes.items())
        changed = replace(changed, reason=f"replaced: {described}")
        self._working[order_id] = changed
        return [changed], ""

    def cancel_all(self, timestamp: datetime, reason: str) -> list[Order]:
        """Cancel every working order, as when the run stops."""
        cancelled = [
            replace(order, status=OrderStatus.CANCELLED, reason=reason, updated_at=timestamp)
            for order in self._working.values()
        ]
        self._working.clear()
        return cancelled

    # -- matching --------------------------------------------------------------------------------

    def match(self, market: MarketData) -> list[BrokerEvent]:
        """Expire DAY orders whose day is over, then fill working orders on this step's bars.

        Bracket legs created by a fill start working on the next step.
        """
        if not self._working:
            return []
        events: list[BrokerEvent] = []
        timestamp = market.timestamp
        day = timestamp.astimezone(self.zone).date()
        children: list[Order] = []
        blocked: set[int] = set()  # OCO legs whose other leg filled on this bar
        for order_id in sorted(self._working):
            order = self._working.get(order_id)
            if order is None:
                continue
            if order.time_in_force is TimeInForce.DAY:
                first_day = self._day_of.setdefault(order_id, day)
                if first_day < day:
                    events.append(self._close(order, OrderStatus.EXPIRED, "DAY order expired at the end of its day", timestamp))
                    children += self._legs_after(order, timestamp)
                    continue
            bar = market.get(order.symbol)
            if bar is None or order_id in blocked or not market.is_fresh(order.symbol):
                continue
            order = self._match_one(order, bar, timestamp, events, blocked, children)
            if order is not None and order.time_in_force is TimeInForce.IOC and order.is_working:
                events.append(self._close(order, OrderStatus.CANCELLED, "IOC: the unfilled quantity is cancelled", timestamp))
                children += self._legs_after(order, timestamp)
        return events + self._activate(children)

    def fill_at_last_price(self, order: Order, timestamp: datetime) -> list[BrokerEvent]:
        """Fill an accepted market order at the symbol's last mark plus slippage.

        Used only when the run stops: orders placed in `on_stop` have no next bar to meet.
        """
        last = self.portfolio.last_prices.get(order.symbol)
        if last is None or order.order_type is not OrderType.MARKET:
            why = "no price known for the symbol" if last is None else "only market orders fill when the run stops"
            return [self._close(order, OrderStatus.REJECTED, why, timestamp)]
        events: list[BrokerEvent] = []
        self._execute(order, order.remaining, self.fill_model.slipped(order.side, last), timestamp, events)
        return events

    def _match_one(
        self, order: Order, bar: Bar, timestamp: datetime, events: list[BrokerEvent],
        blocked: set[int], children: list[Order],
    ) -> Order | None:
        decision = self.fill_model.decide(order, bar)
        if decision.triggered and not order.triggered:
            order = self._working[order.id] = replace(order, triggered=True)
        if decision.price is None:
            return order
        quantity = self.fill_model.quantity(order, bar)
        if order.parent_id is not None:
            closable = self._closable(order)
            if closable <= 0:
                self._cancel_legs(order, "the position was already closed", timestamp, events)
                return None
            quantity = min(quantity, closable)
        if quantity <= 0:  # the bar's volume allows nothing: keep working
            return order
        order = self._execute(order, quantity, decision.price, timestamp, events)
        if order.sibling_id is not None and order.filled_quantity > 0:
            blocked.add(order.sibling_id)
            self._shrink_sibling(order, quantity, timestamp, events)
        if order.status in (OrderStatus.FILLED, OrderStatus.REJECTED):
            children += self._legs_after(order, timestamp)
        return order

    def _execute(
        self, order: Order, quantity: Decimal, price: Decimal, timestamp: datetime,
        events: list[BrokerEvent],
    ) -> Order:
        """Fill `quantity` of `order` at `price` if the cash (or, for a sell without shorting,
        the position) allows; return its new state."""
        capped = False
        if order.side is Side.SELL and not self.allow_short and order.parent_id is None:
            held = self.portfolio.quantity(order.strategy, order.symbol)
            if held <= 0:
                closed = self._close(order, OrderStatus.CANCELLED, _NOTHING_LEFT, timestamp)
                events.append(closed)
                return closed
            capped, quantity = quantity > held, min(quantity, held)
        commission = self.fees.fill_commission(order, quantity, price)
        cash = self.portfolio.cash_of(order.strategy)
        if order.side is Side.BUY:
            cost = quantity * price + commission
            covering = min(max(-self.portfolio.quantity(order.strategy, order.symbol), ZERO), quantity)
            if quantity > covering:  # the opening part needs cash not promised elsewhere
                released = self.short_margin * covering * price if self.allow_short else ZERO
                free = self._free_cash(order.strategy, order.id) + released
                if (quantity - covering) * price + commission > free:
                    cost, cash = (quantity - covering) * price + commission, free
        else:  # a sell costs cash only when its commission exceeds its proceeds
            cost = commission - quantity * price
        if cost > 0 and cost > cash:
            closed = self._close(
                order, OrderStatus.REJECTED, f"insufficient cash at fill: needs {cost:.2f}, has {cash:.2f}",
                timestamp,
            )
            events.append(closed)
            return closed
        fill = Fill(
            self._next_fill_id, order.id, order.strategy, order.symbol, order.side, quantity,
            price, commission, timestamp,
        )
        self._next_fill_id += 1
        self.portfolio.apply_fill(fill)
        filled = order.filled_quantity + quantity
        notional = order.filled_notional + quantity * price
        done = filled == order.quantity
        order = replace(
            order, status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            filled_quantity=filled, filled_notional=notional, average_price=notional / filled,
            updated_at=timestamp,
        )
        if done:
            self._working.pop(order.id, None)
        elif order.id in self._working:
            self._working[order.id] = order
        events += [fill, order]
        if order.parent_id is None:
            self._fit_legs(order.strategy, order.symbol, timestamp, events)
        if capped:
            order = self._close(order, OrderStatus.CANCELLED, _NOTHING_LEFT, timestamp)
            events.append(order)
        return order

    def _close(self, order: Order, status: OrderStatus, reason: str, timestamp: datetime) -> Order:
        self._working.pop(order.id, None)
        self._day_of.pop(order.id, None)
        return replace(order, status=status, reason=reason, updated_at=timestamp)

    # -- brackets --------------------------------------------------------------------------------

    def _legs_after(self, parent: Order, timestamp: datetime) -> list[Order]:
        """The stop-loss and take-profit legs of a bracket whose entry stopped working, sized to
        what it filled (none when it filled nothing or has no legs)."""
        if parent.filled_quantity == 0 or (parent.stop_loss is None and parent.take_profit is None):
            return []
        exit_side = Side.SELL if parent.side is Side.BUY else Side.BUY
        legs = []
        for kind, price, label in (
            (OrderType.STOP, parent.stop_loss, "stop-loss"), (OrderType.LIMIT, parent.take_profit, "take-profit"),
        ):
            if price is None:
                continue
            legs.append(Order(
                self._take_order_id(), parent.strategy, parent.symbol, exit_side,
                parent.filled_quantity, kind, timestamp, updated_at=timestamp,
                limit_price=price if kind is OrderType.LIMIT else None,
                stop_price=price if kind is OrderType.STOP else None,
                parent_id=parent.id, reason=f"{label} of order {parent.id}",
            ))
        if len(legs) == 2:
            legs = [replace(legs[0], sibling_id=legs[1].id), replace(legs[1], sibling_id=legs[0].id)]
        return legs

    def _activate(self, legs: list[Order]) -> list[Order]:
        """Start bracket legs working; return their states (NEW, ACCEPTED)."""
        states = []
        for leg in legs:
            accepted = replace(leg, status=OrderStatus.ACCEPTED)
            self._working[leg.id] = accepted
            states += [leg, accepted]
        return states

    def _closable(self, leg: Order) -> Decimal:
        """How much of the position a bracket leg may still close."""
        held = self.portfolio.quantity(leg.strategy, leg.symbol)
        return max(held, ZERO) if leg.side is Side.SELL else max(-held, ZERO)

    def _shrink_sibling(self, leg: Order, quantity: Decimal, timestamp: datetime, events: list[BrokerEvent]) -> None:
        sibling = self._working.get(leg.sibling_id)
        if sibling is None:
            return
        left = sibling.quantity - quantity
        if left <= sibling.filled_quantity:
            events.append(self._close(sibling, OrderStatus.CANCELLED, f"OCO: order {leg.id} filled", timestamp))
        else:
            events.append(self._resize(sibling, left, f"OCO: reduced to {left} as order {leg.id} filled", timestamp))

    def _fit_legs(self, strategy: str, symbol: str, timestamp: datetime, events: list[BrokerEvent]) -> None:
        """After another order of this position filled, bracket legs may close at most what is
        left of the position: shrink them, or cancel them when it is gone."""
        for leg in [o for o in self._working.values() if o.parent_id is not None and o.strategy == strategy and o.symbol == symbol]:
            if leg.id not in self._working:
                continue
            closable = self._closable(leg)
            if closable <= 0:
                self._cancel_legs(leg, "the position was closed by another order", timestamp, events)
            elif leg.remaining > closable:
                quantity = leg.filled_quantity + closable
                events.append(self._resize(leg, quantity, f"reduced to {quantity}: the position is smaller now", timestamp))

    def _resize(self, order: Order, quantity: Decimal, reason: str, timestamp: datetime) -> Order:
        resized = replace(order, quantity=quantity, reason=reason, updated_at=timestamp)
        self._working[order.id] = resized
        return resized

    def _cancel_legs(self, leg: Order, reason: str, timestamp: datetime, events: list[BrokerEvent]) -> None:
        for order_id in (leg.id, leg.sibling_id):
            order = self._working.get(order_id) if order_id is not None else None
            if order is not None:
                events.append(self._close(order, OrderStatus.CANCELLED, reason, timestamp))

    # -- checks ----------------------------------------------------------------------------------

    def _refusal(self, order: Order) -> str | None:
        return self._terms_refusal(order) or self._bracket_refusal(order) or self._exposure_refusal(order)

    def _terms_refusal(self, order: Order) -> str | None:
        if order.quantity <= 0:
            return f"quantity must be positive, got {order.quantity}"
        if order.symbol not in self.symbols:
            return f"unknown symbol {order.symbol!r}; tradable: {', '.join(sorted(self.symbols))}"
        return price_problem(order.order_type, order.limit_price, order.stop_price)

    def _bracket_refusal(self, order: Order) -> str | None:
        if order.stop_loss is None and order.take_profit is None:
            return None
        held = self.portfolio.quantity(order.strategy, order.symbol)
        if (order.side is Side.BUY and held < 0) or (order.side is Side.SELL and held > 0):
            return "stop_loss and take_profit apply only to an order that opens or adds to a position"
        entry = entry_price(order.order_type, order.limit_price, order.stop_price, self.portfolio.last_prices.get(order.symbol))
        if entry is None:
            return None
        return bracket_problem(order.side, entry, order.stop_loss, order.take_profit)

    def _exposure_refusal(self, order: Order) -> str | None:
        """Position limit, shorting, cash and margin: may the account take this order on?"""
        held = self.portfolio.quantity(order.strategy, order.symbol)
        buying, selling = self._pending(order.strategy, order.symbol)
        reach = held + buying + order.remaining if order.side is Side.BUY else held - selling - order.remaining
        if self.max_position is not None and abs(reach) > self.max_position:
            return (
                f"position limit: the position would reach {abs(reach)}, "
                f"above broker.max_position {self.max_position}"
            )
        price = self._reference_price(order)
        free = self._free_cash(order.strategy)
        if order.side is Side.SELL:
            available = max(held - selling, ZERO)
            opening = order.remaining - available
            if opening <= 0:
                return None
            if not self.allow_short:
                return (
                    f"short selling not allowed: sell {order.remaining} exceeds the position of "
                    f"{available} (set broker.allow_short: true to allow it)"
                )
            if price is not None and self.short_margin * opening * price > free:
                return (
                    f"insufficient margin: a short of {opening} needs {self.short_margin * opening * price:.2f}, "
                    f"available {free:.2f}"
                )
            return None
        covering = min(max(-held - buying, ZERO), order.remaining)  # limited by cash at the fill only
        opening = order.remaining - covering
        if opening <= 0 or price is None:
            return None
        # Covering releases the short's margin: (1 + margin) x value, less the price paid.
        released = self.short_margin * covering * price if self.allow_short else ZERO
        cost = opening * price + self.fees.model(order.symbol).commission(order.remaining, price)
        if cost > free + released:
            return f"insufficient cash: needs about {cost:.2f}, available {free + released:.2f}"
        return None

    def _pending(self, strategy: str, symbol: str) -> tuple[Decimal, Decimal]:
        """Quantities still to buy and to sell in the strategy's working orders on `symbol`
        (bracket legs only close what their entry opened, so they do not count)."""
        buying = selling = ZERO
        for o in self._working.values():
            if o.strategy == strategy and o.symbol == symbol and o.parent_id is None:
                if o.side is Side.BUY:
                    buying += o.remaining
                else:
                    selling += o.remaining
        return buying, selling

    def _free_cash(self, strategy: str, excluding: int | None = None) -> Decimal:
        """Cash of the strategy's pool not already promised: to working buys, to the margin of
        working short sales, and to the short positions held (order `excluding` aside)."""
        pool = self.portfolio.pool(strategy)
        promised = self.portfolio.short_value(pool) * (1 + self.short_margin) if self.allow_short else ZERO
        for order in self._working.values():
            if order.parent_id is not None or order.id == excluding or self.portfolio.pool(order.strategy) != pool:
                continue
            price = self._reference_price(order)
            if price is None:
                continue
            if order.side is Side.BUY:
                covering = max(-self.portfolio.quantity(order.strategy, order.symbol), ZERO)
                promised += max(order.remaining - covering, ZERO) * price
            else:
                promised += self.short_margin * order.remaining * price if self.allow_short else ZERO
        return self.portfolio.pool_cash[pool] - promised

    def _reference_price(self, order: Order) -> Decimal | None:
        """The price an order is expected to fill near: its limit, its stop, or the last mark."""
        if order.order_type in NEEDS_LIMIT:
            return order.limit_price
        last = self.portfolio.last_prices.get(order.symbol)
        base = order.stop_price if order.order_type is OrderType.STOP else last
        return None if base is None else self.fill_model.slipped(order.side, base)

    def _take_order_id(self) -> int:
        order_id = self._next_order_id
        self._next_order_id += 1
        return order_id


def _not_its_working_order(order: Order | None, order_id: int, strategy: str) -> str:
    if order is None or order.strategy != strategy:
        return f"order {order_id} is not a working order of this strategy"
    return ""
