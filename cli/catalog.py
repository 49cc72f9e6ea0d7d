"""`runner catalog add|list|show|promote|archive|backtest`: the strategy catalogue and its
lifecycle DRAFT -> BACKTEST -> LIVE -> ARCHIVED (see runner/catalog.py).

Refusals (an unknown entry or strategy, bad parameters, a transition the lifecycle does not
allow, a promotion to LIVE the gate refuses) exit 2 with the reason and change nothing.

Heavy modules (the engine, SQLAlchemy) are imported inside the commands, so that
`runner --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from cli.errors import EXIT_FAILURE, handled
from cli.records import (
    DbOption, JsonOption, RunIdArg, _iso, _time, emit, plain_table, reading,
    writable_database,
)

DATA_INTERVAL = "the data's"
catalog_app = typer.Typer(
    help="The strategy catalogue: add strategies, test them on recorded data, promote them "
    "DRAFT -> BACKTEST -> LIVE, archive them. A run with `strategies_from: catalog` runs every "
    "LIVE entry and follows promotions and archivals while it goes.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(
    help="The entry's name (letters, digits, _ . -), also its name in runs. Example: ma_fast",
    show_default=False, metavar="NAME",
)]
ReasonOption = Annotated[str, typer.Option(
    "--reason", help="Why, kept in the entry's history. Example: --reason 'beat buy-and-hold on 2023'",
)]


@contextmanager
def _writing(db: str | None, json_output: bool, create: bool = False) -> Iterator[tuple[Any, str]]:
    """The database to change, and its URL: an existing runner database (or, with `create`, a new file)."""
    err = Console(stderr=True)
    with handled(err, json_output):
        from runner.storage.db import open_database

        url = writable_database(db, create)
        engine = open_database(url)
        try:
            yield engine, url
        finally:
            engine.dispose()


def _entry_json(entry) -> dict[str, Any]:
    strategy = entry.strategy
    loader = next(key for key in ("type", "module", "file") if getattr(strategy, key))
    return {
        "name": entry.name, "status": entry.status.value, "loader": loader, "target": getattr(strategy, loader),
        "class": strategy.class_name, "params": strategy.params, "symbols": strategy.symbols,
        "interval": strategy.interval, "created_at": _iso(entry.created_at), "updated_at": _iso(entry.updated_at),
    }


def _params(text: str | None) -> dict[str, Any]:
    from runner.errors import ConfigError

    if text is None:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--params: not valid YAML or JSON ({str(exc).splitlines()[0]}); expected a mapping such as '{{fast: 10, slow: 30}}'") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"--params: expected a mapping such as '{{fast: 10, slow: 30}}', got {text!r}")
    return value


@catalog_app.command("add")
def add(
    name: NameArg,
    type_: Annotated[Optional[str], typer.Option("--type", help="A registered strategy (runner strategies list). Example: --type ma_crossover", show_default=False)] = None,
    module: Annotated[Optional[str], typer.Option(help="Instead of --type: a dotted module holding the strategy class.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option(help="Instead of --type: a .py file holding the strategy class (stored as an absolute path).", show_default=False)] = None,
    class_name: Annotated[Optional[str], typer.Option("--class", help="With --module or --file: the class, when there are several.", show_default=False)] = None,
    params: Annotated[Optional[str], typer.Option(help="Its parameters as a YAML or JSON mapping. Example: --params '{fast: 10, slow: 30}'", show_default=False)] = None,
    symbols: Annotated[Optional[str], typer.Option(help="The symbols it trades, comma-separated (default: every symbol of a run's data). Example: --symbols AAPL,MSFT", show_default=False)] = None,
    interval: Annotated[Optional[str], typer.Option(help="The candle interval it runs on (default: the data's). Example: --interval 15m", show_default=False)] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a strategy to the catalogue as DRAFT, checked like a config `strategies` entry.

    The database is created if missing. An ARCHIVED entry of the same name is replaced (the
    only way back from ARCHIVED); any other existing name is refused.

    Example:  runner catalog add ma_fast --type ma_crossover --params '{fast: 10, slow: 30}' --symbols AAPL --db runs/try.db

    Example:  runner catalog add momo --file strategies/examples/momentum.py
    """
    from runner import catalog
    from runner.errors import ConfigError

    with handled(Console(stderr=True), json_output):
        given = [(key, value) for key, value in (("type", type_), ("module", module), ("file", file)) if value]
        if len(given) != 1:
            raise ConfigError(
                "name the strategy with exactly one of --type (registered name), --module (dotted module) "
                f"or --file (a .py file); got {', '.join('--' + key for key, _ in given) or 'none'}"
            )
        loader, target = given[0]
        wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols is not None else None
        strategy = catalog.check_definition(
            name, loader, str(target), _params(params), class_name=class_name, symbols=wanted, interval=interval,
        )
    from runner.storage.db import describe

    with _writing(db, json_output, create=True) as (engine, url):
        entry = catalog.add(engine, strategy, datetime.now(UTC))
    if json_output:
        sys.stdout.write(json.dumps({**_entry_json(entry), "database": describe(url)}) + "\n")
        return
    typer.echo(f"added {name} ({entry.loads}) as DRAFT in {describe(url)}; next: runner catalog promote {name}")


@catalog_app.command("list")
def list_(
    status: Annotated[Optional[str], typer.Option(help="Only entries of this status: DRAFT, BACKTEST, LIVE or ARCHIVED.", show_default=False)] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the catalogue's entries by name: status, how each is loaded, its parameters.

    Example:  runner catalog list --db runs/try.db --status LIVE
    """
    from runner.catalog import Status, entry_of
    from runner.errors import ConfigError
    from runner.storage import catalog_store

    with reading(db, json_output) as records:
        wanted = None
        if status is not None:
            wanted = status.strip().upper()
            if wanted not in Status.__members__:
                raise ConfigError(f"--status: expected one of {', '.join(Status.__members__)}; got {status!r}")
        entries = [entry_of(row) for row in catalog_store.entries(records.engine)]
    entries = [e for e in entries if wanted is None or e.status.value == wanted]
    if json_output:
        sys.stdout.write(json.dumps([_entry_json(e) for e in entries]) + "\n")
        return
    if not entries:
        return emit(Text(f"no catalogue entries in {records.path}" + (f" with status {wanted}" if wanted else "")))
    table = plain_table("strategy catalogue", f"from {records.path}; times UTC")
    for column in ("name", "status", "loads", "params", "symbols", "interval", "updated"):
        table.add_column(column, no_wrap=column not in ("loads", "params"))
    for e in entries:
        s = e.strategy
        table.add_row(
            e.name, e.status.value, escape(e.loads), escape(json.dumps(s.params)),
            escape(",".join(s.symbols or ["all"])), s.interval or DATA_INTERVAL, _time(_iso(e.updated_at)),
        )
    emit(table)


@catalog_app.command("show")
def show(name: NameArg, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Show one entry: its definition, its history of status changes, and its replay runs.

    Example:  runner catalog show ma_fast --db runs/try.db --json
    """
    from runner import catalog
    from runner.storage import catalog_store

    with reading(db, json_output) as records:
        entry = catalog.read(records.engine, name)
        history = catalog_store.history(records.engine, name)
        runs = [(tag, records.queries.run(records.engine, tag.run_id)) for tag in catalog_store.backtests(records.engine, name)]
    changes = [
        {"from": h.from_status or None, "to": h.to_status, "at": _iso(h.at), "reason": h.reason, "run_id": h.run_id or None}
        for h in history
    ]
    replays = [
        {"run_id": tag.run_id, "data": tag.data, "started_at": _iso(tag.created_at), "status": run.status if run else "missing"}
        for tag, run in runs
    ]
    if json_output:
        sys.stdout.write(json.dumps({**_entry_json(entry), "history": changes, "replay_runs": replays}) + "\n")
        return
    s = entry.strategy
    lines = [
        f"{entry.name}: {entry.status.value}", f"  loads:    {entry.loads}", f"  params:   {json.dumps(s.params)}",
        f"  symbols:  {','.join(s.symbols or ['all of the data'])}", f"  interval: {s.interval or DATA_INTERVAL}",
    ]
    history_table = plain_table("history", "times UTC")
    for column in ("at", "from", "to", "reason", "run"):
        history_table.add_column(column, no_wrap=column != "reason")
    for c in changes:
        history_table.add_row(_time(c["at"]), c["from"] or "-", c["to"], escape(c["reason"]), c["run_id"] or "")
    renderables: list[Any] = [Text("\n".join(lines)), history_table]
    if replays:
        replay_table = plain_table("replay runs", "newest first")
        for column in ("run", "status", "started", "data"):
            replay_table.add_column(column, no_wrap=column != "data")
        for r in replays:
            replay_table.add_row(r["run_id"], r["status"], _time(r["started_at"]), escape(r["data"]))
        renderables.append(replay_table)
    emit(*renderables)


def _move(verb: str, name: str, reason: str, db: str | None, json_output: bool) -> None:
    from runner import catalog
    from runner.storage.db import describe

    with _writing(db, json_output) as (engine, url):
        before = catalog.read(engine, name).status.value
        if verb == "promote":
            entry, run_id = catalog.promote(engine, name, datetime.now(UTC), reason)
        else:
            entry, run_id = catalog.archive(engine, name, datetime.now(UTC), reason), ""
    if json_output:
        sys.stdout.write(json.dumps({
            "name": name, "from": before, "to": entry.status.value, "run_id": run_id or None, "database": describe(url),
        }) + "\n")
        return
    accepted = f" (the gate accepted replay run {run_id})" if run_id else ""
    follow = "; running catalogue runs follow within a second" if "LIVE" in (before, entry.status.value) else ""
    typer.echo(f"{name}: {before} -> {entry.status.value}{accepted} in {describe(url)}{follow}")


@catalog_app.command("promote")
def promote(name: NameArg, reason: ReasonOption = "", db: DbOption = None, json_output: JsonOption = False) -> None:
    """Move an entry one stage on: DRAFT -> BACKTEST, or BACKTEST -> LIVE through the gate.

    The gate to LIVE needs a completed replay run of the entry's very definition (strategy,
    parameters, symbols, interval) in the database, made with `runner catalog backtest`; it
    names the run it accepted, or says what is missing (exit 2). Running `strategies_from:
    catalog` runs start a strategy promoted to LIVE within a second.

    Example:  runner catalog promote ma_fast --db runs/try.db
    """
    _move("promote", name, reason, db, json_output)


@catalog_app.command("archive")
def archive(name: NameArg, reason: ReasonOption = "", db: DbOption = None, json_output: JsonOption = False) -> None:
    """Archive an entry from any stage; running catalogue runs stop it within a second.

    Its strategy gets on_stop and its working orders are cancelled. An archived entry comes
    back only by adding it again (as DRAFT).

    Example:  runner catalog archive ma_fast --reason 'drawdown too deep' --db runs/try.db
    """
    _move("archive", name, reason, db, json_output)


@catalog_app.command("backtest")
def backtest(
    name: NameArg,
    data: Annotated[Path, typer.Option(help="A .csv or .parquet file of bars to replay (the columns of `market_data` replay files). Example: --data data/sample/AAPL.csv", show_default=False)],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Replay a data file through the entry as fast as possible, recorded as a run of it.

    The run is what the gate to LIVE looks for: `runner catalog promote NAME` accepts it once
    it completed. Exits 1 if the run fails, 2 if the entry or the data is wrong.

    Example:  runner catalog backtest ma_fast --data data/sample/AAPL.csv --db runs/try.db
    """
    from runner import catalog
    from runner.bootstrap import build
    from runner.storage import catalog_store

    err = Console(stderr=True)
    with _writing(db, json_output) as (engine, url):
        with handled(err, json_output):
            entry = catalog.read(engine, name)
            runner = build(catalog.backtest_config(entry, data, url))
            catalog_store.tag_backtest(engine, runner.run_id, name, str(data.resolve()), datetime.now(UTC))
            runner.start()
        from cli.app import _wait  # the command module, loaded by now
        from cli.render import progress_line

        _wait(runner, lambda: err.print(progress_line(runner.snapshot(), bar=False), highlight=False, soft_wrap=True))
    result = runner.snapshot()
    if json_output:
        sys.stdout.write(json.dumps({"name": name, **result.to_dict()}) + "\n")
    else:
        from cli.render import summary

        emit(summary(result))
        if result.status == "completed":
            err.print(f"replay run {result.run_id} of {name} recorded; promote it with: runner catalog promote {name}", highlight=False, soft_wrap=True)
    if result.status == "failed":
        raise typer.Exit(EXIT_FAILURE)


@catalog_app.command("changes")
def changes(run_id: RunIdArg = None, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Show the catalogue strategies a `strategies_from: catalog` run started, stopped or
    skipped, with the step and bar time of each (step 0: as the run began).

    Example:  runner catalog changes --db runs/catalog.db
    """
    from runner.storage import catalog_store

    with reading(db, json_output) as records:
        run = records.find_run(run_id)
        found = [
            {"step": c.step, "timestamp": _iso(c.timestamp), "strategy": c.strategy, "action": c.action, "reason": c.reason}
            for c in catalog_store.catalog_changes(records.engine, run.id)
        ]
    if json_output:
        sys.stdout.write(json.dumps(found) + "\n")
        return
    if not found:
        return emit(Text(f"run {run.id} made no catalogue changes (it is not a strategies_from: catalog run, or its catalogue held no LIVE entry)"))
    table = plain_table(f"catalogue changes of run {run.id}", "bar times UTC")
    for column in ("step", "bar time", "strategy", "action", "reason"):
        table.add_column(column, justify="right" if column == "step" else "left", no_wrap=column != "reason")
    for c in found:
        table.add_row(str(c["step"]), _time(c["timestamp"]), c["strategy"], c["action"], escape(c["reason"]))
    emit(table)
