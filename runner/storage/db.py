"""Opening a database: engine creation, SQLite pragmas, schema creation."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from runner.config import parse_database_url
from runner.errors import ConfigError, StorageError
from runner.storage import models  # noqa: F401 - registers the tables
from runner.storage import faults
from runner.storage.faults import BUSY_TIMEOUT_SECONDS, is_locked, with_lock_retries


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{path}"


def is_in_memory(url: str) -> bool:
    """True for an in-memory SQLite database: it lives in one connection, no other can open it."""
    parsed = parse_database_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def open_database(url: str, create: bool = True) -> Engine:
    """Create an engine for `url`, preparing SQLite files (parent folder, WAL) and the schema.

    Raises:
        ConfigError: the URL cannot be parsed.
        StorageError: the database cannot be opened or created.
    """
    try:
        parsed = parse_database_url(url)
    except ValueError as exc:
        raise ConfigError(f"storage.url: {exc}") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    in_memory = is_in_memory(url)
    try:
        if is_sqlite and not in_memory and create:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if in_memory:
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        elif is_sqlite and not create:  # reading only: open read-only, change nothing in the file
            location = Path(parsed.database).resolve().as_posix()
            engine = create_engine(f"sqlite:///file:{location}?mode=ro&uri=true", connect_args={"timeout": 30})
        else:
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS} if is_sqlite else {})
        if is_sqlite and create:
            event.listen(engine, "connect", _sqlite_pragmas)
        if create:
            with_lock_retries(lambda: _create_schema(engine), parsed.database or url)
    except ImportError as exc:
        raise ConfigError(
            f"storage.url: the database driver for {parsed.drivername!r} is not installed ({exc})"
        ) from None
    except (OSError, SQLAlchemyError) as exc:
        cause = getattr(exc, "orig", None) or exc  # the driver's words, without the SQL
        raise StorageError(f"cannot open database {url}: {type(cause).__name__}: {cause}") from exc
    return engine


def _create_schema(engine: Engine) -> None:
    """Create the missing tables and columns. Another process opening a new file at the same
    moment may create some between our check and our CREATE (each CREATE commits on its own):
    then we look again, after a pause that lets it finish, for up to LOCK_WAIT_SECONDS."""
    started, pause = time.monotonic(), threading.Event()
    while True:
        try:
            SQLModel.metadata.create_all(engine)
            _add_missing_columns(engine)
            return
        except OperationalError as exc:
            made_by_another = "already exists" in str(exc.orig) or "duplicate column" in str(exc.orig)
            if is_locked(exc) or not made_by_another or time.monotonic() - started > faults.LOCK_WAIT_SECONDS:
                raise
            pause.wait(faults.FIRST_PAUSE_SECONDS)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _add_missing_columns(engine: Engine) -> None:
    """Bring a database made by an earlier version up to date: columns added since then are
    added to its tables (with their defaults), so its records stay readable and new runs fit."""
    inspector = inspect(engine)
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = column.default.arg if column.default is not None and column.default.is_scalar else None
                if default is None and not column.nullable:
                    raise StorageError(
                        f"the database's table {table.name} lacks the column {column.name}, which "
                        "cannot be added automatically; use a new database file"
                    )
                clause = "" if default is None else f" NOT NULL DEFAULT {_literal(default)}"
                connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}{clause}'))


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
