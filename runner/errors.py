"""The exception tree. Each class says what the caller should do; only `cli/` maps them to exit codes.

    RunnerError
    ├── ConfigError        fix the config file                     (exit 2)
    ├── DataError          fix the market data file                (exit 2)
    ├── StrategyLoadError  fix the strategy spec or its code       (exit 2)
    ├── StrategyError      one strategy failed; it is faulted, the run goes on
    ├── FeedError          the market data broke; stop the run     (exit 1)
    ├── StorageError       the database failed; stop the run       (exit 1)
    └── ClusterError       a Ray cluster cannot be reached or used (exit 1)
"""

from __future__ import annotations

from dataclasses import dataclass


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where it is and what was expected."""

    file: str
    key_path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.file and self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        parts = [part for part in (where, self.key_path) if part]
        return ": ".join(parts + [self.message])


class ConfigError(RunnerError, ValueError):
    """The config (or a CLI value standing for it) is invalid; `problems` lists every finding."""

    def __init__(self, problems: list[ConfigProblem] | str):
        if isinstance(problems, str):
            problems = [ConfigProblem(file="", key_path="", message=problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DataError(RunnerError, ValueError):
    """A market data file is missing, unreadable, or holds rows that cannot be replayed."""


class StrategyLoadError(RunnerError, ValueError):
    """A strategy could not be found, imported or constructed."""


class StrategyError(RunnerError):
    """A strategy raised or returned something unusable; that strategy alone is affected."""


class FeedError(RunnerError):
    """Market data could not be produced; the run stops cleanly."""


class StorageError(RunnerError):
    """The database could not be written; the run stops cleanly."""


class ClusterError(RunnerError):
    """A sweep's Ray cluster cannot be reached or started; nothing of the sweep is recorded."""
