"""What the storage does when the database fails under it: a lock held by another process, a
full disk, the database file removed or replaced while a run writes to it; on PostgreSQL, a
transaction that lost to a concurrent one (serialization failure, deadlock) or a lost connection.

A lock is waited for: SQLite itself waits up to BUSY_TIMEOUT_SECONDS on each statement, and a
transaction that still meets the lock is rolled back and retried whole, after pauses that double
from FIRST_PAUSE_SECONDS up to LONGEST_PAUSE_SECONDS, until LOCK_WAIT_SECONDS have passed since
its first attempt. Then it gives up with a `StorageError` that says so. PostgreSQL's transient
failures are retried the same way (the pool replaces a lost connection on the next attempt).
Every other failure is turned into a `StorageError` at once, worded for the operator.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from runner.errors import StorageError

BUSY_TIMEOUT_SECONDS = 1.0  # SQLite's own wait for a lock, on each statement
LOCK_WAIT_SECONDS = 10.0  # the most a transaction waits for a lock, retries included
FIRST_PAUSE_SECONDS = 0.05
LONGEST_PAUSE_SECONDS = 1.0

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_locked(exc: BaseException) -> bool:
    """True when SQLite refused because another connection holds a lock (SQLITE_BUSY, SQLITE_LOCKED)."""
    cause = getattr(exc, "orig", exc)
    if hasattr(cause, "sqlstate"):  # PostgreSQL's driver: see transient_failure
        return False
    name = getattr(cause, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return "locked" in str(cause) or "busy" in str(cause)


# PostgreSQL error classes worth a retry: the transaction lost to another (40001, 40P01), the
# connection failed (class 08) or the server is shutting down or restarting (57P01..57P03).
_RETRIED_SQLSTATES = ("40001", "40P01", "08", "57P01", "57P02", "57P03")


def transient_failure(exc: BaseException) -> str | None:
    """Why retrying the whole transaction may succeed (the words for the log), or None when it will not."""
    if is_locked(exc):
        return "is locked by another process"
    cause = getattr(exc, "orig", exc)
    state = getattr(cause, "sqlstate", None) or ""
    if state in ("40001", "40P01"):
        return "refused a transaction that conflicted with another (serialization failure or deadlock)"
    if getattr(exc, "connection_invalidated", False) or (state and state.startswith(_RETRIED_SQLSTATES)):
        return f"lost the connection ({str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__})"
    return None


def is_full(exc: BaseException) -> bool:
    cause = getattr(exc, "orig", exc)
    return getattr(cause, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(cause)


def with_lock_retries(attempt: Callable[[], T], database: str, wait_seconds: float | None = None) -> T:
    """Run `attempt` (one whole transaction) until it succeeds, retrying it while the database
    is locked or another transient failure meets it (`transient_failure`), for up to
    `wait_seconds` (default LOCK_WAIT_SECONDS).

    Args:
        attempt: runs the transaction; it must roll back when it raises.
        database: named in the error.
        wait_seconds: the budget, retries and SQLite's own waits included.

    Raises:
        StorageError: the lock was not released (or the failure did not pass) in time.
        SQLAlchemyError: any other failure, at once.
    """
    budget = LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    pause = threading.Event()  # never set: waits go through an Event, never time.sleep (STYLE P8)
    started = time.monotonic()
    delay = FIRST_PAUSE_SECONDS
    retries = 0
    while True:
        try:
            return attempt()
        except DBAPIError as exc:
            reason = transient_failure(exc)
            if reason is None:
                raise
            waited = time.monotonic() - started
            if waited + delay > budget:
                raise StorageError(
                    f"the database {database} {reason}; gave up after {waited:.1f} s ({retries} retries)"
                ) from exc
            if retries == 0:
                log.warning("the database %s %s; retrying for up to %g s", database, reason, budget)
            retries += 1
            pause.wait(delay)
            delay = min(delay * 2, LONGEST_PAUSE_SECONDS)


def storage_error(exc: BaseException, database: str) -> StorageError:
    """The operator's words for a failed write: what happened, and that earlier commits are kept."""
    if isinstance(exc, StorageError):
        return exc
    cause = getattr(exc, "orig", None) or exc  # the driver's words, without the SQL
    if is_full(exc):
        return StorageError(
            f"the database {database} is full (the disk, or SQLite's size limit): records from this step "
            "on are not written; those committed before are kept"
        )
    return StorageError(f"cannot write records to the database: {type(cause).__name__}: {cause}")


def file_identity(path: str) -> tuple[int, int] | None:
    """The device and inode of a database file (None when it does not exist)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def removed_or_replaced(path: str) -> StorageError:
    return StorageError(
        f"the database file {path} was removed or replaced during the run; the run stopped, and its "
        "later records were not written (what was committed before stays in the file that was there)"
    )
