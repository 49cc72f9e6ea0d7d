"""Small market data and configs for the sweep tests (tests/test_sweep.py, tests/test_sweep_ray.py)."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.report import load_report
from runner.reproduce import compare_runs
from runner.storage import queries
from runner.storage.db import open_database, sqlite_url

BARS = 400

# A strategy that kills its own process (as a segfault or the OOM killer would) for fast == 7,
# and notes every attempt in attempts.txt beside it.
KILLER = '''
import os
from pathlib import Path

from strategies.ma_crossover import MACrossover


class Killer(MACrossover):
    def on_start(self):
        if self.params.fast == 7:
            with open(Path(__file__).with_name("attempts.txt"), "a") as attempts:
                attempts.write("attempt\\n")
            os._exit(3)
        super().on_start()
'''


def write_bars(folder: Path, rows: int = BARS) -> Path:
    """A one-symbol CSV of 1-minute bars: two waves and a trend, so crossovers trade."""
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(rows):
        price = 100 + 5 * math.sin(i / 9) + 3 * math.sin(i / 31) + i * 0.01
        close = price + 0.2 * math.sin(i)
        lines.append(
            f"{start + timedelta(minutes=i):%Y-%m-%dT%H:%M:%SZ},{price:.2f},{max(price, close) + 0.3:.2f},"
            f"{min(price, close) - 0.3:.2f},{close:.2f},1000"
        )
    path = folder / "AAA.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(folder: Path, strategy: str = "type: ma_crossover", sweep: str = "") -> Path:
    """A replay config of one ma_crossover strategy over `write_bars`, recording to folder/runs.db."""
    write_bars(folder)
    path = folder / "sweep.yaml"
    path.write_text(
        "run: {mode: data, seed: 3}\n"
        "market_data: {source: csv, path: AAA.csv, symbols: [AAA]}\n"
        "broker: {starting_cash: 100000, slippage_bps: 1, commission: {per_share: 0.01}}\n"
        f"storage: {{url: {sqlite_url(folder / 'runs.db')}}}\n"
        "strategies:\n"
        f"  - name: ma\n    {strategy}\n    params: {{fast: 5, slow: 20, quantity: 10}}\n"
        + sweep
    )
    return path


def sweep_rows(db: Path, sweep_id: str) -> list[tuple]:
    """(number, run_id, params, status, error) of each combination, in grid order."""
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT number, run_id, params, status, error FROM sweep_runs WHERE sweep_id = ? ORDER BY number",
            (sweep_id,),
        ).fetchall()


def assert_same_results(db: Path, first: str, second: str) -> None:
    """Two sweeps of one grid gave, combination by combination, the same orders, fills and report."""
    one, two = sweep_rows(db, first), sweep_rows(db, second)
    assert [(n, p, s) for n, _, p, s, _ in one] == [(n, p, s) for n, _, p, s, _ in two]
    engine = open_database(sqlite_url(db))
    try:
        for (_, run_a, *_), (_, run_b, *_) in zip(one, two):
            if not run_a:
                continue
            outcome = compare_runs(engine, run_a, run_b)
            assert outcome.identical, outcome.differences
            assert outcome.orders[0] > 0
            report_a = load_report(engine, queries.run(engine, run_a)).to_dict()
            report_b = load_report(engine, queries.run(engine, run_b)).to_dict()
            for moment in ("run_id", "started_at", "ended_at"):
                report_a.pop(moment), report_b.pop(moment)
            assert report_a == report_b
    finally:
        engine.dispose()
