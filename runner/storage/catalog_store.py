"""The strategy catalogue's tables: reads, status changes, backtest tags, and the watcher that
tells a running run when the catalogue changed (see runner/catalog.py for the lifecycle)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, func, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from runner.storage.faults import with_lock_retries
from runner.storage.models import (
    CatalogBacktestRecord, CatalogChangeRecord, CatalogEntryRecord, CatalogHistoryRecord,
)
from runner.storage.poller import TablePoller

POLL_SECONDS = 0.5  # how often a running run looks at the change counter


def _has(engine: Engine, table) -> bool:
    """False for a database opened read-only that predates the catalogue (nothing to read)."""
    return inspect(engine).has_table(table.__tablename__)


def entries(engine: Engine) -> list[CatalogEntryRecord]:
    """Every catalogue entry, by name."""
    if not _has(engine, CatalogEntryRecord):
        return []
    with Session(engine) as session:
        return list(session.exec(select(CatalogEntryRecord).order_by(CatalogEntryRecord.name)))


def entry(engine: Engine, name: str) -> CatalogEntryRecord | None:
    if not _has(engine, CatalogEntryRecord):
        return None
    with Session(engine) as session:
        return session.get(CatalogEntryRecord, name)


def history(engine: Engine, name: str) -> list[CatalogHistoryRecord]:
    """The status changes of one entry, oldest first."""
    if not _has(engine, CatalogHistoryRecord):
        return []
    with Session(engine) as session:
        statement = select(CatalogHistoryRecord).where(CatalogHistoryRecord.name == name)
        return list(session.exec(statement.order_by(CatalogHistoryRecord.id)))


def change_counter(engine: Engine) -> int:
    """The largest history id: it grows with every add, promote and archive."""
    with Session(engine) as session:
        return session.exec(select(func.max(CatalogHistoryRecord.id))).one() or 0


def change_status(
    engine: Engine, row: CatalogEntryRecord, from_status: str, at: datetime, reason: str, run_id: str = "",
) -> None:
    """Write the entry `row` (with its new status) and its history row in one transaction,
    waiting for a run's write lock as the run's writer waits for others.

    Raises:
        StorageError: the database stayed locked.
    """
    def write() -> None:
        with Session(engine) as session:
            session.merge(row)
            session.add(CatalogHistoryRecord(
                name=row.name, from_status=from_status, to_status=row.status, at=at, reason=reason, run_id=run_id,
            ))
            session.commit()

    with_lock_retries(write, engine.url.database or "the database")


def tag_backtest(engine: Engine, run_id: str, name: str, data: str, at: datetime) -> None:
    """Record that run `run_id` replays catalogue entry `name`."""
    def write() -> None:
        with Session(engine) as session:
            session.add(CatalogBacktestRecord(run_id=run_id, name=name, data=data, created_at=at))
            session.commit()

    with_lock_retries(write, engine.url.database or "the database")


def backtests(engine: Engine, name: str) -> list[CatalogBacktestRecord]:
    """The replay runs of entry `name`, newest first."""
    if not _has(engine, CatalogBacktestRecord):
        return []
    with Session(engine) as session:
        statement = select(CatalogBacktestRecord).where(CatalogBacktestRecord.name == name)
        return list(session.exec(statement.order_by(col(CatalogBacktestRecord.created_at).desc())))


def catalog_changes(engine: Engine, run_id: str) -> list[CatalogChangeRecord]:
    """The strategies a run started, stopped or skipped, in order."""
    if not _has(engine, CatalogChangeRecord):
        return []
    with Session(engine) as session:
        statement = select(CatalogChangeRecord).where(CatalogChangeRecord.run_id == run_id)
        return list(session.exec(statement.order_by(CatalogChangeRecord.id)))


class CatalogWatcher(TablePoller):
    """Reads the catalogue for a running run: at once when its change counter moves (checked
    every `POLL_SECONDS`), and in full every `refresh_interval` seconds.

    Args:
        url: the database.
        offer: receives every entry, read fresh, from this thread (the run's `CatalogSync.offer`).
        seen: the change counter when the run read the catalogue to start.
        refresh_interval: seconds between full re-reads.
        clock: monotonic seconds (time.monotonic, or a test's).
    """

    def __init__(
        self, url: str, offer: Callable[[list[CatalogEntryRecord]], None], seen: int,
        refresh_interval: float, clock: Callable[[], float],
    ):
        super().__init__(url, min(POLL_SECONDS, refresh_interval), "runner-catalog", "catalogue changes")
        self.refresh_interval = refresh_interval
        self._offer = offer
        self._seen = seen
        self._clock = clock
        self._read_at = clock()

    def poll(self, engine: Engine) -> None:
        """Offer the catalogue when it changed, or when a full re-read is due."""
        try:
            counter = change_counter(engine)
            due = self._clock() - self._read_at >= self.refresh_interval
            if counter == self._seen and not due:
                return
            rows = entries(engine)
        except SQLAlchemyError as exc:
            self._problem(f"cannot read the strategy catalogue: {getattr(exc, 'orig', exc)}")
            return
        self._seen, self._read_at = counter, self._clock()
        self._offer(rows)
