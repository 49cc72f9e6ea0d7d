"""`runner db upgrade|migrate-from`: the database's schema, and moving runs between databases.

Writing commands (`runner start`, `replay`, `policy set`) upgrade the database they open
themselves; `runner db upgrade` does it on its own (or, with --check, only says what is missing),
for a database that read commands refuse because an older runner made it. `runner db
migrate-from` copies a SQLite file's runs into PostgreSQL (see runner/storage/transfer.py).

Heavy modules (SQLAlchemy, the storage layer) are imported inside the commands, so that
`runner --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cli.errors import EXIT_FAILURE, handled
from cli.records import DbOption, JsonOption, _iso, existing_database, open_runner_database

db_app = typer.Typer(
    help="The database's schema (upgrade it to this runner's) and copying runs between databases "
    "(a SQLite file's runs into PostgreSQL).",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def upgrade(
    db: DbOption = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Change nothing: list what an upgrade would add, and exit 1 if anything.",
    )] = False,
    json_output: JsonOption = False,
) -> None:
    """Bring the database's schema up to this runner's: add the tables and columns it lacks.

    An empty PostgreSQL database gets every table. Nothing is dropped or changed, so runners of
    the older version still read it. Each upgrade is recorded in the table schema_version.
    Runners starting at once on PostgreSQL wait for each other's upgrade.

    Example:  runner db upgrade --db postgresql+psycopg://runner@127.0.0.1:5432/runs

    Example:  runner db upgrade --db runs/old.db --check --json
    """
    err = Console(stderr=True)
    with handled(err, json_output):
        from runner import __version__
        from runner.storage import schema
        from runner.storage.db import describe, open_database, sqlite_file, upgrade_database

        url = existing_database(db)
        if sqlite_file(url) is not None:  # a file must be a runner's (a server's database may be empty)
            open_runner_database(url).dispose()
        if check:
            engine = open_database(url, create=False)
            changes = schema.pending_changes(engine)
        else:
            engine, changes = upgrade_database(url)
        try:
            history = schema.history(engine)
        finally:
            engine.dispose()
    status = ("needs upgrade" if changes else "up to date") if check else ("upgraded" if changes else "up to date")
    if json_output:
        sys.stdout.write(json.dumps({
            "database": describe(url), "status": status, "changes": [str(c) for c in changes],
            "runner_version": __version__,
            "history": [
                {"applied_at": _iso(h.applied_at), "runner_version": h.runner_version,
                 "changes": json.loads(h.changes)} for h in history
            ],
        }) + "\n")
    else:
        where = escape(describe(url))
        if not changes:
            typer.echo(f"{where} is up to date with runner {__version__}")
        else:
            verb = "would add" if check else "added"
            typer.echo(f"{where}: {status}; {verb} {len(changes)}: " + ", ".join(str(c).removeprefix("add ") for c in changes))
    if check and changes:
        raise typer.Exit(EXIT_FAILURE)


@db_app.command("migrate-from")
def migrate_from(
    source: Annotated[str, typer.Argument(
        help="The database to copy the runs of: a SQLite file (or a database URL). Example: runs/runner.db",
        show_default=False, metavar="SOURCE",
    )],
    to: Annotated[str, typer.Option(
        "--to", help="The database to copy them into, created or upgraded as needed. "
        "Example: --to postgresql+psycopg://runner@127.0.0.1:5432/runs", show_default=False, metavar="URL|PATH",
    )],
    json_output: JsonOption = False,
) -> None:
    """Copy every run of SOURCE into the database --to names, with all its records.

    Each run is copied whole in one transaction, or not at all; a run the target already has
    (same id) is left as it is, so running the command again copies only what is new. The
    other tables (the policy overrides) get the rows the target lacks. SOURCE is not changed.

    Example:  runner db migrate-from runs/runner.db --to postgresql+psycopg://runner@127.0.0.1:5432/runs
    """
    err = Console(stderr=True)
    with handled(err, json_output):
        from runner.errors import ConfigError
        from runner.storage.db import database_url, describe, open_database
        from runner.storage.transfer import copy_runs

        source_url = existing_database(source)
        target_url = database_url(to)
        if describe(source_url) == describe(target_url):
            raise ConfigError(f"--to names the database being copied ({describe(source_url)}); name another one")
        reader = open_runner_database(source_url)
        writer = open_database(target_url)
        try:
            quiet = json_output or not err.is_terminal
            result = copy_runs(reader, writer, None if quiet else lambda run_id: err.print(f"copying run {run_id}"))
        finally:
            reader.dispose()
            writer.dispose()
    if json_output:
        sys.stdout.write(json.dumps({"source": describe(source_url), "target": describe(target_url), **result.to_dict()}) + "\n")
        return
    rows = sum(result.copied.values())
    typer.echo(f"copied {len(result.copied)} runs ({rows:,} rows) from {describe(source_url)} to {describe(target_url)}")
    if result.skipped:
        typer.echo(f"left {len(result.skipped)} runs the target already had: {', '.join(result.skipped)}")
