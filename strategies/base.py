"""What a strategy author writes against: `StrategyInterface`, `StrategyContext`, `Signal`.

A strategy declares its parameters as a pydantic model named `Params`, implements `on_tick`,
and may implement `on_start` and `on_stop`. Each hook runs behind the runner's guard: an
exception is recorded and counted, and after `max_errors` consecutive ones the strategy is
disabled while the others go on.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from runner.domain import Action, Bar, MarketData, OrderType, Position, Signal
from runner.history import BarHistory, HistoryStore

__all__ = [
    "Action", "Bar", "BarHistory", "MarketData", "NoParams", "OrderType", "Position", "Signal",
    "StrategyContext", "StrategyInterface", "StrategyParams",
]

SignalLike = Signal | dict[str, Any]


class StrategyParams(BaseModel):
    """Base of every strategy's `Params`: closed (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(StrategyParams):
    """Parameters of a strategy that takes none."""


class BookReader(Protocol):
    """The read side of the books that a context needs."""

    cash: Decimal

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
    ):
        self.name = name
        self.params = params
        self.symbols = tuple(symbols)
        self.interval = interval
        self.logger = logging.getLogger(f"runner.strategy.{name}")
        self._books = books
        self._history = history

    @property
    def cash(self) -> Decimal:
        """Cash available to the account (shared by all strategies)."""
        return self._books.cash

    def position(self, symbol: str) -> Position:
        """This strategy's position in `symbol` (quantity 0 when flat)."""
        return self._books.position(self.name, symbol)

    def positions(self) -> list[Position]:
        """This strategy's positions, flat ones included."""
        return self._books.positions(self.name)

    def history(self, symbol: str, count: int | None = None, interval: str | None = None) -> BarHistory:
        """The last `count` bars of `symbol` up to and including this step, oldest first.

        Bars are at this strategy's interval unless `interval` names another one the run
        builds. The arrays are read-only views; keep `history_size()` bars at most.
        """
        return self._history.bars(symbol, interval or self.interval, count)


class StrategyInterface(ABC):
    """Base class of every strategy.

    Subclasses set `Params` (a pydantic model with defaults, bounds and descriptions) and
    `description`, and implement `on_tick`. `history_size` says how many bars per symbol
    `context.history` must keep for this strategy.
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
