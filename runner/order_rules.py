"""Rules an order's terms must follow, shared by the signal validators and the broker."""

from __future__ import annotations

from decimal import Decimal

from runner.domain import OrderType, Side

NEEDS_LIMIT = (OrderType.LIMIT, OrderType.STOP_LIMIT)
NEEDS_STOP = (OrderType.STOP, OrderType.STOP_LIMIT)


def price_problem(order_type: OrderType, limit_price: Decimal | None, stop_price: Decimal | None) -> str | None:
    """Why the prices do not fit the order type (a missing or non-positive one), if they don't."""
    for field, value, needed_by in (("limit_price", limit_price, NEEDS_LIMIT), ("stop_price", stop_price, NEEDS_STOP)):
        if order_type in needed_by and value is None:
            return f"{field} is required for a {order_type.value} order"
        if value is not None and value <= 0:
            return f"{field} must be positive, got {value}"
    return None


def bracket_problem(
    side: Side, entry: Decimal, stop_loss: Decimal | None, take_profit: Decimal | None,
) -> str | None:
    """Why a bracket's stop-loss or take-profit lies on the wrong side of its entry, if it does:
    below and above a long's entry, above and below a short's."""
    long = side is Side.BUY
    for field, price, below in (("stop_loss", stop_loss, long), ("take_profit", take_profit, not long)):
        if price is None:
            continue
        if price <= 0:
            return f"{field} must be positive, got {price}"
        if (price >= entry) if below else (price <= entry):
            where = "below" if below else "above"
            return f"{field} {price} must be {where} the entry price {entry} of a {'long' if long else 'short'}"
    return None


def entry_price(
    order_type: OrderType, limit_price: Decimal | None, stop_price: Decimal | None,
    last_price: Decimal | None,
) -> Decimal | None:
    """The price an order is expected to enter at: its limit, else its stop, else the last price."""
    if order_type in NEEDS_LIMIT:
        return limit_price
    return stop_price if order_type in NEEDS_STOP else last_price
