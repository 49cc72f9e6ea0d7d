"""Soak benchmark: a long run of the runner, watched from outside while it goes, to show that its
resources stay bounded: resident memory after warm-up, threads, open files, and a database that
grows only by what is recorded.

    python benchmarks/soak.py                     # 1,000,000 steps
    python benchmarks/soak.py --steps 20000 --every 1 --json

The run: two synthetic one-minute symbols, ma_crossover and buy_and_hold, data-driven as fast as
possible, recording to SQLite in a temporary folder (an equity snapshot every 100 steps, so the
database grows by orders, fills and snapshots). It runs as `runner start` in a child process; the
script samples the child's RSS, thread count and open file descriptors from /proc every
`--every` seconds, and the database file's size. The steady part of the run is the samples taken
while all its threads were up (start-up and shut-down left out); warm-up is its first half (it
includes the storage writer's queue filling up to its bound if the writer falls behind), and
"RSS growth after warm-up" compares the last steady sample with the largest RSS seen in warm-up.
Linux only (/proc).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from _common import RUNNER, TABLES, BenchmarkFailed, emit, machine, parser, positive, target, target_rows

CONFIG = """\
run: {{max_ticks: {steps}, speed: 0}}
market_data: {{source: synthetic, symbols: [AAA, BBB], interval: 1m}}
storage: {{url: "sqlite:///{db}", equity_every: 100}}
strategies:
  - {{name: ma, type: ma_crossover, params: {{fast: 10, slow: 30, quantity: 10}}}}
  - {{name: hold, type: buy_and_hold}}
"""


def sample(pid: int, db: Path) -> dict | None:
    """RSS (MB), threads and open files of process `pid`, and the database's size (MB); None
    once the process has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        files = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # exited, not yet reaped: a zombie has no memory left to sample
        return None
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.exists())
    return {
        "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
        "open_files": files, "db_mb": round(size / 2**20, 2),
    }


def soak(steps: int, every: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "soak.db"
        config = Path(folder) / "soak.yaml"
        config.write_text(CONFIG.format(steps=steps, db=db))
        started = time.perf_counter()
        child = subprocess.Popen(
            [str(RUNNER), "start", str(config), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        samples = []
        while child.poll() is None:
            point = sample(child.pid, db)
            if point is not None:
                samples.append({"seconds": round(time.perf_counter() - started, 1), **point})
            try:
                child.wait(timeout=every)
            except subprocess.TimeoutExpired:
                pass
        wall = time.perf_counter() - started
        stdout, stderr = child.communicate()
        if child.returncode != 0:
            raise BenchmarkFailed(f"runner start exited with code {child.returncode}\n{stderr[-2000:]}")
        summary = json.loads(stdout)
        with sqlite3.connect(db) as connection:
            rows = {table: connection.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}
        db_mb = round(sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 2**20, 2)
    # The run's steady part: from when its threads were all up (loop, writer, ...) to the last
    # sample before they began to end. Start-up (imports) and shut-down are not part of it.
    most = max(s["threads"] for s in samples)
    running = [i for i, s in enumerate(samples) if s["threads"] == most]
    steady = samples[running[0]: running[-1] + 1] if running else []
    if len(steady) < 5:
        raise BenchmarkFailed(f"the run had {len(steady)} steady samples; give more --steps or a smaller --every")
    warm = steady[: max(1, len(steady) // 2)]
    after_warmup = max(s["rss_mb"] for s in warm)
    return {
        "steps": summary["ticks"], "wall_seconds": round(wall, 2), "steps_per_second": round(summary["ticks"] / wall),
        "steady_samples": len(steady), "rss_after_warmup_mb": after_warmup, "rss_at_end_mb": steady[-1]["rss_mb"],
        "rss_growth_after_warmup_mb": round(steady[-1]["rss_mb"] - after_warmup, 1),
        "peak_rss_mb": max(s["rss_mb"] for s in samples),
        "threads": sorted({s["threads"] for s in steady}), "open_files": sorted({s["open_files"] for s in steady}),
        "db_mb": db_mb, "rows": rows, "db_bytes_per_row": round(db_mb * 2**20 / max(1, sum(rows.values())), 1),
        "samples": samples,
    }


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--steps", type=positive, default=1_000_000, help="steps of the run (default 1,000,000)")
    args.add_argument("--every", type=float, default=5.0, help="seconds between samples (default 5)")
    options = args.parse_args()
    result = soak(options.steps, options.every)
    result["machine"] = machine()
    growth = result["rss_growth_after_warmup_mb"]
    result["targets"] = [  # flat: under 5 % of the RSS after warm-up; one thread count, one file count
        target("rss_growth_after_warmup_mb", growth, "<", round(0.05 * result["rss_after_warmup_mb"], 1), " MB"),
        target("thread_counts_seen", len(result["threads"]), "<=", 1),
        target("open_file_counts_seen", len(result["open_files"]), "<=", 1),
    ]
    figures = {k: v for k, v in result.items() if k not in ("samples", "rows", "machine", "targets")}
    shown = result["samples"][:: max(1, len(result["samples"]) // 20)]  # about 20 rows of the curve
    emit(
        f"soak: {options.steps:,} steps of 2 synthetic symbols x 2 strategies through `runner start`, "
        "recording to SQLite (equity every 100 steps)",
        result,
        [("figures", [{"figure": k, "value": v} for k, v in figures.items()]),
         ("targets", target_rows(result["targets"])),
         ("rows recorded", [{"table": k, "rows": v} for k, v in result["rows"].items()]),
         ("over time", shown)],
        options.json,
    )


if __name__ == "__main__":
    main()
