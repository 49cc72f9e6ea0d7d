"""Replay benchmark: ma_crossover (10/30, 100 units, next-open fills, no fees) over a generated
one-minute CSV of one symbol, through the real `runner start` command with recording to SQLite.

    python benchmarks/replay.py                 # 100,000 rows
    python benchmarks/replay.py --rows 1000000

Prints wall time, bars per second end to end (file load included), peak RSS and rows written,
as a table and as JSON. The data file is generated once per size (seeded) under
benchmarks/.data/ and reused.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER = Path(sys.executable).parent / "runner"


def data_file(rows: int) -> Path:
    """A seeded random walk of `rows` one-minute bars, written once."""
    import numpy as np
    import pandas as pd

    path = HERE / ".data" / f"bars_{rows}.csv"
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)
    rng = np.random.default_rng(2024)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.001, rows))), 2)
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.round(np.abs(rng.normal(0, 0.05, rows)), 2)
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2020-01-01", periods=rows, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": open_, "high": np.maximum(open_, close) + spread, "low": np.minimum(open_, close) - spread,
        "close": close, "volume": rng.integers(100, 10_000, rows),
    })
    frame.to_csv(path, index=False)
    return path


def run(rows: int) -> dict:
    data = data_file(rows)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.yaml"
        db = Path(folder) / "bench.db"
        config.write_text(
            f"market_data: {{source: csv, path: '{data}', symbols: [X]}}\n"
            f"storage: {{url: 'sqlite:///{db}'}}\n"
            "strategies: [{type: ma_crossover, params: {fast: 10, slow: 30, quantity: 100}}]\n"
        )
        started = time.perf_counter()
        done = subprocess.run([str(RUNNER), "start", str(config), "--json", "--quiet"], capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        summary = json.loads(done.stdout)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with sqlite3.connect(db) as connection:
            written = sum(
                connection.execute(f"select count(*) from {table}").fetchone()[0]
                for table in ("orders", "order_events", "fills", "positions", "equity", "strategy_equity", "signals")
            )
    return {
        "rows": rows, "wall_seconds": round(wall, 2), "bars_per_second": round(rows / wall),
        "loop_seconds": summary["elapsed_seconds"], "peak_rss_mb": round(peak_mb), "rows_written": written,
        "fills": summary["fills"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    result = run(parser.parse_args().rows)
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:,}" if isinstance(value, int) else f"{key:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
