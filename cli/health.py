"""`runner health`: is a run alive, when did it last step, which strategies are disabled.

The rule (runner/health.py): a `running` run is alive while its latest heartbeat is at most
max(5 s, 3 x the heartbeat period it announced) old; healthy is alive (or ended `completed` /
`stopped`) with no strategy disabled. Exit 0 healthy, 1 not, 2 for a missing database or run.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cli.errors import EXIT_FAILURE
from cli.records import STATUS_STYLES, DbOption, JsonOption, emit, plain_table, reading


def health(
    db: DbOption = None,
    run_id: Annotated[Optional[str], typer.Option(
        "--run-id", help="Id of a recorded run (see `runner runs`); default: the latest run. "
        "Example: --run-id 20240102-143000-ab12", show_default=False,
    )] = None,
    json_output: JsonOption = False,
) -> None:
    """Tell whether a run is alive and healthy: exit 0 healthy, 1 not.

    A running run is alive while its heartbeat (written by the loop about once a second, or
    before a longer wait for its next step) is at most max(5 s, 3 x its announced period) old;
    a run killed without a clean stop stays `running` in the records and goes stale. Healthy:
    alive, or ended completed or stopped, and no strategy disabled. A failed run is unhealthy.
    Also shows the last step, its bar time, and each strategy's state and errors.

    Example:  runner health --db runs/try.db

    Example:  runner health --run-id 20240102-143000-ab12 --json
    """
    from runner.health import assess

    with reading(db, json_output) as records:
        run = records.find_run(run_id)
        result = assess(records.engine, run)
    data = result.to_dict()
    if json_output:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        _render(data)
    if not result.healthy:
        raise typer.Exit(EXIT_FAILURE)


def _render(data: dict) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", escape(data["run_id"]))
    head.add_row("status", Text(data["status"], style=STATUS_STYLES.get(data["status"], "")))
    head.add_row("alive", _alive(data))
    step = f"{data['last_step']:,}"
    if data["last_bar_time"]:
        step += f"  (bar {_time(data['last_bar_time'])} UTC)"
    head.add_row("last step", step)
    feed = data.get("market_data")
    if feed is not None:
        state = Text(f"stale: {feed['reason']}", style="bold red") if feed["stale"] else Text("flowing", style="green")
        state.append(f"  ({escape(feed['source'])}, last bar {_time(feed['last_bar_time']) + ' UTC' if feed['last_bar_time'] else '-'})", style="")
        head.add_row("market data", state)
    head.add_row("healthy", Text("yes", style="green") if data["healthy"] else Text("no", style="bold red"))
    strategies = plain_table("strategies")
    for name, justify in (("strategy", "left"), ("state", "left"), ("errors", "right"), ("disabled because", "left")):
        strategies.add_column(name, justify=justify)
    for name, s in data["strategies"].items():
        strategies.add_row(
            escape(name), Text(s["state"], style="red" if s["disabled"] else ""),
            Text(f"{s['errors']:,}", style="red" if s["errors"] else ""), escape(s["disabled_reason"]),
        )
    parts: list = [head, Text()]
    parts.append(strategies if data["strategies"] else Text("strategies: none recorded yet"))
    parts += [Text(f"unhealthy: {reason}", style="red") for reason in data["reasons"]]
    emit(*parts)


def _alive(data: dict) -> str:
    if data["last_heartbeat"] is None:
        beat = "no heartbeat recorded yet"
    else:
        beat = f"heartbeat {data['seconds_since_heartbeat']:.1f} s ago ({_time(data['last_heartbeat'])} UTC"
        beat += f", expected every {data['expected_every_seconds']:g} s)"
    if data["status"] != "running":
        return f"no, the run has ended; last {beat}" if data["last_heartbeat"] else "no, the run has ended"
    verdict = "yes" if data["alive"] else "no"
    return f"{verdict}: {beat}; stale after {data['stale_after_seconds']:g} s"


def _time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
