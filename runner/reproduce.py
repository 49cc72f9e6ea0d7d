"""Replaying a recorded run from its manifest into a new run, and comparing the two runs'
orders and fills (`runner replay`).

A run can be replayed when it was data-driven (replay files or seeded synthetic data), has
finished, recorded a manifest, and every input is as it was: the replay refuses, naming each
input that changed, rather than produce a different run and call it a replay. It runs exactly
as many steps as the original recorded, into the same database, and is marked there with
`runs.replay_of`.

Like `bootstrap`, this module wires a whole run, so it sits at the composition root's layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from runner.bootstrap import build
from runner.config import RunConfig, load_config_text
from runner.errors import ConfigError
from runner.manifest import RunManifest, changed_files, manifest_problems, manifest_warnings
from runner.storage import queries
from runner.storage.db import open_database

MAX_DIFFERENCES = 10  # differences listed; the counts say how many rows there were


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replay found: the two runs, whether their orders and fills are identical, how
    many of each there were (original, replay), the first differences, and warnings (such as
    a different runner version)."""

    run_id: str
    replay_run_id: str
    status: str
    identical: bool
    orders: tuple[int, int]
    fills: tuple[int, int]
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "replay_run_id": self.replay_run_id, "status": self.status,
            "identical": self.identical,
            "orders": {"original": self.orders[0], "replay": self.orders[1]},
            "fills": {"original": self.fills[0], "replay": self.fills[1]},
            "differences": self.differences, "warnings": self.warnings, "error": self.error,
        }


def replay(database: str, run_id: str, new_run_id: str | None = None) -> ReplayOutcome:
    """Re-execute run `run_id` of `database` from its manifest, into a new run there.

    Raises:
        ConfigError: there is no such run, or it cannot be replayed (clock mode, unfinished, no
            manifest, policy changed while it ran, or an input changed); the message says why,
            one changed input a line.
        StrategyLoadError, DataError: the inputs cannot be loaded any more.
        StorageError: the database cannot be opened or written.
    """
    engine = open_database(database)
    try:
        manifest, ticks = _replayable(engine, database, run_id)
    finally:
        engine.dispose()
    config = load_config_text(manifest.config_text, manifest.config_path)
    run = RunConfig.model_validate({**manifest.run, "max_ticks": ticks, "duration": None, "speed": 0})
    config = config.model_copy(update={
        "run": run, "storage": config.storage.model_copy(update={"url": database}),
        "telemetry": config.telemetry.model_copy(update={"metrics_port": None}),
    })
    runner = build(config, run_id=new_run_id, replay_of=run_id)
    now = RunManifest.from_json(runner.started.manifest)
    problems = manifest_problems(manifest, now)
    if problems:
        runner.recorder.engine.dispose()
        raise ConfigError(_refusal(run_id, problems))
    summary = runner.run()
    engine = open_database(database)
    try:
        outcome = compare_runs(engine, run_id, runner.run_id)
    finally:
        engine.dispose()
    return ReplayOutcome(
        run_id, runner.run_id, summary.status, outcome.identical and summary.status != "failed",
        outcome.orders, outcome.fills, outcome.differences, manifest_warnings(manifest, now), summary.error,
    )


def compare_runs(engine: Engine, original: str, other: str) -> ReplayOutcome:
    """Compare the orders and fills of two runs, every column but the run id."""
    differences: list[str] = []
    counts = []
    for kind, read, key in (("order", queries.orders, "order_id"), ("fill", queries.fills, "fill_id")):
        before = {row[key]: row for row in (r.model_dump(exclude={"run_id"}) for r in read(engine, original))}
        after = {row[key]: row for row in (r.model_dump(exclude={"run_id"}) for r in read(engine, other))}
        counts.append((len(before), len(after)))
        for number in sorted(before.keys() | after.keys()):
            if number not in after:
                differences.append(f"{kind} {number}: only in the original run")
            elif number not in before:
                differences.append(f"{kind} {number}: only in the replay")
            else:
                differences += [
                    f"{kind} {number}: {column} {before[number][column]} (original) vs {value} (replay)"
                    for column, value in after[number].items() if before[number].get(column) != value
                ]
    return ReplayOutcome(
        original, other, "", not differences, counts[0], counts[1], differences[:MAX_DIFFERENCES],
    )


def _replayable(engine: Engine, database: str, run_id: str) -> tuple[RunManifest, int]:
    """The run's manifest and recorded steps, or the reason it cannot be replayed."""
    record = queries.run(engine, run_id)
    if record is None:
        raise ConfigError(queries.unknown_run(engine, database, run_id))
    if not record.manifest:
        raise ConfigError(_refusal(run_id, [
            "it has no manifest (it was recorded by an older runner, or built in Python without a config)",
        ]))
    manifest = RunManifest.from_json(record.manifest)
    if manifest.mode != "data":
        raise ConfigError(_refusal(run_id, [
            f"it ran in {manifest.mode} mode: its steps followed the wall clock, so they cannot be repeated",
        ]))
    if load_config_text(manifest.config_text, manifest.config_path).strategies_from == "catalog":
        raise ConfigError(_refusal(run_id, [
            "it ran the strategy catalogue's LIVE entries (strategies_from: catalog) as they were then; "
            "a replay would take the catalogue as it is now",
        ]))
    if record.status == "running":
        raise ConfigError(_refusal(run_id, ["it has not finished (its status is running)"]))
    if record.ticks == 0:
        raise ConfigError(_refusal(run_id, ["it recorded no steps, so there is nothing to replay"]))
    during = [change for change in queries.policy_changes(engine, run_id) if change.step > 0]
    if during:
        first = during[0]
        raise ConfigError(_refusal(run_id, [
            f"its policy was changed while it ran ({len(during)} change(s), the first at step "
            f"{first.step}: {first.key} {first.old_value} -> {first.new_value}); a replay would not see them",
        ]))
    changed = changed_files(manifest)
    if changed:
        raise ConfigError(_refusal(run_id, changed))
    return manifest, record.ticks


def _refusal(run_id: str, reasons: list[str]) -> str:
    return f"cannot replay run {run_id}:\n" + "\n".join(f"  - {reason}" for reason in reasons)
