"""When the next step may run: as fast as possible, at `speed` x bar time, or every tick_interval.

Deadlines are computed from the start of the run, never from the previous step, so a paced run
does not drift; in clock mode a step that starts more than one period late counts as an
overrun and the missed slots are skipped.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import datetime

from runner.clock import Clock


class Pacer:
    """Waits on a clock until a step is due.

    Args:
        clock: the clock to wait on.
        mode: "data" (paced by bar timestamps) or "clock" (paced by wall time).
        speed: data mode: 0 for as fast as possible, N for N x bar time.
        tick_interval: clock mode: seconds between steps.
        on_wait: told how many seconds each wait will last, before it begins (the loop records
            a heartbeat before a long one).
    """

    def __init__(
        self, clock: Clock, mode: str, speed: float, tick_interval: float,
        on_wait: Callable[[float], None] | None = None,
    ):
        self.clock = clock
        self.on_wait = on_wait
        self.mode = mode
        self.speed = speed
        self.tick_interval = tick_interval
        self.overruns = 0
        self._origin: float | None = None
        self._first_bar: datetime | None = None
        self._ticks = 0

    @property
    def unpaced(self) -> bool:
        return self.mode == "data" and self.speed == 0

    def wait(self, bar_time: datetime, stop: threading.Event, limit: float | None = None) -> bool:
        """Wait until the step for `bar_time` is due (or until monotonic time `limit`).

        Returns True when `stop` was set, so the caller should not run the step.
        """
        if self.unpaced:
            return stop.is_set()
        now = self.clock.monotonic()
        if self._origin is None:
            self._origin, self._first_bar = now, bar_time
        due = self._origin + self._offset(bar_time)
        if self.mode == "clock" and now - due > self.tick_interval:
            # A whole period late: count it, and skip the missed slots instead of bursting.
            self.overruns += 1
            self._ticks = math.ceil((now - self._origin) / self.tick_interval)
            due = self._origin + self._ticks * self.tick_interval
        if limit is not None:
            due = min(due, limit)
        self._ticks += 1
        if self.on_wait is not None and due > now:
            self.on_wait(due - now)
        return self.clock.wait(due - now, stop)

    def shift(self, seconds: float) -> None:
        """Move every future deadline later, as after a pause."""
        if self._origin is not None:
            self._origin += seconds

    def _offset(self, bar_time: datetime) -> float:
        if self.mode == "clock":
            return self._ticks * self.tick_interval
        return (bar_time - self._first_bar).total_seconds() / self.speed
