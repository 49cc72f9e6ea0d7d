"""The risk gate: sizing of signals without a quantity, and the order-value limit."""

import pytest

from runner.domain import Action, OrderType, Side, Signal, TimeInForce
from runner.risk import Denied, RiskGate
from tests.helpers import D

gate = RiskGate(default_quantity=D(3), max_order_value=D(10_000))


def test_buy_without_quantity_takes_the_default():
    assert gate.size(Signal("AAA", Action.BUY), held=D(0)) == (Side.BUY, D(3))


def test_sell_without_quantity_sells_the_whole_long_position():
    assert gate.size(Signal("AAA", Action.SELL), held=D(7)) == (Side.SELL, D(7))


@pytest.mark.parametrize(("held", "side", "quantity"), [(D(7), Side.SELL, D(7)), (D(-4), Side.BUY, D(4))])
def test_close_flattens_either_side(held, side, quantity):
    assert gate.size(Signal("AAA", Action.CLOSE), held=held) == (side, quantity)


def test_hold_makes_no_order():
    assert gate.size(Signal("AAA", Action.HOLD), held=D(0)) is None


@pytest.mark.parametrize(
    ("signal", "held", "reason"),
    [
        (Signal("AAA", Action.SELL), D(0), "nothing to sell: no long position in AAA"),
        (Signal("AAA", Action.CLOSE), D(0), "nothing to close: no position in AAA"),
    ],
)
def test_sizing_denials_say_why(signal, held, reason):
    with pytest.raises(Denied) as denied:
        gate.size(signal, held=held)
    assert str(denied.value) == reason
    assert denied.value.rule == ""


def test_order_value_limit():
    with pytest.raises(Denied, match=r"^order value 12000.00 exceeds risk.max_order_value 10000$"):
        gate.order_request(Signal("AAA", Action.BUY, D(120)), Side.BUY, D(120), last_price=D(100))


def test_the_order_keeps_the_signals_terms():
    signal = Signal(
        "AAA", Action.BUY, D(2), OrderType.STOP_LIMIT, limit_price=D(101), stop_price=D(100),
        stop_loss=D(95), take_profit=D(110), reason="breakout", time_in_force=TimeInForce.DAY,
    )
    request = gate.order_request(signal, *gate.size(signal, held=D(0)), last_price=D(99))
    assert (request.side, request.quantity, request.order_type, request.limit_price, request.stop_price,
            request.stop_loss, request.take_profit, request.time_in_force, request.reason) == (
        Side.BUY, D(2), OrderType.STOP_LIMIT, D(101), D(100), D(95), D(110), TimeInForce.DAY, "breakout")
