"""The records of parameter sweeps: the `sweeps` and `sweep_runs` rows, and moving a finished
run's rows from the database a sweep worker ran it in into the sweep's database.

Workers never write to the sweep's database: each replays into an in-memory database and hands
its rows back (`export_run`); the driver alone writes them (`import_run`), one transaction a
run, so a run is in the records whole or not at all, and a sweep on a remote Ray cluster needs
no shared file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Engine, Table, select as select_columns, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, select

from runner.storage.faults import storage_error, with_lock_retries
from runner.storage.models import RunRecord, SweepRecord, SweepRunRecord

RunRows = dict[str, list[dict[str, Any]]]  # table -> its rows of one run


def _run_tables() -> list[tuple[Table, str]]:
    """(table, the column holding the run id) for every table whose rows belong to one run."""
    tables = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name == RunRecord.__tablename__:
            tables.append((table, "id"))
        elif "run_id" in table.columns and table.name != SweepRunRecord.__tablename__:
            tables.append((table, "run_id"))
    return tables


def export_run(engine: Engine, run_id: str) -> RunRows:
    """Every row of run `run_id`, table by table (money as exact `Decimal`), without the
    numbers a table gives its rows (the sweep's database numbers them anew)."""
    rows: RunRows = {}
    with engine.connect() as connection:
        for table, key in _run_tables():
            columns = [column for column in table.columns if not _numbered_by_database(table, column)]
            statement = select_columns(*columns).where(table.c[key] == run_id).order_by(*table.primary_key.columns)
            found = [dict(row) for row in connection.execute(statement).mappings()]
            if found:
                rows[table.name] = found
    return rows


def _numbered_by_database(table: Table, column: Column) -> bool:
    """A surrogate key the database assigns (an integer primary key of its own)."""
    return column.primary_key and column.autoincrement is not False and len(table.primary_key.columns) == 1 \
        and column.name == "id" and table.name != RunRecord.__tablename__


def import_run(engine: Engine, rows: RunRows, database: str) -> None:
    """Write the rows of one run (from `export_run`) in one transaction, retried while locked."""
    tables = SQLModel.metadata.tables

    def attempt() -> None:
        with engine.begin() as connection:
            for name, values in rows.items():
                connection.execute(tables[name].insert(), values)

    try:
        with_lock_retries(attempt, database)
    except SQLAlchemyError as exc:
        raise storage_error(exc, database) from exc


def start_sweep(engine: Engine, sweep: SweepRecord, runs: Sequence[SweepRunRecord], database: str) -> None:
    """Record a new sweep and all its combinations (pending, or skipped with the reason)."""
    def attempt() -> None:
        with Session(engine) as session:
            session.add(sweep.model_copy())
            session.add_all([run.model_copy() for run in runs])
            session.commit()

    with_lock_retries(attempt, database)


def finish_run(engine: Engine, sweep_id: str, number: int, run_id: str, status: str, error: str, database: str) -> None:
    """Set the status (and error) of one combination, and its run id: "" when no run was recorded."""
    def attempt() -> None:
        with engine.begin() as connection:
            connection.execute(
                update(SweepRunRecord)
                .where(SweepRunRecord.sweep_id == sweep_id, SweepRunRecord.number == number)
                .values(run_id=run_id, status=status, error=error)
            )

    with_lock_retries(attempt, database)


def finish_sweep(engine: Engine, sweep_id: str, status: str, error: str, database: str) -> None:
    """Close the sweep; combinations still pending become `interrupted` with it (Ctrl-C, a
    failure of the driver), so nothing is left looking as if it were still to come."""
    def attempt() -> None:
        with engine.begin() as connection:
            connection.execute(
                update(SweepRunRecord)
                .where(SweepRunRecord.sweep_id == sweep_id, SweepRunRecord.status == "pending")
                .values(status="interrupted", error=error or "the sweep ended before this run finished")
            )
            connection.execute(
                update(SweepRecord).where(SweepRecord.id == sweep_id)
                .values(status=status, error=error, ended_at=datetime.now(UTC))
            )

    with_lock_retries(attempt, database)


def sweep(engine: Engine, sweep_id: str) -> SweepRecord | None:
    with Session(engine) as session:
        return session.get(SweepRecord, sweep_id)


def sweep_runs(engine: Engine, sweep_id: str) -> list[SweepRunRecord]:
    with Session(engine) as session:
        statement = select(SweepRunRecord).where(SweepRunRecord.sweep_id == sweep_id).order_by(SweepRunRecord.number)
        return list(session.exec(statement))


def recent_sweep_ids(engine: Engine, limit: int = 5) -> list[str]:
    with Session(engine) as session:
        statement = select(SweepRecord.id).order_by(SweepRecord.started_at.desc()).limit(limit)
        return list(session.exec(statement))


def params_json(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=False, default=str)
