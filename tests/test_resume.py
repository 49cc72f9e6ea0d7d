"""`runner start CONFIG --resume RUN_ID`: a run killed at any step and resumed records exactly
what an uninterrupted run records; a stopped run continues from its recorded books; a run still
alive, one with nothing left to run, and a different config (unless --force) are refused.

The strategy `BracketTrader` below is loaded by the runs from this file: it has state (an
average warming up over eight bars, a count of its fills through `on_fill`) and keeps working
orders across steps (limit entries with stop-loss / take-profit legs, cancelled after four bars).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import deque
from datetime import timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config_text
from runner.storage import recorder as recorder_module
from strategies.base import StrategyInterface

RUNNER = Path(sys.executable).parent / "runner"
CENT = Decimal("0.01")
STEPS = 240

CONFIG = """\
run: {{max_ticks: {ticks}, seed: 5, execution: {execution}}}
market_data:
  source: synthetic
  symbols: {{AAA: {{start_price: 100, volatility: 3}}, BBB: {{start_price: 50, volatility: 4}}}}
broker: {{commission: {{percent: 0.05, minimum: 0.5}}, slippage_bps: 2}}
storage: {{url: "sqlite:///{db}"}}
strategies:
  - {{name: brackets, file: {strategy}, class: BracketTrader}}
  - {{name: cross, type: ma_crossover, params: {{fast: 3, slow: 9, quantity: 2}}}}
"""


class BracketTrader(StrategyInterface):
    """While flat with nothing working and the close above its 8-bar average: buy 1 to 3 (more
    after more fills) with a limit 0.1 % under the close, a stop-loss 1 % under and a
    take-profit 1 % over; an entry still unfilled after four bars is cancelled."""

    def on_start(self) -> None:
        self.closes = {symbol: deque(maxlen=8) for symbol in self.context.symbols}
        self.fills = 0

    def on_fill(self, fill) -> None:
        self.fills += 1

    def on_tick(self, market_data):
        signals = []
        for symbol in market_data.fresh:
            close = market_data[symbol].close
            closes = self.closes[symbol]
            closes.append(close)
            if len(closes) < closes.maxlen:
                continue
            mine = [order for order in self.context.orders() if order.symbol == symbol]
            for order in mine:
                if order.parent_id is None and market_data.timestamp - order.created_at >= timedelta(minutes=4):
                    self.context.cancel(order.id)
            if self.context.position(symbol).quantity == 0 and not mine and close > sum(closes) / len(closes):
                signals.append({
                    "symbol": symbol, "action": "BUY", "quantity": 1 + self.fills % 3, "order_type": "limit",
                    "limit_price": (close * Decimal("0.999")).quantize(CENT),
                    "stop_loss": (close * Decimal("0.99")).quantize(CENT),
                    "take_profit": (close * Decimal("1.01")).quantize(CENT),
                })
        return signals


def config_file(folder: Path, db: Path, ticks: int = STEPS, execution: str = "inline") -> Path:
    path = folder / "resume.yaml"
    path.write_text(CONFIG.format(ticks=ticks, db=db, strategy=Path(__file__).resolve(), execution=execution))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def rows(db: Path, statement: str, *parameters) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(statement, parameters).fetchall()


# Every recorded table of a run, in a stable order; surrogate ids (autoincrement) and wall-clock
# columns (processing times) are left out, the run id too: two runs are compared.
TABLES = {
    "orders": "order_id", "order_events": "id", "fills": "fill_id", "positions": "strategy, symbol",
    "equity": "step", "strategy_equity": "step, strategy", "signals": "id", "strategy_errors": "id",
    "strategy_stats": "strategy", "symbols_added": "symbol", "policy_changes": "id", "run_progress": "run_id",
}
NOT_COMPARED = {"run_id", "id", "mean_ms", "p95_ms", "max_ms"}


def records(db: Path, run_id: str) -> dict[str, list[tuple]]:
    found = {}
    for table, order in TABLES.items():
        columns = [row[1] for row in rows(db, f"PRAGMA table_info({table})") if row[1] not in NOT_COMPARED]
        found[table] = rows(db, f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? ORDER BY {order}", run_id)
    [found["runs"]] = rows(db, "SELECT status, ticks FROM runs WHERE id = ?", run_id)
    return found


def make_stale(db: Path, run_id: str) -> None:
    """As if the killed process had died a minute ago: its heartbeat is old."""
    rows(db, "UPDATE heartbeats SET wall_time = datetime(wall_time, '-60 seconds') WHERE run_id = ?", run_id)


def crash(config: Path, run_id: str, steps: int, lost: int = 0) -> None:
    """Run `steps` steps in this process and stop as a SIGKILL would: the records of the last
    `lost` steps never reach the database, nothing ends the run, its heartbeat goes stale."""
    runner = build(load_config_text(config.read_text(), str(config)), run_id=run_id)
    recorder, loop = runner.recorder, runner.loop
    recorder.start(runner.started)
    for host in loop.hosts:
        host.start(None)

    class Losing:  # hands over the first steps' records, loses those of the last `lost` steps
        def submit(self, records):
            if loop.steps <= steps - lost:
                recorder.submit(records)

    loop.sink = Losing()
    for market in islice(iter(runner.feed), steps):
        loop.step(market)
    recorder._queue.put(recorder_module._STOP)  # the writer commits what it was handed, then ends
    recorder._thread.join()
    recorder.engine.dispose()
    for host in loop.hosts:
        host.shut_down(loop.steps, loop.timestamp)
    make_stale(Path(recorder.engine.url.database), run_id)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict]:
    """A database holding the reference run `whole`, run without interruption."""
    folder = tmp_path_factory.mktemp("whole")
    db = folder / "runs.db"
    result = invoke("start", config_file(folder, db), "--run-id", "whole", "--quiet")
    assert result.exit_code == 0, result.output
    return db, records(db, "whole")


@pytest.mark.parametrize(("steps", "lost", "execution"), [
    (1, 0, "inline"), (37, 0, "inline"), (118, 4, "inline"), (203, 1, "threaded"),
])
def test_a_run_killed_at_any_step_and_resumed_records_what_an_uninterrupted_run_records(
    tmp_path, uninterrupted, steps, lost, execution,
):
    reference_db, expected = uninterrupted
    db = tmp_path / "runs.db"
    shutil.copy(reference_db, db)
    config = config_file(tmp_path, db, execution=execution)
    crash(config, "killed", steps, lost)
    committed = steps - lost
    assert rows(db, "SELECT status FROM runs WHERE id = 'killed'") == [("running",)]
    assert rows(db, "SELECT step FROM run_progress WHERE run_id = 'killed'") == [(committed,)]

    result = invoke("start", config, "--resume", "killed", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["resumed"] == {
        "run_id": "killed", "from_step": committed, "bar_time": summary["resumed"]["bar_time"],
        "previous_status": "running", "caught_up_by": "replay", "forced": [],
    }
    assert summary["status"] == "completed" and summary["ticks"] == STEPS
    assert records(db, "killed") == expected
    assert rows(db, "SELECT from_step, previous_status FROM resumes WHERE run_id = 'killed'") == [(committed, "running")]
    audit = invoke("audit", "killed", "--db", db)
    assert audit.exit_code == 0 and "clean" in audit.output, audit.output


def test_the_reference_run_keeps_working_orders_and_brackets_across_steps(uninterrupted):
    """The kill points above fall while orders work: entries wait, bracket legs follow fills."""
    db, _ = uninterrupted
    legs = rows(db, "SELECT count(*) FROM orders WHERE run_id = 'whole' AND parent_id IS NOT NULL")[0][0]
    waited = rows(db, "SELECT count(*) FROM fills f JOIN orders o ON o.run_id = f.run_id AND o.order_id = f.order_id "
                      "WHERE f.run_id = 'whole' AND f.timestamp > o.created_at")[0][0]
    cancelled = rows(db, "SELECT count(*) FROM orders WHERE run_id = 'whole' AND status = 'CANCELLED' "
                         "AND reason = 'cancelled by the strategy'")[0][0]
    assert legs > 10 and waited > 10 and cancelled > 0


def test_a_run_killed_with_sigkill_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    ticks = 600
    db = tmp_path / "runs.db"
    config = config_file(tmp_path, db, ticks=ticks)
    assert invoke("start", config, "--run-id", "whole", "--quiet").exit_code == 0
    kill_at = random.Random().randrange(100, 450)
    process = subprocess.Popen(
        [str(RUNNER), "start", str(config), "--run-id", "killed", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # kill it once `kill_at` steps are committed, in the middle of its writing
            assert process.poll() is None, f"the run ended by itself before step {kill_at}"
            assert time.monotonic() < deadline, "the run did not get going"
            try:
                done = rows(db, "SELECT step FROM run_progress WHERE run_id = 'killed'")
            except sqlite3.Error:
                done = []  # its tables are being written
            if done and done[0][0] >= kill_at:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [(killed_at,)] = rows(db, "SELECT step FROM run_progress WHERE run_id = 'killed'")
    make_stale(db, "killed")

    result = invoke("start", config, "--resume", "killed", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resumed"]["from_step"] == killed_at
    assert records(db, "killed") == records(db, "whole"), f"killed after step {killed_at}"
    audit = invoke("audit", "killed", "--db", db)
    assert audit.exit_code == 0 and "clean" in audit.output, audit.output


def test_a_stopped_run_continues_from_its_recorded_books(tmp_path):
    """The stop cancelled its working orders (they stay cancelled) and its cash carries on:
    every equity snapshot's cash, before and after the resume, is the starting cash less the
    fills' cash flows (the audit's check), and ids go on from the largest recorded."""
    db = tmp_path / "runs.db"
    config = config_file(tmp_path, db)
    assert invoke("start", config, "--run-id", "paused", "--max-ticks", 100, "--quiet").exit_code == 0
    stopped = rows(db, "SELECT order_id FROM orders WHERE run_id = 'paused' AND reason = 'run stopped'")
    cash_then = rows(db, "SELECT cash FROM equity WHERE run_id = 'paused' AND step = 100")

    result = invoke("start", config, "--resume", "paused", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resumed"]["previous_status"] == "completed"
    assert stopped and rows(
        db, f"SELECT DISTINCT status FROM orders WHERE run_id = 'paused' AND order_id IN ({','.join(str(i) for (i,) in stopped)})",
    ) == [("CANCELLED",)]
    assert rows(db, "SELECT cash FROM equity WHERE run_id = 'paused' AND step = 100") == cash_then
    assert rows(db, "SELECT max(step), count(*) FROM equity WHERE run_id = 'paused'") == [(STEPS, STEPS)]
    fill_ids = [fill_id for (fill_id,) in rows(db, "SELECT fill_id FROM fills WHERE run_id = 'paused' ORDER BY fill_id")]
    assert fill_ids == list(range(1, len(fill_ids) + 1))
    audit = invoke("audit", "paused", "--db", db)
    assert audit.exit_code == 0 and "clean" in audit.output, audit.output


def test_a_run_still_alive_is_refused(tmp_path):
    db = tmp_path / "runs.db"
    config = config_file(tmp_path, db)
    crash(config, "alive", 20)
    rows(db, "UPDATE heartbeats SET wall_time = ? WHERE run_id = 'alive'", _utc_now_text())

    result = invoke("start", config, "--resume", "alive")

    assert result.exit_code == 2
    assert "cannot resume run alive" in result.output and "it is still running" in result.output
    assert rows(db, "SELECT count(*) FROM resumes") == [(0,)]


def _utc_now_text() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_a_different_config_is_refused_with_what_differs_unless_forced(tmp_path):
    db = tmp_path / "runs.db"
    config = config_file(tmp_path, db)
    strategy = tmp_path / "mine.py"
    strategy.write_text(
        "from strategies.base import StrategyInterface\n\n"
        "class Quiet(StrategyInterface):\n    def on_tick(self, market_data):\n        return None\n"
    )
    config.write_text(config.read_text() + f"  - {{name: quiet, file: {strategy}}}\n")
    assert invoke("start", config, "--run-id", "first", "--max-ticks", 10, "--quiet").exit_code == 0
    config.write_text(config.read_text().replace("fast: 3", "fast: 4"))
    strategy.write_text(strategy.read_text() + "# changed\n")

    refused = invoke("start", config, "--resume", "first", "--seed", 6)

    assert refused.exit_code == 2
    assert "cannot resume run first" in refused.output and "--force" in refused.output
    assert "strategies.1.params.fast: 3 -> 4" in refused.output
    assert "run.seed: 5 -> 6" in refused.output
    assert f"strategy quiet source {strategy.resolve()} changed: sha256" in refused.output
    assert rows(db, "SELECT count(*) FROM resumes") == [(0,)]

    forced = invoke("start", config, "--resume", "first", "--seed", 6, "--force", "--max-ticks", 20, "--json")

    assert forced.exit_code == 0, forced.output
    assert "strategies.1.params.fast: 3 -> 4" in json.loads(forced.stdout)["resumed"]["forced"]
    [(recorded,)] = rows(db, "SELECT forced FROM resumes WHERE run_id = 'first'")
    assert "run.seed: 5 -> 6" in recorded and "strategy quiet source" in recorded


def test_the_length_and_pace_of_a_run_may_change_on_resume(tmp_path):
    db = tmp_path / "runs.db"
    config = config_file(tmp_path, db)
    assert invoke("start", config, "--run-id", "short", "--max-ticks", 10, "--quiet").exit_code == 0
    result = invoke("start", config, "--resume", "short", "--max-ticks", 15, "--speed", 0, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ticks"] == 15


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """A config whose database holds run `short`, stopped after 10 steps."""
    folder = tmp_path_factory.mktemp("short")
    config = config_file(folder, folder / "runs.db")
    assert invoke("start", config, "--run-id", "short", "--max-ticks", 10, "--quiet").exit_code == 0
    return config


@pytest.mark.parametrize(("args", "message"), [
    (("--resume", "nope"), "no run 'nope' in"),
    (("--resume", "short", "--max-ticks", 10), "has already run 10 steps, and run.max_ticks is 10: pass a larger --max-ticks"),
    (("--force",), "--force applies only with --resume RUN_ID"),
    (("--resume", "short", "--run-id", "other"), "leave out --run-id"),
])
def test_what_cannot_be_resumed_is_refused_with_the_reason(short_run, args, message):
    result = invoke("start", short_run, *args, "--json")
    assert result.exit_code == 2
    assert message in json.loads(result.stdout)["error"]


def test_a_run_that_ended_with_its_data_has_nothing_to_resume(tmp_path):
    data = tmp_path / "bars.csv"
    data.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"2024-01-02T09:{minute:02d}:00Z,{100 + minute},{101 + minute},{99 + minute},{100 + minute},1000\n"
        for minute in range(30)
    ))
    config = tmp_path / "replay.yaml"
    config.write_text(
        f"market_data: {{source: csv, path: {data}, symbols: [AAA], interval: 1m}}\n"
        f"storage: {{url: 'sqlite:///{tmp_path / 'runs.db'}'}}\n"
        "strategies:\n  - {type: ma_crossover, params: {fast: 2, slow: 4}}\n"
    )
    assert invoke("start", config, "--run-id", "done", "--quiet").exit_code == 0
    result = invoke("start", config, "--resume", "done")
    assert result.exit_code == 2
    assert "run done is complete: it ended with its data (30 of 30 steps, status completed); there is nothing to resume" in result.output


def test_a_live_feed_continues_from_now_with_the_recorded_books(tmp_path, monkeypatch):
    """A live feed cannot be replayed: the loop takes up the step count and the books from the
    records, and the bars go on from the feed's present (here: a day after the crash)."""
    from runner import bootstrap
    from runner.feeds.synthetic import SyntheticFeed

    db = tmp_path / "runs.db"
    config = config_file(tmp_path, db)
    crash(config, "live", 60)
    [(bar_time,)] = rows(db, "SELECT bar_time FROM run_progress WHERE run_id = 'live'")
    cash_then = rows(db, "SELECT cash FROM equity WHERE run_id = 'live' AND step = 60")

    class LiveNow(SyntheticFeed):
        live = True

    def live_feed(loaded):
        market = loaded.market_data
        return LiveNow(market.symbols, market.interval, market.start + timedelta(days=1), loaded.run.seed)

    monkeypatch.setattr(bootstrap, "load_feed", live_feed)
    result = invoke("start", config, "--resume", "live", "--max-ticks", 100, "--json")

    assert result.exit_code == 0, result.output
    resumed = json.loads(result.stdout)["resumed"]
    assert (resumed["from_step"], resumed["caught_up_by"]) == (60, "records")
    steps = [step for (step,) in rows(db, "SELECT step FROM equity WHERE run_id = 'live' ORDER BY step")]
    assert steps == list(range(1, 101))  # the step count goes on; no step recorded twice
    assert rows(db, "SELECT min(timestamp) > ? FROM equity WHERE run_id = 'live' AND step > 60", bar_time) == [(1,)]
    assert rows(db, "SELECT cash FROM equity WHERE run_id = 'live' AND step = 60") == cash_then
    audit = invoke("audit", "live", "--db", db)  # cash and positions carried on from the records
    assert audit.exit_code == 0 and "clean" in audit.output, audit.output


def test_a_catalogue_run_is_not_resumed(tmp_path):
    """Its strategies come and go with the catalogue: they cannot be rebuilt step by step."""
    config = tmp_path / "catalog.yaml"
    config.write_text((Path(__file__).parents[1] / "configs" / "catalog.yaml").read_text())
    result = invoke("start", config, "--db", tmp_path / "runs.db", "--resume", "any")
    assert result.exit_code == 2
    assert "cannot resume run any" in result.output
    assert "it runs the strategy catalogue (strategies_from: catalog)" in result.output
