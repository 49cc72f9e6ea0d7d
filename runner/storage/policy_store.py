"""The database-wide `policy` table: the operator's live overrides of the policy.

`runner policy set` writes a row (`write_setting`). A run reads the table once as it starts
(`read_settings`), then a `PolicyWatcher` reads it every half second on a thread and a
read-only connection of its own, and offers each value that changed to the run's policy gate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from runner.errors import ConfigError
from runner.policy import parse_stored
from runner.storage.db import describe
from runner.storage.faults import with_lock_retries
from runner.storage.models import PolicySettingRecord
from runner.storage.poller import TablePoller

POLL_SECONDS = 0.5


def read_settings(engine: Engine) -> dict[str, PolicySettingRecord]:
    """The overrides by key, in the order of the keys."""
    with Session(engine) as session:
        return {row.key: row for row in session.exec(select(PolicySettingRecord).order_by(PolicySettingRecord.key))}


def write_setting(engine: Engine, key: str, text: str, at: datetime) -> None:
    """Store `text` (already read by `parse_setting`) as the override of `key`, waiting for a
    run's write lock as its writer waits for others (`faults.with_lock_retries`).

    Raises:
        StorageError: the database stayed locked.
    """
    def write() -> None:
        with Session(engine) as session:
            session.merge(PolicySettingRecord(key=key, value=text, updated_at=at))
            session.commit()

    with_lock_retries(write, describe(engine.url.render_as_string(hide_password=False)))


class PolicyWatcher(TablePoller):
    """Polls the policy table of a run's database and offers changed values to the run.

    Args:
        url: the database.
        offer: receives each batch of changed values, read by `parse_stored`, from this
            thread (the policy gate's `offer`).
        seen: the rows the run started with, so that only later changes are offered.
        every: seconds between reads.
    """

    def __init__(
        self, url: str, offer: Callable[[Mapping[str, Any]], None],
        seen: Mapping[str, PolicySettingRecord], every: float = POLL_SECONDS,
    ):
        super().__init__(url, every, "runner-policy", "live policy changes")
        self._offer = offer
        self._seen = {key: (row.value, row.updated_at) for key, row in seen.items()}

    def poll(self, engine: Engine) -> None:
        """Read the table once and offer what changed since the last read."""
        try:
            rows = read_settings(engine)
        except SQLAlchemyError as exc:
            self._problem(f"cannot read the policy table: {getattr(exc, 'orig', exc)}")
            return
        settings = {}
        for key, row in rows.items():
            if self._seen.get(key) == (row.value, row.updated_at):
                continue
            self._seen[key] = (row.value, row.updated_at)
            try:
                settings[key] = parse_stored(key, row.value)
            except ConfigError as exc:
                self._problem(f"{exc} (ignored: the run keeps its {key})")
        if settings:
            self._offer(settings)
