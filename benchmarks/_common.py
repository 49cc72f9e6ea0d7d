"""What the benchmark scripts share: the generated bar files, child processes measured alone
(wall time, CPU time, peak RSS), the runner's replay run, the machine, and printing figures as a table and as JSON.

Not a benchmark itself; the scripts beside it import it (`benchmarks/` is put on `sys.path` by
Python when a script there is run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / ".data"
RUNNER = Path(sys.executable).parent / "runner"
# What the runner records, counted after a run.
TABLES = ("orders", "order_events", "fills", "positions", "equity", "strategy_equity", "signals")


class BenchmarkFailed(SystemExit):
    """A run a benchmark depends on failed: the message goes to stderr and the exit code is 1."""

    def __init__(self, message: str):
        super().__init__(f"benchmark failed: {message}")


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the script's docstring as help and the common `--json` option."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], epilog=doc.split("\n\n", 1)[1] if "\n\n" in doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON object on stdout and nothing else there (the table goes to stderr)",
    )
    return parser


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number


def add_data_options(parser: argparse.ArgumentParser, rows: int) -> None:
    parser.add_argument("--rows", type=positive, default=rows, help=f"bars in the data file (default {rows:,})")
    parser.add_argument(
        "--data", type=Path, default=DATA, help="folder of the generated bar files (default benchmarks/.data)",
    )


# -- data ------------------------------------------------------------------------------------------


def bars_csv(rows: int, folder: Path = DATA) -> Path:
    """A seeded random walk of `rows` one-minute bars of one symbol, written once and reused.

    Columns timestamp (ISO 8601 UTC), open, high, low, close (2 decimals), volume; each bar opens
    at the previous close. (The files of the first replay.py, `bars_N.csv`, wrote prices such as
    100.14999999999999; these are written with 2 decimals.)
    """
    import numpy as np
    import pandas as pd

    path = folder / f"minute_bars_{rows}.csv"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.001, rows))), 2)
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.round(np.abs(rng.normal(0, 0.05, rows)), 2)
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2020-01-01", periods=rows, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": open_, "high": np.maximum(open_, close) + spread, "low": np.minimum(open_, close) - spread,
        "close": close, "volume": rng.integers(100, 10_000, rows),
    })
    partial = path.with_suffix(".partial")  # an interrupted run never leaves a short file behind
    frame.to_csv(partial, index=False, float_format="%.2f")
    partial.replace(path)
    return path


# -- child processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A finished child process: its wall time (start to exit), its CPU time (user + system, all
    its threads), its own peak RSS, its output."""

    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], what: str, *, cwd: Path | None = None) -> Child:
    """Run one child process to its end and measure it alone.

    The peak RSS and CPU time come from `wait4` on that child (the kernel's figures for the child
    and the children it waited for), so several children of one benchmark have separate figures.
    On a busy machine the CPU time moves much less than the wall time.

    Raises:
        BenchmarkFailed: the child exited with a non-zero code (the message has its stderr).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        raise BenchmarkFailed(f"{what} exited with code {code}\n  command: {' '.join(map(str, argv))}\n{tail}")
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Child(wall, usage.ru_utime + usage.ru_stime, peak, stdout, stderr)


def child_json(child: Child, what: str) -> dict:
    """The one JSON object a child printed on stdout."""
    try:
        return json.loads(child.stdout)
    except json.JSONDecodeError:
        raise BenchmarkFailed(f"{what} did not print one JSON object; it printed:\n{child.stdout[-2000:]}") from None


# -- the runner's replay run -----------------------------------------------------------------------


def run_replay(data: Path, rows: int, equity_every: int = 1) -> dict:
    """ma_crossover (10/30, 100 units, next-open fills, no fees) over `data` through the real
    `runner start`, recording to SQLite in a temporary folder (an equity snapshot every
    `equity_every` steps); the figures of that one process."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.yaml"
        db = Path(folder) / "bench.db"
        config.write_text(
            f"market_data: {{source: csv, path: '{data}', symbols: [X]}}\n"
            f"storage: {{url: 'sqlite:///{db}', equity_every: {equity_every}}}\n"
            "broker: {starting_cash: 1000000}\n"
            "strategies: [{type: ma_crossover, params: {fast: 10, slow: 30, quantity: 100}}]\n"
        )
        child = run_child([str(RUNNER), "start", str(config), "--json", "--quiet"], "runner start")
        summary = child_json(child, "runner start")
        if summary.get("status") != "completed":
            raise BenchmarkFailed(f"the runner's run ended {summary.get('status')!r}: {summary.get('error')}")
        with sqlite3.connect(db) as connection:
            written = sum(connection.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES)
            sides = dict(connection.execute("select side, count(*) from fills group by side").fetchall())
    return {
        "rows": rows, "equity_every": equity_every, "wall_seconds": round(child.wall_seconds, 2),
        "cpu_seconds": round(child.cpu_seconds, 2), "bars_per_second": round(rows / child.wall_seconds),
        "loop_seconds": round(summary["elapsed_seconds"], 2),
        "peak_rss_mb": round(child.peak_rss_mb), "rows_written": written, "fills": summary["fills"],
        "buys": sides.get("BUY", 0), "sells": sides.get("SELL", 0),
        "rejections": summary["rejections"],
    }


# -- the machine and the output --------------------------------------------------------------------


def machine() -> dict:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        # At the end of the run: above the number of CPUs, other work shared the machine.
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def target(
    figure: str, value: float, operator: str, limit: float, unit: str = "", only_at: str = "",
    applies: bool = True,
) -> dict:
    """One target beside its figure. A target set for one size only names it in `only_at`
    ("1,000,000 rows"); on other runs `applies` is False and `met` is None."""
    met = {"<=": value <= limit, "<": value < limit, ">=": value >= limit}[operator] if applies else None
    text = f"{operator} {limit:,g}{unit}" + (f" at {only_at}" if only_at else "")
    return {"figure": figure, "value": value, "target": text, "met": met}


def table(rows: Sequence[Mapping[str, object]]) -> str:
    """Rows with the same keys as aligned plain text; numbers right-aligned, with thousands
    separators."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [all(_is_number(row.get(column)) for row in rows) for column in columns]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip()]
    for line in cells:
        lines.append("  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(line, widths, numeric)
        ).rstrip())
    return "\n".join(lines)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) or value is None


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def emit(
    title: str, result: dict, sections: Sequence[tuple[str, Sequence[Mapping[str, object] | str]]], as_json: bool,
) -> None:
    """Print the figures as tables, one per section (a section of strings is printed as lines),
    and `result` as one JSON object.

    Without `--json`: the tables, then the JSON on one line, all on stdout. With `--json`: the
    JSON alone on stdout and the tables on stderr.
    """
    info = result["machine"]
    parts = [
        title,
        f"machine: {info['cpus']} CPUs, {info['cpu']}, Python {info['python']}, {info['date']}; "
        f"load average {' '.join(map(str, info['load_average']))} (1, 5, 15 min, at the end)",
    ]
    for heading, rows in sections:
        if rows:
            body = "\n".join(f"- {row}" for row in rows) if isinstance(rows[0], str) else table(rows)
            parts += ["", heading, body] if heading else ["", body]
    text = "\n".join(parts)
    if as_json:
        print(text, file=sys.stderr)
    else:
        print(text + "\n")
    print(json.dumps(result))


def figure_rows(figures: Mapping[str, object], targets: Sequence[dict] = ()) -> list[dict]:
    """One row per figure, with its target (if any) beside it."""
    by_figure = {t["figure"]: t for t in targets}
    return [
        {"figure": key, "value": value, "target": by_figure[key]["target"] if key in by_figure else "",
         "met": _met(by_figure[key]) if key in by_figure else ""}
        for key, value in figures.items()
    ]


def target_rows(targets: Sequence[dict]) -> list[dict]:
    """The targets as rows: figure, value, target, met."""
    return [{"figure": t["figure"], "value": t["value"], "target": t["target"], "met": _met(t)} for t in targets]


def _met(target: dict) -> str:
    return "n/a" if target["met"] is None else ("yes" if target["met"] else "NO")
