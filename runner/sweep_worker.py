"""One replay of a parameter sweep, as a worker process or a Ray task runs it.

The worker gets the combination's whole config text (the sweep's config with the combination's
parameters written in, so `runner replay` of the run needs nothing else), the market data the
driver loaded once, and the data's manifest inputs (hashed once by the driver). It replays into
an in-memory database and returns the run's rows; the driver writes them (runner/storage/sweeps.py).

Like `bootstrap`, this module wires a whole run, so it sits at the composition root's layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runner.bootstrap import build
from runner.config import load_config_text
from runner.errors import RunnerError
from runner.feeds import Feed
from runner.manifest import DataInputs
from runner.storage.sweeps import RunRows, export_run

IN_MEMORY = "sqlite://"


@dataclass(frozen=True)
class SweepTask:
    """One combination to replay: its place in the grid (from 1), run id, parameters and config."""

    number: int
    run_id: str
    params: dict[str, Any]
    config_text: str
    config_path: str


@dataclass(frozen=True)
class TaskResult:
    """What became of one combination: the run's status (completed, stopped or failed), its
    error, its rows to record (none when the run could not be built or its worker died), and
    the wall seconds it took."""

    number: int
    run_id: str
    status: str
    error: str = ""
    rows: dict = field(default_factory=dict, repr=False)
    seconds: float = 0.0


def replay_combination(task: SweepTask, feed: Feed | None, data: DataInputs | None) -> TaskResult:
    """Replay one combination over `feed` (None: the config's own, for synthetic data).

    A run that cannot be built (a bad parameter value, a strategy that fails to load) is a
    failed result; anything else that goes wrong is raised, for the executor to retry.
    """
    started = time.perf_counter()
    config = load_config_text(task.config_text, task.config_path)
    config = config.model_copy(update={
        "storage": config.storage.model_copy(update={"url": IN_MEMORY}),
        "telemetry": config.telemetry.model_copy(update={"metrics_port": None}),
    })
    try:
        runner = build(config, run_id=task.run_id, feed=feed, data_inputs=data)
    except RunnerError as exc:
        return TaskResult(task.number, task.run_id, "failed", str(exc), seconds=time.perf_counter() - started)
    try:
        summary = runner.run()
        rows: RunRows = export_run(runner.recorder.engine, task.run_id)
    finally:
        runner.recorder.engine.dispose()
    return TaskResult(
        task.number, task.run_id, summary.status, summary.error, rows, time.perf_counter() - started,
    )
