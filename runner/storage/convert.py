"""The one converter from published values to table rows (and from fill and order rows back
to fills and orders)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal

from runner.domain import Fill, Order, OrderStatus, OrderType, Position, Side, TimeInForce
from runner.events import (
    CatalogChange, EquitySnapshot, Heartbeat, PolicyChange, RunFinished, SignalEvent, StepDone, StrategyFault, SymbolAdded,
)
from runner.events import FeedStatus, WebhookFailure
from runner.storage.models import (
    CatalogChangeRecord, EquityRecord, FillRecord, HeartbeatRecord, OrderEventRecord, OrderRecord, PolicyChangeRecord,
    PositionRecord, ProgressRecord, SignalRecord, StrategyEquityRecord, StrategyErrorRecord,
    StrategyStatsRecord, SymbolAddedRecord,
)
from runner.storage.models import FeedStatusRecord, WebhookFailureRecord
from runner.snapshot import StrategySnapshot

Rows = dict[type, list[dict]]


def add_rows(item: object, run_id: str, rows: Rows) -> None:
    """Append the row(s) `item` becomes to `rows`, grouped by table."""
    kind = type(item)
    if kind is Order:
        rows[OrderRecord].append({
            "run_id": run_id, "order_id": item.id, "strategy": item.strategy,
            "symbol": item.symbol, "side": item.side.value, "order_type": item.order_type.value,
            "quantity": item.quantity, "status": item.status.value,
            "filled_quantity": item.filled_quantity, "average_price": item.average_price,
            "limit_price": item.limit_price, "stop_price": item.stop_price,
            "time_in_force": item.time_in_force.value, "stop_loss": item.stop_loss,
            "take_profit": item.take_profit, "parent_id": item.parent_id,
            "sibling_id": item.sibling_id,
            "reason": item.reason, "created_at": item.created_at,
            "updated_at": item.updated_at or item.created_at,
        })
        rows[OrderEventRecord].append({
            "run_id": run_id, "order_id": item.id, "status": item.status.value,
            "timestamp": item.updated_at or item.created_at, "reason": item.reason,
        })
    elif kind is Fill:
        rows[FillRecord].append({
            "run_id": run_id, "fill_id": item.id, "order_id": item.order_id,
            "strategy": item.strategy, "symbol": item.symbol, "side": item.side.value,
            "quantity": item.quantity, "price": item.price, "commission": item.commission,
            "timestamp": item.timestamp,
        })
    elif kind is Position:
        rows[PositionRecord].append({
            "run_id": run_id, "strategy": item.strategy, "symbol": item.symbol,
            "quantity": item.quantity, "average_cost": item.average_cost,
            "realized_pnl": item.realized_pnl, "fees": item.fees, "last_price": item.last_price,
        })
    elif kind is EquitySnapshot:
        rows[EquityRecord].append({
            "run_id": run_id, "step": item.step, "timestamp": item.timestamp,
            "cash": item.cash, "equity": item.equity,
        })
        rows[StrategyEquityRecord].extend(
            {"run_id": run_id, "step": item.step, "strategy": name, "timestamp": item.timestamp, "pnl": pnl}
            for name, pnl in item.strategy_pnl
        )
    elif kind is SignalEvent:
        signal = item.signal
        rows[SignalRecord].append({
            "run_id": run_id, "step": item.step, "timestamp": item.timestamp,
            "strategy": item.strategy, "symbol": signal.symbol if signal else "",
            "action": signal.action.value if signal else "",
            "quantity": signal.quantity if signal else None,
            "confidence": signal.confidence if signal else None,
            "reason": signal.reason if signal else item.raw,
            "accepted": item.accepted, "rejection": item.rejection, "order_id": item.order_id,
            "rule": item.rule,
        })
    elif kind is StrategyFault:
        rows[StrategyErrorRecord].append({
            "run_id": run_id, "strategy": item.strategy, "hook": item.hook, "step": item.step,
            "timestamp": item.timestamp, "error_type": item.error_type,
            "message": item.message, "disabled": item.disabled,
        })
    elif kind is StrategySnapshot:
        rows[StrategyStatsRecord].append({
            "run_id": run_id, "strategy": item.name, "state": item.state, "signals": item.signals,
            "accepted": item.accepted, "rejected": item.rejected, "errors": item.errors,
            "disabled_reason": item.disabled_reason, **item.timing(),
        })
    elif kind is SymbolAdded:
        rows[SymbolAddedRecord].append({
            "run_id": run_id, "symbol": item.symbol, "step": item.step, "timestamp": item.timestamp,
            "requested_by": item.requested_by,
        })
    elif kind is Heartbeat:
        rows[HeartbeatRecord].append({
            "run_id": run_id, "step": item.step, "bar_time": item.timestamp, "wall_time": item.wall_time,
            "expected_every_seconds": item.expected_every_seconds,
            "strategies": json.dumps([asdict(s) for s in item.strategies]),
        })
    elif kind is PolicyChange:
        rows[PolicyChangeRecord].append({
            "run_id": run_id, "step": item.step, "timestamp": item.timestamp, "key": item.key,
            "old_value": item.old_value, "new_value": item.new_value, "source": item.source,
        })
    elif kind is StepDone:
        rows[ProgressRecord].append({"run_id": run_id, "step": item.step, "bar_time": item.timestamp})
    elif kind is CatalogChange:
        rows[CatalogChangeRecord].append({
            "run_id": run_id, "step": item.step, "timestamp": item.timestamp, "strategy": item.strategy,
            "action": item.action, "reason": item.reason,
        })
    elif kind is RunFinished:
        rows[RunFinished].append({
            "ended_at": item.ended_at, "status": item.status, "ticks": item.ticks,
            "summary": item.summary_json, "error": item.error,
        })
    elif kind is FeedStatus:
        rows[FeedStatusRecord].append({
            "run_id": run_id, "source": item.source, "stale": item.stale, "reason": item.reason,
            "last_bar_time": item.last_bar_time, "last_response": item.last_response,
            "requests": item.requests, "errors": item.errors, "dropped_bars": item.dropped_bars,
            "updated_at": item.checked_at,
        })
    elif kind is WebhookFailure:
        rows[WebhookFailureRecord].append({
            "run_id": run_id, "wall_time": item.wall_time, "strategy": item.strategy,
            "symbol": item.symbol, "step": item.step, "attempts": item.attempts,
            "error": item.error, "payload": item.payload,
        })
    else:
        raise TypeError(f"no table for {kind.__name__}")


def fill_of(row: FillRecord) -> Fill:
    """The `Fill` a fill row records.

    Raises:
        ValueError: the row's side is neither BUY nor SELL.
    """
    return Fill(
        row.fill_id, row.order_id, row.strategy, row.symbol, Side(row.side), row.quantity,
        row.price, row.commission, row.timestamp,
    )


def order_of(row: OrderRecord, filled_notional: Decimal) -> Order:
    """The `Order` an order row records (times in UTC); `filled_notional` is the sum of its
    fills' quantity x price, which the row holds only as the average price.

    Raises:
        ValueError: the row's side, type, status or time in force is not one the broker knows.
    """
    return Order(
        row.order_id, row.strategy, row.symbol, Side(row.side), row.quantity, OrderType(row.order_type),
        utc(row.created_at), OrderStatus(row.status), row.filled_quantity, filled_notional,
        row.average_price, row.reason, utc(row.updated_at), row.limit_price, row.stop_price,
        TimeInForce(row.time_in_force), row.stop_loss, row.take_profit, row.parent_id, row.sibling_id,
    )


def utc(moment: datetime) -> datetime:
    """Records hold UTC times without an offset."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
