"""The `runner` console script: the top-level help is answered from a cache once rendered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli import launch
from cli.app import app

RUNNER = Path(sys.executable).parent / "runner"


def _help(cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"}
    return subprocess.run([str(RUNNER), "--help"], capture_output=True, env=env, timeout=60)


def test_help_is_rendered_once_then_served_from_the_cache_unchanged(tmp_path):
    first = _help(tmp_path)
    cached = list((tmp_path / "runner").glob("help-*.txt"))
    second = _help(tmp_path)

    assert first.returncode == second.returncode == 0
    assert b"Usage: runner [OPTIONS] COMMAND [ARGS]..." in first.stdout
    assert len(cached) == 1 and cached[0].read_bytes() == first.stdout
    assert second.stdout == first.stdout
    # the same text as the Typer app renders itself, at the same width
    assert first.stdout.decode() == CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100"}).stdout


def test_a_cached_help_is_what_the_second_run_prints(tmp_path):
    _help(tmp_path)
    [cached] = (tmp_path / "runner").glob("help-*.txt")
    cached.write_bytes(b"from the cache\n")

    assert _help(tmp_path).stdout == b"from the cache\n"


def test_the_cache_key_follows_the_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["runner", "--help"])
    monkeypatch.setenv("COLUMNS", "80")
    narrow = launch._cache_path()
    monkeypatch.setenv("COLUMNS", "120")
    wide = launch._cache_path()
    monkeypatch.setenv("NO_COLOR", "1")

    assert narrow.parent == wide.parent == tmp_path / "runner"
    assert len({narrow, wide, launch._cache_path()}) == 3
