"""`runner replay RUN_ID`: re-execute a recorded run from its manifest and compare the results."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.errors import EXIT_FAILURE, handled
from cli.records import DbOption, JsonOption, existing_database


def replay(
    run_id: Annotated[str, typer.Argument(
        help="Id of the recorded run to replay (see `runner runs`). Example: 20240102-143000-ab12",
        show_default=False, metavar="RUN_ID",
    )],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Re-run RUN_ID from its manifest into a new run and say whether its orders and fills are identical.

    The replay reads the config text, seed and settings recorded with the run, runs as many
    steps as the run recorded, into the same database (marked `replay_of`), then compares every
    column of the orders and fills of both runs. It refuses (exit 2), naming each input, when a
    data file, strategy source or model file changed since (with both sha256s), when the run ran
    in clock mode, or has not finished. Exit 0: identical; 1: different (the first differences
    are listed).

    Example:  runner replay 20240102-143000-ab12 --db runs/try.db
    """
    from runner.reproduce import replay as replay_run

    err = Console(stderr=True)
    with handled(err, json_output):
        outcome = replay_run(existing_database(db), run_id)
    if json_output:
        sys.stdout.write(json.dumps(outcome.to_dict()) + "\n")
    else:
        for warning in outcome.warnings:
            err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        _print_outcome(outcome)
    if not outcome.identical:
        raise typer.Exit(EXIT_FAILURE)


def _print_outcome(outcome) -> None:
    (orders, replay_orders), (fills, replay_fills) = outcome.orders, outcome.fills
    lines = [
        f"replay of {outcome.run_id}: run {outcome.replay_run_id} ({outcome.status})",
        f"orders: {orders} original, {replay_orders} replay",
        f"fills:  {fills} original, {replay_fills} replay",
    ]
    if outcome.error:
        lines.append(f"error: {outcome.error}")
    if outcome.identical:
        lines.append("identical: yes")
    else:
        lines.append("identical: no; first differences:")
        lines += [f"  {difference}" for difference in outcome.differences]
    sys.stdout.write("\n".join(lines) + "\n")
