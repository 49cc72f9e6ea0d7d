"""Resuming a recorded run (`runner start CONFIG --resume RUN_ID`).

A resumed run continues under its own run id: its new records join the old ones, order and fill
ids go on from the largest recorded, and the `(run_id, fill_id)` key makes a fill recorded twice
impossible. Each resume is recorded in the `resumes` table (when, after which step and status,
and the differences accepted with --force).

Where it takes up: after the run's last committed step (`run_progress`, committed with the
step's records, see the durability promise in runner/storage/recorder.py). Before its first new
step the loop catches up:

- Market data that is not live (files, and seeded synthetic data in data and clock mode alike)
  is repositioned by replaying the recorded steps through the loop and the strategies with
  nothing recorded, nothing sent to `on_signal`, and the books discarded afterwards: each
  strategy is warmed exactly as it was (indicators, `warmup`, what it learnt through `on_fill`),
  and so are the candles of derived intervals and the policy's state.
- A live feed cannot go back: it continues from now; strategies start cold and warm up on the new
  bars as at a fresh start.

Then the books are taken from the database, whatever the catch-up computed: cash and positions
are the recorded fills replayed (a paper account's balance never resets), the working orders are
the recorded ones. So a data-driven run killed at any step and resumed records exactly what an
uninterrupted run records; a run that was stopped (Ctrl-C, SIGTERM, max_ticks, a failure)
continues from the books its stop left: the working orders the stop cancelled stay cancelled
(the record says so) and positions its strategies closed in `on_stop` stay closed.

Refused, with the reason (exit 2): an unknown run; a run still alive (status running with a
fresh heartbeat, see runner/health.py); a run whose data has no step left (it ended with its
data) or that already ran `run.max_ticks`; and, unless forced, a config or input that differs
from the recorded run's (each config key that differs, each changed strategy source or data
file). The length and pace of the run (`run.max_ticks`, `run.duration`, `run.speed`), the
database (`storage.url`) and `telemetry` may change freely.

Like `bootstrap`, this module wires a whole run, so it sits at the composition root's layer.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from sqlalchemy import Engine

from runner.bootstrap import build
from runner.config import RunConfig, RunnerConfig, load_config_text
from runner.domain import ZERO, Fill, MarketData, Order
from runner.engine import StrategyRunner
from runner.errors import ConfigError, FeedError, RunnerError
from runner.events import Heartbeat, RunResumed
from runner.health import assess
from runner.loop import Sink, TickLoop
from runner.manifest import RunManifest, manifest_problems
from runner.storage import queries
from runner.storage.convert import fill_of, order_of, utc
from runner.storage.db import open_database
from runner.storage.models import RunRecord

FREE_TO_CHANGE = ("run.max_ticks", "run.duration", "run.speed", "storage.url", "telemetry.")
"""Config keys (or key prefixes) a resume may change without --force: how long and how fast
the run goes on, where it is recorded, and its metrics endpoint."""
WORKING = ("ACCEPTED", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run took up: after `from_step` (bar time `bar_time`), which the run had
    reached with status `previous_status`; `caught_up_by` says how the loop got there
    ("replay" of the recorded steps, or "records" alone for a live feed); `forced` lists the
    differences accepted with --force."""

    run_id: str
    from_step: int
    bar_time: datetime | None
    previous_status: str
    caught_up_by: str
    forced: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "from_step": self.from_step,
            "bar_time": self.bar_time.isoformat() if self.bar_time else None,
            "previous_status": self.previous_status, "caught_up_by": self.caught_up_by,
            "forced": list(self.forced),
        }


def resume(config: RunnerConfig, run_id: str, *, force: bool = False) -> tuple[StrategyRunner, ResumePoint]:
    """Build the runner that continues run `run_id` of the config's database (not started).

    Raises:
        ConfigError: the run cannot be resumed (unknown, alive, nothing left to run, or its
            inputs differ and `force` is not set); the message says why, a reason a line.
        StrategyLoadError, DataError: the inputs cannot be loaded.
        StorageError: the database cannot be opened.
    """
    if config.strategies_from == "catalog":
        raise ConfigError(_refusal(run_id, [
            "it runs the strategy catalogue (strategies_from: catalog), whose LIVE entries change while "
            "it goes, so the strategies it had at each step cannot be rebuilt: start a new run",
        ]))
    database = config.storage.url
    engine = open_database(database)
    try:
        record = _resumable(engine, database, run_id)
        mark = queries.progress(engine, run_id)
        fills = [fill_of(row) for row in queries.fills(engine, run_id)]
        orders = queries.orders(engine, run_id)
    finally:
        engine.dispose()
    if mark is None and record.ticks:
        raise ConfigError(_refusal(run_id, ["it was recorded by an older runner, which did not mark its steps"]))
    from_step, bar_time = (mark.step, utc(mark.bar_time)) if mark is not None else (0, None)
    runner = build(config, run_id=run_id, resuming=True)
    try:
        _check_steps_left(runner, config, run_id, record, from_step)
        differences = config_differences(record, config) + input_differences(record, runner.started.manifest)
        if differences and not force:
            raise ConfigError(
                f"cannot resume run {run_id}: the config or inputs differ from the run's "
                "(resume with --force to accept):\n" + "\n".join(f"  - {line}" for line in differences)
            )
    except RunnerError:
        runner.recorder.engine.dispose()
        raise
    replays = not getattr(runner.feed, "live", False)
    resumed = RunResumed(
        run_id, datetime.now(UTC), from_step, bar_time, record.status, runner.started.config_sha256,
        "\n".join(differences),
    )
    runner.resumption = _Resumption(resumed, fills, orders, replays)
    point = ResumePoint(run_id, from_step, bar_time, record.status, "replay" if replays else "records", tuple(differences))
    return runner, point


def _resumable(engine: Engine, database: str, run_id: str) -> RunRecord:
    """The run's record, or why it cannot be resumed."""
    record = queries.run(engine, run_id)
    if record is None:
        raise ConfigError(queries.unknown_run(engine, database, run_id))
    if record.status == "running":
        health = assess(engine, record)
        if health.alive:
            since = health.seconds_since_heartbeat
            beat = f"its last heartbeat is {since:.1f} s old" if since is not None else "it has just started"
            raise ConfigError(_refusal(run_id, [
                f"it is still running ({beat}; a run counts as dead after {health.stale_after_seconds:g} s "
                "without one): stop it first (Ctrl-C or SIGTERM), or wait for its heartbeat to go stale "
                "if its process is gone",
            ]))
    return record


def _check_steps_left(runner: StrategyRunner, config: RunnerConfig, run_id: str, record: RunRecord, from_step: int) -> None:
    """Refuse a run with no step left to run: its data is used up, or its max_ticks reached."""
    total = getattr(runner.feed, "total_steps", None)
    if total is not None and from_step >= total:
        raise ConfigError(
            f"run {run_id} is complete: it ended with its data ({from_step} of {total} steps, "
            f"status {record.status}); there is nothing to resume"
        )
    limit = config.run.max_ticks
    if limit is not None and from_step >= limit:
        raise ConfigError(
            f"run {run_id} has already run {from_step} steps, and run.max_ticks is {limit}: "
            "pass a larger --max-ticks to continue it"
        )


def config_differences(record: RunRecord, config: RunnerConfig) -> list[str]:
    """Each config key whose value differs between the recorded run (its config text with its
    effective run settings) and `config`, as `key: old -> new`; keys in FREE_TO_CHANGE aside."""
    try:
        recorded = load_config_text(record.config_text, record.config_path)
    except ConfigError as exc:
        return [f"the run's recorded config does not load any more: {exc}"]
    if record.manifest:
        recorded = recorded.model_copy(update={"run": RunConfig.model_validate(RunManifest.from_json(record.manifest).run)})
    before, after = _flat(recorded.model_dump(mode="json")), _flat(config.model_dump(mode="json"))
    differences = []
    for key in sorted(before.keys() | after.keys()):
        if key.startswith(FREE_TO_CHANGE) or before.get(key) == after.get(key):
            continue
        old = json.dumps(before[key]) if key in before else "(absent)"
        new = json.dumps(after[key]) if key in after else "(absent)"
        differences.append(f"{key}: {old} -> {new}")
    return differences


def input_differences(record: RunRecord, manifest_json: str) -> list[str]:
    """Each input file, strategy class, data range or policy override that differs between the
    run's manifest and the new one (the config's own keys are left to `config_differences`)."""
    if not record.manifest:
        return ["the run recorded no manifest (an older runner made it): its inputs cannot be compared"]
    recorded, now = RunManifest.from_json(record.manifest), RunManifest.from_json(manifest_json)
    same_settings = replace(
        now, config_sha256=recorded.config_sha256, seed=recorded.seed, mode=recorded.mode,
        broker=recorded.broker, market_data=recorded.market_data,
    )
    return manifest_problems(recorded, same_settings)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key path: value}; list items by index (`strategies.0.params`)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat if flat or not prefix else {prefix: value}


class _Resumption:
    """Brings a resumed run's loop to its last recorded step, then hands it the recorded books
    (see the module docstring); `catch_up` runs in the loop thread."""

    def __init__(self, resumed: RunResumed, fills: list[Fill], orders: list, replays: bool):
        self.resumed = resumed
        self.fills = fills
        notional: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for fill in fills:
            notional[fill.order_id] += fill.quantity * fill.price
        self.working = [order_of(row, notional[row.order_id]) for row in orders if row.status in WORKING]
        self.next_order_id = max((row.order_id for row in orders), default=0) + 1
        self.next_fill_id = max((fill.id for fill in fills), default=0) + 1
        self.replays = replays

    def catch_up(self, loop: TickLoop, steps: Iterator[MarketData]) -> None:
        last = self.resumed.from_step
        if self.replays:
            sink, on_signal = loop.sink, loop.on_signal
            loop.sink, loop.on_signal = _HeartbeatsOnly(sink), None
            try:
                for market in islice(steps, last):
                    loop.step(market)
            finally:
                loop.sink, loop.on_signal = sink, on_signal
        else:
            loop.steps, loop.timestamp = last, self.resumed.bar_time
        loop.portfolio.restore(self.fills)  # before any failure below: the stop records the real books
        loop.broker.restore(self.working, self.next_order_id, self.next_fill_id)
        if loop.steps < last:
            replayed, loop.steps, loop.timestamp = loop.steps, last, self.resumed.bar_time  # the stop records as of there
            raise FeedError(f"the market data ended after {replayed} steps, before the run's last recorded step {last}")


class _HeartbeatsOnly:
    """The sink during a catch-up: the replayed steps' records are recorded already, so only
    heartbeats go through (a long catch-up must not look like a dead run)."""

    def __init__(self, sink: Sink):
        self.sink = sink

    def submit(self, records: list[object]) -> None:
        beats = [record for record in records if type(record) is Heartbeat]
        if beats:
            self.sink.submit(beats)


def _refusal(run_id: str, reasons: list[str]) -> str:
    return f"cannot resume run {run_id}:\n" + "\n".join(f"  - {reason}" for reason in reasons)
