"""Live market data through ccxt against a fake exchange on 127.0.0.1, its recording, and the
replay of that recording: the same orders and fills. Nothing here reaches the internet."""

from __future__ import annotations

import csv
import socket
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config, load_config_text
from runner.health import assess
from runner.storage import queries
from runner.storage.db import open_database
from tests.exchange_server import START, FakeExchange, FastClock, candles

REPO = Path(__file__).resolve().parents[1]
MINUTES = 16
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
STRATEGY = "strategies:\n  - {type: ma_crossover, params: {fast: 2, slow: 4, quantity: 1}}\n"


def live_config(server: FakeExchange, db: Path, extra: str = "", **market) -> str:
    settings = {
        "source": "live", "exchange": "binance", "symbols": f"[{', '.join(SYMBOLS)}]", "interval": "1m",
        "cache_ttl": 0.05, "api_url": f'"{server.url}"', **market,
    }
    fields = ", ".join(f"{key}: {value}" for key, value in settings.items())
    return (
        f"run: {{mode: clock, tick_interval: 0.02}}\nmarket_data: {{{fields}}}\n"
        f'storage: {{url: "sqlite:///{db}"}}\n{STRATEGY}{extra}'
    )


def wait_for(condition, seconds: float = 20.0, what: str = "the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def trades(db: Path, run_id: str) -> tuple[list, list]:
    with sqlite3.connect(db) as conn:
        orders = conn.execute(
            "SELECT order_id, strategy, symbol, side, quantity, status, average_price, created_at "
            "FROM orders WHERE run_id = ? ORDER BY order_id", (run_id,),
        ).fetchall()
        fills = conn.execute(
            "SELECT order_id, symbol, side, quantity, price, commission, timestamp "
            "FROM fills WHERE run_id = ? ORDER BY fill_id", (run_id,),
        ).fetchall()
    return orders, fills


def test_a_live_session_passes_on_closed_candles_and_its_recording_replays_it_exactly(tmp_path):
    data = {symbol: candles(symbol, MINUTES) for symbol in SYMBOLS}
    clock = FastClock(600)  # a minute every 0.1 s
    db = tmp_path / "runs.db"
    with FakeExchange(data, clock) as exchange:
        config = load_config_text(live_config(exchange, db, record_to="session.csv", stale_after=600), str(tmp_path / "live.yaml"))
        runner = build(config, clock=clock, run_id="live")
        clock.restart()  # the first candle closes 0.1 s from now
        runner.start()
        last = START + timedelta(minutes=MINUTES - 1)
        wait_for(lambda: runner.snapshot().timestamp == last, what="the last candle to be stepped")
        runner.stop()
        assert runner.wait(10)
    summary = runner.snapshot().to_dict()
    assert summary["status"] == "stopped"
    assert summary["market_data"]["errors"] == 0 and summary["market_data"]["requests"] > 0
    bars = summary["recording"]["bars"]
    assert bars >= (MINUTES - 2) * len(SYMBOLS)  # from the first candle closed when it began

    # Only closed candles, with their final values, each once, in time order, every one from
    # the first: the forming candle the server showed on every request (close = 1.25 x open)
    # never got through.
    with (tmp_path / "session.csv").open() as file:
        rows = list(csv.DictReader(file))
    final = [
        (datetime.fromtimestamp(stamp / 1000, UTC).isoformat(), symbol, [open_, high, low, close, volume])
        for index in range(MINUTES) for symbol in SYMBOLS
        for stamp, open_, high, low, close, volume in [data[symbol][index]]
    ]
    recorded = [
        (row["timestamp"], row["symbol"], [float(row[k]) for k in ("open", "high", "low", "close", "volume")])
        for row in rows
    ]
    assert recorded == final[-bars:]

    live_orders, live_fills = trades(db, "live")
    assert len(live_fills) >= 2  # the strategy traded, so the comparison below means something

    replay = load_config_text(
        f"market_data: {{source: csv, path: session.csv, symbols: [{', '.join(SYMBOLS)}], interval: 1m}}\n"
        f'storage: {{url: "sqlite:///{db}"}}\n{STRATEGY}', str(tmp_path / "replay.yaml"),
    )
    replayed = build(replay, run_id="replay").run()
    assert replayed.status == "completed"
    assert trades(db, "replay") == (live_orders, live_fills)
    assert replayed.equity == runner.snapshot().equity


def test_the_data_turns_stale_while_the_exchange_fails_and_fresh_again_without_stopping(tmp_path):
    clock = FastClock(600)
    db = tmp_path / "runs.db"
    with FakeExchange({symbol: candles(symbol, 600) for symbol in SYMBOLS}, clock) as exchange:
        text = live_config(exchange, db, stale_after=300, max_backoff=0.1)
        runner = build(load_config_text(text, str(tmp_path / "live.yaml")), clock=clock, run_id="flaky")
        runner.start()
        engine = open_database(f"sqlite:///{db}")

        def feed_state():
            return runner.snapshot().to_dict()["market_data"]

        wait_for(lambda: feed_state()["last_bar_time"], what="a first bar")
        exchange.failing = True
        stale = wait_for(lambda: (state := feed_state())["stale"] and "last error" in state["reason"] and state,
                         what="stale data")
        assert stale["reason"].startswith(("no answer from binance", "no new 1m candle from binance"))
        assert "(last error: ExchangeError: binance {\"code\": -1, \"msg\": \"Service unavailable\"})" in stale["reason"]
        health = wait_for(lambda: (h := assess(engine, queries.run(engine, "flaky"))).market_data
                          and h.market_data["stale"] and h, what="the stale status in the records")
        assert not health.healthy
        assert any(reason.startswith("live market data is stale: no ") for reason in health.reasons)
        assert runner.status().value == "running"

        exchange.failing = False
        wait_for(lambda: not feed_state()["stale"], what="fresh data again")
        steps = runner.snapshot().steps
        wait_for(lambda: runner.snapshot().steps > steps, what="more steps")
        runner.stop()
        assert runner.wait(10)
    summary = runner.snapshot().to_dict()
    assert summary["status"] == "stopped"
    assert summary["market_data"]["errors"] >= 1
    assert assess(engine, queries.run(engine, "flaky")).healthy


def test_the_example_live_config_runs_against_a_local_exchange(tmp_path):
    clock = FastClock(600)
    db = tmp_path / "runs.db"
    with FakeExchange({symbol: candles(symbol, 600) for symbol in SYMBOLS}, clock) as server:
        config = load_config(REPO / "configs" / "live" / "binance.yaml").with_overrides(
            run={"tick_interval": 0.02, "max_ticks": 40}, storage={"url": f"sqlite:///{db}"},
            market_data={"api_url": server.url, "cache_ttl": 0.05, "record_to": str(tmp_path / "rec-{run_id}.csv")},
        )
        summary = build(config, clock=clock, run_id="example").run().to_dict()
    assert (summary["status"], summary["ticks"], summary["error"]) == ("completed", 40, "")
    assert summary["market_data"]["last_bar_time"] is not None
    assert (tmp_path / "rec-example.csv").read_text().startswith("timestamp,symbol,open,high,low,close,volume\n")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, status FROM runs").fetchall() == [("example", "completed")]
    audit = CliRunner().invoke(app, ["audit", "--db", str(db)])
    assert audit.exit_code == 0 and audit.stdout.startswith("clean: "), audit.output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(tmp_path: Path, text: str):
    (tmp_path / "live.yaml").write_text(text)
    return CliRunner().invoke(app, ["start", str(tmp_path / "live.yaml"), "--quiet"])


@pytest.fixture
def exchange():
    clock = FastClock(1)
    with FakeExchange({symbol: candles(symbol, 5) for symbol in SYMBOLS}, clock) as server:
        yield server


def test_an_unknown_exchange_exits_2_with_the_nearest_name(tmp_path, exchange):
    result = start(tmp_path, live_config(exchange, tmp_path / "runs.db", exchange="binanse"))
    assert result.exit_code == 2
    assert "market_data.exchange: unknown exchange 'binanse'; did you mean 'binance'?" in result.output
    assert not (tmp_path / "runs.db").exists()


def test_an_unknown_symbol_exits_2_listing_the_markets_found(tmp_path, exchange):
    text = live_config(exchange, tmp_path / "runs.db").replace("ETH/USDT]", "ETH/USDX]")
    result = start(tmp_path, text)
    assert result.exit_code == 2
    assert "market_data.symbols[1]: binance has no market 'ETH/USDX'; did you mean 'ETH/USDT'? " in result.output
    assert "(2 markets: BTC/USDT, ETH/USDT)" in result.output


def test_an_interval_the_exchange_lacks_exits_2_listing_its_timeframes(tmp_path, exchange):
    result = start(tmp_path, live_config(exchange, tmp_path / "runs.db", interval="7m"))
    assert result.exit_code == 2
    assert "market_data.interval: binance has no 7m candles; its timeframes: 1s, 1m, 3m" in result.output


def test_live_data_needs_the_clock_mode(tmp_path, exchange):
    text = live_config(exchange, tmp_path / "runs.db").replace("mode: clock", "mode: data")
    result = start(tmp_path, text)
    assert result.exit_code == 2
    assert "run.mode: market_data.source live needs run.mode: clock" in result.output


def test_an_unreachable_exchange_exits_1_and_records_no_run(tmp_path, exchange):
    text = live_config(exchange, tmp_path / "runs.db").replace(exchange.url, f"http://127.0.0.1:{closed_port()}")
    result = start(tmp_path, text)
    assert result.exit_code == 1
    assert "cannot reach exchange binance (http://127.0.0.1:" in result.output
    assert "check the network" in result.output
    if (tmp_path / "runs.db").exists():
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_an_existing_recording_is_never_overwritten(tmp_path, exchange):
    (tmp_path / "session.csv").write_text("kept\n")
    result = start(tmp_path, live_config(exchange, tmp_path / "runs.db", record_to="session.csv"))
    assert result.exit_code == 2
    assert "market_data.record_to:" in result.output and "exists already" in result.output
    assert (tmp_path / "session.csv").read_text() == "kept\n"


def test_a_parquet_recording_is_journalled_as_csv_until_the_end_then_replays_the_same_bars(tmp_path):
    from decimal import Decimal

    from runner.domain import Bar, MarketData
    from runner.feeds.recording import BarRecording
    from runner.feeds.replay import load_replay

    steps = [
        MarketData(START + timedelta(minutes=i), "1m", {
            s: Bar(s, START + timedelta(minutes=i), Decimal(repr(100.1 + i)), Decimal(repr(101.25 + i)),
                   Decimal("99.5"), Decimal(repr(100.75 + i)), Decimal("12.345"))
            for s in SYMBOLS
        })
        for i in range(3)
    ]
    recording = BarRecording(tmp_path / "session.parquet")
    for market in steps:
        recording.write(market)
    journal = tmp_path / "session.parquet.journal.csv"
    assert len(journal.read_text().splitlines()) == 1 + 3 * len(SYMBOLS)  # readable after a crash now
    recording.close()
    assert not journal.exists()
    replayed = list(load_replay("parquet", tmp_path, path="session.parquet", symbols=SYMBOLS, interval="1m"))
    assert [(m.timestamp, dict(m)) for m in replayed] == [(m.timestamp, dict(m)) for m in steps]
