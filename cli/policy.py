"""`runner policy show|set`: the policy runs apply, and the operator's live changes to it.

The `policy` table of a database holds the operator's overrides, for every run recorded there.
A run starts from its config's `policy` section, then applies the overrides; while it goes it
reads the table every half second and applies each change from its next step.

Heavy modules (the engine, SQLAlchemy) are imported inside the commands, so that
`runner --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from cli.errors import handled
from cli.records import (
    DbOption, JsonOption, _iso, default_db_path, emit, open_runner_database, plain_table, reading,
)

policy_app = typer.Typer(
    help="Show or change the policy runs apply (risk mode, minimum confidence, allowlist, limits, "
    "regime filter); a running run applies a change from its next step.",
    no_args_is_help=True,
)

KeyArg = Annotated[str, typer.Argument(
    help="A policy key, such as risk_mode, min_confidence or max_daily_loss_per_strategy "
    "(`runner policy show` lists them all).", show_default=False, metavar="KEY",
)]
ValueArg = Annotated[str, typer.Argument(
    help="Its value: a number; none (no limit); normal, aggressive or defensive; true or false; "
    "strategy names a,b ([] for none).", show_default=False, metavar="VALUE",
)]
ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", help="Show what a run of this config on the database would start with. "
    "Example: --config configs/default.yaml", show_default=False,
)]


@policy_app.command("show")
def show(db: DbOption = None, config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Show every policy key: its value and where the value comes from.

    The source is `database` for an override set with `runner policy set` (it applies to every
    run of the database, and wins), else `config` with --config when the config sets the key,
    else `default`.

    Example:  runner policy show --db runs/try.db

    Example:  runner policy show --config configs/default.yaml --json
    """
    err = Console(stderr=True)
    url = _database(db)
    with handled(err, json_output):
        from runner.config import PolicyConfig, load_config
        from runner.policy import POLICY_KEYS, parse_stored, setting_json, setting_text
        from runner.storage.db import describe

        configured, from_config = PolicyConfig(), frozenset[str]()
        if config is not None:
            configured = load_config(config).policy
            from_config = frozenset(configured.model_fields_set)
        overrides = _overrides(url, json_output)
        settings = []
        for key in POLICY_KEYS:
            row = overrides.get(key)
            value = parse_stored(key, row.value) if row else getattr(configured, key)
            settings.append({
                "key": key, "value": setting_json(value), "text": setting_text(value),
                "source": "database" if row else "config" if key in from_config else "default",
                "updated_at": _iso(row.updated_at) if row else None,
            })
    if json_output:
        document = {
            "database": describe(url), "config": str(config) if config else None,
            "policy": {s["key"]: s["value"] for s in settings}, "settings": settings,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    origin = "the config's values" if config else "the defaults"
    table = plain_table(
        f"policy of {escape(describe(url))}" + ("" if _exists(url) else " (no database yet: no overrides)"),
    )
    for name, justify in (("key", "left"), ("value", "left"), ("source", "left"), ("set at (UTC)", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for s in settings:
        changed = datetime.fromisoformat(s["updated_at"]).strftime("%Y-%m-%d %H:%M:%S") if s["updated_at"] else ""
        table.add_row(s["key"], escape(s["text"]), s["source"], changed)
    emit(table, Text(
        f"A run starts from {origin}, then applies the database's. Change one, live: runner policy set KEY VALUE"
    ))


@policy_app.command("set")
def set_(key: KeyArg, value: ValueArg, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Set policy KEY to VALUE for the runs of the database; a running run applies it from its next step.

    The database is created if missing; a run started later applies the value from its start.
    A running run reads the change within a second. A bad key or value, or an existing file that
    is not a runner database, exits 2 with what is allowed and writes nothing.

    Example:  runner policy set risk_mode defensive --db runs/try.db

    Example:  runner policy set max_daily_loss_per_strategy 500

    Example:  runner policy set allowlist ma_fast,hold_btc
    """
    err = Console(stderr=True)
    url = _database(db)
    with handled(err, json_output):
        from runner.policy import parse_setting, setting_json, setting_text
        from runner.storage.db import describe, open_database, sqlite_file
        from runner.storage.policy_store import read_settings, write_setting

        parsed = parse_setting(key, value)
        text, now = setting_text(parsed), datetime.now(UTC)
        if sqlite_file(url) is not None and _exists(url):  # only a new file may be made a runner database
            open_runner_database(url).dispose()
        engine = open_database(url)
        try:
            previous = read_settings(engine).get(key)
            write_setting(engine, key, text, now)
        finally:
            engine.dispose()
    was = previous.value if previous else None
    if json_output:
        sys.stdout.write(json.dumps({
            "key": key, "value": setting_json(parsed), "text": text, "previous": was,
            "database": describe(url), "updated_at": now.isoformat(),
        }) + "\n")
        return
    before = f"was {was}" if was is not None else "was not set"
    typer.echo(f"policy {key} = {text} in {describe(url)} ({before}); running runs apply it from their next step")


def _database(db: str | None) -> str:
    """The URL of the database `--db` names, or of the default one."""
    from runner.storage.db import database_url

    return database_url(db if db is not None else default_db_path())


def _exists(url: str) -> bool:
    """False only for a SQLite file not made yet (a server's database is there to be connected to)."""
    from runner.storage.db import sqlite_file

    file = sqlite_file(url)
    return file is None or file.is_file()


def _overrides(url: str, json_output: bool) -> dict[str, Any]:
    """The database's policy overrides by key; none when there is no database or no table yet."""
    if not _exists(url):
        return {}
    from sqlalchemy import inspect

    from runner.storage.policy_store import read_settings

    with reading(url, json_output) as records:
        return read_settings(records.engine) if inspect(records.engine).has_table("policy") else {}

