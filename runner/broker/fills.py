"""Fill prices and quantities on bar data: where and how much an eligible order executes.

An order submitted while handling bar t is first eligible on bar t+1. On that bar:

- market: at the open, moved against the trader by `slippage_bps`;
- limit buy: if low <= limit, at min(open, limit); limit sell: if high >= limit, at
  max(open, limit). With `limit_fill="through"` the price must trade beyond the limit
  (low < limit, high > limit); the default "touch" fills at the limit price itself;
- stop buy: if high >= stop, at max(open, stop) plus slippage; stop sell: if low <= stop, at
  min(open, stop) minus slippage;
- stop-limit: once the stop is reached (as for a stop order) it works as a limit order, on
  that same bar from the price where it triggered, and on later bars like any limit order.

No fill price lies outside the bar's [low, high]. With `max_volume_participation` an order
fills at most that share of the bar's volume (rounded down to the order quantity's decimals);
the rest keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from runner.domain import Bar, Order, OrderType, Side

_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class FillDecision:
    """The outcome of one order on one bar: a price (None: no fill) and whether a stop-limit
    order's stop triggered on this bar."""

    price: Decimal | None
    triggered: bool = False


NO_FILL = FillDecision(None)


class BarFillModel:
    """The documented fill rules for bar data.

    Args:
        slippage_bps: basis points market and stop fills move against the trader.
        limit_fill: "touch" (a limit order fills when the price reaches the limit) or
            "through" (the price must trade beyond it).
        max_volume_participation: at most this share of a bar's volume per order and bar;
            None for no cap (whole orders fill).
    """

    def __init__(
        self, slippage_bps: Decimal = Decimal(0), limit_fill: str = "touch",
        max_volume_participation: Decimal | None = None,
    ):
        self.slippage_bps = Decimal(slippage_bps)
        self.limit_fill = limit_fill
        self.max_volume_participation = max_volume_participation
        self._up = 1 + self.slippage_bps / _BPS
        self._down = 1 - self.slippage_bps / _BPS

    def slipped(self, side: Side, price: Decimal) -> Decimal:
        """Move `price` against the trader by the configured slippage."""
        return price * (self._up if side is Side.BUY else self._down)

    def decide(self, order: Order, bar: Bar) -> FillDecision:
        """Where `order` fills on `bar`, if it does."""
        kind = order.order_type
        if kind is OrderType.MARKET:
            return FillDecision(_within(self.slipped(order.side, bar.open), bar))
        if kind is OrderType.LIMIT:
            return FillDecision(self._limit_price(order.side, order.limit_price, bar.open, bar))
        triggered = order.triggered or _reaches(order.side, order.stop_price, bar)
        if not triggered:
            return NO_FILL
        buy = order.side is Side.BUY
        if kind is OrderType.STOP:
            start = max(bar.open, order.stop_price) if buy else min(bar.open, order.stop_price)
            return FillDecision(_within(self.slipped(order.side, start), bar))
        start = bar.open
        if not order.triggered:  # triggered on this bar: the limit works from the stop on
            start = max(bar.open, order.stop_price) if buy else min(bar.open, order.stop_price)
        return FillDecision(self._limit_price(order.side, order.limit_price, start, bar), triggered=True)

    def quantity(self, order: Order, bar: Bar) -> Decimal:
        """How much of `order` may fill on `bar` (all that remains, unless volume caps it)."""
        remaining = order.remaining
        if self.max_volume_participation is None:
            return remaining
        cap = bar.volume * self.max_volume_participation
        step = Decimal(1).scaleb(min(order.quantity.as_tuple().exponent, 0))
        return min(remaining, cap.quantize(step, rounding=ROUND_FLOOR))

    def _limit_price(self, side: Side, limit: Decimal, start: Decimal, bar: Bar) -> Decimal | None:
        if side is Side.BUY:
            if start <= limit:
                return start
            reached = bar.low < limit if self.limit_fill == "through" else bar.low <= limit
        else:
            if start >= limit:
                return start
            reached = bar.high > limit if self.limit_fill == "through" else bar.high >= limit
        return limit if reached else None


def _reaches(side: Side, stop: Decimal, bar: Bar) -> bool:
    return bar.high >= stop if side is Side.BUY else bar.low <= stop


def _within(price: Decimal, bar: Bar) -> Decimal:
    return min(max(price, bar.low), bar.high)
