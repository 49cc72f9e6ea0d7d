"""Loading model artifacts without running code from the file.

Two formats:

    skops   the default. `skops.io` rebuilds the object from a description of it, and only
            types of scikit-learn and NumPy are accepted; a file naming any other type is
            refused with the list of those types.
    pickle  joblib or pickle files, which run arbitrary code when loaded. Such a file is loaded
            only when its sha256 is pinned and the file matches it.

scikit-learn, skops and joblib are the `ml` extra; they are imported only here, when a file is
loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any, Literal

from runner.errors import StrategyLoadError

ML_EXTRA_MESSAGE = "the model strategies (ml_model, hybrid) need the ml extra: pip install -e '.[ml]'"
TRUSTED_PACKAGES = ("sklearn", "numpy")


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_artifact(path: Path, fmt: Literal["skops", "pickle"] = "skops", sha256: str | None = None) -> Any:
    """Load one model or scaler file.

    Args:
        path: the file.
        fmt: "skops" (safe by construction) or "pickle" (joblib or pickle; needs `sha256`).
        sha256: the expected hex sha256 of the file; required for "pickle", checked for "skops"
            too when given.

    Raises:
        StrategyLoadError: the ml extra is missing; the file is missing or unreadable; a pickle
            file has no pinned sha256 or does not match it; a skops file holds a type outside
            scikit-learn and NumPy.
    """
    path = Path(path)
    if path.is_dir():
        raise StrategyLoadError(f"{path} is a folder; expected a model file")
    if not path.is_file():
        raise StrategyLoadError(f"model file not found: {path}")
    if fmt == "pickle" and not sha256:
        raise StrategyLoadError(
            f"{path}: refusing to load a pickle file without a pinned hash, because loading a "
            f"pickle runs code from it; pin its sha256 in the strategy's params "
            f"(sha256: {{{path.name}: {sha256_of(path)}}}) if you trust this file, or save the "
            f"model with skops"
        )
    if sha256:
        actual = sha256_of(path)
        if actual != sha256.strip().lower():
            raise StrategyLoadError(
                f"{path}: sha256 mismatch, refusing to load: expected {sha256.strip().lower()}, "
                f"actual {actual}; the file changed since its hash was pinned"
            )
    if fmt == "skops":
        return _load_skops(path)
    if fmt == "pickle":
        return _load_pickle(path)
    raise StrategyLoadError(f"{path}: unknown model format {fmt!r}; use skops or pickle")


def require_ml() -> None:
    """Check that the ml extra (scikit-learn and skops) is installed, without importing it.

    Raises:
        ModuleNotFoundError: one is missing; the registry turns this into a message naming the
            extra, as for any strategy registered with one.
    """
    from importlib.util import find_spec

    for module in ("sklearn", "skops"):
        if find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def _load_skops(path: Path) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise StrategyLoadError(ML_EXTRA_MESSAGE) from None
    try:
        untrusted = sio.get_untrusted_types(file=path)
        refused = [name for name in untrusted if not _trusted_class(name)]
        if refused:
            raise StrategyLoadError(
                f"{path}: refusing to load what is not a scikit-learn or NumPy class: {', '.join(refused)}"
            )
        return sio.load(path, trusted=untrusted)
    except StrategyLoadError:
        raise
    except ImportError as exc:
        raise StrategyLoadError(f"{path}: {exc}; {ML_EXTRA_MESSAGE}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged zip or schema raises many kinds of error
        raise StrategyLoadError(f"{path}: not a readable skops file: {type(exc).__name__}: {exc}") from None


def _trusted_class(name: str) -> bool:
    """A class (not a function, such as numpy.save) of scikit-learn or NumPy."""
    if name.split(".")[0] not in TRUSTED_PACKAGES:
        return False
    module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    return inspect.isclass(found)


def _load_pickle(path: Path) -> Any:
    try:
        import joblib
    except ImportError:
        raise StrategyLoadError(ML_EXTRA_MESSAGE) from None
    try:
        return joblib.load(path)
    except ImportError as exc:
        raise StrategyLoadError(f"{path}: {exc}; {ML_EXTRA_MESSAGE}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling raises whatever the file's code raises
        raise StrategyLoadError(f"{path}: not a readable pickle file: {type(exc).__name__}: {exc}") from None
