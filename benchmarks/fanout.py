"""Fan-out benchmark: 50 synthetic symbols x 10 strategies, inline and threaded, recording to
SQLite: the latency of one loop step (p50, p99, max) and steps per second.

    python benchmarks/fanout.py                   # 2,000 steps in each mode
    python benchmarks/fanout.py --steps 20 --json

The config is built here: a synthetic feed of 50 one-minute symbols and ten built-in strategy
entries, each subscribed to all 50 (ma_crossover 5/20, 10/30, 20/50 and 50/200; rsi 7, 14 and
21; fib_rsi with windows 30 and 50; buy_and_hold), storage in a temporary folder. Each mode runs
in a process of its own, through `bootstrap.build` and `StrategyRunner.run`; the script times
every `TickLoop.step` by wrapping the loop's `step` (the engine is not changed). Steps per second
is steps / the run's elapsed time (steps and what happens between them: the feed, the pacing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import BenchmarkFailed, child_json, emit, machine, parser, positive, run_child, target, target_rows

SYMBOLS = 50
STRATEGIES = [
    ("ma_5_20", "ma_crossover", {"fast": 5, "slow": 20}),
    ("ma_10_30", "ma_crossover", {"fast": 10, "slow": 30}),
    ("ma_20_50", "ma_crossover", {"fast": 20, "slow": 50}),
    ("ma_50_200", "ma_crossover", {"fast": 50, "slow": 200}),
    ("rsi_7", "rsi", {"period": 7, "lower": 25, "upper": 75}),
    ("rsi_14", "rsi", {"period": 14}),
    ("rsi_21", "rsi", {"period": 21, "lower": 35, "upper": 65}),
    ("fib_rsi_30", "fib_rsi", {"window": 30}),
    ("fib_rsi_50", "fib_rsi", {"window": 50}),
    ("hold", "buy_and_hold", {}),
]
MODES = ("inline", "threaded")
TARGET_P99_MS = 5


def config_text(mode: str, steps: int, db: Path) -> str:
    symbols = ", ".join(f"S{index:02d}" for index in range(SYMBOLS))
    entries = "".join(
        f"  - {{name: {name}, type: {kind}, params: {params}}}\n" for name, kind, params in STRATEGIES
    )
    return (
        f"run: {{execution: {mode}, max_ticks: {steps}, seed: 7}}\n"
        f"market_data: {{source: synthetic, interval: 1m, symbols: [{symbols}]}}\n"
        "broker: {starting_cash: 10000000}\n"
        f"storage: {{url: 'sqlite:///{db}'}}\n"
        f"strategies:\n{entries}"
    )


def measure(mode: str, steps: int) -> dict:
    """One run in this process: the time of every loop step, and the run's summary."""
    from runner.bootstrap import build
    from runner.config import load_config_text

    with tempfile.TemporaryDirectory() as folder:
        config = load_config_text(config_text(mode, steps, Path(folder) / "fanout.db"), "fanout.yaml")
        runner = build(config)
        durations: list[float] = []
        step = runner.loop.step

        def timed_step(market, now=None):
            started = time.perf_counter()
            step(market, now)
            durations.append(time.perf_counter() - started)

        runner.loop.step = timed_step
        summary = runner.run()
    if summary.status != "completed":
        raise BenchmarkFailed(f"the {mode} run ended {summary.status!r}: {summary.error}")
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    return {
        "mode": mode, "steps": summary.steps, "p50_ms": round(1000 * cuts[49], 3),
        "p99_ms": round(1000 * cuts[98], 3), "max_ms": round(1000 * max(durations), 3),
        "mean_ms": round(1000 * statistics.fmean(durations), 3),
        "steps_per_second": round(summary.steps / summary.elapsed_seconds, 1),
        "elapsed_seconds": round(summary.elapsed_seconds, 2), "orders": summary.orders, "fills": summary.fills,
    }


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--steps", type=positive, default=2_000, help="loop steps in each mode (default 2,000)")
    options.add_argument("--mode", action="append", choices=MODES, help="run only this mode (repeatable; default: both)")
    options.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)  # one mode, in this process
    args = options.parse_args()
    if args.steps < 2:
        options.error("--steps must be at least 2")
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
        return
    runs = []
    for mode in args.mode or MODES:
        what = f"the {mode} fan-out run"
        child = run_child([sys.executable, __file__, "--child", mode, "--steps", str(args.steps)], what)
        runs.append({**child_json(child, what), "cpu_seconds": round(child.cpu_seconds, 2), "peak_rss_mb": round(child.peak_rss_mb)})
    inline = next((run for run in runs if run["mode"] == "inline"), None)
    targets = [target("p99_ms inline", inline["p99_ms"], "<", TARGET_P99_MS, " ms")] if inline else []
    result = {
        "symbols": SYMBOLS, "strategies": [name for name, _, _ in STRATEGIES], "steps": args.steps,
        "runs": {run["mode"]: run for run in runs}, "targets": targets, "machine": machine(),
    }
    emit(
        f"fanout: {SYMBOLS} synthetic symbols x {len(STRATEGIES)} strategies, {args.steps:,} steps, recording to SQLite",
        result, [("per mode (latency of one TickLoop.step)", runs), ("targets", target_rows(targets))], args.json,
    )


if __name__ == "__main__":
    main()
