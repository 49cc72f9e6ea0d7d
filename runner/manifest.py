"""The run manifest: everything a run took as input, recorded with it so it can be reproduced.

A `RunManifest` holds the config (path, text, sha256), the effective run settings (seed, mode,
execution), the package and Python versions, each strategy's class with the sha256 of the file
that defines it and of the model files its params name, the data files with their size, sha256
and time range, and the broker and market data sections of the validated config. It is stored as
JSON in `runs.manifest` when the run starts.

`manifest_problems(recorded, now)` names every input that differs between two manifests; the
`runner replay` command refuses to re-run when there is any. A different package or Python
version is not a problem but a warning (`manifest_warnings`): replaying on a new version is how
one checks that an upgrade leaves the orders and fills alone, and the comparison of the orders
and fills is the verdict.
"""

from __future__ import annotations

import inspect
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner import __version__
from runner.artifacts import sha256_of
from runner.config import RunnerConfig, StrategyEntry
from strategies.base import StrategyInterface

FORMAT = 1  # the manifest's own layout version


@dataclass(frozen=True)
class FileDigest:
    """A file as it was when the run started: its resolved path, size in bytes and sha256."""

    path: str
    sha256: str
    size: int = 0

    @classmethod
    def of(cls, path: str | Path) -> FileDigest:
        path = Path(path).resolve()
        return cls(str(path), sha256_of(path), path.stat().st_size)


@dataclass(frozen=True)
class StrategyInputs:
    """How a strategy was loaded (`type`, `module` or `file`, and what it named), its class,
    the file defining that class, the files defining the strategy classes it inherits from
    (`hybrid` from `ml_model`; not `StrategyInterface` itself, which the version covers), and
    the model files its params name."""

    loaded_by: str
    spec: str
    class_name: str
    source: FileDigest | None
    artifacts: tuple[FileDigest, ...] = ()
    inherited: tuple[FileDigest, ...] = ()


@dataclass(frozen=True)
class DataInputs:
    """The market data: its source, the files read (none for synthetic data), the first and
    last bar time in them and how many rows they gave."""

    source: str
    files: tuple[FileDigest, ...] = ()
    first_time: str | None = None
    last_time: str | None = None
    rows: int | None = None


@dataclass(frozen=True)
class RunManifest:
    """What it takes to reproduce a run; see the module docstring. `config_path` is resolved, so
    the config's relative paths can be followed from any folder."""

    config_path: str
    config_text: str
    config_sha256: str
    seed: int
    mode: str
    run: dict[str, Any]
    package_version: str
    python_version: str
    strategies: dict[str, StrategyInputs]
    data: DataInputs
    broker: dict[str, Any]
    market_data: dict[str, Any]
    policy_overrides: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunManifest:
        data = json.loads(text)
        data["strategies"] = {
            name: StrategyInputs(**{
                **inputs,
                "source": _digest(inputs.get("source")),
                "artifacts": tuple(FileDigest(**a) for a in inputs.get("artifacts", ())),
                "inherited": tuple(FileDigest(**a) for a in inputs.get("inherited", ())),
            })
            for name, inputs in data["strategies"].items()
        }
        files = tuple(FileDigest(**f) for f in data["data"].get("files", ()))
        data["data"] = DataInputs(**{**data["data"], "files": files})
        return cls(**data)

    def input_files(self) -> list[tuple[str, FileDigest]]:
        """Every file hashed, with what it is: data, strategy source, model artifact."""
        found = [("data file", digest) for digest in self.data.files]
        for name, inputs in self.strategies.items():
            if inputs.source is not None:
                found.append((f"strategy {name} source", inputs.source))
            found += [(f"strategy {name} inherited source", digest) for digest in inputs.inherited]
            found += [(f"strategy {name} model file", digest) for digest in inputs.artifacts]
        return found


def build_manifest(
    config: RunnerConfig, feed: object, strategies: Sequence[tuple[StrategyEntry, type]],
    policy_overrides: Mapping[str, str] | None = None, data: DataInputs | None = None,
) -> RunManifest:
    """The manifest of a run of `config` over `feed` (already loaded) with these strategy
    classes; data files (unless their `data` inputs are given), strategy sources and model
    files are hashed now."""
    source = config.source
    in_memory = source.path in ("<python>", "<config>")
    return RunManifest(
        config_path=source.path if in_memory else str(Path(source.path).resolve()), config_text=source.text, config_sha256=source.sha256,
        seed=config.run.seed, mode=config.run.mode, run=config.run.model_dump(mode="json"),
        package_version=__version__, python_version=platform.python_version(),
        strategies={entry.display_name: _strategy_inputs(entry, cls, source.base_dir) for entry, cls in strategies},
        data=data or data_inputs(config, feed),
        broker=config.broker.model_dump(mode="json"),
        market_data=config.market_data.model_dump(mode="json"),
        policy_overrides=dict(policy_overrides or {}),
    )


def changed_files(manifest: RunManifest) -> list[str]:
    """Each recorded input file that is missing now, or whose sha256 differs (checked before
    anything is loaded, so a file that no longer loads is reported as changed)."""
    problems = []
    for what, digest in manifest.input_files():
        path = Path(digest.path)
        if not path.is_file():
            problems.append(f"{what} {digest.path} is missing")
        elif (now := sha256_of(path)) != digest.sha256:
            problems.append(f"{what} {digest.path} changed: sha256 {digest.sha256} -> {now}")
    return problems


def manifest_problems(recorded: RunManifest, now: RunManifest) -> list[str]:
    """Each input of `recorded` that `now` does not have as it was, one sentence each."""
    problems = []
    if recorded.config_sha256 != now.config_sha256:
        problems.append(f"config text changed: sha256 {recorded.config_sha256} -> {now.config_sha256}")
    for key in ("seed", "mode"):
        if getattr(recorded, key) != getattr(now, key):
            problems.append(f"{key} differs: {getattr(recorded, key)!r} -> {getattr(now, key)!r}")
    after = {digest.path: digest for _, digest in now.input_files()}
    for what, digest in recorded.input_files():
        current = after.get(digest.path)
        if current is None and not Path(digest.path).is_file():
            problems.append(f"{what} {digest.path} is missing")
        elif current is None:
            problems.append(f"{what} {digest.path} is no longer an input of the run")
        elif current.sha256 != digest.sha256:
            problems.append(f"{what} {digest.path} changed: sha256 {digest.sha256} -> {current.sha256}")
    recorded_paths = {d.path for _, d in recorded.input_files()}
    problems += [
        f"{what} {digest.path} is a new input of the run" for what, digest in now.input_files()
        if digest.path not in recorded_paths
    ]
    if set(recorded.strategies) != set(now.strategies):
        problems.append(
            f"strategies differ: {', '.join(sorted(recorded.strategies)) or 'none'} -> "
            f"{', '.join(sorted(now.strategies)) or 'none'}"
        )
    for name, inputs in recorded.strategies.items():
        other = now.strategies.get(name)
        if other is not None and _class_label(other) != _class_label(inputs):
            problems.append(f"strategy {name} class differs: {_class_label(inputs)} -> {_class_label(other)}")
    if recorded.data.source != now.data.source:
        problems.append(f"market data source differs: {recorded.data.source} -> {now.data.source}")
    for key in ("first_time", "last_time", "rows"):
        if getattr(recorded.data, key) != getattr(now.data, key):
            problems.append(
                f"market data {key.replace('_', ' ')} differs: {getattr(recorded.data, key)} -> {getattr(now.data, key)}"
            )
    for section in ("broker", "market_data"):
        if getattr(recorded, section) != getattr(now, section):
            problems.append(f"{section} settings differ")
    if recorded.policy_overrides != now.policy_overrides:
        problems.append(
            f"the database's policy overrides differ: {_settings(recorded.policy_overrides)} -> "
            f"{_settings(now.policy_overrides)} (see `runner policy show`)"
        )
    return problems


def manifest_warnings(recorded: RunManifest, now: RunManifest) -> list[str]:
    """Differences that do not stop a replay: the runner's and Python's versions."""
    warnings = []
    if recorded.package_version != now.package_version:
        warnings.append(f"runner version differs: {recorded.package_version} -> {now.package_version}")
    if recorded.python_version != now.python_version:
        warnings.append(f"Python version differs: {recorded.python_version} -> {now.python_version}")
    return warnings


def _class_label(inputs: StrategyInputs) -> str:
    """The class as it is compared: a class from a strategy file without its module, a name the
    loader makes up per process (the file's sha256 is compared instead)."""
    return inputs.class_name.partition(":")[2] if inputs.loaded_by == "file" else inputs.class_name


def _settings(values: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(values.items())) or "none"


def _digest(value: dict | None) -> FileDigest | None:
    return None if value is None else FileDigest(**value)


def _strategy_inputs(entry: StrategyEntry, cls: type, base_dir: Path) -> StrategyInputs:
    loaded_by = "type" if entry.type else "module" if entry.module else "file"
    source = _source_file(cls)
    bases = [base for base in cls.__mro__[1:] if issubclass(base, StrategyInterface) and base is not StrategyInterface]
    inherited = dict.fromkeys(path for path in map(_source_file, bases) if path is not None and path != source)
    return StrategyInputs(
        loaded_by=loaded_by, spec=getattr(entry, loaded_by),
        class_name=f"{cls.__module__}:{cls.__qualname__}",
        source=FileDigest.of(source) if source is not None else None,
        artifacts=tuple(FileDigest.of(path) for path in _artifact_paths(entry, cls, base_dir) if path.is_file()),
        inherited=tuple(map(FileDigest.of, inherited)),
    )


def _source_file(cls: type) -> str | None:
    """The file defining a class, if it has one (not one made in an interactive session)."""
    try:
        path = inspect.getsourcefile(cls)
    except TypeError:
        return None
    return path if path and Path(path).is_file() else None


def _artifact_paths(entry: StrategyEntry, cls: type, base_dir: Path) -> list[Path]:
    """The model files a strategy's params name, when its `Params` can say (`artifact_paths`)."""
    model = getattr(cls, "Params", None)
    if model is None or not callable(getattr(model, "artifact_paths", None)):
        return []
    try:
        params = model.model_validate(entry.params)
    except Exception:  # noqa: BLE001 - creating the strategy reports bad params, with their key
        return []
    return list(params.artifact_paths(base_dir))


def data_inputs(config: RunnerConfig, feed: object) -> DataInputs:
    """The market data a run of `config` reads from `feed`, its files hashed now."""
    first, last = getattr(feed, "first_time", None), getattr(feed, "last_time", None)
    return DataInputs(
        source=config.market_data.source,
        files=tuple(FileDigest.of(path) for path in getattr(feed, "files", ())),
        first_time=first.isoformat() if first is not None else None,
        last_time=last.isoformat() if last is not None else None,
        rows=getattr(feed, "rows", None),
    )
