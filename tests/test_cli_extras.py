"""--strict, --debug, `runner init` and `runner config schema`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.app import app
from tests.helpers import config_text

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(sys.executable).parent / "runner"


def invoke(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def test_strict_fails_a_run_with_rejections_after_a_clean_stop(tmp_path):
    (tmp_path / "c.yaml").write_text(config_text(
        "  - {type: buy_and_hold, params: {quantity: 1000000}}\n", run="{max_ticks: 5}",
    ))
    result = invoke("start", tmp_path / "c.yaml", "--db", tmp_path / "s.db", "--strict", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["strict_failures"] == [f"{summary['rejections']} order(s) or signal(s) were rejected"]
    plain = invoke("start", tmp_path / "c.yaml", "--db", tmp_path / "t.db", "--strict")
    assert plain.exit_code == 1 and "strict: 2 order(s) or signal(s) were rejected" in plain.stderr
    assert "final equity" in plain.stdout


def test_strict_passes_a_clean_run(tmp_path):
    (tmp_path / "c.yaml").write_text(config_text("  - {type: buy_and_hold}\n", run="{max_ticks: 5}"))
    result = invoke("start", tmp_path / "c.yaml", "--db", tmp_path / "s.db", "--strict", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["strict_failures"] == []


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    (tmp_path / "c.yaml").write_text("strategies: [{type: nope}]\n")
    plain = subprocess.run([RUNNER, "start", "c.yaml"], cwd=tmp_path, capture_output=True, text=True)
    debug = subprocess.run([RUNNER, "--debug", "start", "c.yaml"], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "200"})
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert "unknown strategy 'nope'" in debug.stderr


def test_init_writes_a_project_that_runs_as_written(tmp_path):
    result = invoke("init", tmp_path / "bot")
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "bot").iterdir()) == ["config.yaml", "my_strategy.py", "runner.schema.json"]
    run = subprocess.run(
        [RUNNER, "start", "bot/config.yaml", "--db", "r.db", "--json"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["status"] == "completed" and summary["errors"] == {"my_strategy": 0, "ma_crossover": 0}
    assert summary["strategies"]["my_strategy"]["signals"] > 0


def test_init_does_not_overwrite_without_force(tmp_path):
    assert invoke("init", tmp_path).exit_code == 0
    (tmp_path / "config.yaml").write_text("mine")
    refused = invoke("init", tmp_path)
    assert refused.exit_code == 2 and "already exist; use --force to overwrite them" in refused.stderr
    assert (tmp_path / "config.yaml").read_text() == "mine"
    assert invoke("init", tmp_path, "--force").exit_code == 0
    assert (tmp_path / "config.yaml").read_text() != "mine"


def test_config_schema_describes_every_section_and_accepts_the_shipped_configs():
    import jsonschema

    schema = json.loads(invoke("config", "schema").stdout)
    assert {"run", "market_data", "broker", "storage", "risk", "strategies"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    for path in (ROOT / "configs").glob("*.yaml"):
        jsonschema.validate(as_editor_sees(yaml.safe_load(path.read_text())), schema)
    bad = {"broker": {"slipage_bps": 5}}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError as error:
        assert "slipage_bps" in error.message
    else:
        raise AssertionError("the schema accepted an unknown key")


def as_editor_sees(value):
    """YAML as text: an editor checks `start: 2024-01-02T14:30:00Z` as a string."""
    if isinstance(value, dict):
        return {k: as_editor_sees(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_editor_sees(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def test_every_command_has_help_with_an_example():
    for command in (["start"], ["validate"], ["init"], ["config", "schema"], ["strategies", "list"],
                    ["strategies", "show"], ["model", "train"], ["report"], ["runs"], ["status"],
                    ["orders"], ["fills"], ["positions"]):
        result = invoke(*command, "--help", env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Example" in result.stdout, command
        options = [line for line in result.stdout.splitlines() if line.lstrip("│ ").startswith("--")]
        assert all(len(line.split()) > 2 for line in options), (command, "an option without help")


def test_strict_fails_a_run_where_a_strategy_raised_and_was_disabled(tmp_path):
    (tmp_path / "s.py").write_text(
        "from strategies.base import StrategyInterface\n"
        "class Broken(StrategyInterface):\n"
        "    def on_tick(self, market_data):\n"
        "        raise RuntimeError('bug')\n"
    )
    (tmp_path / "c.yaml").write_text(config_text("  - {file: s.py, max_errors: 2}\n", run="{max_ticks: 5}"))
    result = invoke("start", tmp_path / "c.yaml", "--db", tmp_path / "s.db", "--strict", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["strict_failures"] == [
        "s raised 2 error(s)", "s was disabled: 2 consecutive errors in on_tick, last RuntimeError: bug",
    ]
