"""The database schema: created and upgraded by the runner, each upgrade recorded.

The schema is every SQLModel table (runner/storage/models.py). An upgrade compares those tables
with the database and adds what it lacks: whole tables, and columns added to a table since the
database was made (with their defaults). Nothing is dropped, renamed or retyped, so a database
stays readable by the runner that made it. Each upgrade that added something is a row of
`schema_version` (the first is the database's creation).

Writing commands (`runner start`, `replay`, `policy set`, `db upgrade`, `db migrate-from`)
upgrade the database they open; read commands never change it and say to run `runner db upgrade`
when it lacks what they read.

On PostgreSQL an upgrade is one transaction (its DDL is transactional) under an advisory lock,
so runners starting at once wait for each other's upgrade instead of racing it. SQLite commits
each CREATE on its own: a process that finds a table or column made by another since it looked
looks again (see `upgrade`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect, insert, text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from runner import __version__
from runner.errors import StorageError
from runner.storage import faults
from runner.storage.models import SchemaVersionRecord

# Any constant the runner owns: pg_advisory_xact_lock takes one bigint ("runner" in ASCII).
POSTGRES_LOCK_KEY = int.from_bytes(b"runner", "big")


@dataclass(frozen=True)
class Change:
    """One thing the database lacks: a table, or a column of a table it has."""

    table: str
    column: str | None = None

    def __str__(self) -> str:
        return f"add table {self.table}" if self.column is None else f"add column {self.table}.{self.column}"


def pending_changes(bind: Engine | Connection) -> list[Change]:
    """What an upgrade would add to the database, tables before columns, in dependency order."""
    inspector = inspect(bind)
    present = set(inspector.get_table_names())
    changes = [Change(table.name) for table in SQLModel.metadata.sorted_tables if table.name not in present]
    kept = [table for table in SQLModel.metadata.sorted_tables if table.name in present]
    if kept:
        columns = inspector.get_multi_columns(filter_names=[table.name for table in kept])
        have = {name: {column["name"] for column in found} for (_, name), found in columns.items()}
        changes += [
            Change(table.name, column.name)
            for table in kept for column in table.columns if column.name not in have.get(table.name, ())
        ]
    return changes


def upgrade(engine: Engine) -> list[Change]:
    """Bring the database's schema up to date and record the upgrade; return what was added.

    Raises:
        StorageError: a column cannot be added (it has no default and may not be empty).
        SQLAlchemyError: the database failed.
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY})
            return _apply(connection)
    started, pause = time.monotonic(), threading.Event()
    while True:
        try:
            with engine.begin() as connection:
                return _apply(connection)
        except OperationalError as exc:
            made_by_another = "already exists" in str(exc.orig) or "duplicate column" in str(exc.orig)
            if faults.is_locked(exc) or not made_by_another or time.monotonic() - started > faults.LOCK_WAIT_SECONDS:
                raise
            pause.wait(faults.FIRST_PAUSE_SECONDS)


def _apply(connection: Connection) -> list[Change]:
    changes = pending_changes(connection)
    if not changes:
        return changes
    tables = SQLModel.metadata.tables
    new_tables = [tables[change.table] for change in changes if change.column is None]
    SQLModel.metadata.create_all(connection, tables=new_tables)
    for change in changes:
        if change.column is not None:
            _add_column(connection, tables[change.table].columns[change.column])
    connection.execute(insert(SchemaVersionRecord).values(
        applied_at=datetime.now(UTC), runner_version=__version__, changes=json.dumps([str(c) for c in changes]),
    ))
    return changes


def _add_column(connection: Connection, column) -> None:
    kind = column.type.compile(dialect=connection.dialect)
    default = column.default.arg if column.default is not None and column.default.is_scalar else None
    if default is None and not column.nullable:
        raise StorageError(
            f"the database's table {column.table.name} lacks the column {column.name}, which cannot be "
            "added automatically (it has no default); use a new database"
        )
    clause = "" if default is None else f" NOT NULL DEFAULT {_literal(default, connection.dialect.name)}"
    connection.execute(text(f'ALTER TABLE {column.table.name} ADD COLUMN "{column.name}" {kind}{clause}'))


def _literal(value: object, dialect: str) -> str:
    if isinstance(value, bool):
        return ("true" if value else "false") if dialect == "postgresql" else ("1" if value else "0")
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def history(bind: Engine | Connection) -> list[SchemaVersionRecord]:
    """The database's recorded upgrades, oldest first (none for a database made before they were)."""
    from sqlmodel import Session, select

    if not inspect(bind).has_table(SchemaVersionRecord.__tablename__):
        return []
    with Session(bind=bind) as session:
        return list(session.exec(select(SchemaVersionRecord).order_by(SchemaVersionRecord.id)))
