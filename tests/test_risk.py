"""The risk gate: sizing of signals without a quantity, and the order-value limit."""

import pytest

from runner.domain import Action, OrderType, Side, Signal, TimeInForce
from runner.risk import Denied, RiskGate
from tests.helpers import D

gate = RiskGate(default_quantity=D(3), max_order_value=D(10_000))


def test_buy_without_quantity_takes_the_default():
    request = gate.order_request(Signal("AAA", Action.BUY), held=D(0), last_price=D(100))
    assert (request.side, request.quantity) == (Side.BUY, D(3))


def test_sell_without_quantity_sells_the_whole_long_position():
    assert gate.order_request(Signal("AAA", Action.SELL), held=D(7), last_price=D(100)).quantity == D(7)


@pytest.mark.parametrize(("held", "side", "quantity"), [(D(7), Side.SELL, D(7)), (D(-4), Side.BUY, D(4))])
def test_close_flattens_either_side(held, side, quantity):
    request = gate.order_request(Signal("AAA", Action.CLOSE), held=held, last_price=D(100))
    assert (request.side, request.quantity) == (side, quantity)


def test_hold_makes_no_order():
    assert gate.order_request(Signal("AAA", Action.HOLD), held=D(0), last_price=D(100)) is None


@pytest.mark.parametrize(
    ("signal", "held", "reason"),
    [
        (Signal("AAA", Action.SELL), D(0), "nothing to sell: no long position in AAA"),
        (Signal("AAA", Action.CLOSE), D(0), "nothing to close: no position in AAA"),
        (Signal("AAA", Action.BUY, D(120)), D(0), "order value 12000.00 exceeds risk.max_order_value 10000"),
    ],
)
def test_denials_say_why(signal, held, reason):
    with pytest.raises(Denied) as denied:
        gate.order_request(signal, held=held, last_price=D(100))
    assert str(denied.value) == reason


def test_the_order_keeps_the_signals_terms():
    signal = Signal(
        "AAA", Action.BUY, D(2), OrderType.STOP_LIMIT, limit_price=D(101), stop_price=D(100),
        stop_loss=D(95), take_profit=D(110), reason="breakout", time_in_force=TimeInForce.DAY,
    )
    request = gate.order_request(signal, held=D(0), last_price=D(99))
    assert (request.order_type, request.limit_price, request.stop_price, request.stop_loss,
            request.take_profit, request.time_in_force, request.reason) == (
        OrderType.STOP_LIMIT, D(101), D(100), D(95), D(110), TimeInForce.DAY, "breakout")
