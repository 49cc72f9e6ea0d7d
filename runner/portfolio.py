"""Cash and positions per (strategy, symbol), with average cost and realised P&L.

The portfolio is owned by the loop thread. Positions are kept signed (negative when short);
the average cost excludes commissions, which are summed apart as fees. Cash is one shared
pool, except for strategies given an `allocation`: each of those trades from its own pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from runner.domain import ZERO, Fill, MarketData, Position, Side

SHARED = ""  # the pool of every strategy without an allocation of its own


class _Holding:
    __slots__ = ("quantity", "average_cost", "realized_pnl", "fees")

    def __init__(self) -> None:
        self.quantity = ZERO
        self.average_cost = ZERO
        self.realized_pnl = ZERO
        self.fees = ZERO

    def apply(self, signed_quantity: Decimal, price: Decimal, commission: Decimal) -> None:
        held = self.quantity
        self.fees += commission
        if held == 0 or (held > 0) == (signed_quantity > 0):
            total = held + signed_quantity
            self.average_cost = (self.average_cost * abs(held) + price * abs(signed_quantity)) / abs(total)
            self.quantity = total
            return
        closed = min(abs(held), abs(signed_quantity))
        direction = 1 if held > 0 else -1
        self.realized_pnl += (price - self.average_cost) * closed * direction
        remaining = held + signed_quantity
        if remaining == 0:
            self.average_cost = ZERO
        elif (remaining > 0) != (held > 0):
            self.average_cost = price  # the fill flipped the position; the new side opens here
        self.quantity = remaining


class Portfolio:
    """Cash pools and the holdings of every strategy; `equity` = cash + marked positions.

    Args:
        starting_cash: the account's cash at the start.
        allocations: strategy -> cash set aside for it alone; the rest is shared.
    """

    def __init__(self, starting_cash: Decimal, allocations: Mapping[str, Decimal] | None = None):
        allocations = {name: Decimal(amount) for name, amount in (allocations or {}).items()}
        self.starting_cash = Decimal(starting_cash)
        if sum(allocations.values(), ZERO) > self.starting_cash:
            raise ValueError("the allocations add up to more than the starting cash")
        self.cash = self.starting_cash
        self.pool_cash: dict[str, Decimal] = {
            SHARED: self.starting_cash - sum(allocations.values(), ZERO), **allocations,
        }
        self._starting_pools = dict(self.pool_cash)
        self.last_prices: dict[str, Decimal] = {}
        self._holdings: dict[tuple[str, str], _Holding] = {}

    def restore(self, fills: Iterable[Fill]) -> None:
        """Rebuild cash and positions from a run's recorded fills, in the order they were
        booked (a resumed run's books); the marks are kept."""
        self.cash = self.starting_cash
        self.pool_cash = dict(self._starting_pools)
        self._holdings = {}
        for fill in fills:
            self.apply_fill(fill)

    def pool(self, strategy: str) -> str:
        """The cash pool a strategy trades from."""
        return strategy if strategy in self.pool_cash else SHARED

    def cash_of(self, strategy: str) -> Decimal:
        """Cash of the pool `strategy` trades from."""
        return self.pool_cash[self.pool(strategy)]

    def apply_fill(self, fill: Fill) -> Position:
        """Book a fill: move cash, update the holding, and return the new position."""
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        flow = signed * fill.price + fill.commission
        self.cash -= flow
        self.pool_cash[self.pool(fill.strategy)] -= flow
        key = (fill.strategy, fill.symbol)
        holding = self._holdings.get(key)
        if holding is None:
            holding = self._holdings[key] = _Holding()
        holding.apply(signed, fill.price, fill.commission)
        self.last_prices.setdefault(fill.symbol, fill.price)
        return self.position(*key)

    def mark(self, market: MarketData) -> None:
        """Take each symbol's close in this step as its mark."""
        for symbol, bar in market.items():
            self.last_prices[symbol] = bar.close

    def quantity(self, strategy: str, symbol: str) -> Decimal:
        holding = self._holdings.get((strategy, symbol))
        return holding.quantity if holding else ZERO

    def symbol_quantity(self, symbol: str) -> Decimal:
        """The account's net position in `symbol`: every strategy's quantity added up."""
        return sum((h.quantity for (_, held), h in self._holdings.items() if held == symbol), ZERO)

    def gross_value(self, strategy: str) -> Decimal:
        """The value of a strategy's positions, long and short alike, at the last prices."""
        last = self.last_prices
        return sum(
            (abs(h.quantity) * last.get(symbol, ZERO) for (name, symbol), h in self._holdings.items()
             if name == strategy and h.quantity),
            ZERO,
        )

    def short_value(self, pool: str) -> Decimal:
        """Market value of the short positions of the strategies trading from `pool`."""
        last = self.last_prices
        return sum(
            (-h.quantity * last.get(symbol, ZERO) for (strategy, symbol), h in self._holdings.items()
             if h.quantity < 0 and self.pool(strategy) == pool),
            ZERO,
        )

    def position(self, strategy: str, symbol: str) -> Position:
        holding = self._holdings.get((strategy, symbol))
        last = self.last_prices.get(symbol, ZERO)
        if holding is None:
            return Position(strategy, symbol, last_price=last)
        return Position(
            strategy, symbol, holding.quantity, holding.average_cost,
            holding.realized_pnl, holding.fees, last,
        )

    def positions(self, strategy: str | None = None) -> list[Position]:
        """Every position ever held (flat ones included), optionally of one strategy."""
        return [
            self.position(*key) for key in self._holdings if strategy is None or key[0] == strategy
        ]

    def open_positions(self) -> list[Position]:
        """The positions that hold something now (a position is built only for those)."""
        return [self.position(*key) for key, h in self._holdings.items() if h.quantity]

    def market_value(self) -> Decimal:
        last = self.last_prices
        return sum(
            (h.quantity * last.get(key[1], ZERO) for key, h in self._holdings.items() if h.quantity),
            ZERO,
        )

    def equity(self) -> Decimal:
        return self.cash + self.market_value()

    def net_pnl_by_strategy(self, strategies: Iterable[str]) -> tuple[tuple[str, Decimal], ...]:
        """Each strategy's realised + unrealised - fees, in one pass over the holdings."""
        totals = dict.fromkeys(strategies, ZERO)
        last = self.last_prices
        for (strategy, symbol), h in self._holdings.items():
            if strategy in totals:
                unrealised = (last.get(symbol, ZERO) - h.average_cost) * h.quantity
                totals[strategy] += h.realized_pnl + unrealised - h.fees
        return tuple(totals.items())

    def valuation(self, strategies: Iterable[str]) -> tuple[Decimal, tuple[tuple[str, Decimal], ...], list[Position]]:
        """Equity, each strategy's net P&L and the open positions, in one pass over the holdings
        (what the loop records every `equity_every` steps; the same as `equity()`,
        `net_pnl_by_strategy()` and `open_positions()`)."""
        totals = dict.fromkeys(strategies, ZERO)
        last = self.last_prices
        value = ZERO
        open_positions = []
        for (strategy, symbol), h in self._holdings.items():
            price = last.get(symbol, ZERO)
            if h.quantity:
                value += h.quantity * price
                open_positions.append(Position(
                    strategy, symbol, h.quantity, h.average_cost, h.realized_pnl, h.fees, price,
                ))
            if strategy in totals:
                totals[strategy] += h.realized_pnl + (price - h.average_cost) * h.quantity - h.fees
        return self.cash + value, tuple(totals.items()), open_positions
