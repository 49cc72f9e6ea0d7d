"""Processing-time distribution of a strategy: count, mean, p95 and max in constant memory.

Durations fall into log-spaced buckets (eight per doubling, from one microsecond), so a
quantile is known to within about 9 % however long the run, at the cost of one binary search per call.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

_PER_DOUBLING = 8
_SMALLEST = 1e-6  # seconds: the upper bound of the first bucket
_BUCKETS = _PER_DOUBLING * 27 + 1  # up to about 134 s; longer calls share the last bucket


def bucket_bound(index: int) -> float:
    """The upper bound in seconds of bucket `index`."""
    return _SMALLEST * 2 ** (index / _PER_DOUBLING)


_BOUNDS = [bucket_bound(index) for index in range(_BUCKETS)]


class LatencyHistogram:
    """Durations of calls, added from one thread and read from any (a torn read is harmless)."""

    __slots__ = ("counts", "count", "total", "slowest")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.slowest = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds > self.slowest:
            self.slowest = seconds
        index = bisect_left(_BOUNDS, seconds)  # the first bucket whose bound is >= seconds
        self.counts[index if index < _BUCKETS else _BUCKETS - 1] += 1

    def copy(self) -> LatencyHistogram:
        twin = LatencyHistogram()
        twin.counts, twin.count, twin.total, twin.slowest = list(self.counts), self.count, self.total, self.slowest
        return twin

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """The duration below which a share `q` of the calls fell (a bucket's upper bound,
        never above the slowest call); 0 before any call."""
        if not self.count:
            return 0.0
        rank, seen = q * self.count, 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return min(bucket_bound(index), self.slowest)
        return self.slowest

    def cumulative(self, bounds: Sequence[float]) -> list[int]:
        """Calls that took at most each of `bounds` (seconds, ascending), as a Prometheus
        histogram counts them; a bucket counts under the first bound at or above its own."""
        result, seen, index = [], 0, 0
        for bound in bounds:
            while index < _BUCKETS and bucket_bound(index) <= bound * (1 + 1e-9):
                seen += self.counts[index]
                index += 1
            result.append(seen)
        return result
