"""Fixtures shared by several test files, and the environment every test starts from.

Only opt-in fixtures live here (a test asks for them by name), so a new test file is unaffected
unless it uses them. The one thing done for every test is at the session's start: the terminal
size variables of whatever launched pytest are dropped, because tables are laid out by them and
pytest-xdist's workers set COLUMNS=80 where a plain `pytest` leaves it unset. Tests that depend on
a width pass COLUMNS themselves.
"""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner


def pytest_configure(config):
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test from its own temporary directory: relative paths and defaults land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli():
    return CliRunner()
