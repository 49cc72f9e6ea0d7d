"""`runner audit`: reconcile a run's orders, fills, positions, cash, equity and commissions.

The checks are `runner.audit`'s (see its docstring); this module reads the records like the
other read commands (`cli.records`: the latest run unless one is named, `--db`, never creating
or changing a database) and renders what the audit found. Exit 0 when the books agree, 1 when
there is a discrepancy, 2 for an unknown run or a file that is not a runner database.
"""

from __future__ import annotations

import json
import sys

import typer
from rich.markup import escape
from rich.text import Text

from cli.errors import EXIT_FAILURE
from cli.records import DbOption, JsonOption, RunIdArg, emit, plain_table, reading


def audit(run_id: RunIdArg = None, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Check a run's books: orders, fills, positions, cash, equity and commissions.

    Orders against their fills and their history; positions, cash and equity against the fills replayed; each commission against the run's fee schedule. Prints every discrepancy (exit 1), or "clean" (exit 0). A run still going is audited as of its latest commit.

    Example:  runner audit --db runs/try.db

    Example:  runner audit 20240102-143000-ab12 --json
    """
    from runner.audit import audit_report

    with reading(db, json_output) as records:
        run = records.find_run(run_id)
        report = audit_report(records.engine, run.id)
    if json_output:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        emit(*_rendered(report))
    if not report.clean:
        raise typer.Exit(EXIT_FAILURE)


def _rendered(report) -> list:
    counts = f"{report.orders:,} orders, {report.fills:,} fills, {report.positions:,} positions"
    counts += f", {report.snapshots:,} equity snapshots"
    parts: list = []
    if report.status == "running":
        parts.append(Text(f"run {report.run_id} is still running: audited as of its latest commit", style="cyan"))
    if report.clean:
        parts.append(Text(f"clean: {counts} checked in run {report.run_id}", style="bold green"))
    else:
        table = plain_table(
            f"{len(report.discrepancies):,} discrepancies in run {escape(report.run_id)}",
            f"checked {counts}",
        )
        for name, justify in (("check", "left"), ("what", "left"), ("expected", "right"), ("found", "right")):
            table.add_column(name, justify=justify, overflow="fold")
        for item in report.discrepancies:
            table.add_row(item.check, escape(item.what), escape(item.expected), Text(item.found, style="red"))
        parts.append(table)
    parts += [Text(f"not checked: {check}: {why}", style="yellow") for check, why in report.skipped]
    return parts
