"""POSTing each accepted signal as JSON to a URL, from a background thread the loop never waits on.

The loop only puts the signal's JSON object into a bounded queue (a full queue drops it, counted
and recorded as a failure). A sender thread POSTs each one with the standard library, retrying
failures (connection errors, timeouts, non-2xx answers) with doubling waits; a signal that still
fails is counted and recorded (`webhook_failures`). At the end of the run the sender gets up to
`drain_seconds` to send what is queued; what is left then is recorded as dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from runner.domain import Order
from runner.events import SignalEvent, WebhookFailure

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0


class SignalWebhook:
    """Sends accepted signals to `url`; call it with each `SignalEvent` (the loop's on_signal).

    Args:
        url: an http(s) URL.
        run_id: the run the signals belong to (in every object sent).
        headers: header name -> value (read from the environment by the caller).
        timeout: seconds one POST may take.
        retries: further attempts after a failed POST.
        backoff: seconds before the first retry, doubled for each next one.
        queue_size: signals that may wait to be sent.
        prices: symbol -> latest price (the loop's marks), read when a signal is accepted.
        orders_of: strategy -> its working orders, to report the quantity the runner sized.
        on_failure: told of each signal that could not be delivered (records it).
    """

    key = "webhook"  # in the run's snapshot and summary

    def __init__(
        self, url: str, run_id: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0,
        retries: int = 3, backoff: float = 0.5, queue_size: int = 1000,
        prices: Mapping[str, Decimal] | None = None,
        orders_of: Callable[[str], list[Order]] | None = None,
        on_failure: Callable[[WebhookFailure], None] | None = None,
    ):
        self.url = url
        self.run_id = run_id
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.prices = prices if prices is not None else {}
        self.orders_of = orders_of
        self.on_failure = on_failure
        self.sent = self.failed = self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._giving_up = threading.Event()
        self._thread = threading.Thread(target=self._send_all, name="signal-webhook", daemon=True)

    def __call__(self, event: SignalEvent) -> None:
        """Queue an accepted signal's object; never waits (a full queue drops it)."""
        if not event.accepted or event.signal is None:
            return
        payload = self.payload(event)
        if not self._thread.is_alive() and not self._giving_up.is_set():
            self._thread.start()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.dropped += 1
            self._record(payload, 0, "dropped: the webhook queue is full (the receiver is slower than the signals)")

    def payload(self, event: SignalEvent) -> dict[str, Any]:
        """The JSON object sent for an accepted signal (documented in the README)."""
        signal = event.signal
        quantity = signal.quantity
        if quantity is None and self.orders_of is not None and event.order_id is not None:
            quantity = next((o.quantity for o in self.orders_of(event.strategy) if o.id == event.order_id), None)
        price = signal.limit_price or signal.stop_price or self.prices.get(signal.symbol)
        return {
            "run_id": self.run_id, "strategy": event.strategy, "symbol": signal.symbol,
            "action": signal.action.value, "quantity": _text(quantity), "price": _text(price),
            "order_type": signal.order_type.value, "confidence": signal.confidence,
            "stop_loss": _text(signal.stop_loss), "take_profit": _text(signal.take_profit),
            "reason": signal.reason, "timestamp": event.timestamp.isoformat() if event.timestamp else None,
            "step": event.step, "order_id": event.order_id,
        }

    def report(self) -> dict[str, Any]:
        return {
            "url": self.url, "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
            "queued": self._queue.qsize(),
        }

    def close(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Send what is queued (for at most `drain_seconds`), then record the rest as dropped."""
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=drain_seconds)  # the end mark, after what is queued
            except queue.Full:
                pass
            self._thread.join(drain_seconds)
            self._giving_up.set()
            self._thread.join(self.timeout + 1)
        self._giving_up.set()
        while True:
            try:
                payload = self._queue.get_nowait()
            except queue.Empty:
                break
            if payload is not None:
                self.dropped += 1
                self._record(payload, 0, "dropped: the run ended before it could be sent")

    def _send_all(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            self._deliver(payload)
            if self._giving_up.is_set():
                return

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        error = ""
        for attempt in range(1, self.retries + 2):
            try:
                request = urllib.request.Request(self.url, body, self.headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
            except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
                error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt <= self.retries and self._giving_up.wait(self.backoff * 2 ** (attempt - 1)):
                break
        self.failed += 1
        log.warning("signal webhook %s failed after %d attempt(s): %s", self.url, attempt, error)
        self._record(payload, attempt, error)

    def _record(self, payload: dict[str, Any], attempts: int, error: str) -> None:
        if self.on_failure is not None:
            self.on_failure(WebhookFailure(
                datetime.now(UTC), payload["strategy"], payload["symbol"], payload["step"],
                attempts, error, json.dumps(payload),
            ))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
