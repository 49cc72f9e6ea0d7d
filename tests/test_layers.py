"""The import layers of ARCHITECTURE.md / STYLE.md, checked on the source.

Nothing in runner/ or strategies/ imports cli, typer or rich; only bootstrap.py names the
concrete feed, broker and storage classes among runner/ modules.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_ENGINE = {"cli", "typer", "rich", "click"}
CONCRETE = {
    "runner.feeds.synthetic", "runner.broker.paper", "runner.broker.fills", "runner.broker.fees",
    "runner.storage.db", "runner.storage.recorder", "runner.metrics",
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def engine_files():
    return sorted((ROOT / "runner").rglob("*.py")) + sorted((ROOT / "strategies").rglob("*.py"))


def test_engine_never_imports_the_terminal_layer():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN_IN_ENGINE)
        for path in engine_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


def test_only_the_composition_root_names_concrete_classes():
    """Outside bootstrap.py, a module may name a concrete class only of its own package. The
    audit builds a run's fee schedule to recompute its commissions; the replay opens the
    database it reads the run from and writes the replay to (build wires the run), and so does
    the resume; a sweep opens the database it records its runs in; none wires anything else."""
    allowed = {ROOT / "runner" / "bootstrap.py"}
    recomputes = {
        ROOT / "runner" / "audit.py": {"runner.broker.fees"},
        ROOT / "runner" / "reproduce.py": {"runner.storage.db"},
        ROOT / "runner" / "resume.py": {"runner.storage.db"},
        ROOT / "runner" / "sweep.py": {"runner.storage.db"},
    }
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) & CONCRETE - recomputes.get(path, set())
            if m.rpartition(".")[0] != package_of(path)
        )
        for path in sorted((ROOT / "runner").rglob("*.py")) if path not in allowed
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_engine_never_prints():
    printing = [
        str(path.relative_to(ROOT))
        for path in engine_files()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert printing == []
