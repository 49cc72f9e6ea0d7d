"""Security promises of the README's Reliability section: config values are data, never code;
YAML is read with the safe loader; nothing in the engine or the CLI evaluates strings or
unpickles files outside the pinned-hash artifact loader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runner.config import load_config_text
from runner.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DANGEROUS_CALLS = {"eval", "exec", "compile", "__import__"}
SAFE_LOADERS = {"SafeLoader", "_UniqueKeyLoader"}  # the config's loader is a SafeLoader (checked below)


def test_a_python_tag_in_a_config_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    text = f'run: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(ConfigError, match="could not determine a constructor|python/object"):
        load_config_text(text, "evil.yaml")
    assert not marker.exists()


def test_config_strings_stay_strings():
    config = load_config_text("strategies:\n  - {type: ma_crossover, name: \"__import__('os').system('x')\"}\n")
    assert config.strategies[0].name == "__import__('os').system('x')"


def calls_in(path: Path) -> list[tuple[str, int]]:
    """Names of dangerous functions called in a module, and YAML or pickle loads of the unsafe kind."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.id if isinstance(function, ast.Name) else function.attr if isinstance(function, ast.Attribute) else ""
        owner = function.value.id if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) else ""
        builtin = isinstance(function, ast.Name)  # eval(...), not session.exec(...) or re.compile(...)
        loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
        safe_loader = isinstance(loader, ast.Name) and loader.id in SAFE_LOADERS
        if (builtin and name in DANGEROUS_CALLS) or (
            owner == "yaml" and name in {"load", "unsafe_load", "full_load"} and not safe_loader
        ):
            found.append((name, node.lineno))
        if owner in {"pickle", "joblib"} and name in {"load", "loads"} and path.name != "artifacts.py":
            found.append((f"{owner}.{name}", node.lineno))
    return found


def test_no_engine_or_cli_code_evaluates_strings_or_unpickles_outside_the_artifact_loader():
    modules = [p for folder in ("runner", "cli", "strategies") for p in (ROOT / folder).rglob("*.py")]
    assert len(modules) > 30
    offenders = {str(p.relative_to(ROOT)): calls for p in modules if (calls := calls_in(p))}
    assert offenders == {}


def test_the_config_loader_is_a_safe_loader():
    import yaml

    from runner import config

    assert issubclass(config._UniqueKeyLoader, yaml.SafeLoader)
