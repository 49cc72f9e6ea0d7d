"""Cross-field checks of a config, each a small named function returning its problems."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError

from runner.config import RunnerConfig, validation_problems
from runner.errors import ConfigError, ConfigProblem, StrategyLoadError
from runner.registry import known_strategies, strategy_class


def strategy_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Each strategy's type is registered and its params are valid for it."""
    source, problems = config.source, []
    for index, entry in enumerate(config.strategies):
        loc = ("strategies", index)
        try:
            cls = strategy_class(entry.type)
        except StrategyLoadError as exc:
            problems.append(source.problem(loc + ("type",), str(exc)))
            continue
        try:
            cls.Params.model_validate(entry.params)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, cls.Params, source, loc + ("params",)))
    return problems


def symbol_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Every symbol a strategy names exists in the market data (when the config lists them;
    the symbols of one long data file are checked once it is read)."""
    available = set(config.market_data.symbol_names)
    if not available:
        return []
    problems = []
    for index, entry in enumerate(config.strategies):
        unknown = [s for s in entry.symbols or () if s not in available]
        if unknown:
            problems.append(config.source.problem(
                ("strategies", index, "symbols"),
                f"unknown symbol(s) {', '.join(unknown)}; market_data has: {', '.join(sorted(available))}",
            ))
    return problems


def name_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Strategy names are unique, and at least one strategy is enabled."""
    problems, seen = [], set()
    for index, entry in enumerate(config.strategies):
        if entry.display_name in seen:
            problems.append(config.source.problem(
                ("strategies", index, "name"),
                f"duplicate strategy name {entry.display_name!r}; give each entry its own name",
            ))
        seen.add(entry.display_name)
    if not any(entry.enabled for entry in config.strategies):
        problems.append(config.source.problem(
            ("strategies",),
            f"no enabled strategy; add one, such as {{type: ma_crossover}} "
            f"(known strategies: {', '.join(known_strategies())})",
        ))
    return problems


def allocation_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Cash allocated to strategies does not exceed the starting cash."""
    allocated = sum((e.allocation for e in config.strategies if e.enabled and e.allocation), Decimal(0))
    if allocated <= config.broker.starting_cash:
        return []
    return [config.source.problem(
        ("strategies",),
        f"the allocations add up to {allocated}, more than broker.starting_cash {config.broker.starting_cash}",
    )]


CHECKS = (strategy_problems, symbol_problems, name_problems, allocation_problems)


def config_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Every cross-field problem, in the order of the lines they point at."""
    problems = [problem for check in CHECKS for problem in check(config)]
    return sorted(problems, key=lambda problem: problem.line or 0)


def check_config(config: RunnerConfig) -> None:
    """Raise `ConfigError` listing every cross-field problem, if there are any."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems)
