"""Sizing and limits: the gate every signal passes before it becomes an order."""

from __future__ import annotations

from decimal import Decimal

from runner.domain import Action, OrderRequest, Side, Signal


class Denied(Exception):
    """The signal cannot become an order; the message is the reason recorded with it."""


class RiskGate:
    """Turn a signal into an order request, or deny it with a reason.

    Sizing: a BUY without quantity takes `default_quantity`; a SELL without quantity sells the
    whole long position; CLOSE flattens the position whatever its side. HOLD makes no order.

    Args:
        default_quantity: quantity of a BUY signal that names none.
        max_order_value: deny orders whose estimated notional (quantity x last price) exceeds it.
    """

    def __init__(self, default_quantity: Decimal, max_order_value: Decimal | None = None):
        self.default_quantity = default_quantity
        self.max_order_value = max_order_value

    def order_request(self, signal: Signal, held: Decimal, last_price: Decimal | None) -> OrderRequest | None:
        """Return the order for `signal` given the strategy's position `held`, None for HOLD.

        Raises:
            Denied: there is nothing to sell or close, or a limit would be exceeded.
        """
        action = signal.action
        if action is Action.HOLD:
            return None
        if action is Action.BUY:
            side, quantity = Side.BUY, signal.quantity or self.default_quantity
        elif action is Action.SELL:
            side, quantity = Side.SELL, signal.quantity or held
            if quantity <= 0:
                raise Denied(f"nothing to sell: no long position in {signal.symbol}")
        else:
            if held == 0:
                raise Denied(f"nothing to close: no position in {signal.symbol}")
            side, quantity = (Side.SELL, held) if held > 0 else (Side.BUY, -held)
        if self.max_order_value is not None and last_price is not None:
            value = quantity * last_price
            if value > self.max_order_value:
                raise Denied(
                    f"order value {value:.2f} exceeds risk.max_order_value {self.max_order_value}"
                )
        return OrderRequest(
            signal.symbol, side, quantity, signal.order_type, signal.limit_price, signal.stop_price,
            signal.time_in_force, signal.stop_loss, signal.take_profit, signal.reason,
        )
