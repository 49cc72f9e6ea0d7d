"""The strategy catalogue: strategies kept in the database, each with a lifecycle status.

    add        (new) -> DRAFT                 the definition is checked like a config entry
    promote    DRAFT -> BACKTEST              nothing required
    promote    BACKTEST -> LIVE               the gate: a completed replay run of the entry
    archive    DRAFT | BACKTEST | LIVE -> ARCHIVED
    add        ARCHIVED -> DRAFT              the only way back: a new definition, the old name

The gate accepts the newest run made by `runner catalog backtest NAME` that completed, replayed
a data file in data-driven mode, and ran the entry's very strategy, parameters, symbols and
interval (read back from the run's recorded config), from source and model files that have not
changed since (the run's manifest holds their sha256). Runs of `strategies_from: catalog` run
every LIVE entry. Every refusal is a `ConfigError` that says why and what would be accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import Engine

from runner.config import (
    ConfigSource, RunnerConfig, StrategyEntry, load_config_text, suggestion, validation_problems,
)
from runner.errors import ConfigError
from runner.manifest import RunManifest, changed_files
from runner.storage import catalog_store, queries
from runner.storage.models import CatalogEntryRecord
from runner.validators import strategy_problems

LOADERS = ("type", "module", "file")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
DATA_SOURCES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class Status(str, Enum):
    DRAFT = "DRAFT"
    BACKTEST = "BACKTEST"
    LIVE = "LIVE"
    ARCHIVED = "ARCHIVED"


NEXT = {Status.DRAFT: Status.BACKTEST, Status.BACKTEST: Status.LIVE}


@dataclass(frozen=True)
class CatalogEntry:
    """A catalogue entry: its name, its definition as a config strategy entry, its status."""

    name: str
    strategy: StrategyEntry
    status: Status
    created_at: datetime
    updated_at: datetime

    @property
    def loads(self) -> str:
        """How it is loaded, as a config entry says it: `type: rsi`, `file: /path/x.py`."""
        loader = next(key for key in LOADERS if getattr(self.strategy, key))
        target = f"{loader}: {getattr(self.strategy, loader)}"
        return target + (f" (class {self.strategy.class_name})" if self.strategy.class_name else "")


def entry_of(row: CatalogEntryRecord) -> CatalogEntry:
    """The entry a catalogue row holds."""
    spec: dict[str, Any] = {"name": row.name, row.loader: row.target, "params": json.loads(row.params or "{}")}
    if row.class_name:
        spec["class"] = row.class_name
    if row.symbols:
        spec["symbols"] = json.loads(row.symbols)
    if row.interval:
        spec["interval"] = row.interval
    return CatalogEntry(row.name, StrategyEntry.model_validate(spec), Status(row.status), row.created_at, row.updated_at)


def definition(strategy: StrategyEntry) -> dict[str, Any]:
    """What the gate compares between an entry and a run: loader, class, params, symbols, interval."""
    return {
        "type": strategy.type, "module": strategy.module, "file": strategy.file, "class": strategy.class_name,
        "params": json.loads(json.dumps(strategy.params, sort_keys=True, default=str)),
        "symbols": strategy.symbols, "interval": strategy.interval,
    }


def check_definition(
    name: str, loader: str, target: str, params: dict[str, Any], *, class_name: str | None = None,
    symbols: list[str] | None = None, interval: str | None = None, base_dir: Path | None = None,
) -> StrategyEntry:
    """Validate a new entry the way the config loader validates a strategy entry: the strategy
    can be found and its parameters suit its `Params`. A file path is made absolute (from
    `base_dir`, default the current folder) so that any run finds it.

    Raises:
        ConfigError: each problem, named by the option it comes from.
    """
    where = f"catalog entry {name!r}"
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}: a name is letters, digits, '_', '.' and '-', starting with a letter or digit"
        )
    if loader == "file":
        target = str(((base_dir or Path.cwd()) / target).resolve())
    spec: dict[str, Any] = {"name": name, loader: target, "params": params}
    spec.update({key: value for key, value in (("class", class_name), ("symbols", symbols), ("interval", interval)) if value})
    source = ConfigSource(where, "")
    try:
        strategy = StrategyEntry.model_validate(spec)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, StrategyEntry, source)) from None
    config = RunnerConfig(strategies=[strategy])
    config._source = source
    problems = strategy_problems(config)
    if problems:
        prefix = "strategies[0]."
        raise ConfigError([replace(p, key_path=p.key_path.removeprefix(prefix)) for p in problems])
    return strategy


def read(engine: Engine, name: str) -> CatalogEntry:
    """The entry `name`.

    Raises:
        ConfigError: there is none; the message lists the names there are.
    """
    row = catalog_store.entry(engine, name)
    if row is None:
        names = [r.name for r in catalog_store.entries(engine)]
        hint = suggestion(name, names)
        raise ConfigError(
            f"no catalogue entry {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            + (f"; the entries are: {', '.join(names)}" if names else "; the catalogue is empty (runner catalog add)")
        )
    return entry_of(row)


def add(engine: Engine, strategy: StrategyEntry, at: datetime) -> CatalogEntry:
    """Add `strategy` (checked by `check_definition`) as a DRAFT entry; an ARCHIVED entry of
    the same name is replaced.

    Raises:
        ConfigError: an entry of that name exists and is not archived.
    """
    name = strategy.display_name
    existing = catalog_store.entry(engine, name)
    if existing is not None and existing.status != Status.ARCHIVED:
        raise ConfigError(
            f"catalogue entry {name!r} exists ({existing.status}); archive it first "
            f"(runner catalog archive {name}) or choose another name"
        )
    loader = next(key for key in LOADERS if getattr(strategy, key))
    row = CatalogEntryRecord(
        name=name, loader=loader, target=getattr(strategy, loader), class_name=strategy.class_name or "",
        params=json.dumps(strategy.params, sort_keys=True, default=str),
        symbols=json.dumps(strategy.symbols) if strategy.symbols else "", interval=strategy.interval or "",
        status=Status.DRAFT.value, created_at=at, updated_at=at,
    )
    reason = "added again" if existing is not None else "added"
    catalog_store.change_status(engine, row, existing.status if existing else "", at, reason)
    return entry_of(row)


def promote(engine: Engine, name: str, at: datetime, reason: str = "") -> tuple[CatalogEntry, str]:
    """Move entry `name` one stage on; to LIVE only through the gate. Returns the entry and
    the run the gate accepted ("" below LIVE).

    Raises:
        ConfigError: no such entry, it is LIVE or ARCHIVED already, or the gate refused.
    """
    current = read(engine, name)
    target = NEXT.get(current.status)
    if target is None:
        why = "the last stage" if current.status is Status.LIVE else "add it again to start over (runner catalog add)"
        raise ConfigError(f"catalogue entry {name!r} is {current.status.value}, which cannot be promoted: {why}")
    run_id = accepted_run(engine, current) if target is Status.LIVE else ""
    default = f"replay run {run_id} accepted" if run_id else "promoted"
    return _move(engine, current, target, at, reason or default, run_id), run_id


def archive(engine: Engine, name: str, at: datetime, reason: str = "") -> CatalogEntry:
    """Archive entry `name` from any stage; runs of the catalogue stop it.

    Raises:
        ConfigError: no such entry, or it is archived already.
    """
    current = read(engine, name)
    if current.status is Status.ARCHIVED:
        raise ConfigError(f"catalogue entry {name!r} is archived already")
    return _move(engine, current, Status.ARCHIVED, at, reason or "archived")


def _move(engine: Engine, current: CatalogEntry, to: Status, at: datetime, reason: str, run_id: str = "") -> CatalogEntry:
    row = catalog_store.entry(engine, current.name)
    row.status, row.updated_at = to.value, at
    catalog_store.change_status(engine, row, current.status.value, at, reason, run_id)
    return replace(current, status=to, updated_at=at)


def accepted_run(engine: Engine, entry: CatalogEntry) -> str:
    """The gate: the newest replay run of `entry` that completed and ran its definition.

    Raises:
        ConfigError: there is none; the message says what each candidate lacks, or how to make one.
    """
    candidates = catalog_store.backtests(engine, entry.name)
    if not candidates:
        raise ConfigError(
            f"promotion of {entry.name!r} to LIVE refused: no replay run of it is recorded; make one with "
            f"`runner catalog backtest {entry.name} --data FILE` on this database"
        )
    refusals = []
    for candidate in candidates:
        problem = _run_problem(engine, candidate.run_id, entry)
        if problem is None:
            return candidate.run_id
        refusals.append(f"run {candidate.run_id}: {problem}")
    raise ConfigError(
        f"promotion of {entry.name!r} to LIVE refused: no completed replay run of its definition; "
        + "; ".join(refusals) + f". Make one with `runner catalog backtest {entry.name} --data FILE`"
    )


def _run_problem(engine: Engine, run_id: str, entry: CatalogEntry) -> str | None:
    """Why run `run_id` does not pass the gate for `entry` (None when it does)."""
    run = queries.run(engine, run_id)
    if run is None:
        return "not in the database"
    if run.status != "completed":
        return f"it is {run.status}" + (f" ({run.error})" if run.error else "") + ", not completed"
    if not run.ticks:
        return "it replayed no bars"
    try:
        config = load_config_text(run.config_text, run.config_path)
    except ConfigError as exc:
        return f"its recorded config cannot be read ({exc})"
    if config.run.mode != "data" or config.market_data.source not in ("csv", "parquet"):
        return "it is not a data-driven replay of a file"
    ran = next((s for s in config.strategies if s.display_name == entry.name), None)
    if ran is None:
        return f"it did not run {entry.name!r}"
    wanted, got = definition(entry.strategy), definition(ran)
    differences = [f"{key} {got[key]!r} (the entry has {wanted[key]!r})" for key in wanted if wanted[key] != got[key]]
    if differences:
        return "it ran " + ", ".join(differences)
    inputs = changed_files(RunManifest.from_json(run.manifest)) if run.manifest else []
    changed = [problem for problem in inputs if problem.startswith(f"strategy {entry.name} ")]
    if changed:
        return "its strategy's code or model changed since: " + "; ".join(changed)
    return None


def backtest_config(entry: CatalogEntry, data: Path, database_url: str) -> RunnerConfig:
    """The config of a replay run of `entry` over the file `data`, as fast as possible.

    Raises:
        ConfigError: the file is not a .csv or .parquet file, or the entry is archived.
    """
    if entry.status is Status.ARCHIVED:
        raise ConfigError(f"catalogue entry {entry.name!r} is archived; add it again to test it")
    source = DATA_SOURCES.get(data.suffix.lower())
    if source is None:
        raise ConfigError(f"--data: expected a .csv or .parquet file, got {data}")
    strategy = entry.strategy.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    document = {
        "run": {"mode": "data", "speed": 0},
        "market_data": {"source": source, "path": str(data.resolve())},
        "storage": {"url": database_url},
        "strategies": [strategy],
    }
    text = f"# runner catalog backtest {entry.name}\n" + yaml.safe_dump(document, sort_keys=False)
    return load_config_text(text, f"catalog backtest {entry.name}")


def live_entries(rows: list[CatalogEntryRecord]) -> dict[str, StrategyEntry]:
    """The LIVE entries among `rows`, by name, as config strategy entries."""
    return {row.name: entry_of(row).strategy for row in rows if row.status == Status.LIVE}
