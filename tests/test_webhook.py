"""The signal webhook against local HTTP servers on 127.0.0.1: one that accepts, one that fails,
one that holds every request (the loop must go on regardless: counts and records, no timing)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config_text
from tests.local_server import LocalServer

TICKS = 150
PAYLOAD_KEYS = {
    "run_id", "strategy", "symbol", "action", "quantity", "price", "order_type", "confidence",
    "stop_loss", "take_profit", "reason", "timestamp", "step", "order_id",
}


class Receiver(LocalServer):
    """An HTTP server on 127.0.0.1 that answers POSTs with `status`; with `hold` set, each
    request first waits (at most 20 s) for `release`."""

    def __init__(self, status: int = 200, hold: bool = False):
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                if hold:
                    receiver.release.wait(20)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
        self.url += "/signals"

    def __exit__(self, *exc) -> None:
        self.release.set()
        super().__exit__(*exc)


def config_text(db: Path, webhook: str) -> str:
    return f"""\
run: {{max_ticks: {TICKS}}}
market_data:
  interval: 1m
  symbols: {{AAA: {{start_price: 50, volatility: 0.8}}}}
storage: {{url: "sqlite:///{db}"}}
strategies:
  - {{name: crosser, type: ma_crossover, params: {{fast: 2, slow: 4, quantity: 3}}}}
signals:
  webhook: {webhook}
"""


def accepted_signals(db: Path, run_id: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT step, symbol, action, order_id FROM signals WHERE run_id = ? AND accepted ORDER BY id", (run_id,),
        ).fetchall()


def failures(db: Path, run_id: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT attempts, error, payload FROM webhook_failures WHERE run_id = ? ORDER BY id", (run_id,),
        ).fetchall()


def test_each_accepted_signal_is_posted_as_the_documented_object_with_headers_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNAL_TOKEN", "Bearer s3cret-value")
    db = tmp_path / "runs.db"
    with Receiver() as receiver:
        hook = f'{{url: "{receiver.url}", headers: {{Authorization: SIGNAL_TOKEN}}}}'
        summary = build(load_config_text(config_text(db, hook)), run_id="hooked").run()
    signals = accepted_signals(db, "hooked")
    assert summary.status == "completed" and len(signals) >= 3
    assert [(b["step"], b["symbol"], b["action"], b["order_id"]) for b in receiver.bodies] == signals
    first = receiver.bodies[0]
    assert set(first) == PAYLOAD_KEYS
    assert first["run_id"] == "hooked" and first["strategy"] == "crosser" and first["quantity"] == "3"
    assert float(first["price"]) > 0 and first["order_type"] == "MARKET"
    assert all(h["Authorization"] == "Bearer s3cret-value" for h in receiver.headers)
    assert summary.to_dict()["webhook"] == {
        "url": receiver.url, "sent": len(signals), "failed": 0, "dropped": 0, "queued": 0,
    }
    assert failures(db, "hooked") == []
    with sqlite3.connect(db) as conn:  # the secret is in no record: only the variable's name
        dump = "\n".join(conn.iterdump())
    assert "s3cret-value" not in dump and "SIGNAL_TOKEN" in dump


def test_a_failing_receiver_is_retried_then_counted_and_recorded_while_the_run_completes(tmp_path):
    db = tmp_path / "runs.db"
    with Receiver(status=500) as receiver:
        hook = f'{{url: "{receiver.url}", retries: 1, backoff: 0}}'
        summary = build(load_config_text(config_text(db, hook)), run_id="failing").run()
    signals = accepted_signals(db, "failing")
    assert summary.status == "completed" and summary.steps == TICKS and signals
    assert len(receiver.bodies) == 2 * len(signals)  # each tried twice
    report = summary.to_dict()["webhook"]
    assert (report["sent"], report["failed"], report["dropped"]) == (0, len(signals), 0)
    recorded = failures(db, "failing")
    assert [(attempts, error) for attempts, error, _ in recorded] == [(2, "HTTP 500 Internal Server Error")] * len(signals)
    assert [json.loads(payload)["step"] for _, _, payload in recorded] == [step for step, *_ in signals]


def test_a_receiver_that_holds_requests_never_holds_the_loop(tmp_path):
    db = tmp_path / "runs.db"
    with Receiver(hold=True) as receiver:
        hook = f'{{url: "{receiver.url}", queue_size: 2, retries: 0, timeout: 30}}'
        runner = build(load_config_text(config_text(db, hook)), run_id="held")
        runner.start()
        deadline = time.monotonic() + 60
        while (runner.loop.steps < TICKS or not receiver.bodies) and time.monotonic() < deadline:
            time.sleep(0.02)
        # the loop went through every step while the receiver held the first POST all along
        assert runner.loop.steps == TICKS and len(receiver.bodies) == 1
        receiver.release.set()
        assert runner.wait(60)
    summary = runner.snapshot().to_dict()
    signals = accepted_signals(db, "held")
    report = summary["webhook"]
    assert summary["status"] == "completed" and len(signals) > 3
    assert report["sent"] <= 3 and report["failed"] == 0
    assert report["sent"] + report["dropped"] == len(signals) == len(receiver.bodies) + report["dropped"]
    dropped = failures(db, "held")
    assert len(dropped) == report["dropped"]
    assert {(attempts, error) for attempts, error, _ in dropped} == {
        (0, "dropped: the webhook queue is full (the receiver is slower than the signals)"),
    }


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "127.0.0.1:9000/hook", "file:///tmp/x"])
def test_a_webhook_url_that_is_not_http_exits_2(tmp_path, url):
    (tmp_path / "hook.yaml").write_text(config_text(tmp_path / "runs.db", f'{{url: "{url}"}}'))
    result = CliRunner().invoke(app, ["start", str(tmp_path / "hook.yaml"), "--quiet"])
    assert result.exit_code == 2
    assert f"signals.webhook.url: must be an http:// or https:// URL with a host, got '{url}'" in result.output
    assert not (tmp_path / "runs.db").exists()


def test_a_header_variable_that_is_not_set_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    hook = '{url: "http://127.0.0.1:9/hook", headers: {X-Token: MISSING_TOKEN}}'
    (tmp_path / "hook.yaml").write_text(config_text(tmp_path / "runs.db", hook))
    result = CliRunner().invoke(app, ["start", str(tmp_path / "hook.yaml"), "--quiet"])
    assert result.exit_code == 2
    assert "signals.webhook.headers.X-Token: environment variable MISSING_TOKEN is not set" in result.output


def test_the_summary_shows_what_the_webhook_sent(tmp_path):
    with Receiver() as receiver:
        (tmp_path / "hook.yaml").write_text(config_text(tmp_path / "runs.db", f'{{url: "{receiver.url}"}}'))
        result = CliRunner().invoke(app, ["start", str(tmp_path / "hook.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"webhook       sent {len(receiver.bodies)}  failed 0  dropped 0  queued 0  ({receiver.url})" in result.output
