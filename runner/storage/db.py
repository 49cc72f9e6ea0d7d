"""Opening a database: engine creation, SQLite pragmas, schema creation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from runner.config import parse_database_url
from runner.errors import ConfigError, StorageError
from runner.storage import models  # noqa: F401 - registers the tables


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{path}"


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
    in_memory = is_sqlite and parsed.database in (None, "", ":memory:")
    try:
        if is_sqlite and not in_memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if in_memory:
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        else:
            engine = create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
        if is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        if create:
            SQLModel.metadata.create_all(engine)
    except ImportError as exc:
        raise ConfigError(
            f"storage.url: the database driver for {parsed.drivername!r} is not installed ({exc})"
        ) from None
    except (OSError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot open database {url}: {exc}") from exc
    return engine



def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
