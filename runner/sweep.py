"""Parameter sweeps (`runner sweep`): one data-driven replay per combination of a strategy's
parameters, each recorded as a normal run tagged with the sweep.

`plan_sweep` checks everything before anything is recorded or started: the grid, the
parameters the strategy declares, which combinations its parameter model accepts (the others
are skipped, with its reason: fast >= slow for a crossover), the size against `max_runs`, and
the market data, loaded once here. `run_sweep` records the sweep and its combinations, runs them
on an executor (runner/sweep_executors.py), and writes each finished run's rows as it comes in;
the driver is the database's only writer. However the sweep ends (Ctrl-C included), the sweep
row gets its status and no combination is left `pending`.

Like `bootstrap`, this module wires whole runs, so it sits at the composition root's layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from runner.bootstrap import load_feed, new_run_id
from runner.config import RunnerConfig, StrategyEntry, SyntheticFeedConfig, load_config_text
from runner.errors import ConfigError
from runner.grid import Grid, build_grid, check_declared, rejection
from runner.manifest import DataInputs, data_inputs
from runner.registry import entry_class
from runner.storage import sweeps as records
from runner.storage.db import open_database
from runner.storage.models import SweepRecord, SweepRunRecord
from runner.sweep_executors import executor as make_executor
from runner.sweep_worker import SweepTask, TaskResult
from runner.validators import check_config

DEFAULT_MAX_RUNS = 10_000
SHOWN_REJECTIONS = 3  # reasons quoted when the strategy refuses every combination


@dataclass(frozen=True)
class SweepRequest:
    """What to sweep and how: parameter -> values spec, the strategy (None: the only enabled
    one), the executor and its workers, a Ray address, the size limit and whether it is waived."""

    params: Mapping[str, Any]
    strategy: str | None = None
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    max_runs: int = DEFAULT_MAX_RUNS
    yes: bool = False


@dataclass
class SweepPlan:
    """A checked sweep, ready to run: its id, grid, tasks, skipped combinations and data."""

    sweep_id: str
    config: RunnerConfig
    strategy: str
    grid: Grid
    tasks: list[SweepTask]
    skipped: list[tuple[int, dict[str, Any], str]]  # (number, params, reason)
    feed: Any
    data: DataInputs | None


@dataclass
class SweepOutcome:
    """How a sweep went: per status the runs it had, each combination's result, and the time."""

    sweep_id: str
    status: str
    strategy: str
    executor: str
    workers: int
    combinations: int
    results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result["status"]] = counts.get(result["status"], 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id, "status": self.status, "strategy": self.strategy,
            "executor": self.executor, "workers": self.workers, "combinations": self.combinations,
            "counts": self.counts(), "seconds": round(self.seconds, 3), "runs": self.results,
        }


def plan_sweep(config: RunnerConfig, request: SweepRequest) -> SweepPlan:
    """Check a sweep of `config` and prepare its tasks; nothing is recorded yet.

    Raises:
        ConfigError: the run is not data-driven, the strategy is unknown or ambiguous, a
            parameter is not declared, a range is empty or not numeric, the grid is larger than
            `max_runs` without `yes`, or the strategy accepts no combination.
        StrategyLoadError, DataError: the strategy or the market data cannot be loaded.
    """
    if config.run.mode != "data":
        raise ConfigError(f"run.mode is {config.run.mode!r}; a sweep replays data-driven runs: set run.mode: data")
    index, entry = _swept_entry(config, request.strategy)
    grid = build_grid(request.params)
    if grid.size > request.max_runs and not request.yes:
        raise ConfigError(
            f"the grid has {grid.size:,} combinations, more than --max-runs {request.max_runs:,}; "
            "narrow it, raise --max-runs, or pass --yes to run them all"
        )
    params_model = entry_class(entry, config.source.base_dir).Params
    check_declared(grid, params_model, entry.display_name)
    sweep_id = f"sweep-{new_run_id()}"
    width = len(str(grid.size))
    base = yaml.safe_load(config.source.text) or {}
    tasks, skipped = [], []
    for number, combination in enumerate(grid.combinations(), start=1):
        reason = rejection(params_model, entry.params, combination)
        if reason:
            skipped.append((number, combination, reason))
            continue
        text = _combination_text(base, index, combination, f"{sweep_id} run {number}")
        tasks.append(SweepTask(number, f"{sweep_id}-{number:0{width}d}", combination, text, config.source.path))
    if not tasks:
        reasons = "; ".join(dict.fromkeys(reason for *_, reason in skipped))
        raise ConfigError(f"strategy {entry.display_name!r} refuses every combination of the grid: {reasons}"[:2000])
    check_config(load_config_text(tasks[0].config_text, tasks[0].config_path))
    feed = None if isinstance(config.market_data, SyntheticFeedConfig) else load_feed(config)
    data = data_inputs(config, feed) if feed is not None else None
    return SweepPlan(sweep_id, config, entry.display_name, grid, tasks, skipped, feed, data)


def run_sweep(
    plan: SweepPlan, request: SweepRequest, database: str,
    on_result: Callable[[TaskResult], None] | None = None, on_start: Callable[[], None] | None = None,
) -> SweepOutcome:
    """Run a planned sweep, recording it in `database`: `on_start` is called once the executor
    is ready and the sweep recorded, `on_result` with each finished run.

    Raises:
        ClusterError: the Ray cluster cannot be reached (nothing is recorded then).
        StorageError: the database cannot be written; the sweep is marked failed if it can be.
        KeyboardInterrupt: after the sweep and its unfinished runs are marked interrupted.
    """
    started = time.perf_counter()
    runner = make_executor(request.executor, plan.feed, plan.data, request.workers, request.ray_address)
    engine = open_database(database)
    outcome = SweepOutcome(
        plan.sweep_id, "running", plan.strategy, request.executor, runner.workers, plan.grid.size,
    )
    params = {task.number: task.params for task in plan.tasks}
    try:
        records.start_sweep(engine, _sweep_record(plan, request, runner.workers), [
            *(SweepRunRecord(sweep_id=plan.sweep_id, number=task.number, run_id=task.run_id,
                             params=records.params_json(task.params), status="pending") for task in plan.tasks),
            *(SweepRunRecord(sweep_id=plan.sweep_id, number=number, run_id="", params=records.params_json(combination),
                             status="skipped", error=reason) for number, combination, reason in plan.skipped),
        ], database)
        outcome.results += [
            {"number": number, "run_id": "", "params": combination, "status": "skipped", "error": reason}
            for number, combination, reason in plan.skipped
        ]
        if on_start is not None:
            on_start()
        try:
            for result in runner.results(plan.tasks):
                if result.rows:
                    records.import_run(engine, result.rows, database)
                run_id = result.run_id if result.rows else ""
                records.finish_run(engine, plan.sweep_id, result.number, run_id, result.status, result.error, database)
                outcome.results.append({
                    "number": result.number, "run_id": run_id,
                    "params": params[result.number], "status": result.status, "error": result.error,
                    "seconds": round(result.seconds, 3),
                })
                if on_result is not None:
                    on_result(result)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            outcome.status = "interrupted" if interrupted else "failed"
            records.finish_sweep(engine, plan.sweep_id, outcome.status,
                                 "interrupted (Ctrl-C)" if interrupted else f"{type(exc).__name__}: {exc}", database)
            raise
        outcome.status = "completed"
        records.finish_sweep(engine, plan.sweep_id, "completed", "", database)
    finally:
        runner.close()
        engine.dispose()
    outcome.results.sort(key=lambda result: result["number"])
    outcome.seconds = time.perf_counter() - started
    return outcome


def _swept_entry(config: RunnerConfig, name: str | None) -> tuple[int, StrategyEntry]:
    enabled = config.enabled_strategies()
    names = [entry.display_name for _, entry in enabled]
    if name is None:
        if len(enabled) != 1:
            raise ConfigError(
                f"the config runs {len(enabled)} strategies ({', '.join(names) or 'none'}); "
                "name the one to sweep with --strategy NAME (or sweep.strategy)"
            )
        return enabled[0]
    for index, entry in enabled:
        if entry.display_name == name:
            return index, entry
    raise ConfigError(f"no enabled strategy {name!r} in {config.source.path}; its strategies are: {', '.join(names) or 'none'}")


def _combination_text(base: dict, index: int, combination: Mapping[str, Any], title: str) -> str:
    """The config of one run: the sweep's, with the combination in the strategy's params, replayed
    as fast as possible and without the sweep section."""
    data = json.loads(json.dumps(base, default=str))  # a deep copy; dates become their ISO text
    data.pop("sweep", None)
    strategy = data["strategies"][index]
    strategy["params"] = {**(strategy.get("params") or {}), **combination}
    run = data.setdefault("run", {}) or {}
    run.update(speed=0)
    run.pop("duration", None)
    data["run"] = run
    return f"# {title}\n" + yaml.safe_dump(data, sort_keys=False)


def _sweep_record(plan: SweepPlan, request: SweepRequest, workers: int) -> SweepRecord:
    return SweepRecord(
        id=plan.sweep_id, started_at=datetime.now(UTC), status="running",
        config_path=plan.config.source.path, strategy=plan.strategy,
        grid=json.dumps({name: list(values) for name, values in plan.grid.values.items()}, default=str),
        executor=request.executor, workers=workers, combinations=plan.grid.size,
    )
