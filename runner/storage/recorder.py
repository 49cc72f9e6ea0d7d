"""The single writer: one thread owns the database session and commits records in batches.

The loop hands over each step's records with `submit` (it never waits on the database). The
writer takes everything queued so far and commits it in one transaction, so an order and the
fills of the same step land together, and rows of a step never land before those of an
earlier one. `close` commits everything handed over before it returns.

When the database fails under the run (see `runner.storage.faults`), a transaction is rolled
back whole: one that meets another process's lock is retried for up to `lock_wait` seconds; a
full disk, or the database file removed or replaced (checked before each transaction), stops
the writer with a `StorageError` that the loop raises after its step.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import DateTime, Engine, String, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from runner.errors import StorageError
from runner.events import RunFinished, RunResumed, RunStarted
from runner.storage.convert import Rows, add_rows
from runner.storage.faults import (
    file_identity, removed_or_replaced, storage_error, with_lock_retries,
)
from runner.storage.models import (
    CatalogChangeRecord, DecimalText, EquityRecord, FeedStatusRecord, FillRecord, HeartbeatRecord,
    OrderEventRecord, OrderRecord, PolicyChangeRecord, PositionRecord, ProgressRecord, ResumeRecord,
    RunRecord, SignalRecord, StrategyEquityRecord, StrategyErrorRecord, StrategyStatsRecord,
    SymbolAddedRecord, WebhookFailureRecord,
)

log = logging.getLogger(__name__)

_INSERTED = (
    OrderEventRecord, FillRecord, SignalRecord, StrategyErrorRecord, SymbolAddedRecord, PolicyChangeRecord,
    WebhookFailureRecord, CatalogChangeRecord,
)
_UPSERT_KEYS = {
    OrderRecord: ("run_id", "order_id"),
    PositionRecord: ("run_id", "strategy", "symbol"),
    EquityRecord: ("run_id", "step"),
    StrategyEquityRecord: ("run_id", "step", "strategy"),
    StrategyStatsRecord: ("run_id", "strategy"),
    HeartbeatRecord: ("run_id",),
    ProgressRecord: ("run_id",),
    FeedStatusRecord: ("run_id",),
}
# The durability promise: a SIGKILL loses at most this many steps' records (those handed over
# and not yet committed). The writer commits up to MAX_BATCH of them per transaction while the
# loop may queue the rest; when the writer keeps up (paced and clock-driven runs), only the step
# in progress and the one being written are at risk.
MAX_UNCOMMITTED_STEPS = 1_000
MAX_BATCH = 500
_STOP = object()


class Recorder:
    """Writes one run's records on a background thread.

    Args:
        engine: the database.
        run_id: the run every row belongs to.
        max_batch: the most step batches committed in one transaction (the loop waits when
            `MAX_UNCOMMITTED_STEPS` are handed over and not committed, see above).
        lock_wait: the most seconds a transaction waits for another process's lock
            (default `faults.LOCK_WAIT_SECONDS`).
    """

    def __init__(self, engine: Engine, run_id: str, max_batch: int = MAX_BATCH, lock_wait: float | None = None):
        self.engine = engine
        self.run_id = run_id
        self.max_batch = max_batch
        self.lock_wait = lock_wait
        database = engine.url.database
        on_file = engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
        self._path = database if on_file else None
        self._identity: tuple[int, int] | None = None  # the file's device and inode when the run started
        self._file_lost = False
        self.error: StorageError | None = None
        self.submitted = 0  # records handed over (loop thread)
        self.committed = 0  # records committed (writer thread)
        self.steps_submitted = 0  # step batches handed over (loop thread)
        self.steps_committed = 0  # step batches committed (writer thread)
        self._queue_bound = max(1, MAX_UNCOMMITTED_STEPS - max_batch)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # a bounded Queue costs 10x per put
        self._drained = threading.Event()  # set by the writer whenever it has taken a batch
        self._thread = threading.Thread(target=self._write_loop, name="runner-recorder", daemon=True)

    def start(self, started: RunStarted) -> None:
        """Write the run record now, then start the writer thread."""
        row = RunRecord(
            id=started.run_id, started_at=started.started_at, status="running",
            config_path=started.config_path, config_text=started.config_text,
            config_sha256=started.config_sha256, seed=started.seed, manifest=started.manifest,
            replay_of=started.replay_of,
        )
        def insert_run() -> None:
            with self.engine.begin() as conn:
                conn.execute(insert(RunRecord).values(**row.model_dump()))

        self._begin(insert_run, f"cannot record run {started.run_id}")

    def resume(self, resumed: RunResumed) -> None:
        """Take a recorded run up again: mark it running, record the resume (table `resumes`),
        then start the writer thread."""
        row = ResumeRecord(
            run_id=resumed.run_id, resumed_at=resumed.resumed_at, from_step=resumed.from_step,
            bar_time=resumed.bar_time, previous_status=resumed.previous_status,
            config_sha256=resumed.config_sha256, forced=resumed.forced,
        )

        def mark_resumed() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    update(RunRecord).where(RunRecord.id == resumed.run_id)
                    .values(status="running", ended_at=None, error="")
                )
                conn.execute(insert(ResumeRecord).values(**row.model_dump(exclude={"id"})))

        self._begin(mark_resumed, f"cannot resume run {resumed.run_id}")

    def _begin(self, write, failure: str) -> None:
        """Write the run's opening rows now (`write`), then start the writer thread."""
        try:
            with_lock_retries(write, self._where(), self.lock_wait)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StorageError(f"{failure}: {type(cause).__name__}: {cause}") from exc
        if self._path is not None:
            self._identity = file_identity(self._path)
        self._thread.start()

    def submit(self, records: Sequence[object]) -> None:
        """Queue a step's records; waits only while the writer is so far behind that queuing
        more would break the durability promise (MAX_UNCOMMITTED_STEPS)."""
        if records:
            while self._queue.qsize() >= self._queue_bound and self._thread.is_alive():
                self._drained.clear()
                self._drained.wait(0.1)
            self.submitted += len(records)
            self.steps_submitted += 1
            self._queue.put(records)

    def close(self, finished: RunFinished) -> None:
        """Commit everything queued, then the run's final state; wait for the writer to end.

        Raises:
            StorageError: some records could not be written.
        """
        self._queue.put([finished])
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()
        try:
            if self.error is not None:
                self._mark_failed(finished)
                raise self.error
        finally:
            # Closing the pooled connections lets SQLite fold its write-ahead log into the file,
            # so the database is one self-contained file once the run is over (an in-memory
            # database lives in its one connection, so that is kept).
            if self.engine.url.database not in (None, "", ":memory:"):
                self.engine.dispose()

    def _write_loop(self) -> None:
        while True:
            batches = [self._queue.get()]
            while len(batches) < self.max_batch:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._drained.set()
            stop = batches[-1] is _STOP
            if stop:
                batches.pop()
            if self.error is None and batches:
                try:
                    self._write(batches)
                except Exception as exc:  # noqa: BLE001 - any failure must reach the loop, not end the thread
                    self.error = storage_error(exc, self._where())
                    log.error("storage write failed: %s", self.error)
            if stop:
                return

    def _write(self, batches: list[Sequence[object]]) -> None:
        if self._identity is not None and file_identity(self._path) != self._identity:
            self._file_lost = True
            self._fold_log_into_file()
            raise removed_or_replaced(self._path)
        rows: Rows = defaultdict(list)
        count = 0
        for records in batches:
            for item in records:
                add_rows(item, self.run_id, rows)
                count += 1
        with_lock_retries(lambda: self._commit(rows), self._where(), self.lock_wait)
        self.committed += count
        self.steps_committed += len(batches)

    def _commit(self, rows: Rows) -> None:
        memos: dict[str, dict] = {}
        with self.engine.begin() as conn:
            for table, keys in _UPSERT_KEYS.items():
                if rows.get(table):
                    _execute_many(conn, table, _last_per_key(rows[table], keys), memos, keys)
            for table in _INSERTED:
                if rows.get(table):
                    _execute_many(conn, table, rows[table], memos)
            for values in rows.get(RunFinished, ()):
                conn.execute(update(RunRecord).where(RunRecord.id == self.run_id).values(**values))

    def _fold_log_into_file(self) -> None:
        """Copy the commits still in the write-ahead log into the database file, through the open
        connection: the log is named after the old path, so a file moved away would lack them."""
        try:
            with self.engine.connect() as conn:  # the writer's pooled connection, still on the old file
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except SQLAlchemyError as exc:
            log.error("could not copy the write-ahead log into the moved database file: %s", getattr(exc, "orig", exc))

    def _where(self) -> str:
        return self._path or self.engine.url.render_as_string(hide_password=True)

    def _mark_failed(self, finished: RunFinished) -> None:
        if self._file_lost:  # a new connection would open (or create) whatever is at the path now
            log.error("run %s is not marked failed: its database file is gone", self.run_id)
            return
        def mark() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    update(RunRecord).where(RunRecord.id == self.run_id)
                    .values(status="failed", ended_at=finished.ended_at, error=str(self.error))
                )

        try:  # a lock that made the writer give up gets one more budget to go away
            with_lock_retries(mark, self._where(), self.lock_wait)
        except (SQLAlchemyError, StorageError) as exc:
            log.error("could not mark run %s as failed: %s", self.run_id, getattr(exc, "orig", None) or exc)


def _last_per_key(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    latest = {tuple(row[k] for k in keys): row for row in rows}
    return list(latest.values())


def _execute_many(conn, table, rows: list[dict], memos: dict[str, dict], keys: tuple[str, ...] = ()) -> None:
    """Insert rows (upsert them on `keys` when given) with one executemany at the driver.

    The statement is compiled once per table and set of columns, and each value goes only
    through its column's bind processor: SQLAlchemy's own executemany handles every parameter of
    every row generically, which was a quarter of a replay's time.
    """
    statement = _statement(conn.dialect, table, tuple(rows[0]), keys)
    conn.exec_driver_sql(statement.sql, statement.parameters(rows, memos))


class _Compiled:
    """An INSERT (or upsert) compiled for one dialect, with the bind processor of each column."""

    def __init__(self, dialect, table, columns: tuple[str, ...], keys: tuple[str, ...]):
        if keys:
            module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect.name)
            if module is None:
                raise StorageError(f"unsupported database dialect {dialect.name!r}")
            insert_ = module.insert(table)
            statement = insert_.on_conflict_do_update(
                index_elements=list(keys), set_={c: insert_.excluded[c] for c in columns if c not in keys},
            )
        else:
            statement = insert(table)
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.sql = str(compiled)
        self.order = compiled.positiontup  # None for a named paramstyle
        types = {column.name: column.type for column in table.__table__.columns}
        self.processors = {name: _processor(types[name], dialect) for name in columns}
        if dialect.name == "postgresql":  # its text cannot hold NUL, which a strategy's words may
            for name in columns:
                if isinstance(getattr(types[name], "impl", types[name]), String) and self.processors[name] is None:
                    self.processors[name] = _without_nul
        # The rows of a step, in every table, share its timestamp: each distinct datetime is
        # converted once per transaction (`memos`: one memo per column type, shared by tables).
        self.memoized = {name: repr(types[name]) for name in columns if _is_datetime(types[name])}

    def parameters(self, rows: list[dict], memos: dict[str, dict]) -> list:
        processors = {
            name: _memoized(p, memos.setdefault(self.memoized[name], {})) if p and name in self.memoized else p
            for name, p in self.processors.items()
        }
        if self.order is None:
            return [{k: (p(v) if (p := processors[k]) else v) for k, v in row.items()} for row in rows]
        order = [(name, processors[name]) for name in self.order]
        return [tuple(p(row[name]) if p else row[name] for name, p in order) for row in rows]


def _processor(column_type, dialect):
    """The bind processor of one column; plain `str` for `DecimalText`, which is all it does."""
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is not None and isinstance(column_type, DecimalText) and column_type.impl_instance.bind_processor(dialect) is None:
        return _decimal_text
    return processor


def _is_datetime(column_type) -> bool:
    return isinstance(column_type, DateTime) or isinstance(getattr(column_type, "impl_instance", None), DateTime)


def _decimal_text(value):
    return None if value is None else str(value)


def _memoized(processor, memo: dict):
    """`processor` converting each distinct value once, remembered in `memo` (one transaction's)."""

    def process(value):
        try:
            return memo[value]
        except KeyError:
            converted = memo[value] = processor(value)
            return converted

    return process
def _without_nul(value: str | None) -> str | None:
    """Text PostgreSQL accepts: a NUL (from a strategy's reason or error message) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


@functools.lru_cache(maxsize=64)
def _statement(dialect, table, columns: tuple[str, ...], keys: tuple[str, ...]) -> _Compiled:
    return _Compiled(dialect, table, columns, keys)
