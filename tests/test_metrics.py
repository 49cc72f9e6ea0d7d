"""Prometheus metrics: scraped over HTTP while a run goes on, agreeing with the run's summary and
records at its end; the endpoint's lifecycle (port 0, port in use, closed after the run); the
missing-extra message; and `runner start --metrics-port`."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from decimal import Decimal

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config_text
from runner.errors import ConfigError
from runner.metrics import EVALUATION_BUCKETS, SnapshotCollector, is_loopback
from runner.snapshot import RunSnapshot, StrategySnapshot
from runner.storage import queries
from runner.timing import LatencyHistogram
from tests.helpers import config_text

DEADLINE_SECONDS = 60  # generous: the suite runs on a loaded two-core machine

# Every kind of record the counters follow: orders with bracket legs (not counted as orders),
# signals with and without confidence, signals refused before they become orders (malformed,
# nothing to close), orders the broker rejects (a short sale), and errors.
CHATTY = '''
from strategies.base import StrategyInterface


class Chatty(StrategyInterface):
    """Emit a different kind of signal on each call."""

    def on_start(self):
        self.calls = 0

    def on_tick(self, market_data):
        self.calls += 1
        n, symbol = self.calls, market_data.fresh[0]
        price = float(market_data[symbol].close)
        if n % 11 == 0:
            raise ValueError("every eleventh call fails")
        if n % 7 == 0:
            return [{"symbol": symbol, "action": "JUMP"}]
        if n % 5 == 0:
            return [{"symbol": symbol, "action": "SELL", "quantity": 1000}]
        if n % 3 == 0:
            return [{"symbol": symbol, "action": "BUY", "quantity": 1, "confidence": (n % 10) / 10,
                     "stop_loss": round(price * 0.98, 2), "take_profit": round(price * 1.02, 2)}]
        return [{"symbol": symbol, "action": "CLOSE"} if n % 2 else {"symbol": symbol, "action": "BUY", "quantity": 1}]
'''
STRATEGIES = (
    "  - {file: chatty.py, name: chatty}\n"
    "  - {type: ma_crossover, name: crosser, params: {fast: 2, slow: 5, quantity: 10}}\n"
)


def long_run_config(tmp_path, port: int | str = 0, **sections):
    """A run that goes on until stopped (about 100 steps a second), with metrics on `port`."""
    (tmp_path / "chatty.py").write_text(CHATTY)
    sections.setdefault("run", "{max_ticks: 1000000, speed: 6000, seed: 5}")
    sections.setdefault("storage", f"{{url: 'sqlite:///{tmp_path / 'm.db'}'}}")
    sections.setdefault("telemetry", f"{{metrics_port: {port}}}")
    return load_config_text(config_text(STRATEGIES, **sections), str(tmp_path / "m.yaml"))


def scrape(url: str) -> dict[str, list]:
    """The samples of each metric family at `url`, by family name."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def parse(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families, family: str, sample: str | None = None, **labels) -> float:
    """The sum of the samples named `sample` (default: `family`) of a family that match `labels`."""
    wanted = sample or family
    return sum(
        s.value for s in families.get(family, ())
        if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())
    )


def poll(url: str, ready, what: str) -> dict[str, list]:
    """Scrape until `ready(families)` holds; fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        families = scrape(url)
        if ready(families):
            return families
        if time.monotonic() > deadline:
            pytest.fail(f"no scrape showed {what} within {DEADLINE_SECONDS} s")
        time.sleep(0.05)


def refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


def test_a_running_run_is_scraped_over_http_and_its_counters_agree_with_the_summary(tmp_path):
    runner = build(long_run_config(tmp_path))
    runner.start()
    try:
        url = runner.metrics.url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        assert runner.metrics.port > 0
        first = poll(url, lambda f: value(f, "runner_steps", "runner_steps_total") >= 30
                     and value(f, "runner_fills", "runner_fills_total") > 0, "30 steps and a fill")
        assert value(first, "runner_active_strategies") == 2
        assert value(first, "runner_equity") > 0
        steps = value(first, "runner_steps", "runner_steps_total")
        later = poll(url, lambda f: value(f, "runner_steps", "runner_steps_total") > steps, "the run moving on")
        assert value(later, "runner_orders", "runner_orders_total") >= value(first, "runner_orders", "runner_orders_total")
        assert value(later, "runner_strategy_runs", "runner_strategy_runs_total", strategy="chatty") > 0
    finally:
        runner.stop()
        assert runner.wait(DEADLINE_SECONDS)
    summary = runner.snapshot()
    assert summary.status == "stopped"
    assert refused(url), "the endpoint closes with the run"

    final = parse(generate_latest(runner.metrics.registry).decode())  # still readable in process
    assert value(final, "runner_steps", "runner_steps_total") == summary.steps
    assert value(final, "runner_orders", "runner_orders_total") == summary.orders > 0
    assert value(final, "runner_fills", "runner_fills_total") == summary.fills > 0
    assert value(final, "runner_rejections", "runner_rejections_total") == summary.rejections
    assert value(final, "runner_rejections", "runner_rejections_total", stage="signal") > 0
    assert value(final, "runner_rejections", "runner_rejections_total", stage="order") > 0
    assert value(final, "runner_equity") == pytest.approx(float(summary.equity))
    assert value(final, "runner_active_strategies") == 0  # stopped
    for strategy in summary.strategies:
        name = strategy.name
        assert value(final, "runner_strategy_runs", "runner_strategy_runs_total", strategy=name) == strategy.calls
        assert value(final, "runner_strategy_errors", "runner_strategy_errors_total", strategy=name) == strategy.errors
        assert value(final, "runner_strategy_evaluation_seconds", "runner_strategy_evaluation_seconds_count",
                     strategy=name) == strategy.calls
        assert value(final, "runner_last_signal_timestamp_seconds", strategy=name) > time.time() - 3600
    assert value(final, "runner_strategy_errors", "runner_strategy_errors_total", strategy="chatty") > 0

    engine = runner.recorder.engine
    signals = queries.signals(engine, runner.run_id)
    by_label = defaultdict(int)
    for s in signals:
        if s.symbol:  # a malformed signal has none; it counts as a rejection only
            by_label[(s.strategy, s.symbol, s.action)] += 1
    counted = {
        (s.labels["strategy"], s.labels["symbol"], s.labels["action"]): s.value
        for s in final["runner_signals"] if s.name == "runner_signals_total"
    }
    assert counted == by_label
    assert value(final, "runner_signal_confidence", "runner_signal_confidence_count", strategy="chatty") == sum(
        1 for s in signals if s.confidence is not None
    ) > 0
    orders = queries.orders(engine, runner.run_id)
    assert any(o.parent_id is not None for o in orders), "the brackets made legs, which are not counted"
    assert value(final, "runner_orders", "runner_orders_total") == sum(1 for o in orders if o.parent_id is None)
    assert value(final, "runner_fills", "runner_fills_total") == len(queries.fills(engine, runner.run_id))


def test_the_evaluation_time_histogram_comes_from_the_snapshot_latency():
    latency = LatencyHistogram()
    for seconds in (0.00002, 0.0003, 0.0003, 0.004, 0.2, 30.0):
        latency.add(seconds)
    strategy = StrategySnapshot.timed(
        name="slow", state="running", calls=6, signals=0, accepted=0, rejected=0, errors=0,
        pnl=Decimal(0), latency=latency,
    )
    run = RunSnapshot(7, None, Decimal(5), Decimal(6), Decimal(5), 0, 0, 0, strategies=(strategy,))
    families = {f.name: f for f in SnapshotCollector(lambda: run).collect()}
    samples = families["runner_strategy_evaluation_seconds"].samples
    buckets = {float(s.labels["le"]): s.value for s in samples if s.name.endswith("_bucket")}
    assert list(buckets) == [*EVALUATION_BUCKETS, float("inf")]
    assert buckets[0.00001] == 0 and buckets[0.000025] == 1 and buckets[0.0005] == 3
    assert buckets[0.005] == 4 and buckets[0.25] == 5 and buckets[10.0] == 5 and buckets[float("inf")] == 6
    assert [s.value for s in samples if s.name.endswith("_sum")] == [pytest.approx(30.20462)]
    assert families["runner_active_strategies"].samples[0].value == 1
    assert families["runner_equity"].samples[0].value == 6


def test_without_metrics_nothing_is_wrapped_or_served(tmp_path):
    config = long_run_config(tmp_path, telemetry="{}", run="{max_ticks: 20, seed: 5}")
    runner = build(config)
    assert runner.metrics is None
    assert runner.loop.sink is runner.recorder  # no tee: the records go straight to storage
    assert runner.run().status == "completed"


def test_a_port_in_use_is_a_clear_error_and_records_no_run(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = build(long_run_config(tmp_path, port))
        with pytest.raises(ConfigError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}: .*choose another --metrics-port"):
            runner.start()
    assert queries.list_runs(runner.recorder.engine) == []
    assert runner.status().value == "created"


def test_several_runs_in_one_process_each_get_a_port_and_free_it(tmp_path):
    urls = []
    for index in range(3):
        config = long_run_config(tmp_path, run="{max_ticks: 30, seed: 5}", storage=f"{{url: 'sqlite:///{tmp_path / f'{index}.db'}'}}")
        runner = build(config)
        summary = runner.run()
        assert summary.status == "completed"
        final = parse(generate_latest(runner.metrics.registry).decode())
        assert value(final, "runner_steps", "runner_steps_total") == 30  # a registry of its own per run
        urls.append(runner.metrics.url)
    assert all(refused(url) for url in urls)
    assert not [t for t in threading.enumerate() if t.name == "runner-metrics"], "no serving thread outlives its run"


def test_without_the_extra_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'runner\[metrics\]'"):
        build(long_run_config(tmp_path))
    result = CliRunner().invoke(app, ["start", str(write_fast_config(tmp_path)), "--db", str(tmp_path / "c.db"),
                                      "--metrics-port", "0", "--json"])
    assert result.exit_code == 2
    assert "pip install 'runner[metrics]'" in " ".join(result.stderr.split())
    assert json.loads(result.stdout)["exit_code"] == 2


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


# --- runner start --metrics-port ----------------------------------------------------------------


def write_fast_config(tmp_path):
    path = tmp_path / "fast.yaml"
    path.write_text(config_text("  - {type: ma_crossover, params: {fast: 2, slow: 5, quantity: 10}}\n",
                                run="{max_ticks: 50, seed: 3}"))
    return path


def test_start_with_metrics_port_0_names_the_url_on_stderr(tmp_path):
    result = CliRunner().invoke(app, ["start", str(write_fast_config(tmp_path)), "--db", str(tmp_path / "c.db"),
                                      "--metrics-port", "0", "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["status"] == "completed"  # stdout stays one JSON object
    port = int(next(line for line in result.stderr.splitlines() if line.startswith("metrics on "))
               .removeprefix("metrics on http://127.0.0.1:").removesuffix("/metrics"))
    assert port > 0
    assert "warning" not in result.stderr


def test_start_warns_when_the_metrics_listen_beyond_this_machine(tmp_path):
    result = CliRunner().invoke(app, ["start", str(write_fast_config(tmp_path)), "--db", str(tmp_path / "c.db"),
                                      "--metrics-port", "0", "--metrics-host", "0.0.0.0", "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    stderr = " ".join(result.stderr.split())
    assert "metrics on http://0.0.0.0:" in stderr
    assert "warning: metrics listen on 0.0.0.0, reachable from other machines" in stderr


def test_start_refuses_metrics_host_without_a_port(tmp_path):
    result = CliRunner().invoke(app, ["start", str(write_fast_config(tmp_path)), "--db", str(tmp_path / "c.db"),
                                      "--metrics-host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--metrics-host needs --metrics-port" in result.stderr
    assert not (tmp_path / "c.db").exists()


def test_start_with_a_port_in_use_exits_2_and_records_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["start", str(write_fast_config(tmp_path)), "--db", str(tmp_path / "c.db"),
                                          "--metrics-port", str(port)])
    assert result.exit_code == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in " ".join(result.stderr.split())
    runs = CliRunner().invoke(app, ["runs", "--db", str(tmp_path / "c.db"), "--json"])
    assert json.loads(runs.stdout) == []
