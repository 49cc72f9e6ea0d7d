"""Derived candles: higher intervals built from base bars, emitted only once closed.

A candle labelled 10:00 at 15m covers [10:00, 10:15). It is emitted in the step of the last
base bar inside it (10:14 for 1m bars); when that bar is missing, in the first step past 10:15.
Candles align to boundaries in the configured time zone: candles shorter than a day count
from local midnight and never cross it (a 7m day ends with a shorter candle), daily candles
run from local midnight to local midnight, weekly ones start on Monday. The last, unfinished
candle of the data is never emitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from runner.domain import Bar
from runner.intervals import interval_seconds

_WALL_EPOCH = datetime(1970, 1, 1)
_WEEK = 7 * 86400
_MONDAY_SHIFT = 3 * 86400  # 1970-01-01 was a Thursday


class _Candle:
    __slots__ = ("symbol", "start", "end", "open", "high", "low", "close", "volume")

    def __init__(self, bar: Bar, start: datetime, end: datetime):
        self.symbol, self.start, self.end = bar.symbol, start, end
        self.open, self.high, self.low = bar.open, bar.high, bar.low
        self.close, self.volume = bar.close, bar.volume

    def add(self, bar: Bar) -> None:
        if bar.high > self.high:
            self.high = bar.high
        if bar.low < self.low:
            self.low = bar.low
        self.close = bar.close
        self.volume += bar.volume

    def bar(self) -> Bar:
        return Bar(self.symbol, self.start, self.open, self.high, self.low, self.close, self.volume)


class CandleAggregator:
    """Builds the candles of one interval from base bars of any number of symbols.

    Args:
        interval: the candle interval, a multiple of the base interval.
        base_interval: the interval of the bars fed in.
        timezone: where day and week boundaries fall.
    """

    def __init__(self, interval: str, base_interval: str, timezone: str = "UTC"):
        self.interval = interval
        self.size = interval_seconds(interval)
        self._base_seconds = interval_seconds(base_interval)
        self.base = timedelta(seconds=self._base_seconds)
        self.zone = ZoneInfo(timezone)
        self._utc = timezone == "UTC"
        self._building: dict[str, _Candle] = {}
        self._earliest_end: datetime | None = None

    def update(self, timestamp: datetime, bars: Sequence[Bar]) -> list[Bar]:
        """Add one step's base bars; return the candles that closed, oldest first.

        A step with bars proves that time has passed `timestamp`, so candles that ended by
        then close; an empty step (a live feed with nothing new) closes nothing by itself.
        """
        late = bars and self._earliest_end is not None and self._earliest_end <= timestamp
        closed = self.close_due(timestamp) if late else []
        building = self._building
        for bar in bars:
            candle = building.get(bar.symbol)
            if candle is None:
                start, end = self.bounds(bar.timestamp)
                candle = building[bar.symbol] = _Candle(bar, start, end)
                if self._earliest_end is None or end < self._earliest_end:
                    self._earliest_end = end
            else:
                candle.add(bar)
            if self._bar_end(bar.timestamp) >= candle.end:
                closed.append(candle.bar())
                del building[bar.symbol]
        return closed

    def close_due(self, now: datetime, grace_seconds: float = 0.0) -> list[Bar]:
        """Close every candle whose end (plus the grace) is at or before `now`.

        Data-driven runs call this with each step's time; clock-driven live feeds with the wall
        time and `candle_grace_seconds`.
        """
        limit = now - timedelta(seconds=grace_seconds)
        due = [c for c in self._building.values() if c.end <= limit]
        for candle in due:
            del self._building[candle.symbol]
        ends = [c.end for c in self._building.values()]
        self._earliest_end = min(ends) if ends else None
        return [c.bar() for c in sorted(due, key=lambda c: (c.start, c.symbol))]

    def bounds(self, timestamp: datetime) -> tuple[datetime, datetime]:
        """The [start, end) of the candle holding `timestamp`, in UTC."""
        return self._bounds(timestamp, self.size)

    def _bar_end(self, timestamp: datetime) -> datetime:
        """When the base bar that opened at `timestamp` closes (local days vary at DST)."""
        if self._base_seconds < 86400 or self._utc:
            return timestamp + self.base
        return self._bounds(timestamp, self._base_seconds)[1]

    def _bounds(self, timestamp: datetime, size: int) -> tuple[datetime, datetime]:
        if size < 86400:
            if self._utc and 86400 % size == 0:  # the common case: plain arithmetic
                seconds = int(timestamp.timestamp())
                start = seconds - seconds % size
                return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + size, UTC)
            midnight, next_midnight = self._day(timestamp)
            start = midnight + timedelta(seconds=int((timestamp - midnight).total_seconds()) // size * size)
            return start, min(start + timedelta(seconds=size), next_midnight)
        wall = (timestamp.astimezone(self.zone).replace(tzinfo=None) - _WALL_EPOCH).total_seconds()
        shift = _MONDAY_SHIFT if size % _WEEK == 0 else 0
        start = (int(wall) + shift) // size * size - shift
        return self._utc_of_wall(start), self._utc_of_wall(start + size)

    def _day(self, timestamp: datetime) -> tuple[datetime, datetime]:
        """UTC times of the local midnights that begin and end the day holding `timestamp`."""
        local = timestamp.astimezone(self.zone)
        midnight = datetime(local.year, local.month, local.day)
        return (
            midnight.replace(tzinfo=self.zone).astimezone(UTC),
            (midnight + timedelta(days=1)).replace(tzinfo=self.zone).astimezone(UTC),
        )

    def _utc_of_wall(self, seconds: int) -> datetime:
        return (_WALL_EPOCH + timedelta(seconds=seconds)).replace(tzinfo=self.zone).astimezone(UTC)
