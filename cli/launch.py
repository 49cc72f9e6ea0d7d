"""The `runner` console script: answers `runner --help` from a cache, else runs the Typer app.

Typer and rich take most of `runner --help`'s time (importing them, building every command,
rendering the panels), and the answer only changes when the CLI's code, the terminal or the
installed typer/rich change. So the first `runner --help` renders it as usual and keeps the
exact bytes it wrote; later ones whose key (those inputs) is unchanged write them back without
importing anything heavy. Any other command line goes straight to `cli.app`. A cache that
cannot be read or written is ignored: the help is then rendered every time.
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib.util import find_spec
from pathlib import Path

HELP_ARGS = (["--help"],)  # the top-level help; subcommands' help is rendered as usual
# What rich and typer read from the environment to lay out and colour the help.
_LAYOUT_VARIABLES = (
    "COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
    "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES",
)


def main() -> None:
    """Run the `runner` command line."""
    if sys.argv[1:] in HELP_ARGS:
        _help()
        return
    from cli.app import main as run_app

    run_app()


def _help() -> None:
    path = _cache_path()
    try:
        cached = path.read_bytes()
    except OSError:
        cached = None
    if cached is not None:
        sys.stdout.buffer.write(cached)
        sys.stdout.flush()
        return
    from cli.app import main as run_app

    recorder = _Recorder(sys.stdout)
    sys.stdout = recorder
    try:
        run_app()
    except SystemExit as exit_:
        if exit_.code in (None, 0):
            _store(path, recorder.written())
        raise
    finally:
        sys.stdout = recorder.stream


def _cache_path() -> Path:
    """The cache file for this CLI code, these typer and rich, and this terminal."""
    key = hashlib.sha256()
    sources = [Path(__file__).parent]
    for package in ("typer", "rich"):
        spec = find_spec(package)
        if spec is not None and spec.origin:
            sources.append(Path(spec.origin).parent)
    for folder in sources:
        for file in sorted(folder.glob("*.py")):
            stat = file.stat()
            key.update(f"{file}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        size = None
    key.update(repr((
        sys.version, sys.argv[1:], sys.stdout.isatty(), size,
        [(name, os.environ.get(name)) for name in _LAYOUT_VARIABLES],
        sorted((k, v) for k, v in os.environ.items() if k.startswith(("TYPER_", "_TYPER_"))),
    )).encode())
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "runner" / f"help-{key.hexdigest()[:32]}.txt"


def _store(path: Path, text: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(text)
        partial.replace(path)  # whole or not at all, even with several processes at once
    except OSError:
        pass


class _Recorder:
    """Stands in for stdout while the help is rendered: passes everything through (so rich sees
    the real terminal) and keeps a copy of what was written, as text or through `buffer`."""

    def __init__(self, stream, parts: list[bytes] | None = None):
        self.stream = stream
        self._parts = [] if parts is None else parts
        self._encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, data):
        self._parts.append(data if isinstance(data, bytes) else data.encode(self._encoding, errors="replace"))
        return self.stream.write(data)

    @property
    def buffer(self):
        return _Recorder(self.stream.buffer, self._parts)

    def written(self) -> bytes:
        return b"".join(self._parts)

    def __getattr__(self, name):
        return getattr(self.stream, name)
