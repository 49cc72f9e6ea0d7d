"""Keeps the strategies of a `strategies_from: catalog` run in step with the catalogue's LIVE
entries: the watcher offers what it read, and the loop thread applies it between two steps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from runner.catalog import definition, live_entries
from runner.config import StrategyEntry
from runner.errors import RunnerError
from runner.events import CatalogChange
from runner.host import StrategyHost
from runner.loop import TickLoop
from runner.storage.models import CatalogEntryRecord

log = logging.getLogger(__name__)

HostFactory = Callable[[StrategyEntry], StrategyHost]
"""Builds the (not yet started) host of a catalogue entry; raises a `RunnerError` saying why
the entry cannot run in this run (unknown symbol, an interval the run does not build ...)."""


class CatalogSync:
    """Starts the LIVE entries a run does not run yet and stops the ones no longer LIVE, each
    change recorded with its step. Only `offer` may be called from another thread.

    An entry that cannot run here is skipped (recorded, logged) and not tried again until its
    definition changes.
    """

    def __init__(self, loop: TickLoop, host_for: HostFactory):
        self._loop = loop
        self._host_for = host_for
        self._running: dict[str, dict] = {}  # name -> the definition it runs
        self._skipped: dict[str, dict] = {}  # name -> the definition that could not run
        self._offered: list[CatalogEntryRecord] | None = None
        self._lock = threading.Lock()

    def begin(self, rows: list[CatalogEntryRecord]) -> None:
        """Add the LIVE entries of `rows` before the run starts (the runner starts them)."""
        self._apply(rows, "LIVE in the catalogue at the start", start=False)

    def offer(self, rows: list[CatalogEntryRecord]) -> None:
        """Hand over the catalogue as just read (from any thread); applied after the current step."""
        with self._lock:
            self._offered = rows
        self._loop.between_steps(self._take)

    def _take(self) -> None:
        with self._lock:
            rows, self._offered = self._offered, None
        if rows is not None:
            self._apply(rows, "promoted to LIVE", start=True)

    def _apply(self, rows: list[CatalogEntryRecord], why_started: str, start: bool) -> None:
        live = live_entries(rows)
        statuses = {row.name: row.status for row in rows}
        for name in [n for n, spec in self._running.items() if n not in live or definition(live[n]) != spec]:
            status = statuses.get(name)
            reason = "removed from the catalogue" if status is None else f"{status.lower()} in the catalogue"
            self._loop.retire_host(name, reason)
            del self._running[name]
            self._record(name, "stopped", reason)
        for name, strategy in live.items():
            spec = definition(strategy)
            if name in self._running or self._skipped.get(name) == spec:
                continue
            try:
                host = self._host_for(strategy)
            except RunnerError as exc:
                self._skipped[name] = spec
                log.error("catalogue strategy %s cannot run here: %s", name, exc)
                self._record(name, "skipped", str(exc))
                continue
            self._skipped.pop(name, None)
            self._loop.add_host(host)
            if start:
                host.start(self._loop.timestamp)
            self._running[name] = spec
            self._record(name, "started", why_started)

    def _record(self, name: str, action: str, reason: str) -> None:
        self._loop.record(CatalogChange(self._loop.steps, self._loop.timestamp, name, action, reason))
