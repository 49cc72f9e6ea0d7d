"""Reconciling a recorded run's books: orders, fills, positions, cash, equity and commissions.

`audit_run(engine, run_id)` reads a run's records in one read transaction (a run still being
written is seen as of its latest commit) and returns every discrepancy found: an empty list
means the records agree with each other. `audit_report` returns the same with what was
checked and what could not be. Every comparison is exact (`Decimal`): the books are rebuilt
with the code that kept them (`Portfolio` for positions and cash, the run's fee schedule for
commissions), in the order the broker applied the fills.

The checks, each a small function below:

- fill_order: every fill's order exists, with the fill's strategy, symbol and side, and was
  created no later than the fill.
- fill_values: every fill has a positive quantity and price, a commission >= 0, and a side
  BUY or SELL.
- order_fills: an order's filled quantity is the sum of its fills' quantities, and its average
  price the quantity-weighted mean of their prices (none without fills).
- overfill: an order's fills add up to no more than its quantity.
- order_status: the status agrees with the filled quantity: NEW and ACCEPTED have filled
  nothing, PARTIALLY_FILLED some but not all, FILLED all; CANCELLED, REJECTED and EXPIRED
  less than all (an order may be cancelled, rejected at a later fill or expire after a
  partial fill).
- order_history: every order has order_events that start with NEW, move only along the
  broker's transitions and end with its current status; no event names an unknown order.
- working_orders: a run that has ended (completed, stopped, failed) leaves no order NEW,
  ACCEPTED or PARTIALLY_FILLED (the broker cancels what still works when a run stops).
- positions: every position row (quantity, average cost, realised P&L, fees) equals the
  replay of the fills through `Portfolio`, and every replayed position has a row.
- cash: the cash of every equity snapshot equals the starting cash (from the run's config,
  else its summary) less the cash flows of the fills up to the snapshot's time
  (quantity x price, bought or sold, plus commission).
- equity: the last snapshot's equity equals the replayed cash plus each open replayed
  position's quantity x its mark, the mark being the position rows' last price. The rows
  carry the marks of the last snapshot when no fill is later than it (always so once a run
  has ended, as its final snapshot follows the closing fills); otherwise this check waits.
  Earlier snapshots are checked for cash only: their marks are not stored.
- strategy_pnl: at the last snapshot (same condition), each strategy's recorded net P&L
  equals realised + unrealised - fees of its replayed positions at those marks.
- commission: every fill's commission is what the run's fee schedule (from its config) adds
  to its order's commission for that fill.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from runner.broker.fees import FeeSchedule, fee_schedule
from runner.config import RunnerConfig, load_config_text
from runner.domain import ZERO, OrderStatus
from runner.errors import ConfigError
from runner.portfolio import Portfolio
from runner.storage import queries
from runner.storage.convert import fill_of
from runner.storage.models import EquityRecord, FillRecord, OrderRecord, RunRecord
from runner.storage.queries import RunBooks

ENDED = ("completed", "stopped", "failed")
WORKING = (OrderStatus.NEW.value, OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value)
_TERMINAL = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
_ENDINGS = (OrderStatus.PARTIALLY_FILLED, *_TERMINAL)
NEXT_STATUSES: dict[str, frozenset[str]] = {
    status.value: frozenset(s.value for s in following) for status, following in {
        OrderStatus.NEW: (OrderStatus.ACCEPTED, OrderStatus.REJECTED),
        OrderStatus.ACCEPTED: (OrderStatus.ACCEPTED, *_ENDINGS),  # ACCEPTED again: modified or resized
        OrderStatus.PARTIALLY_FILLED: _ENDINGS,
        **{status: () for status in _TERMINAL},
    }.items()
}
"""The statuses an order may reach from each status (order_events, in order)."""

_NOTHING_FILLED = ("nothing filled", lambda filled, quantity: filled == 0)
_LESS_THAN_ALL = ("filled < quantity", lambda filled, quantity: filled < quantity)
STATUS_RULES = {
    "NEW": _NOTHING_FILLED,
    "ACCEPTED": _NOTHING_FILLED,
    "PARTIALLY_FILLED": ("0 < filled < quantity", lambda filled, quantity: 0 < filled < quantity),
    "FILLED": ("filled == quantity", lambda filled, quantity: filled == quantity),
    "CANCELLED": _LESS_THAN_ALL,  # after a partial fill, or none
    "REJECTED": _LESS_THAN_ALL,  # refused at a later fill (cash), after a partial fill or none
    "EXPIRED": _LESS_THAN_ALL,
}
"""Per status: what the filled quantity must be, as words and as a test of (filled, quantity)."""


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One disagreement between records: which check found it, what differs, the value the
    other records imply (`expected`) and the one recorded (`found`), and the ids involved."""

    check: str
    what: str
    expected: str
    found: str
    orders: tuple[int, ...] = ()
    fills: tuple[int, ...] = ()
    position: tuple[str, str] | None = None  # (strategy, symbol)
    step: int | None = None  # of an equity snapshot

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["orders"], data["fills"] = list(self.orders), list(self.fills)
        data["position"] = None if self.position is None else {"strategy": self.position[0], "symbol": self.position[1]}
        return data


@dataclass(frozen=True)
class AuditReport:
    """What `audit_report` found in one run, and what it looked at."""

    run_id: str
    status: str  # the run's status; "running": the books as of the latest commit
    discrepancies: tuple[Discrepancy, ...]
    orders: int
    fills: int
    positions: int
    snapshots: int
    skipped: tuple[tuple[str, str], ...]  # (check, why it could not run)

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks that ran."""
        skipped = {check for check, _ in self.skipped}
        return tuple(check for check in CHECKS if check not in skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "status": self.status, "clean": self.clean,
            "checked": {"orders": self.orders, "fills": self.fills, "positions": self.positions,
                        "snapshots": self.snapshots},
            "checks": list(self.checks),
            "skipped": [{"check": check, "reason": why} for check, why in self.skipped],
            "discrepancies": [d.to_dict() for d in self.discrepancies],
        }


def audit_run(engine: Engine, run_id: str, *, fees: FeeSchedule | None = None) -> list[Discrepancy]:
    """Every discrepancy in the records of run `run_id`; empty when its books agree.

    Args:
        engine: the database.
        run_id: the run to audit.
        fees: the fee schedule to check commissions against; by default the one of the run's
            recorded config (a run built in Python records none: pass its schedule).

    Raises:
        ConfigError: there is no such run, or a record holds a value that cannot be read.
    """
    return list(audit_report(engine, run_id, fees=fees).discrepancies)


def audit_report(engine: Engine, run_id: str, *, fees: FeeSchedule | None = None) -> AuditReport:
    """Audit a run as `audit_run` does; also say what was checked and what could not be."""
    try:
        books = queries.run_books(engine, run_id)
    except (ArithmeticError, ValueError) as exc:  # a ledger column holds text that is no number
        raise ConfigError(f"the records of run {run_id!r} cannot be read: {exc}") from None
    if books is None:
        raise ConfigError(f"no run {run_id!r} in the database")
    ledger = _Ledger(books, fees)
    found: list[Discrepancy] = []
    skipped: list[tuple[str, str]] = []
    for name, check in _CHECKS.items():
        outcome = check(ledger)
        if isinstance(outcome, str):
            skipped.append((name, outcome))
        else:
            found += outcome
    return AuditReport(
        books.run.id, books.run.status, tuple(found), len(books.orders), len(books.fills),
        len(books.positions), len(books.equity), tuple(skipped),
    )


def replay(
    fills: Iterable[FillRecord], starting_cash: Decimal, allocations: Mapping[str, Decimal] | None = None,
) -> Portfolio:
    """A fresh portfolio with the recorded fills applied in order: the books they imply.

    Raises:
        ValueError: a fill's side is neither BUY nor SELL.
    """
    portfolio = Portfolio(starting_cash, allocations)
    for row in fills:
        portfolio.apply_fill(fill_of(row))
    return portfolio


# --- what the checks share ------------------------------------------------------------------------


class _Ledger:
    """A run's records indexed for the checks, with its starting cash and fee schedule (from
    its recorded config, else the starting cash from its summary)."""

    def __init__(self, books: RunBooks, fees: FeeSchedule | None):
        self.books = books
        config, self.no_config = _config_of(books.run)
        self.fees = fees if fees is not None or config is None else fee_schedule(config.broker)
        self.starting_cash = config.broker.starting_cash if config is not None else _summary_cash(books.run)
        self.orders: dict[int, OrderRecord] = {order.order_id: order for order in books.orders}
        self.fills_of: dict[int, list[FillRecord]] = defaultdict(list)
        for fill in books.fills:
            self.fills_of[fill.order_id].append(fill)
        self.replayable = [fill for fill in books.fills if fill.side in ("BUY", "SELL")]  # others: fill_values
        self.last_snapshot = books.equity[-1] if books.equity else None

    def replay_through_snapshots(self, starting_cash: Decimal) -> Iterator[tuple[EquityRecord, Portfolio]]:
        """Each equity snapshot with the replayed books as of its time (the fills up to it)."""
        portfolio = Portfolio(starting_cash)
        fills, applied = self.replayable, 0
        for snapshot in self.books.equity:
            while applied < len(fills) and fills[applied].timestamp <= snapshot.timestamp:
                portfolio.apply_fill(fill_of(fills[applied]))
                applied += 1
            yield snapshot, portfolio

    @cached_property
    def marked_replay(self) -> Portfolio | str:
        """The replay of every fill, marked as at the last snapshot; or why it cannot be."""
        last = self.last_snapshot
        if last is None:
            return "no equity snapshot recorded"
        if self.starting_cash is None:
            return _NO_STARTING_CASH
        later = next((fill.fill_id for fill in self.books.fills if fill.timestamp > last.timestamp), None)
        if later is not None:
            return f"fill {later} is later than the last snapshot: the marks of that snapshot are not recorded"
        portfolio = replay(self.replayable, self.starting_cash)
        rows = {(row.strategy, row.symbol): row for row in self.books.positions}
        marks: dict[str, Decimal] = {}
        for position in portfolio.positions():
            if position.quantity == 0:
                continue  # marks only matter for what is held
            row = rows.get((position.strategy, position.symbol))
            if row is None:
                return f"no position row of {position.strategy} in {position.symbol} to take the mark from"
            if marks.setdefault(position.symbol, row.last_price) != row.last_price:
                return f"the position rows of {position.symbol} hold different last prices"
        portfolio.last_prices.update(marks)
        return portfolio


_NO_STARTING_CASH = "the run records no readable config or summary to take the starting cash from"


def _config_of(run: RunRecord) -> tuple[RunnerConfig | None, str]:
    """The run's config parsed from its recorded text; or None and why not."""
    if not run.config_text.strip():
        return None, "the run records no config (it was built in Python)"
    try:
        return load_config_text(run.config_text, run.config_path or "<config>"), ""
    except ConfigError as exc:
        return None, f"its recorded config no longer loads: {str(exc).splitlines()[0]}"


def _summary_cash(run: RunRecord) -> Decimal | None:
    try:
        return Decimal(json.loads(run.summary)["starting_cash"])
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None


def _text(value: object) -> str:
    return "none" if value is None else str(value)


# --- the checks: each returns its discrepancies, or a string saying why it could not run ------


def fill_order(ledger: _Ledger) -> list[Discrepancy]:
    found = []
    for fill in ledger.books.fills:
        order = ledger.orders.get(fill.order_id)
        ids = dict(orders=(fill.order_id,), fills=(fill.fill_id,))
        if order is None:
            found.append(Discrepancy("fill_order", f"fill {fill.fill_id}: its order {fill.order_id}", "an order", "none", **ids))
            continue
        for field in ("strategy", "symbol", "side"):
            if getattr(fill, field) != getattr(order, field):
                found.append(Discrepancy(
                    "fill_order", f"fill {fill.fill_id}: {field}, as its order {order.order_id}'s",
                    getattr(order, field), getattr(fill, field), **ids,
                ))
        if fill.timestamp < order.created_at:
            found.append(Discrepancy(
                "fill_order", f"fill {fill.fill_id}: time, not before its order {order.order_id} was created",
                f"at or after {order.created_at.isoformat()}", fill.timestamp.isoformat(), **ids,
            ))
    return found


def fill_values(ledger: _Ledger) -> list[Discrepancy]:
    found = []
    for fill in ledger.books.fills:
        for field, wanted, ok in (
            ("quantity", "> 0", fill.quantity > 0), ("price", "> 0", fill.price > 0),
            ("commission", ">= 0", fill.commission >= 0), ("side", "BUY or SELL", fill.side in ("BUY", "SELL")),
        ):
            if not ok:
                found.append(Discrepancy(
                    "fill_values", f"fill {fill.fill_id}: {field}", wanted, _text(getattr(fill, field)),
                    (fill.order_id,), (fill.fill_id,),
                ))
    return found


def order_fills(ledger: _Ledger) -> list[Discrepancy]:
    found = []
    for order in ledger.books.orders:
        fills = ledger.fills_of.get(order.order_id, [])
        filled = notional = ZERO
        for fill in fills:  # summed in the broker's order, so the mean is exactly the broker's
            filled += fill.quantity
            notional += fill.quantity * fill.price
        average = notional / filled if fills else None
        ids = dict(orders=(order.order_id,), fills=tuple(fill.fill_id for fill in fills))
        if order.filled_quantity != filled:
            found.append(Discrepancy(
                "order_fills", f"order {order.order_id}: filled quantity (the sum of its {len(fills)} fill(s))",
                str(filled), _text(order.filled_quantity), **ids,
            ))
        if order.average_price != average:
            found.append(Discrepancy(
                "order_fills", f"order {order.order_id}: average price (the quantity-weighted mean of its fills)",
                _text(average), _text(order.average_price), **ids,
            ))
    return found


def overfill(ledger: _Ledger) -> list[Discrepancy]:
    found = []
    for order in ledger.books.orders:
        fills = ledger.fills_of.get(order.order_id, [])
        filled = sum((fill.quantity for fill in fills), ZERO)
        if filled > order.quantity:
            found.append(Discrepancy(
                "overfill", f"order {order.order_id}: its fills add up to more than its quantity",
                f"at most {order.quantity}", str(filled), (order.order_id,), tuple(f.fill_id for f in fills),
            ))
    return found


def order_status(ledger: _Ledger) -> list[Discrepancy]:
    found = []
    for order in ledger.books.orders:
        rule = STATUS_RULES.get(order.status)
        if rule is None:
            found.append(Discrepancy(
                "order_status", f"order {order.order_id}: status", f"one of {', '.join(STATUS_RULES)}",
                order.status, (order.order_id,),
            ))
        elif not rule[1](order.filled_quantity, order.quantity):
            found.append(Discrepancy(
                "order_status", f"order {order.order_id}: filled quantity of a {order.status} order", rule[0],
                f"{order.filled_quantity} of {order.quantity}", (order.order_id,),
            ))
    return found


def order_history(ledger: _Ledger) -> list[Discrepancy]:
    events: dict[int, list[str]] = defaultdict(list)
    for event in ledger.books.order_events:
        events[event.order_id].append(event.status)
    found = [
        Discrepancy("order_history", f"order events of order {order_id}", "a recorded order", "none", (order_id,))
        for order_id in events if order_id not in ledger.orders
    ]
    for order in ledger.books.orders:
        history, ids = events.get(order.order_id, []), (order.order_id,)
        where = f"order {order.order_id}: its history"
        if not history:
            found.append(Discrepancy("order_history", where, "order events", "none", ids))
            continue
        if history[0] != OrderStatus.NEW.value:
            found.append(Discrepancy("order_history", f"{where} starts with", "NEW", history[0], ids))
        for before, after in zip(history, history[1:]):
            if after not in NEXT_STATUSES.get(before, ()):
                allowed = ", ".join(sorted(NEXT_STATUSES.get(before, ()))) or "nothing (it had ended)"
                found.append(Discrepancy("order_history", f"{where} goes from {before} to", allowed, after, ids))
        if history[-1] != order.status:
            found.append(Discrepancy("order_history", f"{where} ends with (its status)", order.status, history[-1], ids))
    return found


def working_orders(ledger: _Ledger) -> list[Discrepancy] | str:
    status = ledger.books.run.status
    if status not in ENDED:
        return f"the run is {status}: its orders may still be working"
    return [
        Discrepancy(
            "working_orders", f"order {order.order_id}: status once the run {status}",
            "not working (the broker cancels working orders when a run stops)", order.status, (order.order_id,),
        )
        for order in ledger.books.orders if order.status in WORKING
    ]


def positions(ledger: _Ledger) -> list[Discrepancy]:
    replayed = {(p.strategy, p.symbol): p for p in replay(ledger.replayable, ZERO).positions()}
    recorded = {(row.strategy, row.symbol): row for row in ledger.books.positions}
    found = []
    for key in sorted(recorded.keys() | replayed.keys()):
        row, position = recorded.get(key), replayed.get(key)
        where = f"position of {key[0]} in {key[1]}"
        if row is None:
            found.append(Discrepancy("positions", f"{where}: its row", "a position row", "none", position=key))
            continue
        for field in ("quantity", "average_cost", "realized_pnl", "fees"):
            expected = getattr(position, field) if position is not None else ZERO
            if getattr(row, field) != expected:
                found.append(Discrepancy(
                    "positions", f"{where}: {field.replace('_', ' ')} (the fills replayed)",
                    str(expected), _text(getattr(row, field)), position=key,
                ))
    return found


def cash(ledger: _Ledger) -> list[Discrepancy] | str:
    if ledger.starting_cash is None:
        return _NO_STARTING_CASH
    wrong = [
        (snapshot, portfolio.cash) for snapshot, portfolio in ledger.replay_through_snapshots(ledger.starting_cash)
        if snapshot.cash != portfolio.cash
    ]
    if not wrong:
        return []
    snapshot, expected = wrong[0]
    more = f" (and {len(wrong) - 1} later snapshot(s))" if len(wrong) > 1 else ""
    return [Discrepancy(
        "cash", f"cash at step {snapshot.step}{more}: starting cash {ledger.starting_cash} less the fills' cash flows",
        str(expected), _text(snapshot.cash), step=snapshot.step,
    )]


def equity(ledger: _Ledger) -> list[Discrepancy] | str:
    portfolio, last = ledger.marked_replay, ledger.last_snapshot
    if isinstance(portfolio, str):
        return portfolio
    expected = portfolio.equity()
    where = f"equity at step {last.step} (the last snapshot): cash + quantity x last price"
    return [] if last.equity == expected else [
        Discrepancy("equity", where, str(expected), _text(last.equity), step=last.step),
    ]


def strategy_pnl(ledger: _Ledger) -> list[Discrepancy] | str:
    portfolio, last = ledger.marked_replay, ledger.last_snapshot
    if isinstance(portfolio, str):
        return portfolio
    rows = [row for row in ledger.books.strategy_equity if row.step == last.step]
    expected = dict(portfolio.net_pnl_by_strategy(row.strategy for row in rows))
    return [
        Discrepancy(
            "strategy_pnl", f"net P&L of {row.strategy} at step {last.step}: realised + unrealised - fees",
            str(expected[row.strategy]), _text(row.pnl), step=last.step,
        )
        for row in rows if row.pnl != expected[row.strategy]
    ]


def commission(ledger: _Ledger) -> list[Discrepancy] | str:
    fees = ledger.fees
    if fees is None:
        return f"no fee schedule: {ledger.no_config}"
    found = []
    for order_id, fills in ledger.fills_of.items():
        filled = notional = ZERO
        for fill in fills:  # each fill adds to its order's commission, as FeeSchedule.fill_commission
            model = fees.model(fill.symbol)
            before = model.order_commission(filled, notional)
            filled += fill.quantity
            notional += fill.quantity * fill.price
            expected = model.order_commission(filled, notional) - before
            if fill.commission != expected:
                found.append(Discrepancy(
                    "commission", f"fill {fill.fill_id}: commission (the run's fee schedule)",
                    str(expected), _text(fill.commission), (order_id,), (fill.fill_id,),
                ))
    return found


_CHECKS = {
    check.__name__: check for check in (
        fill_order, fill_values, order_fills, overfill, order_status, order_history, working_orders,
        positions, cash, equity, strategy_pnl, commission,
    )
}
CHECKS = tuple(_CHECKS)
"""The names of the checks, in the order they run."""
