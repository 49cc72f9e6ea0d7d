"""What a strategy author writes against: `StrategyInterface`, `StrategyContext`, `Signal`.

A strategy declares its parameters as a pydantic model named `Params`, implements `on_tick`,
and may implement `on_start` and `on_stop`. Each hook runs behind the runner's guard: an
exception is recorded and counted, and after `max_errors` consecutive ones the strategy is
disabled while the others go on.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque
from contextlib import AbstractContextManager
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from runner.domain import Action, Bar, MarketData, Order, OrderType, Position, Signal, TimeInForce
from runner.history import BarHistory, HistoryStore
from runner.signals import positive_number

__all__ = [
    "Action", "Bar", "BarHistory", "MarketData", "NoParams", "Order", "OrderType", "Position",
    "Signal", "StrategyContext", "StrategyInterface", "StrategyParams", "TimeInForce",
]

SignalLike = Signal | dict[str, Any]


class StrategyParams(BaseModel):
    """Base of every strategy's `Params`: closed (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(StrategyParams):
    """Parameters of a strategy that takes none."""


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A request a strategy made (cancel or modify an order, add a symbol); the runner carries
    it out after the hook."""

    action: str  # "cancel", "modify" or "add_symbol"
    order_id: int = 0
    changes: dict[str, Any] = field(default_factory=dict)  # new order terms, or the symbol's spec
    symbol: str = ""

    def __str__(self) -> str:
        terms = ", ".join(f"{key}={value}" for key, value in self.changes.items())
        subject = f"symbol {self.symbol}" if self.symbol else f"order {self.order_id}"
        return f"{self.action} {subject}" + (f" ({terms})" if terms else "")


class BookReader(Protocol):
    """The read side of the books that a context needs."""

    def cash_of(self, strategy: str) -> Decimal: ...

    def position(self, strategy: str, symbol: str) -> Position: ...

    def positions(self, strategy: str | None = None) -> list[Position]: ...


class StrategyContext:
    """Everything a strategy may read: its name, params, symbols, positions, cash, history.

    Every read returns a value (a frozen `Position`, a `Decimal`, read-only arrays), never a
    live object of the runner.
    """

    def __init__(
        self, name: str, params: BaseModel, symbols: Sequence[str], books: BookReader,
        history: HistoryStore, interval: str = "",
        working_orders: Callable[[str], list[Order]] = lambda name: [], base_dir: Path | None = None,
        books_lock: AbstractContextManager | None = None,
    ):
        self.name = name
        self.base_dir = base_dir or Path.cwd()  # the config file's folder: for relative paths
        self.params = params
        self.symbols = tuple(symbols)
        self.interval = interval
        self.logger = logging.getLogger(f"runner.strategy.{name}")
        self._books = books
        self._history = history
        self._working_orders = working_orders
        self._lock = books_lock  # held while reading, when the strategy runs beside the loop
        self._requests: deque[OrderChange] = deque()  # a threaded strategy adds while the loop takes

    @property
    def cash(self) -> Decimal:
        """Cash this strategy trades from: its own allocation, or the shared pool."""
        return self._read(self._books.cash_of, self.name)

    def orders(self) -> list[Order]:
        """This strategy's working orders (id, status, filled quantity, prices), oldest first."""
        return self._read(self._working_orders, self.name)

    def cancel(self, order_id: int) -> None:
        """Ask to cancel a working order; done when the current hook returns. A refusal (the
        order already filled, say) is recorded as a rejected request.

        Raises:
            TypeError: `order_id` is not an order id (an int).
        """
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise TypeError(f"an order id is an int, got {order_id!r}")
        self._requests.append(OrderChange("cancel", order_id))

    def modify(
        self, order_id: int, *, quantity: Decimal | None = None, limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        """Ask to change a working order's quantity or prices (it keeps its id); done when the
        current hook returns, effective from the next bar.

        Raises:
            TypeError, ValueError: the id is not an int, or a value is not a positive number.
        """
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise TypeError(f"an order id is an int, got {order_id!r}")
        terms = (("quantity", quantity), ("limit_price", limit_price), ("stop_price", stop_price))
        changes = {key: positive_number(value, key) for key, value in terms if value is not None}
        self._requests.append(OrderChange("modify", order_id, changes))

    def _read(self, read: Callable[..., Any], *args: Any) -> Any:
        """Read the books; between the loop's steps when the strategy runs beside the loop (the
        values it gets are then those of the latest finished step)."""
        if self._lock is None:
            return read(*args)
        with self._lock:
            return read(*args)

    def add_symbol(self, symbol: str, **spec: Any) -> None:
        """Ask the runner to trade `symbol` from the next step, as a scanner would; this
        strategy subscribes to it and is told through `on_symbol_added`. `spec` describes a
        synthetic symbol (start_price, drift, volatility). A refusal (a feed that cannot add
        symbols, a bad spec) is recorded as a rejected request.

        Raises:
            TypeError: `symbol` is not a non-empty string.
        """
        if not isinstance(symbol, str) or not symbol.strip():
            raise TypeError(f"a symbol is a non-empty string, got {symbol!r}")
        self._requests.append(OrderChange("add_symbol", changes=dict(spec), symbol=symbol.strip()))

    def take_requests(self) -> list[OrderChange]:
        """Hand the pending requests to the runner (called by the runner)."""
        requests = []
        while self._requests:
            requests.append(self._requests.popleft())
        return requests

    def position(self, symbol: str) -> Position:
        """This strategy's position in `symbol` (quantity 0 when flat)."""
        return self._read(self._books.position, self.name, symbol)

    def positions(self) -> list[Position]:
        """This strategy's positions, flat ones included."""
        return self._read(self._books.positions, self.name)

    def history(self, symbol: str, count: int | None = None, interval: str | None = None) -> BarHistory:
        """The last `count` bars of `symbol` up to and including this step, oldest first.

        Bars are at this strategy's interval unless `interval` names another one the run
        builds. Up to `history_size()` bars are kept; the arrays are the caller's own copy.
        """
        return self._read(self._history.bars, symbol, interval or self.interval, count)


class StrategyInterface(ABC):
    """Base class of every strategy.

    Subclasses set `Params` (a pydantic model with defaults, bounds and descriptions) and
    `description`, and implement `on_tick`. `history_size` says how many bars per symbol
    `context.history` must keep for this strategy.

    Optional hooks, called only when a strategy defines them:
        on_fill(fill): after each fill of one of its orders.
        on_order_rejected(order): when one of its orders is rejected, with the reason in
            `order.reason`.
    """

    Params: ClassVar[type[StrategyParams]] = NoParams
    description: ClassVar[str] = ""

    def __init__(self, context: StrategyContext):
        self.context = context
        self.params = context.params

    def history_size(self) -> int:
        """Bars per symbol this strategy reads through `context.history`; 0 when none."""
        return 0

    def on_start(self) -> None:
        """Called once in the loop thread before the first step."""

    @abstractmethod
    def on_tick(self, market_data: MarketData) -> Sequence[SignalLike] | None:
        """Called on every step that brings a new bar (at this strategy's interval) of one of
        its symbols, with the latest bar of each; `market_data.fresh` names the new ones.

        Return signals (`Signal` objects or dicts with the same keys), or None. Orders made from
        them are first eligible on the next step.
        """

    def on_stop(self) -> Sequence[SignalLike] | None:
        """Called once when the run stops. Signals returned here are filled at the last price."""
        return None
