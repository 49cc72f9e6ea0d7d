"""Config loading and validation: the words a user sees when a config is wrong.

`load_config` checks the shape of the file (closed models, types, bounds, choices);
`check_config` checks what spans fields (strategy types and params, symbols, names).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from runner.config import RunnerConfig, load_config
from runner.errors import ConfigError, ConfigProblem
from runner.validators import check_config


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def check_problems(path: Path) -> list[ConfigProblem]:
    config = load_config(path)
    with pytest.raises(ConfigError) as info:
        check_config(config)
    return info.value.problems


def only(problems: list[ConfigProblem]) -> ConfigProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- the problem type itself ---------------------------------------------------------------


def test_problem_renders_file_line_key_path_and_message():
    problem = ConfigProblem("cfg.yaml", "strategies[0].params.fast", "must be an integer > 0, got -3", 12)
    assert str(problem) == "cfg.yaml:12: strategies[0].params.fast: must be an integer > 0, got -3"


def test_problem_without_line_or_key_path_leaves_them_out():
    assert str(ConfigProblem("cfg.yaml", "", "must be a mapping of sections, got a list")) == (
        "cfg.yaml: must be a mapping of sections, got a list"
    )
    assert str(ConfigProblem("", "", "config file not found: x.yaml")) == "config file not found: x.yaml"


def test_config_error_from_text_and_its_message_lists_every_problem():
    error = ConfigError([ConfigProblem("a.yaml", "run.speed", "bad", 2), ConfigProblem("a.yaml", "run.seed", "worse", 3)])
    assert str(error) == "a.yaml:2: run.speed: bad\na.yaml:3: run.seed: worse"
    assert ConfigError("plain words").problems == [ConfigProblem("", "", "plain words")]
    assert isinstance(error, ValueError)


# --- valid configs ---------------------------------------------------------------------------


def test_minimal_config_loads_with_defaults(tmp_path):
    config = load_config(write(tmp_path, "strategies: [{type: ma_crossover}]\n"))
    check_config(config)
    assert config.run.mode == "data"
    assert config.run.speed == 0
    assert config.run.max_ticks is None
    assert config.run.duration is None
    assert config.run.seed == 42
    assert config.market_data.source == "synthetic"
    assert list(config.market_data.symbols) == ["SYN"]
    assert config.market_data.interval == "1m"
    assert config.market_data.start == datetime(2024, 1, 2, tzinfo=UTC)
    assert config.broker.starting_cash == Decimal(100_000)
    assert config.broker.slippage_bps == 0
    assert config.broker.allow_short is False
    assert config.storage.url == "sqlite:///runs/runner.db"
    assert config.risk.default_quantity == 1
    [entry] = config.strategies
    assert entry.type == "ma_crossover"
    assert entry.display_name == "ma_crossover"
    assert entry.params == {}
    assert entry.enabled is True
    assert entry.symbols is None


def test_config_remembers_its_source(tmp_path):
    text = "strategies: [{type: buy_and_hold}]\n"
    path = write(tmp_path, text)
    config = load_config(path)
    assert config.source.path == str(path)
    assert config.source.text == text
    assert len(config.source.sha256) == 64


def test_empty_file_gives_defaults_and_fails_check_only_for_missing_strategy(tmp_path):
    path = write(tmp_path, "")
    config = load_config(path)
    assert config.model_dump() == RunnerConfig().model_dump()
    problem = only(check_problems(path))
    assert problem.key_path == "strategies"
    assert "no enabled strategy" in problem.message
    assert "{type: ma_crossover}" in problem.message
    assert "buy_and_hold" in problem.message


def test_comment_only_file_is_treated_as_empty(tmp_path):
    config = load_config(write(tmp_path, "# nothing here yet\n"))
    assert config.model_dump() == RunnerConfig().model_dump()


def test_symbols_as_a_list_of_names(tmp_path):
    config = load_config(write(tmp_path, "market_data:\n  symbols: [AAA, BBB]\nstrategies: [{type: buy_and_hold}]\n"))
    assert list(config.market_data.symbols) == ["AAA", "BBB"]
    assert config.market_data.symbols["AAA"].start_price == Decimal(100)
    check_config(config)


def test_symbols_as_a_mapping_of_parameters(tmp_path):
    config = load_config(write(tmp_path, (
        "market_data:\n"
        "  symbols:\n"
        "    AAA: {start_price: 12.5, drift: 0.1, volatility: 0.3}\n"
        "    BBB: {}\n"
        "strategies: [{type: buy_and_hold, symbols: [BBB]}]\n"
    )))
    aaa, bbb = config.market_data.symbols["AAA"], config.market_data.symbols["BBB"]
    assert aaa.start_price == Decimal("12.5")
    assert (aaa.drift, aaa.volatility) == (0.1, 0.3)
    assert bbb.start_price == Decimal(100)
    check_config(config)


def test_symbols_empty_list_is_rejected(tmp_path):
    problem = only(load_problems(write(tmp_path, "market_data:\n  symbols: []\n")))
    assert problem.key_path == "market_data.symbols"
    assert "at least one symbol" in problem.message


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("'2024-03-01'", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01 09:30:00", datetime(2024, 3, 1, 9, 30, tzinfo=UTC)),
        ("'2024-03-01T09:30:00'", datetime(2024, 3, 1, 9, 30, tzinfo=UTC)),
        ("2024-03-01T09:30:00Z", datetime(2024, 3, 1, 9, 30, tzinfo=UTC)),
        ("2024-03-01T09:30:00+02:00", datetime(2024, 3, 1, 7, 30, tzinfo=UTC)),
    ],
)
def test_start_is_taken_as_utc(tmp_path, start, expected):
    config = load_config(write(tmp_path, f"market_data:\n  start: {start}\n"))
    assert config.market_data.start == expected
    assert config.market_data.start.utcoffset().total_seconds() == 0


# --- file and syntax -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml") as info:
        load_config(missing)
    assert str(missing) in str(info.value)


def test_yaml_syntax_error_reports_line_and_column_and_shows_the_line(tmp_path):
    path = write(tmp_path, "run:\n  mode: data\n   speed: 1\nbroker: {}\n")
    problem = only(load_problems(path))
    text = str(problem)
    assert text.startswith(f"{path}:3:")
    assert (problem.file, problem.line, problem.column) == (str(path), 3, 9)
    assert "invalid YAML" in text
    assert "mapping values are not allowed here" in text
    assert "   speed: 1" in text  # the offending line is shown
    assert "^" in text  # with a pointer under the column


def test_yaml_syntax_error_in_flow_mapping(tmp_path):
    path = write(tmp_path, "run:\n  mode: data\nbroker: {starting_cash: 5\nrisk: {}\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml:4:\d+: invalid YAML") as info:
        load_config(path)
    assert "risk: {}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just words\n", "a string"), ("42\n", "int")],
)
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    problem = only(load_problems(write(tmp_path, text)))
    assert problem.message == f"must be a mapping of sections, got {kind}"


def test_section_must_be_a_mapping(tmp_path):
    problem = only(load_problems(write(tmp_path, "run: 5\n")))
    assert (problem.key_path, problem.line) == ("run", 1)
    assert problem.message == "must be a mapping, got 5"


# --- unknown keys ------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_closest(tmp_path):
    path = write(tmp_path, "run:\n  seed: 1\nbrokr:\n  starting_cash: 10\n")
    problem = only(load_problems(path))
    assert problem.key_path == "brokr"
    assert problem.line == 3
    assert "unknown key 'brokr'" in problem.message
    assert "did you mean 'broker'?" in problem.message
    assert "expected one of: broker, catalog, market_data, policy, risk, run, signals, storage, strategies" in problem.message
    assert str(problem).startswith(f"{path}:3: brokr: unknown key 'brokr'")


def test_unknown_nested_key_suggests_the_closest(tmp_path):
    problem = only(load_problems(write(tmp_path, "broker:\n  starting_cash: 10\n  slipage_bps: 3\n")))
    assert problem.key_path == "broker.slipage_bps"
    assert problem.line == 3
    assert "unknown key 'slipage_bps' (did you mean 'slippage_bps'?)" in problem.message
    assert "expected one of: allow_short, commission, commission_by_symbol, limit_fill, max_position, " in problem.message


def test_unknown_key_deeper_down(tmp_path):
    problem = only(load_problems(write(tmp_path, "broker:\n  commission:\n    per_shares: 0.01\n")))
    assert problem.key_path == "broker.commission.per_shares"
    assert "did you mean 'per_share'?" in problem.message


def test_unknown_key_in_a_symbol(tmp_path):
    problem = only(load_problems(write(tmp_path, "market_data:\n  symbols:\n    AAA: {start_pric: 5}\n")))
    assert problem.key_path == "market_data.symbols.AAA.start_pric"
    assert "did you mean 'start_price'?" in problem.message


def test_unknown_key_in_a_strategy_entry(tmp_path):
    problem = only(load_problems(write(tmp_path, "strategies:\n  - type: ma_crossover\n    parms: {fast: 3}\n")))
    assert problem.key_path == "strategies[0].parms"
    assert problem.line == 3
    assert "did you mean 'params'?" in problem.message


def test_unknown_key_without_a_close_match_still_lists_the_keys(tmp_path):
    problem = only(load_problems(write(tmp_path, "zzzz: 1\n")))
    assert "did you mean" not in problem.message
    assert "unknown key 'zzzz'; expected one of: broker, catalog, market_data" in problem.message


# --- types, bounds, choices ------------------------------------------------------------------


def test_wrong_type_string_for_max_ticks(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.max_ticks: must be an integer > 0, got 'lots'"):
        load_config(write(tmp_path, "run:\n  max_ticks: lots\n"))


def test_wrong_type_string_for_a_number(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.speed: must be a number >= 0(\.0)?, got 'fast'"):
        load_config(write(tmp_path, "run:\n  speed: fast\n"))


def test_negative_slippage_is_out_of_bounds(tmp_path):
    problem = only(load_problems(write(tmp_path, "broker:\n  slippage_bps: -1\n")))
    assert problem.key_path == "broker.slippage_bps"
    assert problem.message == "must be a number >= 0 and <= 10000, got -1"


def test_max_ticks_zero_is_out_of_bounds(tmp_path):
    path = write(tmp_path, "run:\n  max_ticks: 0\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml:2: run\.max_ticks: must be an integer > 0, got 0"):
        load_config(path)


def test_wrong_literal_choice_suggests_the_closest(tmp_path):
    problem = only(load_problems(write(tmp_path, "run:\n  mode: date\n")))
    assert problem.key_path == "run.mode"
    assert problem.message == "must be one of 'data', 'clock' (got 'date'; did you mean 'data'?)"


def test_bad_interval(tmp_path):
    problem = only(load_problems(write(tmp_path, "market_data:\n  interval: 7x\n")))
    assert problem.key_path == "market_data.interval"
    assert problem.line == 2
    assert "interval '7x' not understood" in problem.message
    assert "such as '1m', '15m', '1h', '1d'" in problem.message


def test_strategies_must_be_a_list(tmp_path):
    problem = only(load_problems(write(tmp_path, "strategies: {type: ma_crossover}\n")))
    assert problem.key_path == "strategies"
    assert "must be a list" in problem.message


def test_strategy_without_type(tmp_path):
    problem = only(load_problems(write(tmp_path, "strategies:\n  - name: x\n")))
    assert problem.key_path == "strategies[0]"
    assert problem.message.startswith(
        "name the strategy with exactly one of `type` (registered name), `module` (dotted module) "
        "or `file` (path to a .py file); got none"
    )
    assert problem.line == 2


# --- several problems, line numbers ------------------------------------------------------------


def test_several_problems_are_reported_together(tmp_path):
    path = write(tmp_path, (
        "run:\n"                   # 1
        "  max_ticks: 0\n"         # 2
        "  mode: date\n"           # 3
        "broker:\n"                # 4
        "  slippage_bps: -1\n"     # 5
        "brokr: {}\n"              # 6
    ))
    problems = load_problems(path)
    found = {p.key_path: p for p in problems}
    assert set(found) == {"run.max_ticks", "run.mode", "broker.slippage_bps", "brokr"}
    assert (found["run.max_ticks"].line, found["run.mode"].line) == (2, 3)
    assert (found["broker.slippage_bps"].line, found["brokr"].line) == (5, 6)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    for problem in problems:
        assert str(problem) in message.splitlines()


def test_line_number_points_at_the_offending_key(tmp_path):
    path = write(tmp_path, (
        "# a config with the mistake well down the file\n"   # 1
        "run:\n"                                              # 2
        "  mode: data\n"                                      # 3
        "  seed: 7\n"                                         # 4
        "market_data:\n"                                      # 5
        "  interval: 1m\n"                                    # 6
        "strategies:\n"                                       # 7
        "  - name: first\n"                                   # 8
        "    type: buy_and_hold\n"                            # 9
        "  - name: second\n"                                  # 10
        "    type: ma_crossover\n"                            # 11
        "    params:\n"                                       # 12
        "      slow: 20\n"                                    # 13
        "      fast: -3\n"                                    # 14
    ))
    problem = only(check_problems(path))
    assert problem.line == 14
    assert str(problem) == f"{path}:14: strategies[1].params.fast: must be an integer > 0, got -3"


def test_line_number_of_a_load_problem_in_a_later_section(tmp_path):
    path = write(tmp_path, "run:\n  seed: 1\n\nbroker:\n  starting_cash: 1000\n  allow_short: maybe\n")
    problem = only(load_problems(path))
    assert problem.key_path == "broker.allow_short"
    assert problem.line == 6
    assert "must be true or false" in problem.message


# --- cross-field checks ----------------------------------------------------------------------


def test_unknown_strategy_type_lists_the_known_ones(tmp_path):
    problem = only(check_problems(write(tmp_path, "strategies:\n  - type: ma_cross\n")))
    assert problem.key_path == "strategies[0].type"
    assert problem.line == 2
    assert "unknown strategy 'ma_cross'" in problem.message
    assert "ma_crossover" in problem.message
    assert "buy_and_hold" in problem.message


def test_strategy_param_out_of_bounds_exact_message(tmp_path):
    path = write(tmp_path, "strategies:\n  - type: ma_crossover\n    params:\n      fast: -3\n")
    problem = only(check_problems(path))
    assert f"{problem.key_path}: {problem.message}" == "strategies[0].params.fast: must be an integer > 0, got -3"
    assert problem.line == 4
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.params\.fast: must be an integer > 0, got -3"):
        check_config(load_config(path))


def test_unknown_strategy_param_suggests_the_closest(tmp_path):
    problem = only(check_problems(write(tmp_path, "strategies:\n  - type: ma_crossover\n    params: {fsat: 3}\n")))
    assert problem.key_path == "strategies[0].params.fsat"
    assert "unknown key 'fsat' (did you mean 'fast'?)" in problem.message
    assert "expected one of: fast, quantity, slow" in problem.message


def test_fast_not_below_slow(tmp_path):
    for fast, slow in ((30, 10), (10, 10)):
        problem = only(check_problems(write(
            tmp_path, f"strategies:\n  - type: ma_crossover\n    params: {{fast: {fast}, slow: {slow}}}\n"
        )))
        assert problem.key_path == "strategies[0].params"
        assert f"fast ({fast}) must be smaller than slow ({slow})" in problem.message


def test_buy_and_hold_param_wrong_type(tmp_path):
    problem = only(check_problems(write(tmp_path, "strategies:\n  - type: buy_and_hold\n    params: {quantity: lots}\n")))
    assert problem.key_path == "strategies[0].params.quantity"
    assert "got 'lots'" in problem.message


def test_unknown_symbol_in_a_strategy(tmp_path):
    path = write(tmp_path, (
        "market_data:\n"
        "  symbols: [AAA, BBB]\n"
        "strategies:\n"
        "  - type: buy_and_hold\n"
        "    symbols: [AAA, XYZ]\n"
    ))
    problem = only(check_problems(path))
    assert problem.key_path == "strategies[0].symbols"
    assert problem.line == 5
    assert "unknown symbol(s) XYZ" in problem.message
    assert "market_data has: AAA, BBB" in problem.message


def test_duplicate_strategy_names(tmp_path):
    path = write(tmp_path, (
        "strategies:\n"
        "  - {type: ma_crossover, name: alpha}\n"
        "  - {type: buy_and_hold, name: alpha}\n"
    ))
    problem = only(check_problems(path))
    assert problem.key_path == "strategies[1].name"
    assert problem.line == 3
    assert "duplicate strategy name 'alpha'" in problem.message


def test_duplicate_default_names_from_the_same_type(tmp_path):
    problem = only(check_problems(write(tmp_path, "strategies:\n  - type: ma_crossover\n  - type: ma_crossover\n")))
    assert "duplicate strategy name 'ma_crossover'" in problem.message


def test_same_type_twice_with_distinct_names_is_fine(tmp_path):
    check_config(load_config(write(tmp_path, (
        "strategies:\n"
        "  - {type: ma_crossover, name: a, params: {fast: 2, slow: 5}}\n"
        "  - {type: ma_crossover, name: b}\n"
    ))))


@pytest.mark.parametrize("text", ["strategies: []\n", "run: {seed: 1}\n"])
def test_no_strategies(tmp_path, text):
    problem = only(check_problems(write(tmp_path, text)))
    assert problem.key_path == "strategies"
    assert "no enabled strategy" in problem.message


def test_only_disabled_strategies(tmp_path):
    problem = only(check_problems(write(tmp_path, "strategies:\n  - type: ma_crossover\n    enabled: false\n")))
    assert "no enabled strategy" in problem.message


def test_several_cross_field_problems_are_reported_together(tmp_path):
    path = write(tmp_path, (
        "strategies:\n"                                           # 1
        "  - type: ma_crossover\n"                                # 2
        "    params: {fast: -3, slow: 0}\n"                       # 3
        "  - type: nope\n"                                        # 4
        "  - type: buy_and_hold\n"                                # 5
        "    symbols: [QQQ]\n"                                    # 6
    ))
    problems = check_problems(path)
    keys = [p.key_path for p in problems]
    assert keys == [
        "strategies[0].params.fast", "strategies[0].params.slow",
        "strategies[1].type", "strategies[2].symbols",
    ]
    assert [p.line for p in problems] == [3, 3, 4, 6]
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path))
    assert len(str(info.value).splitlines()) == 4
