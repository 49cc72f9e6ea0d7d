"""Sweep benchmark: a 64-combination ma_crossover grid (fast 5:40:5 x slow 50:120:10) over the
generated one-minute CSV, through the real `runner sweep`, on the local pool with 1 and 2 workers
and on Ray with 2 workers (a local Ray, started by the command and counted in its time).

    python benchmarks/sweep.py                                  # 100,000 rows, 64 combinations
    python benchmarks/sweep.py --rows 2000 --fast 5,10 --slow 50 --executors local:1,local:2 --json

Prints, per executor, the wall time of the whole command (start-up, data loading, Ray's start
and recording included), replays per minute and the speed-up over the local pool with one
worker, as a table and as JSON. Each run records into its own temporary database, with an
equity snapshot every 100 steps (a sweep's runs are compared by their statistics; 64 runs with
one a step would write 6.4 million equity rows).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from _common import BenchmarkFailed, RUNNER, add_data_options, bars_csv, child_json, emit, machine, parser, run_child

EXECUTORS = "local:1,local:2,ray:2"


def main() -> None:
    options = parser(__doc__)
    add_data_options(options, rows=100_000)
    options.add_argument("--fast", default="5:40:5", help="values of fast (default 5:40:5: 8 values)")
    options.add_argument("--slow", default="50:120:10", help="values of slow (default 50:120:10: 8 values)")
    options.add_argument(
        "--executors", default=EXECUTORS, help=f"executor:workers, comma-separated (default {EXECUTORS})",
    )
    args = options.parse_args()
    data = bars_csv(args.rows, args.data)
    rows = []
    for spec in args.executors.split(","):
        kind, _, workers = spec.partition(":")
        rows.append(_sweep(data, kind, int(workers), args.fast, args.slow))
        print(f"{spec}: {rows[-1]['wall_seconds']} s", file=sys.stderr, flush=True)
    base = next((row["wall_seconds"] for row in rows if row["executor"] == "local" and row["workers"] == 1), None)
    for row in rows:
        row["speed_up"] = round(base / row["wall_seconds"], 2) if base else None
    emit(
        f"sweep: ma_crossover, {rows[0]['runs']} combinations over {args.rows:,} one-minute bars through "
        "`runner sweep`, recording to SQLite (equity_every 100)",
        {"rows": args.rows, "sweeps": rows, "targets": [], "machine": machine()}, [("", rows)], args.json,
    )


def _sweep(data: Path, kind: str, workers: int, fast: str, slow: str) -> dict:
    """One `runner sweep` child: its figures, and the fills of all its runs (the same for every
    executor, as a check that each did the same work)."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "sweep.yaml"
        db = Path(folder) / "sweep.db"
        config.write_text(
            f"market_data: {{source: csv, path: '{data}', symbols: [X]}}\n"
            f"storage: {{url: 'sqlite:///{db}', equity_every: 100}}\n"
            "broker: {starting_cash: 1000000}\n"
            "strategies: [{type: ma_crossover, params: {fast: 10, slow: 30, quantity: 100}}]\n"
        )
        child = run_child([
            str(RUNNER), "sweep", str(config), "--param", f"fast={fast}", "--param", f"slow={slow}",
            "--executor", kind, "--workers", str(workers), "--json",
        ], f"runner sweep --executor {kind}")
        summary = child_json(child, "runner sweep")
        if summary["counts"].get("completed") != len(summary["runs"]):
            raise BenchmarkFailed(f"not every run completed: {summary['counts']}")
        with sqlite3.connect(db) as connection:
            fills = connection.execute("select count(*) from fills").fetchone()[0]
    runs = len(summary["runs"])
    return {
        "executor": kind, "workers": workers, "runs": runs, "wall_seconds": round(child.wall_seconds, 1),
        "replays_per_minute": round(60 * runs / child.wall_seconds, 1),
        "fills": fills,
    }


if __name__ == "__main__":
    main()
