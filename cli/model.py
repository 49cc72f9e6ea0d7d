"""`runner model ...`: train the model that `ml_model` and `hybrid` trade."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cli.errors import handled

model_app = typer.Typer(
    help="Train and write the model files of the ml_model and hybrid strategies.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

SYNTHETIC_START = datetime(2024, 1, 2, tzinfo=UTC)


@model_app.command("train")
def train(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder to write model.skops, scaler.skops and manifest.json to.", show_default=False)],
    data: Annotated[Optional[Path], typer.Option("--data", dir_okay=False, help="OHLCV file (CSV or Parquet) to train on.", show_default=False)] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Train on seeded synthetic bars instead of a file.")] = False,
    bars: Annotated[int, typer.Option(min=100, help="Synthetic bars per symbol.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic bars and of the model.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the manifest as one JSON object on stdout and nothing else there.")] = False,
) -> None:
    r"""Train a small model on next-bar direction and write it with its hashes.

    The model (StandardScaler + LogisticRegression) learns whether the next close is above
    this one from the six features ml_model computes live; the last fifth of each symbol's
    bars is held out to report accuracy. Needs the ml extra: pip install -e '.\[ml]'.

    Example:  runner model train --synthetic --seed 7 --out models/example
    """
    from runner.errors import ConfigError

    out_console, err = Console(), Console(stderr=True)
    with handled(err, json_output):
        if (data is None) == (not synthetic):
            raise ConfigError("give exactly one of --data FILE or --synthetic")
        from runner.training import series_from_file, series_from_steps
        from runner.training import train as fit

        if synthetic:
            series = series_from_steps(_synthetic_feed(seed), bars)
        else:
            series = series_from_file(data)
        manifest = fit(series, out, seed=seed)
    if json_output:
        sys.stdout.write(json.dumps(manifest) + "\n")
        return
    for name, entry in manifest["files"].items():
        out_console.print(f"{escape(str(out / name))}  sha256 {entry['sha256']}", highlight=False, soft_wrap=True)
    out_console.print(
        f"trained on {manifest['trained_rows']} rows of {escape(', '.join(manifest['symbols']))}; "
        f"holdout accuracy {manifest['holdout_accuracy']:.3f} on {manifest['holdout_rows']} rows "
        f"(up share {manifest['holdout_up_share']:.3f})",
        highlight=False, soft_wrap=True,
    )
    out_console.print(f"manifest: {escape(str(out / 'manifest.json'))}", highlight=False, soft_wrap=True)


def _synthetic_feed(seed: int):
    """Two random-walk symbols, a calm one and a volatile one, one-minute bars."""
    from runner.config import SyntheticSymbol
    from runner.feeds.synthetic import SyntheticFeed

    symbols = {
        "SYN": SyntheticSymbol(),
        "VOLATILE": SyntheticSymbol(start_price=50, volatility=0.6),
    }
    return SyntheticFeed(symbols, "1m", SYNTHETIC_START, seed)
