"""Per-strategy performance: calls, mean / p95 / max processing time, overruns, errors and queue
depth, in `runner start --json` and stored with the run in `strategy_stats`."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import SyntheticSymbol
from runner.feeds.synthetic import SyntheticFeed
from runner.portfolio import Portfolio
from strategies.base import StrategyInterface

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("calls", "mean_ms", "p95_ms", "max_ms", "overruns", "queue_depth")
COUNTS = ("state", "signals", "accepted", "rejected", "errors", "disabled_reason")


def stored_stats(db: Path, run_id: str) -> dict[str, dict]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("select * from strategy_stats where run_id = ?", (run_id,)).fetchall()
    return {row["strategy"]: {key: row[key] for key in TIMING + COUNTS} for row in rows}


def stored_summary(db: Path, run_id: str) -> dict:
    with sqlite3.connect(db) as connection:
        [(text,)] = connection.execute("select summary from runs where id = ?", (run_id,)).fetchall()
    return json.loads(text)


def test_start_json_reports_timing_per_strategy_and_the_run_stores_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "runs.db"
    result = CliRunner().invoke(
        app, ["start", str(ROOT / "configs" / "default.yaml"), "--json", "--max-ticks", "60", "--speed", "0", "--db", str(db)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    strategies = summary["strategies"]
    assert set(strategies) == {"ma_fast", "hold_btc"}
    for name, figures in strategies.items():
        assert set(TIMING) <= set(figures), name
        assert figures["calls"] == 60
        assert (figures["overruns"], figures["queue_depth"]) == (0, 0)  # inline: nothing waits
        assert 0 < figures["mean_ms"] <= figures["max_ms"] and 0 < figures["p95_ms"] <= figures["max_ms"]
    stored = stored_stats(db, summary["run_id"])
    assert stored == {name: {key: figures[key] for key in TIMING + COUNTS} for name, figures in strategies.items()}
    assert stored_summary(db, summary["run_id"])["strategies"] == strategies


class SometimesSlow(StrategyInterface):
    """Every tenth call takes at least 30 ms."""

    def on_start(self):
        self.calls = 0

    def on_tick(self, market_data):
        self.calls += 1
        if self.calls % 10 == 0:
            time.sleep(0.03)


class RaisesOnce(StrategyInterface):
    def on_start(self):
        self.calls = 0

    def on_tick(self, market_data):
        self.calls += 1
        if self.calls == 5:
            raise RuntimeError("once")


def test_the_stored_figures_describe_the_calls(tmp_path):
    feed = SyntheticFeed({"AAA": SyntheticSymbol()}, "1m", datetime(2024, 1, 2, tzinfo=UTC), seed=1)
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(Decimal(0)), FeeSchedule(CommissionModel()), feed.symbols)
    db = tmp_path / "runs.db"
    runner = assemble(
        feed=feed, broker=broker, strategies=[StrategySetup("sometimes", SometimesSlow), StrategySetup("raises", RaisesOnce)],
        database=f"sqlite:///{db}", max_ticks=100,
    )
    summary = runner.run()
    stats = stored_stats(db, runner.run_id)
    sometimes = stats["sometimes"]
    assert sometimes["calls"] == 100
    assert sometimes["p95_ms"] >= 30 and sometimes["max_ms"] >= 30  # 10 % of the calls were slow
    assert sometimes["mean_ms"] >= 10 * 30 / 100
    assert sometimes["p95_ms"] <= sometimes["max_ms"]
    assert (stats["raises"]["calls"], stats["raises"]["errors"], stats["raises"]["state"]) == (100, 1, "stopped")
    assert stats == {s.name: {key: s.timing().get(key, getattr(s, key, None)) for key in TIMING + COUNTS} for s in summary.strategies}
