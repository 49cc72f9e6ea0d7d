"""Opening a database: SQLite files (pragmas, read-only opening) or a PostgreSQL server, and
bringing its schema up to date (runner/storage/schema.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from runner.config import parse_database_url
from runner.errors import ConfigError, StorageError
from runner.storage import models  # noqa: F401 - registers the tables
from runner.storage import schema
from runner.storage.faults import BUSY_TIMEOUT_SECONDS, with_lock_retries

CONNECT_TIMEOUT_SECONDS = 10  # how long to wait for a PostgreSQL server that does not answer
# Every PostgreSQL session runs in UTC, so that the aware UTC times the runner writes are stored
# as they are in SQLite (naive UTC), whatever the server's or the role's time zone.
_POSTGRES_SESSION = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "options": "-c timezone=UTC"}
_DRIVER_EXTRAS = {"postgresql": "pip install 'runner[postgres]'"}


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{path}"


def database_url(target: str | Path) -> str:
    """The URL a `--db` value names: a URL (`postgresql+psycopg://...`, `sqlite:///...`) is
    taken as it is, anything else is the path of a SQLite file."""
    text = str(target)
    return text if "://" in text else sqlite_url(text)


def describe(url: str) -> str:
    """How messages name a database: a SQLite file by its path, a server by its URL without the password."""
    try:
        parsed = parse_database_url(url)
    except ValueError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return parsed.database
    return parsed.render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or a server."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def is_in_memory(url: str) -> bool:
    """True for an in-memory SQLite database: it lives in one connection, no other can open it."""
    parsed = parse_database_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def open_database(url: str, create: bool = True) -> Engine:
    """Create an engine for `url`; with `create`, prepare SQLite files (parent folder, WAL) and
    bring the schema up to date. Without it, change nothing: a SQLite file is opened read-only,
    a PostgreSQL session is read-only.

    Raises:
        ConfigError: the URL cannot be parsed, or its driver is not installed.
        StorageError: the database cannot be opened, reached or created.
    """
    return _open(url, create)[0]


def upgrade_database(url: str) -> tuple[Engine, list[schema.Change]]:
    """Open `url` as `open_database` does, and say what bringing its schema up to date added."""
    return _open(url, create=True)


def _open(url: str, create: bool) -> tuple[Engine, list[schema.Change]]:
    changes: list[schema.Change] = []
    try:
        parsed = parse_database_url(url)
    except ValueError as exc:
        raise ConfigError(f"storage.url: {exc}") from None
    backend = parsed.get_backend_name()
    is_sqlite = backend == "sqlite"
    in_memory = is_in_memory(url)
    try:
        if is_sqlite and not in_memory and create:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if in_memory:
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        elif is_sqlite and not create:  # reading only: open read-only, change nothing in the file
            location = Path(parsed.database).resolve().as_posix()
            engine = create_engine(f"sqlite:///file:{location}?mode=ro&uri=true", connect_args={"timeout": 30})
        elif is_sqlite:
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
        else:  # a server: a connection it dropped is replaced before use
            engine = create_engine(
                url, pool_pre_ping=True, connect_args=dict(_POSTGRES_SESSION),
                execution_options={} if create else {"postgresql_readonly": True},
            )
        if is_sqlite and create:
            event.listen(engine, "connect", _sqlite_pragmas)
        if create:
            changes = with_lock_retries(lambda: schema.upgrade(engine), describe(url))
    except ImportError as exc:
        install = _DRIVER_EXTRAS.get(backend, "install it")
        raise ConfigError(
            f"storage.url: the database driver for {parsed.drivername!r} is not installed ({exc}); {install}"
        ) from None
    except (OSError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot open database {describe(url)}: {driver_words(exc)}") from exc
    return engine, changes


def driver_words(exc: BaseException) -> str:
    """The driver's words for a failure, without the SQL: `OperationalError: connection refused ...`."""
    cause = getattr(exc, "orig", None) or exc
    words = " ".join(str(cause).split()) or "no details"
    return f"{type(cause).__name__}: {words}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
