"""`runner init` and `runner config schema`: a ready project folder, and the config's JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.errors import EXIT_USAGE

TEMPLATES = Path(__file__).parent / "templates"
FILES = ("config.yaml", "my_strategy.py")

config_app = typer.Typer(help="Work with config files.", no_args_is_help=True)


def init(
    folder: Annotated[Path, typer.Argument(help="Where to write the files (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that are already there.")] = False,
) -> None:
    """Write a commented config and a strategy to start from; they run as written.

    Example:  runner init mybot && runner start mybot/config.yaml
    """
    out, err = Console(), Console(stderr=True)
    existing = [name for name in FILES if (folder / name).exists()]
    if existing and not force:
        err.print(f"[bold red]error:[/] {', '.join(str(folder / n) for n in existing)} already "
                  "exist; use --force to overwrite them", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        text = (TEMPLATES / name).read_text().replace("{folder}", str(folder))
        (folder / name).write_text(text)
    (folder / "runner.schema.json").write_text(json.dumps(config_schema(), indent=2) + "\n")
    out.print(f"wrote {folder / 'config.yaml'}, {folder / 'my_strategy.py'} and {folder / 'runner.schema.json'}")
    out.print(f"next:  runner start {folder / 'config.yaml'}")


@config_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of config files, for editors to complete and check YAML.

    Example:  runner config schema > runner.schema.json
    """
    sys.stdout.write(json.dumps(config_schema(), indent=2) + "\n")


def config_schema() -> dict:
    from runner.config import RunnerConfig

    document = RunnerConfig.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "runner config"
    return document
