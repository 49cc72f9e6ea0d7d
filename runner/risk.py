"""Signal validators, sizing and limits: the gate every signal passes before it becomes an order."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from importlib.metadata import EntryPoint, entry_points

from runner.domain import Action, OrderRequest, Side, Signal
from runner.order_rules import bracket_problem, entry_price, price_problem


class Denied(Exception):
    """The signal cannot become an order; the message is the reason recorded with it, and
    `rule` the policy rule that blocked it ("" when no policy rule did)."""

    def __init__(self, reason: str, rule: str = ""):
        super().__init__(reason)
        self.rule = rule


class RiskGate:
    """Size a signal into an order request, or deny it with a reason.

    Sizing: a BUY without quantity takes `default_quantity`; a SELL without quantity sells the
    whole long position; CLOSE flattens the position whatever its side. HOLD makes no order.

    Args:
        default_quantity: quantity of a BUY signal that names none.
        max_order_value: deny orders whose estimated notional (quantity x last price) exceeds it.
    """

    def __init__(self, default_quantity: Decimal, max_order_value: Decimal | None = None):
        self.default_quantity = default_quantity
        self.max_order_value = max_order_value

    def size(self, signal: Signal, held: Decimal) -> tuple[Side, Decimal] | None:
        """The side and quantity of the order for `signal`, given the strategy's position
        `held`; None for HOLD.

        Raises:
            Denied: there is nothing to sell or close.
        """
        action = signal.action
        if action is Action.HOLD:
            return None
        if action is Action.BUY:
            return Side.BUY, signal.quantity or self.default_quantity
        if action is Action.SELL:
            quantity = signal.quantity or held
            if quantity <= 0:
                raise Denied(f"nothing to sell: no long position in {signal.symbol}")
            return Side.SELL, quantity
        if held == 0:
            raise Denied(f"nothing to close: no position in {signal.symbol}")
        return (Side.SELL, held) if held > 0 else (Side.BUY, -held)

    def order_request(
        self, signal: Signal, side: Side, quantity: Decimal, last_price: Decimal | None,
    ) -> OrderRequest:
        """The order of a sized signal, with the signal's terms.

        Raises:
            Denied: its estimated value exceeds `max_order_value`.
        """
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


SignalValidator = Callable[[Signal, Decimal | None], "str | None"]
"""A check of a well-formed signal, given the symbol's last price: the reason it is refused, or
None. Signals reach validators already coerced: action known, quantities and prices positive,
confidence normalised to 0..1 (see signals.py)."""

VALIDATOR_ENTRY_POINT_GROUP = "runner.validators"


def standard_validator(signal: Signal, last_price: Decimal | None) -> str | None:
    """Prices fit the order type, and a stop-loss and take-profit lie on the right sides of the
    entry (the limit price, else the last price): below and above for a buy, the mirror for a
    sell."""
    problem = price_problem(signal.order_type, signal.limit_price, signal.stop_price)
    if problem or signal.action not in (Action.BUY, Action.SELL):
        return problem
    entry = entry_price(signal.order_type, signal.limit_price, signal.stop_price, last_price)
    if entry is None or (signal.stop_loss is None and signal.take_profit is None):
        return None
    side = Side.BUY if signal.action is Action.BUY else Side.SELL
    return bracket_problem(side, entry, signal.stop_loss, signal.take_profit)


def no_validation(signal: Signal, last_price: Decimal | None) -> str | None:
    """Accept every well-formed signal (the broker still refuses impossible orders)."""
    return None


BUILT_IN_VALIDATORS: dict[str, SignalValidator] = {"standard": standard_validator, "none": no_validation}


def validators() -> dict[str, SignalValidator | EntryPoint]:
    """Every signal validator by name: the built-ins, then those installed packages register
    under the entry-point group `runner.validators`."""
    found: dict[str, SignalValidator | EntryPoint] = dict(BUILT_IN_VALIDATORS)
    for point in entry_points(group=VALIDATOR_ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


def signal_validator(name: str) -> SignalValidator:
    """The validator called `name`.

    Raises:
        KeyError: no validator has that name (the message lists the known ones).
    """
    found = validators().get(name)
    if found is None:
        raise KeyError(f"unknown validator {name!r}; known validators: {', '.join(sorted(validators()))}")
    return found.load() if isinstance(found, EntryPoint) else found
