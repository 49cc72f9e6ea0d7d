"""`runner strategies list|show`: what strategies exist and what parameters they take."""

from __future__ import annotations

import inspect
import json
import sys
import typing
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import handled

strategies_app = typer.Typer(help="List the available strategies and show their parameters.", no_args_is_help=True)

CAPABILITIES = ("load_model", "warmup", "on_bar", "on_fill", "on_order_rejected", "shutdown")


@strategies_app.command("list")
def list_strategies(json_output: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """Every strategy you can name with `type:` in a config, and the signal validators.

    Example:  runner strategies list --json
    """
    from runner.registry import available
    from runner.risk import validators

    specs = available()
    if json_output:
        rows = [
            {"name": s.name, "description": s.describe(), "target": s.target, "extra": s.extra, "origin": s.origin}
            for s in specs.values()
        ]
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="strategies", title_justify="left", show_edge=False)
    for column in ("name", "description", "needs"):
        table.add_column(column)
    for spec in specs.values():
        table.add_row(spec.name, escape(spec.describe()), escape(f"pip install -e '.[{spec.extra}]'") if spec.extra else "")
    out = Console()
    out.print(table)
    out.print(f"\nsignal validators: {', '.join(sorted(validators()))}   (strategies[].validator)")
    out.print("details: runner strategies show NAME")


@strategies_app.command("show")
def show_strategy(
    name: Annotated[str, typer.Argument(help="A registered strategy name, as in `type:`.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """A strategy's description, parameters (type, default, bounds, meaning) and optional hooks.

    Example:  runner strategies show ma_crossover
    """
    from runner.registry import strategy_class

    err = Console(stderr=True)
    with handled(err, json_output):
        cls = strategy_class(name)
    params = [_describe(field, info) for field, info in cls.Params.model_fields.items()]
    hooks = [hook for hook in CAPABILITIES if callable(getattr(cls, hook, None))]
    # Docstrings wrap at the source's width; rejoin each paragraph so the terminal wraps it.
    doc = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(cls.__doc__ or "").split("\n\n"))
    if json_output:
        sys.stdout.write(json.dumps({"name": name, "class": f"{cls.__module__}:{cls.__name__}",
                                     "description": doc, "params": params, "hooks": hooks}) + "\n")
        return
    out = Console()
    out.print(f"[bold]{name}[/]  ({cls.__module__}:{cls.__name__})\n")
    out.print(escape(doc) + "\n")
    table = Table(title="params", title_justify="left", show_edge=False)
    for column in ("param", "type", "default", "bounds", "meaning"):
        table.add_column(column)
    for p in params:
        table.add_row(p["name"], p["type"], json.dumps(p["default"]), p["bounds"], p["description"])
    out.print(table if params else "params: none")
    if hooks:
        out.print(f"\noptional hooks it implements: {', '.join(hooks)}")


def _describe(field: str, info) -> dict:
    bounds = []
    for item in info.metadata:
        for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attr, None)
            if value is not None:
                bounds.append(f"{symbol} {value}")
    default = info.get_default(call_default_factory=True)
    return {
        "name": field, "type": _type_name(info.annotation),
        "default": default if isinstance(default, (int, float, str, bool, list, dict, type(None))) else str(default),
        "bounds": " and ".join(bounds), "description": info.description or "",
    }


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("decimal.", "")
