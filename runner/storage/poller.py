"""A thread that reads a database table now and then for a running run (the live policy, the
strategy catalogue): it opens its own read-only connection, polls until stopped, and logs each
distinct problem once rather than at every poll."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from runner.errors import RunnerError
from runner.storage.db import describe, open_database

log = logging.getLogger(__name__)


class TablePoller:
    """Calls `poll(engine)` every `every` seconds on its own thread, from `start` to `stop`.

    Args:
        url: the database.
        every: seconds between polls.
        name: the thread's name.
        what: what stops being followed if the database cannot be opened (for the log).
    """

    def __init__(self, url: str, every: float, name: str, what: str):
        self.url = url
        self.every = every
        self._what = what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=name, daemon=True)
        self._last_problem = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread (at most one read)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def poll(self, engine: Engine) -> None:
        raise NotImplementedError

    def _watch(self) -> None:
        try:
            engine = open_database(self.url, create=False)
        except RunnerError as exc:
            log.error("%s are off: cannot open %s: %s", self._what, describe(self.url), exc)
            return
        try:
            while not self._stop.wait(self.every):
                self.poll(engine)
        finally:
            engine.dispose()

    def _problem(self, message: str) -> None:
        if message != self._last_problem:  # once, not every poll
            self._last_problem = message
            log.error("%s", message)
