"""Peers benchmark: the same moving-average crossover over the same data in the runner,
backtrader and backtesting.py, each as a process of its own, file load included.

    python benchmarks/peers.py                    # 100,000 rows
    python benchmarks/peers.py --rows 1000000     # backtrader takes about two minutes here
    python benchmarks/peers.py --rows 2000 --json

The strategy: fast 10 / slow 30 simple moving averages of the close, buy 100 units while flat on
an upward cross, sell the whole position on a downward cross, market orders filled at the next
bar's open, no fees, over the generated one-minute CSV of one symbol (the file replay.py uses).
The runner runs `runner start` with recording to SQLite (as users run it); the peers run
benchmarks/_peer.py, which loads the CSV with pandas and runs the rule in the engine's idiom.

Prints, per engine, wall time, bars per second and peak RSS of its process, and the buys and
sells it filled; then the ratios runner/peer of bars per second and of peak RSS, whether the
trade counts agree, and the targets. A peer that is not installed is skipped with a note
(`pip install -e '.[bench]'` installs both).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

from _common import (
    HERE, add_data_options, bars_csv, child_json, emit, machine, parser, run_child, run_replay, target,
    target_rows,
)

PEERS = {"backtrader": "backtrader", "backtesting": "backtesting.py"}  # module: name in print
TARGET_SPEEDUP = {"backtrader": 25, "backtesting": 2}  # runner bars/s over the peer's, at least
INSTALL = "pip install -e '.[bench]'"


def run_peer(module: str, data, rows: int) -> dict:
    what = f"{PEERS[module]} on {data.name}"
    child = run_child([sys.executable, str(HERE / "_peer.py"), module, str(data)], what)
    figures = child_json(child, what)
    return {
        "engine": PEERS[module], "version": figures["version"], "wall_seconds": round(child.wall_seconds, 2),
        "cpu_seconds": round(child.cpu_seconds, 2), "bars_per_second": round(rows / child.wall_seconds),
        "peak_rss_mb": round(child.peak_rss_mb),
        "buys": figures["buys"], "sells": figures["sells"], "open_at_end": figures["open_at_end"],
        "load_seconds": figures["load_seconds"], "run_seconds": figures["run_seconds"],
    }


def compare(runner: dict, peer: dict, target_speedup: float) -> tuple[dict, dict]:
    """The ratios runner/peer, whether their trades agree, and the speed target."""
    speed = round(runner["bars_per_second"] / peer["bars_per_second"], 2)
    cpu = round(peer["cpu_seconds"] / runner["cpu_seconds"], 2)
    same = (runner["buys"], runner["sells"]) == (peer["buys"], peer["sells"])
    ratio = {
        "peer": peer["engine"], "bars_per_second": speed, "bars_per_cpu_second": cpu,
        "peak_rss": round(runner["peak_rss_mb"] / peer["peak_rss_mb"], 2),
        "trades": "agree" if same else "DISAGREE",
        "buys/sells": f"runner {runner['buys']:,}/{runner['sells']:,}, {peer['engine']} {peer['buys']:,}/{peer['sells']:,}",
    }
    return ratio, target(f"bars/s runner/{peer['engine']}", speed, ">=", target_speedup, "x")


def main() -> None:
    options = parser(__doc__)
    add_data_options(options, rows=100_000)
    options.add_argument(
        "--peer", action="append", choices=list(PEERS), help="run only this peer (repeatable; default: both)",
    )
    args = options.parse_args()
    data = bars_csv(args.rows, args.data)
    skipped = {}
    wanted = []
    for module in args.peer or PEERS:
        if importlib.util.find_spec(module) is None:
            skipped[module] = f"{PEERS[module]} is not installed ({INSTALL}); skipped"
            print(f"note: {skipped[module]}", file=sys.stderr)
        else:
            wanted.append(module)

    replay = run_replay(data, args.rows)
    runner = {
        "engine": "runner", "version": importlib.metadata.version("runner"), "wall_seconds": replay["wall_seconds"],
        "cpu_seconds": replay["cpu_seconds"], "bars_per_second": replay["bars_per_second"], "peak_rss_mb": replay["peak_rss_mb"],
        "buys": replay["buys"], "sells": replay["sells"], "open_at_end": replay["buys"] > replay["sells"],
        "load_seconds": None, "run_seconds": replay["loop_seconds"],
    }
    engines = {"runner": runner, **{module: run_peer(module, data, args.rows) for module in wanted}}

    ratios, targets = {}, []
    for module in wanted:
        ratios[module], speed_target = compare(runner, engines[module], TARGET_SPEEDUP[module])
        targets.append(speed_target)
    notes = [
        "bars_per_second: rows / wall time of the whole process (interpreter start, imports and file load included)",
        "run_seconds: the engine's own run (the runner: its loop; the peers: from the loaded DataFrame to the end)",
        "ratios: runner / peer; above 1 the runner is faster (bars/s of the wall time, and of the CPU time, which a busy machine moves less), and heavier (peak RSS)",
    ]
    if any(engine["open_at_end"] for engine in engines.values()):
        notes.append(
            "a position open at the end makes buys = sells + 1 in every engine: none of them closes it "
            "(backtesting.py's '# Trades' leaves it out; it is counted here)",
        )
    result = {
        "rows": args.rows, "engines": engines, "ratios": ratios, "skipped": skipped, "notes": notes,
        "targets": targets, "machine": machine(),
    }
    emit(
        f"peers: ma_crossover 10/30 over {args.rows:,} one-minute bars, each engine in its own process",
        result,
        [
            ("engines", list(engines.values())),
            ("runner / peer", list(ratios.values())),
            ("targets", target_rows(targets)),
            ("notes", notes),
            ("skipped", list(skipped.values())),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
