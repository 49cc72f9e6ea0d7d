"""Clocks: the loop never sleeps by itself, it asks a clock to wait on its stop event.

`WallClock` waits for real; `SimClock` moves its own time forward at once, so tests of paced
and clock-driven runs take no wall time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current UTC time."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards."""

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to `seconds`; return True at once if `stop` is set."""


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if seconds <= 0:
            return stop.is_set()
        return stop.wait(seconds)


class SimClock:
    """A clock whose time only moves when something waits on it."""

    def __init__(self, start: datetime | None = None):
        self._start = start or datetime(2024, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._elapsed += max(seconds, 0.0)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        self.advance(seconds)
        return stop.is_set()
