"""Finding strategy classes: the registry of named strategies (built-in and from installed
packages), and loading a class from a dotted module or from a .py file.

Built-in strategies are imported only when asked for; third-party packages register theirs
under the entry-point group `runner.strategies` (name = "package.module:Class").
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from runner.config import StrategyEntry
from runner.errors import StrategyLoadError
from strategies.base import StrategyInterface

ENTRY_POINT_GROUP = "runner.strategies"


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy: its name, where it lives (`module:Class`), and the extra to
    install when it needs one. The class itself says what it does (`description`)."""

    name: str
    target: str
    extra: str | None = None
    origin: str = "built-in"

    def describe(self) -> str:
        """The class's one-line description (importing its module), or why it cannot load."""
        try:
            cls = self.load()
        except StrategyLoadError as exc:
            return str(exc)
        return cls.description or (inspect.getdoc(cls) or "").partition("\n")[0]

    def load(self) -> type[StrategyInterface]:
        module_name, _, class_name = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if self.extra:
                raise StrategyLoadError(
                    f"strategy {self.name!r} needs the {self.extra} extra: "
                    f"pip install -e '.[{self.extra}]' ({exc})"
                ) from exc
            raise StrategyLoadError(f"strategy {self.name!r} ({self.target}) cannot be imported: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a package's module may raise anything on import
            raise StrategyLoadError(f"strategy {self.name!r} ({self.target}) cannot be imported: {_located(exc, None)}") from exc
        return _strategy_class(module, class_name or None, self.target)


BUILT_IN = {
    spec.name: spec
    for spec in (
        StrategySpec("ma_crossover", "strategies.ma_crossover:MACrossover"),
        StrategySpec("buy_and_hold", "strategies.buy_and_hold:BuyAndHold"),
        StrategySpec("rsi", "strategies.rsi:RSIStrategy"),
        StrategySpec("fib_rsi", "strategies.fib_rsi:FibRSI"),
        StrategySpec("ml_model", "strategies.ml_model:MLModel", extra="ml"),
        StrategySpec("hybrid", "strategies.hybrid:Hybrid", extra="ml"),
    )
}


def available() -> dict[str, StrategySpec]:
    """Every registered strategy: the built-ins, then those installed packages register."""
    specs = dict(BUILT_IN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in specs:
            specs[point.name] = StrategySpec(
                point.name, point.value, origin=point.dist.name if point.dist else "entry point",
            )
    return specs


def known_strategies() -> list[str]:
    return sorted(available())


def strategy_class(name: str) -> type[StrategyInterface]:
    """Return the class registered as `name`.

    Raises:
        StrategyLoadError: no strategy has that name (the message lists the known ones), or it
            cannot be imported.
    """
    spec = available().get(name)
    if spec is None:
        raise StrategyLoadError(
            f"unknown strategy {name!r}; known strategies: {', '.join(known_strategies())}"
        )
    return spec.load()


def entry_class(entry: StrategyEntry, base_dir: Path) -> type[StrategyInterface]:
    """The class a config entry names by `type`, `module` or `file` (relative to `base_dir`)."""
    if entry.type:
        return strategy_class(entry.type)
    if entry.module:
        return class_from_module(entry.module, entry.class_name)
    path = Path(entry.file)
    return class_from_file(path if path.is_absolute() else base_dir / path, entry.class_name)


def class_from_module(module_name: str, class_name: str | None = None) -> type[StrategyInterface]:
    """Return a strategy class from a dotted module.

    Raises:
        StrategyLoadError: the module cannot be imported, or holds no such class.
    """
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - importing user code may raise anything
        raise StrategyLoadError(f"cannot import module {module_name!r}: {_located(exc, None)}") from exc
    return _strategy_class(module, class_name, module_name)


def class_from_file(path: Path, class_name: str | None = None) -> type[StrategyInterface]:
    """Return a strategy class from a .py file outside any package.

    Strategy files are code: they run with the runner's rights, like any script you run.

    Raises:
        StrategyLoadError: the file is missing, does not compile or raises while loading (the
            message names the line), or holds no such class.
    """
    if not path.is_file():
        raise StrategyLoadError(f"strategy file not found: {path}")
    if path.suffix != ".py":
        raise StrategyLoadError(f"a strategy file must be a .py file, got {path}")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    module = _loaded_files.get(key)
    if module is None:
        module = _loaded_files[key] = _execute_file(path)
    return _strategy_class(module, class_name, str(path))


_loaded_files: dict[tuple[str, int], object] = {}  # a file's top level runs once per process


def _execute_file(path: Path):
    module_name = f"runner_strategy_file_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # so the file can import the modules beside it
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise StrategyLoadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - the file's top level may raise anything
        del sys.modules[module_name]
        raise StrategyLoadError(f"{_located(exc, path)}") from exc
    return module


def _strategy_class(module, class_name: str | None, where: str) -> type[StrategyInterface]:
    classes = [obj for obj in vars(module).values() if inspect.isclass(obj)]
    defined = [cls for cls in classes if cls.__module__ == module.__name__]
    strategies = [cls for cls in defined if issubclass(cls, StrategyInterface) and not inspect.isabstract(cls)]
    if not strategies:  # a package may re-export its strategy from a submodule
        strategies = [
            cls for cls in classes
            if issubclass(cls, StrategyInterface) and cls is not StrategyInterface
            and not inspect.isabstract(cls) and not cls.__module__.startswith("strategies.base")
        ]
    if class_name:
        found = getattr(module, class_name, None)
        if found is None:
            names = ", ".join(cls.__name__ for cls in defined) or "none"
            raise StrategyLoadError(f"no class {class_name!r} in {where}; classes there: {names}")
        if not (inspect.isclass(found) and issubclass(found, StrategyInterface)):
            raise StrategyLoadError(f"{class_name} in {where} is not a StrategyInterface subclass")
        if inspect.isabstract(found):
            missing = ", ".join(sorted(found.__abstractmethods__))
            raise StrategyLoadError(f"{class_name} in {where} does not implement {missing}")
        return found
    if len(strategies) == 1:
        return strategies[0]
    if not strategies:
        names = ", ".join(cls.__name__ for cls in defined) or "none"
        raise StrategyLoadError(f"no StrategyInterface subclass in {where}; classes there: {names}")
    names = ", ".join(cls.__name__ for cls in strategies)
    raise StrategyLoadError(f"several strategies in {where} ({names}); name one with `class:`")


def _located(exc: Exception, path: Path | None) -> str:
    """An exception's type and message, with the file and line it came from in user code."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<frozen") and "importlib" not in Path(f.filename).parts
    ]
    if path is not None:
        frames = [f for f in frames if Path(f.filename).resolve() == path.resolve()] or frames
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}"
