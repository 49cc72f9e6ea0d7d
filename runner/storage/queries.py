"""Reads over the records; each call opens its own session."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, col, select

from runner.config import parse_database_url
from runner.storage.models import (
    EquityRecord, FeedStatusRecord, FillRecord, HeartbeatRecord, OrderEventRecord, OrderRecord, PolicyChangeRecord,
    PositionRecord, ProgressRecord, ResumeRecord, RunRecord, SignalRecord, StrategyEquityRecord,
    StrategyErrorRecord, StrategyStatsRecord, WebhookFailureRecord,
)


def run(engine: Engine, run_id: str) -> RunRecord | None:
    with Session(engine) as session:
        return session.get(RunRecord, run_id)


def latest_run(engine: Engine) -> RunRecord | None:
    with Session(engine) as session:
        return session.exec(select(RunRecord).order_by(col(RunRecord.started_at).desc())).first()


def _of_run(table: type[SQLModel], run_id: str, order_by):
    return select(table).where(table.run_id == run_id).order_by(*order_by)


def _rows(engine: Engine, table: type[SQLModel], run_id: str, order_by) -> list:
    with Session(engine) as session:
        return list(session.exec(_of_run(table, run_id, order_by)))


def orders(engine: Engine, run_id: str) -> list[OrderRecord]:
    return _rows(engine, OrderRecord, run_id, [OrderRecord.order_id])


def order_events(engine: Engine, run_id: str) -> list[OrderEventRecord]:
    return _rows(engine, OrderEventRecord, run_id, [OrderEventRecord.id])


def fills(engine: Engine, run_id: str) -> list[FillRecord]:
    return _rows(engine, FillRecord, run_id, [FillRecord.fill_id])


def positions(engine: Engine, run_id: str) -> list[PositionRecord]:
    return _rows(engine, PositionRecord, run_id, [PositionRecord.strategy, PositionRecord.symbol])


def strategy_equity(engine: Engine, run_id: str) -> list[StrategyEquityRecord]:
    return _rows(engine, StrategyEquityRecord, run_id, [StrategyEquityRecord.step, StrategyEquityRecord.strategy])


def equity(engine: Engine, run_id: str) -> list[EquityRecord]:
    return _rows(engine, EquityRecord, run_id, [EquityRecord.step])


def signals(engine: Engine, run_id: str) -> list[SignalRecord]:
    return _rows(engine, SignalRecord, run_id, [SignalRecord.id])


def strategy_errors(engine: Engine, run_id: str) -> list[StrategyErrorRecord]:
    return _rows(engine, StrategyErrorRecord, run_id, [StrategyErrorRecord.id])


def policy_changes(engine: Engine, run_id: str) -> list[PolicyChangeRecord]:
    return _rows(engine, PolicyChangeRecord, run_id, [PolicyChangeRecord.id])


@dataclass(frozen=True)
class RunBooks:
    """Every ledger record of one run, as of one commit."""

    run: RunRecord
    orders: list[OrderRecord]
    order_events: list[OrderEventRecord]
    fills: list[FillRecord]
    positions: list[PositionRecord]
    equity: list[EquityRecord]
    strategy_equity: list[StrategyEquityRecord]


def run_books(engine: Engine, run_id: str) -> RunBooks | None:
    """The run's orders, order events, fills, positions and equity snapshots, read in one read
    transaction, so that a run still being written is seen as of one commit; None when there
    is no such run."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")  # the driver starts no transaction for reads
        else:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with Session(bind=connection) as session:
            record = session.get(RunRecord, run_id)
            if record is None:
                return None
            books = RunBooks(record, *(
                list(session.exec(_of_run(table, run_id, order_by))) for table, order_by in (
                    (OrderRecord, [OrderRecord.order_id]),
                    (OrderEventRecord, [OrderEventRecord.id]),
                    (FillRecord, [FillRecord.fill_id]),
                    (PositionRecord, [PositionRecord.strategy, PositionRecord.symbol]),
                    (EquityRecord, [EquityRecord.step]),
                    (StrategyEquityRecord, [StrategyEquityRecord.step, StrategyEquityRecord.strategy]),
                )
            ))
        connection.rollback()
    return books


# --- filtered reads for the `runner runs|status|orders|fills|positions` commands ----------------


def is_runner_database(engine: Engine) -> bool:
    """True when the database holds the runner's `runs` table (a read must not create it)."""
    from sqlalchemy import inspect

    return inspect(engine).has_table(RunRecord.__tablename__)


def list_runs(engine: Engine, limit: int | None = None) -> list[RunRecord]:
    """Runs, newest first; at most `limit` of them (None or 0: all)."""
    with Session(engine) as session:
        statement = select(RunRecord).order_by(col(RunRecord.started_at).desc(), col(RunRecord.id).desc())
        if limit:
            statement = statement.limit(limit)
        return list(session.exec(statement))


def recent_run_ids(engine: Engine, limit: int = 5) -> list[str]:
    """The ids of the latest `limit` runs, newest first."""
    with Session(engine) as session:
        statement = (
            select(RunRecord.id)
            .order_by(col(RunRecord.started_at).desc(), col(RunRecord.id).desc())
            .limit(limit)
        )
        return list(session.exec(statement))


def unknown_run(engine: Engine, database: str, run_id: str) -> str:
    """What to say of a run id the database does not hold: where it looked, and its latest runs."""
    recent = recent_run_ids(engine, 5)
    listed = f"latest runs: {', '.join(recent)}" if recent else "it has no runs yet"
    where = parse_database_url(database).database or database
    return f"no run {run_id!r} in {where}; {listed} (see `runner runs`)"


def last_equity(engine: Engine, run_id: str) -> EquityRecord | None:
    """The run's latest equity snapshot, or None before the first one."""
    with Session(engine) as session:
        statement = (
            select(EquityRecord).where(EquityRecord.run_id == run_id)
            .order_by(col(EquityRecord.step).desc()).limit(1)
        )
        return session.exec(statement).first()


def strategy_error_counts(engine: Engine, run_id: str) -> dict[str, int]:
    """How many errors each strategy of the run raised (strategies without errors are absent)."""
    from sqlalchemy import func

    with Session(engine) as session:
        statement = (
            select(StrategyErrorRecord.strategy, func.count())
            .where(StrategyErrorRecord.run_id == run_id)
            .group_by(StrategyErrorRecord.strategy)
        )
        return {name: count for name, count in session.exec(statement)}


def _has_table(engine: Engine, table: type[SQLModel]) -> bool:
    """False for a database made before `table` existed and opened read-only (not upgraded)."""
    from sqlalchemy import inspect

    return inspect(engine).has_table(table.__tablename__)


def heartbeat(engine: Engine, run_id: str) -> HeartbeatRecord | None:
    """The run's latest heartbeat, or None before its first one (or in an older database)."""
    if not _has_table(engine, HeartbeatRecord):
        return None
    with Session(engine) as session:
        return session.get(HeartbeatRecord, run_id)


def strategy_stats(engine: Engine, run_id: str) -> list[StrategyStatsRecord]:
    """Each strategy's counters over the run, written when it ended (none while it runs)."""
    if not _has_table(engine, StrategyStatsRecord):
        return []
    return _rows(engine, StrategyStatsRecord, run_id, [StrategyStatsRecord.strategy])


def disabling_faults(engine: Engine, run_id: str) -> dict[str, str]:
    """The strategies an error disabled, each with that error (`type: message`)."""
    with Session(engine) as session:
        statement = (
            select(StrategyErrorRecord)
            .where(StrategyErrorRecord.run_id == run_id, col(StrategyErrorRecord.disabled).is_(True))
            .order_by(StrategyErrorRecord.id)
        )
        faults: dict[str, str] = {}
        for fault in session.exec(statement):
            faults.setdefault(fault.strategy, f"{fault.error_type} in {fault.hook}: {fault.message}")
        return faults


def _utc(moment):
    """An aware UTC time for comparing with a datetime column (a naive `moment` is UTC)."""
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _latest_in_order(session: Session, statement, key, limit: int | None) -> list:
    """Rows in ascending `key` order; with `limit`, only the last `limit` of them."""
    if not limit:
        return list(session.exec(statement.order_by(col(key))))
    return list(reversed(list(session.exec(statement.order_by(col(key).desc()).limit(limit)))))


def filtered_orders(
    engine: Engine, run_id: str, *, strategy: str | None = None, symbol: str | None = None,
    status: str | None = None, since=None, limit: int | None = None,
) -> list[OrderRecord]:
    """The run's orders, oldest first, filtered by strategy, symbol (any case), status and
    creation time (`since`, inclusive; a naive time is UTC); with `limit`, the latest `limit`."""
    from sqlalchemy import func

    statement = select(OrderRecord).where(OrderRecord.run_id == run_id)
    if strategy is not None:
        statement = statement.where(OrderRecord.strategy == strategy)
    if symbol is not None:
        statement = statement.where(func.upper(OrderRecord.symbol) == symbol.upper())
    if status is not None:
        statement = statement.where(OrderRecord.status == status)
    if since is not None:
        statement = statement.where(OrderRecord.created_at >= _utc(since))
    with Session(engine) as session:
        return _latest_in_order(session, statement, OrderRecord.order_id, limit)


def filtered_fills(
    engine: Engine, run_id: str, *, strategy: str | None = None, symbol: str | None = None,
    since=None, limit: int | None = None,
) -> list[FillRecord]:
    """The run's fills, oldest first, filtered by strategy, symbol (any case) and time (`since`,
    inclusive; a naive time is UTC); with `limit`, the latest `limit`."""
    from sqlalchemy import func

    statement = select(FillRecord).where(FillRecord.run_id == run_id)
    if strategy is not None:
        statement = statement.where(FillRecord.strategy == strategy)
    if symbol is not None:
        statement = statement.where(func.upper(FillRecord.symbol) == symbol.upper())
    if since is not None:
        statement = statement.where(FillRecord.timestamp >= _utc(since))
    with Session(engine) as session:
        return _latest_in_order(session, statement, FillRecord.fill_id, limit)


def filtered_positions(
    engine: Engine, run_id: str, *, strategy: str | None = None, symbol: str | None = None,
    open_only: bool = False,
) -> list[PositionRecord]:
    """The run's positions by strategy and symbol; `open_only` keeps those with quantity != 0."""
    from sqlalchemy import func

    statement = select(PositionRecord).where(PositionRecord.run_id == run_id)
    if strategy is not None:
        statement = statement.where(PositionRecord.strategy == strategy)
    if symbol is not None:
        statement = statement.where(func.upper(PositionRecord.symbol) == symbol.upper())
    with Session(engine) as session:
        rows = list(session.exec(statement.order_by(PositionRecord.strategy, PositionRecord.symbol)))
    # Quantities are exact decimal text ("0", "0.000"): compare as Decimal, not in SQL.
    return [row for row in rows if row.quantity != 0] if open_only else rows


def strategies_of_run(engine: Engine, run_id: str) -> list[str]:
    """Every strategy name that left a record in the run (signals, orders, positions, errors)."""
    names: set[str] = set()
    with Session(engine) as session:
        for table in (SignalRecord, OrderRecord, PositionRecord, StrategyErrorRecord):
            names.update(session.exec(select(table.strategy).where(table.run_id == run_id).distinct()))
    return sorted(names)


# --- what a resumed run takes up (runner/resume.py) ------------------------------------------------


def progress(engine: Engine, run_id: str) -> ProgressRecord | None:
    """The run's last step whose records are committed, or None before its first one."""
    if not _has_table(engine, ProgressRecord):
        return None
    with Session(engine) as session:
        return session.get(ProgressRecord, run_id)


def resumes(engine: Engine, run_id: str) -> list[ResumeRecord]:
    """Each time the run was resumed, oldest first."""
    if not _has_table(engine, ResumeRecord):
        return []
    return _rows(engine, ResumeRecord, run_id, [ResumeRecord.id])


# --- live data and the webhook ------------------------------------------------------------------


def feed_status(engine: Engine, run_id: str) -> FeedStatusRecord | None:
    """The latest status of the run's live market data, or None (not a live run, or an older database)."""
    if not _has_table(engine, FeedStatusRecord):
        return None
    with Session(engine) as session:
        return session.get(FeedStatusRecord, run_id)


def webhook_failures(engine: Engine, run_id: str) -> list[WebhookFailureRecord]:
    """The accepted signals the run's webhook could not deliver, in the order they failed."""
    if not _has_table(engine, WebhookFailureRecord):
        return []
    with Session(engine) as session:
        statement = select(WebhookFailureRecord).where(WebhookFailureRecord.run_id == run_id)
        return list(session.exec(statement.order_by(WebhookFailureRecord.id)))
