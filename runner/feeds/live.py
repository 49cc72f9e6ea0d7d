"""Closed candles polled from an exchange, handed to a clock-driven loop without ever blocking it.

A poller thread owns the exchange: it asks for each symbol's recent candles at most once per
`cache_ttl` (one request serves every strategy), lets ccxt space requests by the exchange's rate
limit, and retries network errors with doubling waits. From each round it passes on the candles
that had closed by the round's start by the clock (in the first round only the latest of them,
where the session starts) (open + interval <= now; the machine's clock
should be synchronised), each candle time once, in time order, with every symbol that has it.
Every symbol is asked after the round's start, so each answer holds every candle closed by then;
a candle that comes only after its time was passed on is left out, so a symbol missing from a
step is a gap, as in a replay.

The loop's thread iterates the feed: each step takes the next ready candle time, or, with
nothing new, a step without bars at the latest candle time (nothing fills, nothing is called).
Whether the data is stale is judged at each step and published through `on_status`.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from runner.clock import Clock
from runner.domain import Bar, MarketData
from runner.events import FeedStatus
from runner.intervals import interval_seconds

log = logging.getLogger(__name__)

READY_STEPS = 10_000  # candle times waiting for the loop; the oldest are dropped past this
FETCH_LIMIT = 100  # candles asked for per request (covers a gap after an outage of that many)


class LiveFeed:
    """Closed OHLCV candles of several symbols from a ccxt exchange (already opened).

    Args:
        exchange: a ccxt exchange with its markets loaded (see exchange.open_exchange).
        symbols: the symbols to poll.
        interval: the candle interval (one of the exchange's timeframes).
        clock: tells the time candles close by, and waits between polls.
        cache_ttl: seconds one response per symbol is reused; the poll period.
        stale_after: seconds without an answer, or past a candle's due close, that make the
            data stale.
        max_backoff: the longest wait between retries after network errors.
        on_bars: called in the loop thread with each step that has bars once it has been
            stepped (the recording of the session): when the loop asks for the next step, or
            at `close` if `steps_taken` (the loop's step count) shows it was.
        on_status: called in the loop thread when the status turns stale or fresh.
        recording: what `on_bars` writes to, if anything (closed with the run).
    """

    live = True
    total_steps = None
    key = "market_data"  # in the run's snapshot and summary

    def __init__(
        self, exchange: Any, symbols: list[str], interval: str, clock: Clock, *,
        cache_ttl: float = 5.0, stale_after: float = 60.0, max_backoff: float = 60.0,
        on_bars: Callable[[MarketData], None] | None = None,
        on_status: Callable[[FeedStatus], None] | None = None, recording: Any = None,
    ):
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.interval = interval
        self.clock = clock
        self.cache_ttl = cache_ttl
        self.stale_after = stale_after
        self.max_backoff = max_backoff
        self.on_bars = on_bars
        self.on_status = on_status
        self.recording = recording
        self.steps_taken: Callable[[], int] | None = None
        self._unrecorded: MarketData | None = None  # the latest step with bars, until known stepped
        self._unrecorded_step = 0  # the loop's step number it becomes if stepped
        self.skipped_rows = 0
        self._length = timedelta(seconds=interval_seconds(interval))
        self._ready: queue.Queue[MarketData] = queue.Queue(READY_STEPS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="live-feed", daemon=True)
        self._passed_on: datetime | None = None  # the latest candle time queued (poller's)
        self._last_bar: datetime | None = None  # the latest candle time stepped (loop's)
        self._last_response: datetime | None = None
        self._requests = self._errors = self._dropped = 0
        self._error = ""
        self._published: FeedStatus | None = None
        self._final: FeedStatus | None = None
        self._started = clock.now()

    @property
    def name(self) -> str:
        return f"{self.exchange.id} (ccxt)"

    def __iter__(self) -> Iterator[MarketData]:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._started = self.clock.now()
            self._thread.start()
        while True:
            try:
                market = self._ready.get_nowait()
            except queue.Empty:
                market = MarketData(self._last_bar or self._latest_closed_open(), self.interval, {})
            else:
                self._last_bar = market.timestamp
            self._publish_status()
            self._unrecorded = market if market else None
            if market and self.steps_taken is not None:
                self._unrecorded_step = self.steps_taken() + 1
            yield market
            self._record()  # asked for the next step: this one was stepped

    def close(self) -> None:
        """Stop polling (waits for a request in flight to end, at most its timeout); the status
        stays as it was at the end."""
        self._final = self.status()
        if self._unrecorded is not None and self.steps_taken is not None:
            if self.steps_taken() >= self._unrecorded_step:
                self._record()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.exchange.timeout / 1000 + 1)

    def status(self) -> FeedStatus:
        """The data's state now, or at the end once closed (any thread)."""
        if self._final is not None:
            return self._final
        now = self.clock.now()
        reason = ""
        answered = self._last_response or self._started
        if (now - answered).total_seconds() > self.stale_after:
            since = "since the start" if self._last_response is None else f"for {(now - answered).total_seconds():.0f} s"
            reason = f"no answer from {self.exchange.id} {since}"
        elif self._passed_on is not None:
            overdue = (now - (self._passed_on + 2 * self._length)).total_seconds()
            if overdue > self.stale_after:
                reason = f"no new {self.interval} candle from {self.exchange.id} since {self._passed_on.isoformat()}"
        if reason and self._error:
            reason += f" (last error: {self._error})"
        return FeedStatus(
            self.name, bool(reason), reason, self._last_bar, self._last_response,
            self._requests, self._errors, self._dropped, now,
        )

    def _record(self) -> None:
        if self._unrecorded is not None and self.on_bars is not None:
            self.on_bars(self._unrecorded)
        self._unrecorded = None

    def report(self) -> dict[str, Any]:
        return self.status().to_dict()

    def _publish_status(self) -> None:
        status = self.status()
        if self.on_status is not None and (
            self._published is None or status.stale != self._published.stale
        ):
            self.on_status(status)
        self._published = status

    # --- the poller thread ---

    def _poll(self) -> None:
        failures = 0
        while not self._stop.is_set():
            cutoff = self.clock.now()
            try:
                rounds = [(symbol, self._fetch(symbol)) for symbol in self.symbols]
            except Exception as exc:  # noqa: BLE001 - network or exchange trouble: retry, never crash
                failures += 1
                self._errors += 1
                self._error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                log.warning("live data from %s failed (%s); retrying", self.exchange.id, self._error)
                self.clock.wait(min(self.cache_ttl * 2 ** failures, self.max_backoff), self._stop)
                continue
            failures = 0
            self._error = ""
            self._last_response = self.clock.now()
            self._pass_on(rounds, cutoff)
            self.clock.wait(self.cache_ttl, self._stop)

    def _fetch(self, symbol: str) -> list[list]:
        since = None
        if self._passed_on is not None:
            since = int((self._passed_on + self._length).timestamp() * 1000)
        self._requests += 1
        return self.exchange.fetch_ohlcv(symbol, self.interval, since=since, limit=FETCH_LIMIT)

    def _pass_on(self, rounds: list[tuple[str, list[list]]], cutoff: datetime) -> None:
        """Queue the candle times that closed by `cutoff` and were not passed on yet."""
        by_time: dict[datetime, dict[str, Bar]] = {}
        for symbol, rows in rounds:
            for row in rows:
                bar = _bar(symbol, row)
                if bar is None:
                    self._dropped += 1
                    continue
                if bar.timestamp + self._length > cutoff:
                    continue  # still forming (or closed after the round began: the next round's)
                if self._passed_on is not None and bar.timestamp <= self._passed_on:
                    continue  # passed on already, or too late to be (its time has been stepped)
                by_time.setdefault(bar.timestamp, {})[symbol] = bar
        if self._passed_on is None and by_time:  # the session starts at the latest closed candle
            newest = max(by_time)
            by_time = {newest: by_time[newest]}
        for timestamp in sorted(by_time):
            bars = by_time[timestamp]
            ordered = {symbol: bars[symbol] for symbol in self.symbols if symbol in bars}
            self._offer(MarketData(timestamp, self.interval, ordered))
            self._passed_on = timestamp

    def _offer(self, market: MarketData) -> None:
        if self._ready.full():  # the loop is far behind: drop the oldest, keep the newest
            try:
                dropped = self._ready.get_nowait()
                self._dropped += len(dropped)
            except queue.Empty:
                pass
        self._ready.put_nowait(market)

    def _latest_closed_open(self) -> datetime:
        """The open time of the latest candle closed by the clock (a step before any bar)."""
        seconds = self._length.total_seconds()
        now = self.clock.now().timestamp()
        return datetime.fromtimestamp(math.floor(now / seconds) * seconds - seconds, UTC)


def _bar(symbol: str, row: list) -> Bar | None:
    """The bar of a ccxt OHLCV row [ms, open, high, low, close, volume], or None if malformed."""
    try:
        stamp, open_, high, low, close, volume = row[:6]
        prices = [Decimal(repr(float(x))) for x in (open_, high, low, close)]
        amount = Decimal(repr(float(volume or 0)))
    except (TypeError, ValueError, ArithmeticError):
        return None
    o, h, l, c = prices
    if not all(p.is_finite() and p > 0 for p in prices) or not amount.is_finite() or amount < 0:
        return None
    if h < max(o, c) or l > min(o, c):
        return None
    return Bar(symbol, datetime.fromtimestamp(stamp / 1000, UTC), o, h, l, c, amount)
