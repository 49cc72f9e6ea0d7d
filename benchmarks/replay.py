"""Replay benchmark: ma_crossover (10/30, 100 units, next-open fills, no fees) over a generated
one-minute CSV of one symbol, through the real `runner start` command with recording to SQLite.

    python benchmarks/replay.py                   # 100,000 rows
    python benchmarks/replay.py --rows 1000000    # the size the targets are set for
    python benchmarks/replay.py --rows 2000 --json
    python benchmarks/replay.py --equity-every 100  # fewer equity rows: what storage.equity_every buys

Prints wall time, bars per second end to end (start-up and file load included), the loop's own
time, peak RSS and rows written, with the targets beside them, as a table and as JSON. The data
file is generated once per size (seeded) under benchmarks/.data/ and reused.
"""

from __future__ import annotations

from _common import add_data_options, bars_csv, emit, figure_rows, machine, parser, positive, run_replay, target

TARGET_ROWS = 1_000_000


def main() -> None:
    options = parser(__doc__)
    add_data_options(options, rows=100_000)
    options.add_argument(
        "--equity-every", type=positive, default=1, metavar="N",
        help="storage.equity_every of the run: an equity snapshot every N steps (default 1, as configs)",
    )
    args = options.parse_args()
    figures = run_replay(bars_csv(args.rows, args.data), args.rows, args.equity_every)
    targets = [
        target("wall_seconds", figures["wall_seconds"], "<=", 4, " s", f"{TARGET_ROWS:,} rows", args.rows == TARGET_ROWS),
        target("bars_per_second", figures["bars_per_second"], ">=", 250_000),
        target("peak_rss_mb", figures["peak_rss_mb"], "<", 300, " MB"),
    ]
    emit(
        f"replay: ma_crossover over {args.rows:,} one-minute bars through `runner start`, recording to SQLite "
        f"(equity_every {args.equity_every})",
        {**figures, "targets": targets, "machine": machine()}, [("", figure_rows(figures, targets))], args.json,
    )


if __name__ == "__main__":
    main()
