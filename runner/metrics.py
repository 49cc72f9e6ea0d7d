"""Prometheus metrics of a running run, served over HTTP (needs the metrics extra).

Nothing here runs unless metrics are asked for: then the composition root puts a `RecordTee`
between the loop and the storage writer, and the `MetricsExporter` serves `/metrics`. Two
sources feed the metrics, so that neither the loop nor the strategies do any extra work:

- counters updated from the records of each step as they pass to storage (in the loop thread):
  signals, signal confidence, the time of each strategy's latest signal, orders, fills and
  rejections, counted by the same rules as the run summary;
- figures read at scrape time from the latest `RunSnapshot` (immutable, replaced by the loop,
  so safe to read from the server's threads): steps, equity, cash, active and disabled
  strategies, and per strategy its calls, errors, overruns, queue depth and the distribution of
  its `on_tick` times.

Each exporter has a registry of its own (several runs in one process never share metrics),
listens on 127.0.0.1 unless told otherwise, and stops serving when the run ends.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from runner.clock import Clock
from runner.domain import Fill, Order, OrderStatus
from runner.errors import ConfigError
from runner.events import SignalEvent
from runner.snapshot import RunSnapshot

log = logging.getLogger(__name__)

MISSING_EXTRA = (
    "metrics need the prometheus_client package, which is not installed: "
    "pip install 'runner[metrics]' (in a checkout: pip install -e '.[metrics]')"
)
PATH = "/metrics"
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
EVALUATION_BUCKETS = (  # seconds of one on_tick call
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class Sink(Protocol):
    def submit(self, records: list[object]) -> None: ...


def is_loopback(host: str) -> bool:
    """True when `host` serves this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsExporter:
    """The metrics of one run and the HTTP endpoint that serves them.

    Args:
        clock: the run's clock; the time of a strategy's latest signal comes from it.
        host: the address to listen on.
        port: the port to listen on; 0 picks a free one (see `port` once open).

    Raises:
        ConfigError: prometheus_client is not installed.
    """

    def __init__(self, clock: Clock, host: str = "127.0.0.1", port: int = 0):
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            raise ConfigError(MISSING_EXTRA) from None
        self.host = host
        self.port = port
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self._signals = Counter(
            "runner_signals", "Signals that asked for an order (BUY, SELL, CLOSE), as in the signals table.",
            ["strategy", "symbol", "action"], registry=self.registry,
        )
        self._confidence = Histogram(
            "runner_signal_confidence", "Confidence (0..1) of the signals that carry one.",
            ["strategy"], buckets=CONFIDENCE_BUCKETS, registry=self.registry,
        )
        self._last_signal = Gauge(
            "runner_last_signal_timestamp_seconds", "When the strategy last emitted a signal (Unix time).",
            ["strategy"], registry=self.registry,
        )
        self._orders = Counter(
            "runner_orders", "Orders the strategies submitted (bracket legs excluded), as the summary's orders.",
            ["strategy", "symbol", "side"], registry=self.registry,
        )
        self._fills = Counter(
            "runner_fills", "Executions, as the summary's fills.", ["strategy", "symbol", "side"],
            registry=self.registry,
        )
        self._rejections = Counter(
            "runner_rejections", "Signals and orders refused, as the summary's rejections; stage: signal "
            "(refused before it became an order) or order (rejected by the broker).",
            ["strategy", "stage"], registry=self.registry,
        )
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def read_snapshots(self, snapshot: Callable[[], RunSnapshot]) -> None:
        """Take the snapshot figures from `snapshot` (the loop's latest published state)."""
        self.registry.register(SnapshotCollector(snapshot))

    def tee(self, sink: Sink) -> RecordTee:
        """A sink that hands each step's records to `sink`, then counts them."""
        return RecordTee(sink, self)

    def observe(self, records: Sequence[object]) -> None:
        """Count what one step's records tell (called in the loop thread)."""
        for record in records:
            kind = type(record)
            if kind is SignalEvent:
                self._observe_signal(record)
            elif kind is Order:
                if record.status is OrderStatus.NEW and record.parent_id is None:
                    self._orders.labels(record.strategy, record.symbol, record.side.value).inc()
                elif record.status is OrderStatus.REJECTED:
                    self._rejections.labels(record.strategy, "order").inc()
            elif kind is Fill:
                self._fills.labels(record.strategy, record.symbol, record.side.value).inc()

    def _observe_signal(self, event: SignalEvent) -> None:
        signal = event.signal
        self._last_signal.labels(event.strategy).set(self.clock.now().timestamp())
        if signal is not None:
            self._signals.labels(event.strategy, signal.symbol, signal.action.value).inc()
            if signal.confidence is not None:
                self._confidence.labels(event.strategy).observe(signal.confidence)
        # A signal that became an order and was rejected is counted by its REJECTED order state;
        # every other refusal (malformed, not subscribed, validator, risk, a refused cancel) here.
        if not event.accepted and (signal is None or event.order_id is None):
            self._rejections.labels(event.strategy, "signal").inc()

    # -- the HTTP endpoint ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    def open(self) -> None:
        """Listen on the host and port, and serve the metrics from a thread of its own.

        Raises:
            ConfigError: the address cannot be listened on (the port is in use, the host is
                not an address of this machine).
        """
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            server = _Server((self.host, self.port), _Handler, family, self.registry)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"cannot serve metrics on {self.host}:{self.port}: {reason}; choose another "
                "--metrics-port (telemetry.metrics_port), or 0 for a free one"
            ) from None
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="runner-metrics", daemon=True)
        self._thread.start()
        log.info("metrics on %s", self.url)

    def close(self) -> None:
        """Stop serving and release the port (the metrics stay readable through `registry`)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()


class RecordTee:
    """Hands records to the storage writer, then to the metrics."""

    def __init__(self, sink: Sink, exporter: MetricsExporter):
        self.sink = sink
        self.exporter = exporter

    def submit(self, records: list[object]) -> None:
        self.sink.submit(records)
        self.exporter.observe(records)


class SnapshotCollector:
    """Builds the snapshot figures at each scrape from the run's latest `RunSnapshot`."""

    def __init__(self, snapshot: Callable[[], RunSnapshot]):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        run = self.snapshot()
        strategies = run.strategies
        yield CounterMetricFamily("runner_steps", "Steps of the tick loop so far.", value=run.steps)
        yield GaugeMetricFamily("runner_equity", "Cash plus the open positions at their latest marks.", value=float(run.equity))
        yield GaugeMetricFamily("runner_cash", "Cash of the paper account.", value=float(run.cash))
        yield GaugeMetricFamily(
            "runner_active_strategies", "Strategies running now (not disabled, not stopped).",
            value=sum(s.state == "running" for s in strategies),
        )
        yield GaugeMetricFamily(
            "runner_disabled_strategies", "Strategies disabled by their errors.",
            value=sum(s.state == "disabled" for s in strategies),
        )
        runs = CounterMetricFamily("runner_strategy_runs", "Calls of the strategy's on_tick.", labels=["strategy"])
        errors = CounterMetricFamily("runner_strategy_errors", "Errors the strategy raised.", labels=["strategy"])
        overruns = CounterMetricFamily(
            "runner_strategy_overruns", "Market data the strategy missed while still busy (clock mode, threaded).",
            labels=["strategy"],
        )
        depth = GaugeMetricFamily(
            "runner_strategy_queue_depth", "Notifications waiting for the strategy (threaded).", labels=["strategy"],
        )
        evaluation = HistogramMetricFamily(
            "runner_strategy_evaluation_seconds", "Time of each on_tick call of the strategy.", labels=["strategy"],
        )
        for strategy in strategies:
            name = [strategy.name]
            runs.add_metric(name, strategy.calls)
            errors.add_metric(name, strategy.errors)
            overruns.add_metric(name, strategy.overruns)
            depth.add_metric(name, strategy.queue_depth)
            if strategy.latency is not None:
                latency = strategy.latency
                counts = latency.cumulative(EVALUATION_BUCKETS)
                buckets = [(_bound(b), c) for b, c in zip(EVALUATION_BUCKETS, counts, strict=True)]
                buckets.append(("+Inf", sum(latency.counts)))  # not `count`: a torn copy must stay monotonic
                evaluation.add_metric(name, buckets, latency.total)
        yield from (runs, errors, overruns, depth, evaluation)


def _bound(seconds: float) -> str:
    return repr(float(seconds))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, family: int, registry: Any):
        self.address_family = family
        self.registry = registry
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.path.split("?", 1)[0] != PATH:
            self._reply(404, b"not found: the metrics are at /metrics\n", "text/plain; charset=utf-8")
            return
        self._reply(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("metrics request: " + format, *args)
