"""Cross-field checks of a config, each a small named function returning its problems."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import ValidationError

from runner.config import RunnerConfig, suggestion, validation_problems
from runner.errors import ConfigError, ConfigProblem, StrategyLoadError
from runner.registry import entry_class, known_strategies
from runner.risk import validators


def strategy_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Each strategy can be found (by type, module or file), its params are valid for it, and
    its signal validator exists."""
    source, problems = config.source, []
    for index, entry in enumerate(config.strategies):
        loc = ("strategies", index)
        if entry.validator not in validators():
            problems.append(source.problem(
                loc + ("validator",),
                f"unknown validator {entry.validator!r}; known validators: {', '.join(sorted(validators()))}",
            ))
        try:
            cls = entry_class(entry, source.base_dir)
        except StrategyLoadError as exc:
            route = "type" if entry.type else "module" if entry.module else "file"
            problems.append(source.problem(loc + (route,), str(exc)))
            continue
        try:
            cls.Params.model_validate(entry.params)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, cls.Params, source, loc + ("params",)))
    return problems


def symbol_problems(config: RunnerConfig, available: Iterable[str] | None = None) -> list[ConfigProblem]:
    """Every symbol a strategy names exists in the market data: the symbols the config lists,
    or those of the data once it is read (`available`, for one long file of many symbols)."""
    available = set(config.market_data.symbol_names if available is None else available)
    if not available:
        return []
    problems = []
    has = f"market_data has: {', '.join(sorted(available))}"
    for index, entry in enumerate(config.strategies):
        unknown = [s for s in entry.symbols or () if s not in available]
        if unknown:
            problems.append(config.source.problem(
                ("strategies", index, "symbols"), f"unknown symbol(s) {', '.join(unknown)}; {has}",
            ))
        for number, pair in enumerate(entry.subscriptions or ()):
            if pair.symbol not in available:
                problems.append(config.source.problem(
                    ("strategies", index, "subscriptions", number, "symbol"), f"unknown symbol {pair.symbol}; {has}",
                ))
    return problems


def name_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Strategy names are unique, and at least one strategy is enabled (by the config, or by
    RUNNER_STRATEGIES_ENABLED)."""
    problems, seen = [], set()
    for index, entry in enumerate(config.strategies):
        if entry.display_name in seen:
            problems.append(config.source.problem(
                ("strategies", index, "name"),
                f"duplicate strategy name {entry.display_name!r}; give each entry its own name",
            ))
        seen.add(entry.display_name)
    if config.strategies_from == "catalog":
        return problems + catalog_problems(config)
    try:
        enabled = config.enabled_strategies()
    except ConfigError as exc:
        return problems + [config.source.problem(("strategies",), str(p)) for p in exc.problems]
    if not enabled:
        problems.append(config.source.problem(
            ("strategies",),
            f"no enabled strategy; add one, such as {{type: ma_crossover}} "
            f"(known strategies: {', '.join(known_strategies())})",
        ))
    return problems


def catalog_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """A run of the catalogue's strategies takes none from the config (the catalogue may hold
    no LIVE entry yet: the run then waits for one to be promoted)."""
    if not config.strategies:
        return []
    return [config.source.problem(
        ("strategies",),
        "must be empty with strategies_from: catalog (the run takes the catalogue's LIVE entries); "
        "add these with `runner catalog add`, or set strategies_from: config",
    )]


def allocation_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Cash allocated to strategies does not exceed the starting cash."""
    try:
        enabled = [entry for _, entry in config.enabled_strategies()]
    except ConfigError:
        return []  # name_problems reports the variable
    allocated = sum((e.allocation for e in enabled if e.allocation), Decimal(0))
    if allocated <= config.broker.starting_cash:
        return []
    return [config.source.problem(
        ("strategies",),
        f"the allocations add up to {allocated}, more than broker.starting_cash {config.broker.starting_cash}",
    )]


def policy_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Every strategy policy.allowlist names is a strategy of the config (a catalogue run's
    strategies are known only as it runs)."""
    allowlist = config.policy.allowlist
    if config.strategies_from == "catalog":
        return []
    names = [entry.display_name for entry in config.strategies]
    problems = []
    for index, name in enumerate(allowlist or ()):
        if name not in names:
            hint = suggestion(name, names)
            problems.append(config.source.problem(
                ("policy", "allowlist", index),
                f"unknown strategy {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                + f"; the config's strategies: {', '.join(names) or 'none'}",
            ))
    return problems


def live_data_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Live market data is clock-driven: the loop steps every run.tick_interval seconds."""
    if config.market_data.source != "live" or config.run.mode == "clock":
        return []
    return [config.source.problem(
        ("run", "mode"),
        f"market_data.source live needs run.mode: clock (one step every run.tick_interval "
        f"seconds), got {config.run.mode!r}",
    )]


CHECKS = (strategy_problems, symbol_problems, name_problems, allocation_problems, policy_problems)
CHECKS += (live_data_problems,)


def config_problems(config: RunnerConfig) -> list[ConfigProblem]:
    """Every cross-field problem, in the order of the lines they point at."""
    problems = [problem for check in CHECKS for problem in check(config)]
    return sorted(problems, key=lambda problem: problem.line or 0)


def check_config(config: RunnerConfig) -> None:
    """Raise `ConfigError` listing every cross-field problem, if there are any."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems)
