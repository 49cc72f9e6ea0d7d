"""The one place where errors become messages and exit codes.

    0  success
    1  runtime failure (the run failed, storage or market data broke)
    2  bad usage, invalid config or data, a strategy that cannot be loaded
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from runner.errors import (
    ConfigError, DataError, FeedError, RunnerError, StorageError, StrategyLoadError,
)

EXIT_FAILURE, EXIT_USAGE = 1, 2
SHOW_TRACEBACKS = False  # set by `runner --debug`

_EXIT_CODES: dict[type[RunnerError], int] = {
    ConfigError: EXIT_USAGE,
    DataError: EXIT_USAGE,
    StrategyLoadError: EXIT_USAGE,
    FeedError: EXIT_FAILURE,
    StorageError: EXIT_FAILURE,
}


def exit_code(exc: RunnerError) -> int:
    for kind, code in _EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    return EXIT_FAILURE


def report(console: Console, exc: RunnerError) -> None:
    """Print an error to stderr without a traceback; a config error prints one problem a line."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            console.print(escape(str(problem)), highlight=False, soft_wrap=True, emoji=False)
        return
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True, emoji=False)


@contextmanager
def handled(console: Console, json_output: bool = False) -> Iterator[None]:
    """Turn a `RunnerError` raised inside the block into its message and exit code.

    With `json_output`, stdout also gets one object: {"status": "error", "error", "exit_code"}.
    """
    try:
        yield
    except RunnerError as exc:
        if SHOW_TRACEBACKS:
            console.print_exception(show_locals=False)
        report(console, exc)
        code = exit_code(exc)
        if json_output:
            sys.stdout.write(json.dumps({"status": "error", "error": str(exc), "exit_code": code}) + "\n")
        raise typer.Exit(code) from None
