"""Signal coercion: objects and dicts accepted, malformed ones refused with the reason."""

from decimal import Decimal

import pytest

from runner.domain import Action, OrderType, Signal
from runner.signals import SignalError, coerce_signal


def test_dict_becomes_a_signal():
    signal = coerce_signal({"symbol": "AAA", "action": "buy", "quantity": 5, "confidence": 80, "reason": "x"})
    assert signal == Signal("AAA", Action.BUY, Decimal(5), confidence=0.8, reason="x")


def test_signal_object_passes_through_validation():
    assert coerce_signal(Signal("AAA", Action.SELL)).action is Action.SELL
    with pytest.raises(SignalError, match="quantity must be a number > 0, got -1"):
        coerce_signal(Signal("AAA", Action.SELL, Decimal(-1)))


def test_float_quantities_are_read_as_written():
    assert coerce_signal({"symbol": "A", "action": "BUY", "quantity": 0.1}).quantity == Decimal("0.1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("BUY AAA", "a signal must be a Signal or a dict, got str"),
        ({"action": "BUY"}, "symbol must be a non-empty string, got None"),
        ({"symbol": "A", "action": "BUYY"}, "action must be one of BUY, SELL, HOLD, CLOSE, got 'BUYY'"),
        ({"symbol": "A", "action": "BUY", "qty": 1}, "unknown signal key(s) 'qty'"),
        ({"symbol": "A", "action": "BUY", "quantity": "lots"}, "quantity must be a number > 0, got 'lots'"),
        ({"symbol": "A", "action": "BUY", "quantity": True}, "quantity must be a number > 0"),
        ({"symbol": "A", "action": "BUY", "order_type": "iceberg"}, "order_type must be one of MARKET, LIMIT"),
        ({"symbol": "A", "action": "BUY", "limit_price": 0}, "limit_price must be a number > 0, got 0"),
        ({"symbol": "A", "action": "BUY", "confidence": 150}, "confidence must be a number in 0..1"),
        ({"symbol": "A", "action": "BUY", "confidence": "high"}, "confidence must be a number in 0..1"),
        ({"symbol": "A", "action": "BUY", "quantity": float("nan")}, "quantity must be a number > 0"),
    ],
)
def test_malformed_signals_say_why(raw, message):
    with pytest.raises(SignalError) as caught:
        coerce_signal(raw)
    assert message in str(caught.value)


def test_order_type_is_read_case_insensitively():
    assert coerce_signal({"symbol": "A", "action": "BUY", "order_type": "limit"}).order_type is OrderType.LIMIT
