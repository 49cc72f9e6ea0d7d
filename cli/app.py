"""The `runner` command. Commands parse arguments, call the engine, and render what it returns.

Heavy modules (the engine, pandas, SQLAlchemy) are imported inside the commands, so that
`runner --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from cli import errors, records
from cli.audit import audit
from cli.db import db_app
from cli.catalog import catalog_app
from cli.errors import EXIT_FAILURE, EXIT_USAGE, handled
from cli.health import health
from cli.model import model_app
from cli.policy import policy_app
from cli.replay import replay
from cli.report import report
from cli.scaffold import config_app, init
from cli.strategies import strategies_app
from cli.sweep import sweep, sweep_report

app = typer.Typer(
    name="runner",
    help="Paper-trade strategies on market data with a simulated broker; every order, fill, "
    "position and equity snapshot is recorded in SQLite.\n\n"
    "Start with:  runner start configs/default.yaml",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)

app.add_typer(strategies_app, name="strategies")
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.command()(init)
for _name in ("runs", "status", "orders", "fills", "positions"):
    app.command(_name)(getattr(records, _name))
app.command()(report)
app.command()(health)
app.command()(audit)
app.command()(replay)
app.command()(sweep)
app.command("sweep-report")(sweep_report)

LOG_EVERY_SECONDS = 5.0

ConfigArg = Annotated[
    Path, typer.Argument(help="YAML config file, such as configs/default.yaml.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]


def _version(value: bool) -> None:
    if value:
        from runner import __version__

        typer.echo(f"runner {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors too (for bug reports).")] = False,
) -> None:
    """Paper-trade strategies on market data with a simulated broker."""
    errors.SHOW_TRACEBACKS = debug


@app.command()
def start(
    config: ConfigArg,
    max_ticks: Annotated[Optional[int], typer.Option(min=1, help="Stop after N steps (overrides run.max_ticks).")] = None,
    duration: Annotated[Optional[float], typer.Option(min=0.001, help="Stop after S wall seconds (overrides run.duration).")] = None,
    speed: Annotated[Optional[float], typer.Option(min=0, help="Data mode pace: 0 = as fast as possible, N = N x bar time.")] = None,
    db: Annotated[Optional[str], typer.Option(
        help="The records: a SQLite file or a database URL such as postgresql+psycopg://runner@db.example/runs "
        "(overrides storage.url).", metavar="PATH|URL", show_default=False,
    )] = None,
    run_id: Annotated[Optional[str], typer.Option(help="Id of this run in the records (default: time + random suffix).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the synthetic data (overrides run.seed).")] = None,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live view: one progress line every 5 s instead.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 (after a clean stop and the summary) if a strategy raised or was "
        "disabled, or an order or signal was rejected: for CI smoke runs.",
    )] = False,
    metrics_port: Annotated[Optional[int], typer.Option(
        min=0, max=65535, help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics while the "
        "run goes on; 0 picks a free port (overrides telemetry.metrics_port). Needs pip install 'runner[metrics]'.",
        show_default=False,
    )] = None,
    metrics_host: Annotated[Optional[str], typer.Option(
        help="Address the metrics listen on (overrides telemetry.metrics_host; default 127.0.0.1, this "
        "machine only). Another address, such as 0.0.0.0, exposes them to the network.",
        show_default=False,
    )] = None,
    resume: Annotated[Optional[str], typer.Option(
        "--resume", metavar="RUN_ID", show_default=False,
        help="Continue run RUN_ID of the database (killed, stopped or failed) after its last recorded "
        "step, under the same run id, with its cash, positions and working orders. Refused when the "
        "run is still alive, has nothing left to run, or CONFIG differs from the run's (see --force).",
    )] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="With --resume: resume even though the config or its inputs differ from the "
        "run's (the differences are listed and recorded with the resume).",
    )] = False,
) -> None:
    """Paper-trade the strategies of CONFIG and record the run.

    The run ends when the data ends, at --max-ticks or --duration, or on Ctrl-C / SIGTERM;
    it always stops the strategies, flushes the records and prints the summary.

    Example:  runner start configs/default.yaml --max-ticks 500 --db runs/try.db --json

    Example:  runner start configs/default.yaml --metrics-port 9100   (then: curl -s http://127.0.0.1:9100/metrics)

    Example:  runner start configs/default.yaml --db runs/try.db --resume 20240102-143000-ab12
    """
    from runner.bootstrap import build
    from runner.config import load_config
    from runner.errors import ConfigError
    from runner.storage.db import database_url

    err = Console(stderr=True)
    _log_to(err)
    with handled(err, json_output):
        loaded = load_config(config)
        loaded = loaded.with_overrides(
            run={"max_ticks": max_ticks, "duration": duration, "speed": speed, "seed": seed},
            storage={"url": database_url(db) if db else None},
            telemetry={"metrics_port": metrics_port, "metrics_host": metrics_host},
        )
        if metrics_host is not None and loaded.telemetry.metrics_port is None:
            raise ConfigError("--metrics-host needs --metrics-port (or telemetry.metrics_port in the config)")
        point = None
        if resume is None:
            if force:
                raise ConfigError("--force applies only with --resume RUN_ID")
            runner = build(loaded, run_id=run_id)
        else:
            if run_id is not None:
                raise ConfigError("--resume continues run RUN_ID under its own id: leave out --run-id")
            from runner.resume import resume as resume_run

            runner, point = resume_run(loaded, resume, force=force)
            _announce_resume(point, err)
        runner.start()
    if runner.metrics is not None:
        _announce_metrics(runner.metrics, loaded.telemetry.metrics_host, err)
    with _stopping_on_signals(runner):
        _follow(runner, err, quiet=quiet)
    result = runner.snapshot()
    failures = _strict_failures(result) if strict else []
    if json_output:
        extra = {"strict_failures": failures} if strict else {}
        if point is not None:
            extra["resumed"] = point.to_dict()
        sys.stdout.write(json.dumps({**result.to_dict(), **extra}) + "\n")
    else:
        from cli.render import summary

        records.emit(summary(result))  # plain and unwrapped when piped
        for failure in failures:
            err.print(f"[bold red]strict:[/] {failure}", highlight=False)
    if result.status == "failed" or failures:
        raise typer.Exit(EXIT_FAILURE)


def _announce_metrics(endpoint, host: str, err: Console) -> None:
    """Say where the metrics are served (on stderr), and warn when that is beyond this machine."""
    from runner.metrics import is_loopback

    err.print(f"metrics on {endpoint.url}", highlight=False, soft_wrap=True)
    if not is_loopback(host):
        err.print(
            f"[bold yellow]warning:[/] metrics listen on {host}, reachable from other machines: they show "
            "the run's strategies, symbols, signals and equity, without authentication",
            highlight=False, soft_wrap=True,
        )


def _announce_resume(point, err: Console) -> None:
    """Say which run goes on from where (on stderr), and the differences --force accepted."""
    from rich.markup import escape

    how = {"running": "killed", "failed": "failed"}.get(point.previous_status, point.previous_status)
    when = f", bar time {point.bar_time:%Y-%m-%d %H:%M:%S}" if point.bar_time else ""
    err.print(f"resuming run {point.run_id} ({how}) after step {point.from_step}{when}", highlight=False, soft_wrap=True)
    for difference in point.forced:
        err.print(f"[bold yellow]--force:[/] {escape(difference)}", highlight=False, soft_wrap=True)


def _strict_failures(result) -> list[str]:
    """Why a --strict run fails: errors, disabled strategies, rejections."""
    failures = [f"{s.name} raised {s.errors} error(s)" for s in result.strategies if s.errors]
    failures += [f"{s.name} was disabled: {s.disabled_reason}" for s in result.strategies if s.state == "disabled"]
    if result.rejections:
        failures.append(f"{result.rejections} order(s) or signal(s) were rejected")
    return failures


@app.command()
def validate(config: ConfigArg, json_output: JsonOption = False) -> None:
    """Check CONFIG without trading: OK, or every problem, one a line (exit 2).

    Example:  runner validate configs/default.yaml
    """
    from runner.config import load_config
    from runner.errors import ConfigError
    from runner.validators import check_config

    err = Console(stderr=True)
    try:
        check_config(load_config(config))
    except ConfigError as exc:
        if json_output:
            problems = [
                {"file": p.file, "line": p.line, "column": p.column, "key": p.key_path, "message": p.message}
                for p in exc.problems
            ]
            sys.stdout.write(json.dumps({"ok": False, "problems": problems}) + "\n")
        else:
            with handled(err):
                raise
        raise typer.Exit(EXIT_USAGE) from None
    sys.stdout.write(json.dumps({"ok": True, "problems": []}) + "\n" if json_output else "OK\n")


def _log_to(console: Console) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)


class _stopping_on_signals:
    """While inside, SIGINT and SIGTERM ask the runner to stop gracefully; a second one quits at
    once (exit 130), keeping what is already committed but not what is still queued."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self._previous: dict[int, object] = {}
        self._stopping = False

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self._stopping:
            sys.stderr.write("\nquitting at once; records not yet written are lost\n")
            os._exit(130)
        self._stopping = True
        sys.stderr.write("\nstopping: finishing the step and writing the records (again to quit at once)\n")
        self.runner.stop()

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _follow(runner, err: Console, quiet: bool) -> None:
    """Wait for the run to end, showing progress on stderr: the live view on a terminal, else
    (or with --quiet) a plain line every few seconds."""
    from cli.render import dashboard, progress_line

    if err.is_terminal and not quiet:
        from rich.live import Live

        with Live(
            get_renderable=lambda: dashboard(runner.snapshot()),
            console=err, refresh_per_second=4, transient=True,
        ):
            _wait(runner)
    else:  # a log, or --quiet: one plain line every few seconds
        _wait(runner, lambda: err.print(progress_line(runner.snapshot(), bar=False), highlight=False, soft_wrap=True))


def _wait(runner, every_few_seconds=None) -> None:
    """Wait for the run to end (waking often, so signals are handled at once)."""
    last = time.monotonic()
    while not runner.wait(0.25):
        if every_few_seconds is not None and time.monotonic() - last >= LOG_EVERY_SECONDS:
            last = time.monotonic()
            every_few_seconds()


def main() -> None:
    app()
