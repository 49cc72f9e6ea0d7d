"""Commission models.

A commission is charged per order: per_share x quantity + percent of notional + per_order, at
least `minimum`, and at most `maximum_percent` of the notional when that is set. An order
that fills in parts pays, on each fill, what that fill adds to its order's commission, so the
flat fee and the minimum are charged once per order, not once per fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from runner.domain import ZERO, Order

if TYPE_CHECKING:
    from runner.config import BrokerConfig, CommissionConfig

_PERCENT = Decimal(100)


class CommissionModel:
    """The commission of one order, from its filled quantity and notional."""

    def __init__(
        self, per_share: Decimal = ZERO, percent: Decimal = ZERO,
        per_order: Decimal = ZERO, minimum: Decimal = ZERO, maximum_percent: Decimal | None = None,
    ):
        self.per_share = Decimal(per_share)
        self.rate = Decimal(percent) / _PERCENT
        self.per_order = Decimal(per_order)
        self.minimum = Decimal(minimum)
        self.maximum_rate = None if maximum_percent is None else Decimal(maximum_percent) / _PERCENT

    def order_commission(self, quantity: Decimal, notional: Decimal) -> Decimal:
        """The whole commission of an order that has filled `quantity` for `notional`."""
        if quantity == 0:
            return ZERO
        fee = max(self.per_share * quantity + self.rate * notional + self.per_order, self.minimum)
        if self.maximum_rate is not None:
            fee = min(fee, self.maximum_rate * notional)
        return fee

    def commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        """The commission of a whole order filled at once."""
        return self.order_commission(quantity, quantity * price)


class FeeSchedule:
    """The commission model of each symbol: a default, overridden for some symbols."""

    def __init__(self, default: CommissionModel, overrides: Mapping[str, CommissionModel] | None = None):
        self.default = default
        self.overrides = dict(overrides or {})

    def model(self, symbol: str) -> CommissionModel:
        return self.overrides.get(symbol, self.default)

    def fill_commission(self, order: Order, quantity: Decimal, price: Decimal) -> Decimal:
        """What a fill of `quantity` at `price` adds to its order's commission."""
        model = self.model(order.symbol)
        before_quantity, before_notional = order.filled_quantity, order.filled_notional
        after = model.order_commission(before_quantity + quantity, before_notional + quantity * price)
        return after - model.order_commission(before_quantity, before_notional)


def fee_schedule(settings: BrokerConfig) -> FeeSchedule:
    """The fee schedule of a broker config: its commission, and per symbol its overrides."""
    return FeeSchedule(
        _commission_model(settings.commission),
        {symbol: _commission_model(settings.commission_for(symbol)) for symbol in settings.commission_by_symbol},
    )


def _commission_model(settings: CommissionConfig) -> CommissionModel:
    return CommissionModel(
        settings.per_share, settings.percent, settings.per_order, settings.minimum, settings.maximum_percent,
    )
