"""Commission models."""

from __future__ import annotations

from decimal import Decimal

from runner.domain import ZERO

_PERCENT = Decimal(100)


class CommissionModel:
    """per_share x quantity + percent of notional + per_order, and never less than `minimum`."""

    def __init__(
        self, per_share: Decimal = ZERO, percent: Decimal = ZERO,
        per_order: Decimal = ZERO, minimum: Decimal = ZERO,
    ):
        self.per_share = Decimal(per_share)
        self.rate = Decimal(percent) / _PERCENT
        self.per_order = Decimal(per_order)
        self.minimum = Decimal(minimum)

    def commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        fee = self.per_share * quantity + self.rate * quantity * price + self.per_order
        return max(fee, self.minimum)
