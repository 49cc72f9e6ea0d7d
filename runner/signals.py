"""Turning what a strategy returns into `Signal` values, with a clear reason when it is malformed."""

from __future__ import annotations

import numbers
from decimal import Decimal, InvalidOperation
from typing import Any

from runner.domain import Action, OrderType, Signal, TimeInForce

_SIGNAL_KEYS = (
    "symbol", "action", "quantity", "order_type", "limit_price", "stop_price",
    "stop_loss", "take_profit", "confidence", "reason", "time_in_force",
)
_PRICE_KEYS = ("limit_price", "stop_price", "stop_loss", "take_profit")


LARGEST = Decimal("1e15")  # no quantity or price of a paper account is this large


class SignalError(ValueError):
    """A strategy emitted something that is not a valid signal; the message says why."""


def coerce_signal(raw: Any) -> Signal:
    """Return `raw` as a validated `Signal`; accepts a `Signal` or a dict with the same keys.

    A confidence above 1 is read as a percentage (0..100) and divided by 100.

    Raises:
        SignalError: a key is unknown, a value has the wrong type or lies out of range.
    """
    if isinstance(raw, Signal):
        data = {key: getattr(raw, key) for key in _SIGNAL_KEYS}
    elif isinstance(raw, dict):
        unknown = sorted((key for key in raw if key not in _SIGNAL_KEYS), key=repr)  # keys of any kind
        if unknown:
            raise SignalError(
                f"unknown signal key(s) {', '.join(map(repr, unknown))}; "
                f"expected: {', '.join(_SIGNAL_KEYS)}"
            )
        data = dict(raw)
    else:
        raise SignalError(f"a signal must be a Signal or a dict, got {type(raw).__name__}")

    symbol = data.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise SignalError(f"symbol must be a non-empty string, got {symbol!r}")
    return Signal(
        symbol=symbol,
        action=_choice(Action, data.get("action"), "action"),
        quantity=_positive(data.get("quantity"), "quantity"),
        order_type=_choice(OrderType, _given(data, "order_type", OrderType.MARKET), "order_type"),
        **{key: _positive(data.get(key), key) for key in _PRICE_KEYS},
        confidence=_confidence(data.get("confidence")),
        reason="" if data.get("reason") is None else str(data["reason"]),
        time_in_force=_choice(TimeInForce, _given(data, "time_in_force", TimeInForce.GTC), "time_in_force"),
    )


def _given(data: dict, key: str, default: Any) -> Any:
    """The value of `key`, or `default` when it is missing or None (0 and False are values)."""
    value = data.get(key)
    return default if value is None else value


def _choice(enum: type, value: Any, key: str):
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        try:
            return enum(value.strip().upper())
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in enum)
    raise SignalError(f"{key} must be one of {allowed}, got {_show(value)}")


def positive_number(value: Any, key: str) -> Decimal:
    """`value` as a positive, finite Decimal below 1e15.

    Raises:
        SignalError: it is not one; the message names `key`.
    """
    number = _positive(value, key)
    if number is None:
        raise SignalError(f"{key} must be a number > 0, got None")
    return number


def _positive(value: Any, key: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise SignalError(f"{key} must be a number > 0, got {_show(value)}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise SignalError(f"{key} must be a number > 0, got {_show(value)}") from None
    if not number.is_finite() or number <= 0:
        raise SignalError(f"{key} must be a number > 0, got {_show(value)}")
    if number >= LARGEST:
        raise SignalError(f"{key} must be below 1e15, got {_show(value)[:40]}")
    return number


def _confidence(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise SignalError(f"confidence must be a number in 0..1 (or 0..100), got {_show(value)}")
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int beyond floats, a signalling NaN
        raise SignalError(f"confidence must be a number in 0..1 (or 0..100), got {_show(value)[:40]}") from None
    if number > 1:
        number /= 100
    if not 0 <= number <= 1:
        raise SignalError(f"confidence must be a number in 0..1 (or 0..100), got {_show(value)}")
    return number


def _show(value: Any) -> str:
    """Numbers as written (-1, 0.5), anything else as its repr ('lots', None)."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)
    return repr(value)
