"""Value objects shared by every layer: bars, market data, signals, orders, fills, positions.

Everything here is immutable and stdlib-only. Ledger amounts (prices, quantities, cash, fees)
are `Decimal` so that the books are exact; see ARCHITECTURE.md, "Money".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import NamedTuple

ZERO = Decimal(0)


class Action(str, Enum):
    """What a strategy asks for on one symbol."""

    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"
    CLOSE = "CLOSE"


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(str, Enum):
    """How long an order works: until cancelled, until the end of its day, or one bar only."""

    GTC = "GTC"
    DAY = "DAY"
    IOC = "IOC"


class OrderStatus(str, Enum):
    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class Bar(NamedTuple):
    """One closed OHLCV candle; `timestamp` is the UTC open time of its interval.

    Fields read as attributes or as keys (`bar.close == bar["close"]`); `price` is `close`.
    A named tuple rather than a frozen dataclass: one is made for every bar of a replay, and a
    tuple is built in one step where a frozen dataclass sets each field through
    `object.__setattr__` (about 2.5 times as long).
    """

    symbol: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def price(self) -> Decimal:
        return self.close

    def __getitem__(self, key):
        if type(key) is str:
            if key in _BAR_KEYS:
                return getattr(self, key)
            raise KeyError(key)
        return tuple.__getitem__(self, key)


_BAR_KEYS = frozenset({"symbol", "timestamp", "open", "high", "low", "close", "volume", "price"})


class MarketData(Mapping[str, Bar]):
    """A read-only view of one step: symbol -> latest bar, plus the step's time and interval.

    With several symbols, a symbol without a bar at this step keeps its latest earlier bar;
    `fresh` lists, in order, the symbols whose bar is new in this step (`is_fresh(symbol)`).
    """

    __slots__ = ("_bars", "timestamp", "interval", "fresh")

    def __init__(
        self, timestamp: datetime, interval: str, bars: Mapping[str, Bar],
        fresh: tuple[str, ...] | None = None,
    ):
        self._bars = bars
        self.timestamp = timestamp
        self.interval = interval
        self.fresh = tuple(bars) if fresh is None else fresh

    def is_fresh(self, symbol: str) -> bool:
        return symbol in self.fresh

    def __getitem__(self, symbol: str) -> Bar:
        return self._bars[symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bars)

    def __len__(self) -> int:
        return len(self._bars)

    # The mapping's read methods go straight to the dict (the Mapping mixins cost a view object
    # and a Python-level iteration each, on every step); dict views cannot change the dict.
    def get(self, symbol: str, default: Bar | None = None) -> Bar | None:
        return self._bars.get(symbol, default)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._bars

    def keys(self):
        return self._bars.keys()

    def values(self):
        return self._bars.values()

    def items(self):
        return self._bars.items()

    def __repr__(self) -> str:
        return f"MarketData({self.timestamp.isoformat()}, {self.interval}, {sorted(self._bars)})"


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's request: an action on a symbol, optionally with a quantity and a reason.

    Missing quantities are sized by the runner: BUY takes `risk.default_quantity`, SELL and
    CLOSE take the whole position. `confidence` is in [0, 1].
    """

    symbol: str
    action: Action
    quantity: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    confidence: float | None = None
    reason: str = ""
    time_in_force: TimeInForce = TimeInForce.GTC


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A sized order to submit: what a signal becomes once it passes the risk gate.

    `stop_loss` / `take_profit` make it the parent of a bracket: when it fills, a stop order
    and a limit order that cancel each other (OCO) close the position.
    """

    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the broker knows it at one moment; a status change makes a new value.

    `parent_id` links a bracket's stop-loss and take-profit legs to their entry order, and
    `sibling_id` each leg to the other one it cancels (OCO). `triggered` tells that a
    stop-limit order's stop was reached and it now works as a limit order.
    """

    id: int
    strategy: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    created_at: datetime
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    average_price: Decimal | None = None
    reason: str = ""
    updated_at: datetime | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    parent_id: int | None = None
    sibling_id: int | None = None
    triggered: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_working(self) -> bool:
        return self.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order."""

    id: int
    order_id: int
    strategy: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    timestamp: datetime

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class Position:
    """A strategy's holding in one symbol; `quantity` is negative when short.

    `average_cost` excludes commissions; fees are kept apart in `fees`, so
    net P&L = realized_pnl + unrealized_pnl - fees.
    """

    strategy: str
    symbol: str
    quantity: Decimal = ZERO
    average_cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    last_price: Decimal = ZERO

    @property
    def market_value(self) -> Decimal:
        return self.quantity * self.last_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return (self.last_price - self.average_cost) * self.quantity

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl - self.fees
