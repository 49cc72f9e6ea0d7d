"""The results of a sweep (`runner sweep-report`): its runs ranked by a statistic of the report
module (runner/report.py), and the grid of one statistic over two parameters (the heat map).

Ranking: `sharpe` and `return` (total return) best first, `drawdown` (the deepest fall, a
fraction) smallest first; runs without the figure (no trade, no curve) come last, then by their
place in the grid, so the order is the same on every reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from runner.errors import ConfigError
from runner.report import RunReport, load_report
from runner.storage import queries
from runner.storage import sweeps as records
from runner.storage.models import SweepRecord

SORT_KEYS = {"sharpe": "sharpe", "return": "total_return", "drawdown": "max_drawdown"}
ASCENDING = {"drawdown"}


@dataclass(frozen=True)
class RankedRun:
    """One finished run of a sweep with its parameters and report."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: str
    report: RunReport


@dataclass(frozen=True)
class SweepResults:
    """A sweep, its runs ranked by `sort` (all of them: `top` only limits what is shown), and
    how many combinations ended in each status."""

    sweep: SweepRecord
    sort: str
    ranked: list[RankedRun]
    counts: dict[str, int]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def figure(self, run: RankedRun) -> float | None:
        return getattr(run.report.overall, SORT_KEYS[self.sort])

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        sweep = self.sweep
        return {
            "sweep_id": sweep.id, "status": sweep.status, "strategy": sweep.strategy,
            "config_path": sweep.config_path, "executor": sweep.executor, "workers": sweep.workers,
            "grid": json.loads(sweep.grid), "combinations": sweep.combinations, "counts": self.counts,
            "sort": self.sort,
            "best": [
                {"rank": rank, "number": run.number, "run_id": run.run_id, "params": run.params,
                 "status": run.status, "overall": run.report.overall.to_dict()}
                for rank, run in enumerate(self.ranked[:top] if top else self.ranked, start=1)
            ],
            "failures": self.failures,
        }


def sweep_results(engine: Engine, sweep_id: str, sort: str = "sharpe") -> SweepResults:
    """Read sweep `sweep_id` and rank its recorded runs.

    Raises:
        ConfigError: there is no such sweep (the latest ones are listed), or `sort` is unknown.
    """
    if sort not in SORT_KEYS:
        raise ConfigError(f"--sort {sort!r}: expected one of {', '.join(SORT_KEYS)}")
    sweep = records.sweep(engine, sweep_id)
    if sweep is None:
        recent = records.recent_sweep_ids(engine)
        raise ConfigError(
            f"no sweep {sweep_id!r} in this database; "
            + (f"latest sweeps: {', '.join(recent)}" if recent else "it has no sweeps yet (see `runner sweep --help`)")
        )
    ranked, counts, failures = [], {}, []
    for row in records.sweep_runs(engine, sweep_id):
        counts[row.status] = counts.get(row.status, 0) + 1
        run = queries.run(engine, row.run_id) if row.run_id else None
        if run is None:
            if row.status in ("failed", "interrupted"):
                failures.append({"number": row.number, "params": json.loads(row.params), "status": row.status, "error": row.error})
            continue
        ranked.append(RankedRun(row.number, row.run_id, json.loads(row.params), row.status, load_report(engine, run)))
    key = SORT_KEYS[sort]
    sign = 1 if sort in ASCENDING else -1

    def order(run: RankedRun) -> tuple:
        value = getattr(run.report.overall, key)
        return (value is None, sign * value if value is not None else 0.0, run.number)

    return SweepResults(sweep, sort, sorted(ranked, key=order), counts, failures)


def heat_grid(results: SweepResults, x: str, y: str) -> tuple[list[Any], list[Any], list[list[float | None]]]:
    """The sorted statistic over parameters `x` (columns) and `y` (rows): the x values, the y
    values and one row of cells per y value. With more swept parameters, a cell holds the best
    figure over the others; None where no run has one.

    Raises:
        ConfigError: `x` or `y` is not a swept parameter, or they are the same.
    """
    grid = json.loads(results.sweep.grid)
    missing = [name for name in (x, y) if name not in grid]
    if missing or x == y:
        raise ConfigError(
            f"a heat map needs two different swept parameters; this sweep has: {', '.join(grid)}"
            + (f" (not {', '.join(missing)})" if any(missing) else "")
        )
    xs, ys = grid[x], grid[y]
    cells: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    better = min if results.sort in ASCENDING else max
    for run in results.ranked:
        value = results.figure(run)
        if value is None:
            continue
        row, column = ys.index(run.params[y]), xs.index(run.params[x])
        current = cells[row][column]
        cells[row][column] = value if current is None else better(current, value)
    return xs, ys, cells
