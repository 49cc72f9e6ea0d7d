"""`runner sweep` and `runner sweep-report`: parameter sweeps and their results.

The work is done by runner/sweep.py (plan and run), runner/sweep_executors.py (process pool
or Ray) and runner/sweep_report.py (ranking); this module parses the options, merges them over
the config's `sweep:` section, shows progress and renders the results.
"""

from __future__ import annotations

import contextlib
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cli.errors import EXIT_FAILURE, handled
from cli.records import DbOption, JsonOption, emit, plain_table, reading

MISSING_MATPLOTLIB = "--plot draws with matplotlib, which is not installed: pip install -e '.[report]'"


class ExecutorChoice(str, Enum):
    local = "local"
    ray = "ray"


class SortChoice(str, Enum):
    sharpe = "sharpe"
    return_ = "return"
    drawdown = "drawdown"


def sweep(
    config: Annotated[Path, typer.Argument(help="YAML config file, such as configs/sweep.yaml.", show_default=False)],
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="NAME=VALUES, repeatable: a list (fast=5,10,20) or a range start:stop:step "
        "that includes stop (slow=30:90:10). Replaces sweep.params of the config.", show_default=False,
    )] = None,
    strategy: Annotated[Optional[str], typer.Option(
        help="The strategy to sweep (its name in the config); default: sweep.strategy, or the only enabled one.",
        show_default=False,
    )] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Replays at once; default: this machine's CPUs (local), the cluster's (ray).", show_default=False,
    )] = None,
    executor: Annotated[Optional[ExecutorChoice], typer.Option(
        help="local: a process pool here (default); ray: Ray tasks (pip install -e '.\\[distributed]').",
        show_default=False,
    )] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        help="host:port of a Ray cluster to join; default: start a local Ray.", show_default=False,
    )] = None,
    max_runs: Annotated[Optional[int], typer.Option(
        min=1, help="Refuse a grid larger than this unless --yes (default 10,000).", show_default=False,
    )] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Run a grid larger than --max-runs.")] = False,
    db: Annotated[Optional[Path], typer.Option(help="SQLite file for the records (overrides storage.url).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; the summary only.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Replay CONFIG once per combination of a strategy's parameters; record each as a run.

    Every run is tagged with the sweep id and its parameters; rank them with `runner sweep-report`,
    inspect or re-run any of them like another run (`runner report RUN_ID`, `runner replay RUN_ID`).
    Combinations the strategy's parameters refuse (fast >= slow for ma_crossover) are skipped
    and listed. Exit 0 when every run completed, 1 when one failed or the sweep was
    interrupted (the unfinished runs are marked so), 2 for bad input.

    Example:  runner sweep configs/sweep.yaml --param fast=5,10,20 --param slow=30:90:10 --workers 2
    """
    from runner.config import load_config
    from runner.grid import parse_assignment
    from runner.storage.db import sqlite_url
    from runner.sweep import DEFAULT_MAX_RUNS, SweepRequest, plan_sweep

    err = Console(stderr=True)
    with handled(err, json_output):
        loaded = load_config(config)
        section = loaded.sweep
        specs = dict(parse_assignment(text) for text in param) if param else dict(section.params if section else {})
        request = SweepRequest(
            params=specs,
            strategy=strategy or (section.strategy if section else None),
            executor=(executor.value if executor else section.executor if section else "local"),
            workers=workers or (section.workers if section else None),
            ray_address=ray_address or (section.ray_address if section else None),
            max_runs=max_runs or (section.max_runs if section else DEFAULT_MAX_RUNS),
            yes=yes,
        )
        plan = plan_sweep(loaded, request)
        database = sqlite_url(db) if db else loaded.storage.url
        if not json_output:
            err.print(
                f"sweep {plan.sweep_id}: {plan.strategy}, {plan.grid.size} combination(s), "
                f"{len(plan.tasks)} to run, {len(plan.skipped)} skipped; executor {request.executor}",
                highlight=False, soft_wrap=True,
            )
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Ray prints its workers' deaths on stdout
                outcome = _run_with_progress(plan, request, database, err, show=not (quiet or json_output))
        except KeyboardInterrupt:
            err.print(f"sweep {plan.sweep_id} interrupted: finished runs are recorded, the others marked interrupted",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILURE) from None
    if json_output:
        sys.stdout.write(json.dumps(outcome.to_dict()) + "\n")
    else:
        _print_outcome(outcome)
    if outcome.counts().get("failed") or outcome.counts().get("stopped"):
        raise typer.Exit(EXIT_FAILURE)


def _run_with_progress(plan, request, database: str, err: Console, show: bool):
    from runner.sweep import run_sweep

    if not show:
        return run_sweep(plan, request, database)
    columns = (
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=err, transient=False)
    bar = progress.add_task("replays", total=len(plan.tasks), failed=0)
    failed = 0

    def advance(result) -> None:
        nonlocal failed
        failed += result.status == "failed"
        progress.update(bar, advance=1, failed=failed)

    try:  # shown once the executor is ready: an unreachable cluster shows no empty bar
        return run_sweep(plan, request, database, on_result=advance, on_start=progress.start)
    finally:
        if progress.live.is_started:
            progress.stop()


def _print_outcome(outcome) -> None:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.counts().items()))
    lines = [
        f"sweep {outcome.sweep_id} {outcome.status}: {counts} in {outcome.seconds:.1f} s "
        f"({outcome.executor}, {outcome.workers} worker(s))",
    ]
    problems = [r for r in outcome.results if r["status"] != "completed"]
    for result in problems[:10]:
        lines.append(f"  #{result['number']} {_params_text(result['params'])}: {result['status']}"
                     + (f": {result['error']}" if result["error"] else ""))
    if len(problems) > 10:
        lines.append(f"  ... and {len(problems) - 10} more (see --json)")
    lines.append(f"next: runner sweep-report {outcome.sweep_id}")
    sys.stdout.write("\n".join(lines) + "\n")


def _params_text(params: dict) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


def sweep_report(
    sweep_id: Annotated[str, typer.Argument(
        help="Id of a sweep (printed by `runner sweep`). Example: sweep-20240102-143000-ab12",
        show_default=False, metavar="SWEEP_ID",
    )],
    db: DbOption = None,
    top: Annotated[int, typer.Option(min=1, help="Show the best K runs.")] = 10,
    sort: Annotated[SortChoice, typer.Option(
        help="Rank by sharpe (highest first), return (total return, highest first) or drawdown (smallest first).",
    )] = SortChoice.sharpe,
    plot: Annotated[Optional[Path], typer.Option(
        dir_okay=False, help="Write a PNG heat map of the --sort figure over two swept parameters.", show_default=False,
    )] = None,
    x: Annotated[Optional[str], typer.Option(help="Heat map column parameter; default: the first swept one.", show_default=False)] = None,
    y: Annotated[Optional[str], typer.Option(help="Heat map row parameter; default: the second swept one.", show_default=False)] = None,
    json_output: JsonOption = False,
) -> None:
    """Rank the runs of a sweep by a statistic of `runner report`, best first.

    Each row has the run id (for `runner report`, `runner replay`), the parameters, and the
    return, Sharpe, drawdown, trades, win rate and net P&L of the whole account.

    Example:  runner sweep-report sweep-20240102-143000-ab12 --top 5 --sort return --plot heat.png
    """
    from runner.sweep_report import heat_grid, sweep_results

    with reading(db, json_output) as records:
        results = sweep_results(records.engine, sweep_id, sort.value)
        if plot:
            names = list(json.loads(results.sweep.grid))
            x_name = x or (names[0] if names else "")
            y_name = y or next((name for name in names if name != x_name), "")
            _write_heat_map(plot, results, *heat_grid(results, x_name, y_name), x_name, y_name)
    if json_output:
        sys.stdout.write(json.dumps(results.to_dict(top)) + "\n")
        return
    emit(_table(results, top))
    for failure in results.failures:
        sys.stdout.write(f"#{failure['number']} {_params_text(failure['params'])}: {failure['status']}: {failure['error']}\n")
    if plot:
        Console(stderr=True).print(f"heat map written to {escape(str(plot))}", highlight=False, soft_wrap=True)


def _table(results, top: int):
    counts = ", ".join(f"{count} {status}" for status, count in sorted(results.counts.items()))
    sweep = results.sweep
    table = plain_table(
        f"sweep {sweep.id} ({sweep.status}): {sweep.strategy}, best {min(top, len(results.ranked))} by {results.sort}",
        caption=counts,
    )
    for heading in ("rank", "run", "params", "return %", "sharpe", "drawdown %", "trades", "win %", "net P&L"):
        table.add_column(heading, justify="left" if heading in ("run", "params") else "right")
    for rank, run in enumerate(results.ranked[:top], start=1):
        overall = run.report.overall
        table.add_row(
            str(rank), run.run_id, _params_text(run.params), _percent(overall.total_return),
            _number(overall.sharpe), _percent(overall.max_drawdown), str(overall.trades),
            _percent(overall.win_rate), f"{overall.net_pnl:,.2f}" if overall.net_pnl is not None else "-",
        )
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _write_heat_map(path: Path, results, xs, ys, cells, x_name: str, y_name: str) -> None:
    from runner.errors import ConfigError

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None
    import numpy as np

    values = np.array([[np.nan if cell is None else cell for cell in row] for row in cells], dtype=float)
    figure = Figure(figsize=(max(6.0, 1.5 + 0.8 * len(xs)), max(4.0, 1.5 + 0.5 * len(ys))), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(values, origin="lower", aspect="auto", cmap="viridis_r" if results.sort == "drawdown" else "viridis")
    axes.set_xticks(range(len(xs)), [str(v) for v in xs])
    axes.set_yticks(range(len(ys)), [str(v) for v in ys])
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name)
    axes.set_title(f"{results.sort} by {x_name} and {y_name}\n{results.sweep.id}", fontsize=10)
    figure.colorbar(image, ax=axes, label=results.sort)
    for row, line in enumerate(cells):
        for column, cell in enumerate(line):
            axes.text(column, row, "-" if cell is None else f"{cell:.2f}", ha="center", va="center", fontsize=8, color="white")
    try:
        figure.savefig(path, format="png")
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write it: {exc.strerror or exc}") from None
