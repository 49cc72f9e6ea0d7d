"""Reads over the records; each call opens its own session."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, col, select

from runner.storage.models import (
    EquityRecord, FillRecord, OrderEventRecord, OrderRecord, PositionRecord, RunRecord,
    SignalRecord, StrategyErrorRecord,
)


def run(engine: Engine, run_id: str) -> RunRecord | None:
    with Session(engine) as session:
        return session.get(RunRecord, run_id)


def latest_run(engine: Engine) -> RunRecord | None:
    with Session(engine) as session:
        return session.exec(select(RunRecord).order_by(col(RunRecord.started_at).desc())).first()


def _rows(engine: Engine, table: type[SQLModel], run_id: str, order_by) -> list:
    with Session(engine) as session:
        statement = select(table).where(table.run_id == run_id).order_by(*order_by)
        return list(session.exec(statement))


def orders(engine: Engine, run_id: str) -> list[OrderRecord]:
    return _rows(engine, OrderRecord, run_id, [OrderRecord.order_id])


def order_events(engine: Engine, run_id: str) -> list[OrderEventRecord]:
    return _rows(engine, OrderEventRecord, run_id, [OrderEventRecord.id])


def fills(engine: Engine, run_id: str) -> list[FillRecord]:
    return _rows(engine, FillRecord, run_id, [FillRecord.fill_id])


def positions(engine: Engine, run_id: str) -> list[PositionRecord]:
    return _rows(engine, PositionRecord, run_id, [PositionRecord.strategy, PositionRecord.symbol])


def equity(engine: Engine, run_id: str) -> list[EquityRecord]:
    return _rows(engine, EquityRecord, run_id, [EquityRecord.step])


def signals(engine: Engine, run_id: str) -> list[SignalRecord]:
    return _rows(engine, SignalRecord, run_id, [SignalRecord.id])


def strategy_errors(engine: Engine, run_id: str) -> list[StrategyErrorRecord]:
    return _rows(engine, StrategyErrorRecord, run_id, [StrategyErrorRecord.id])
