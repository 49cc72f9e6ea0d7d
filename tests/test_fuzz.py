"""Fuzz tests: arbitrary input to the config loader, the CSV/Parquet loader and signal coercion
gives a valid result or the documented error (ConfigError, DataError, SignalError; exit 2 from
`runner validate`), never another exception or a traceback.

Each target runs in two campaigns: a short one in every test run (a few hundred examples a
target), and a long one marked `fuzz`, which `python -m pytest` leaves out (pyproject's addopts
has `-m "not fuzz"`). The long one runs RUNNER_FUZZ_EXAMPLES examples a target (5000 by
default):

    RUNNER_FUZZ_EXAMPLES=5000 python -m pytest -m fuzz tests/test_fuzz.py -q

The inputs are unstructured (any text, any bytes, any object) and structured around what the
code expects (YAML built from the config's real key paths with random values; CSV and Parquet
frames with the real column names holding NaN, inf, negative numbers, text, repeated, unsorted
and mixed-zone times; signal dicts with the real keys holding any value), because random bytes
alone rarely get past the first check. The cases these campaigns found come last.
"""

from __future__ import annotations

import io
import os
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from cli.app import app
from runner.config import RunnerConfig, load_config_text
from runner.domain import Action, OrderType, Signal, TimeInForce
from runner.errors import ConfigError, DataError
from runner.feeds.replay import ReplayFeed, load_replay
from runner.registry import strategy_class
from runner.signals import LARGEST, SignalError, coerce_signal
from runner.validators import check_config

LONG = int(os.environ.get("RUNNER_FUZZ_EXAMPLES", "5000"))
CAMPAIGNS = [pytest.param(None, id="short"), pytest.param(LONG, id="long", marks=pytest.mark.fuzz)]


def fuzz(strategy: st.SearchStrategy, check, examples: int | None, short: int) -> None:
    """Run `check` on `examples` values drawn from `strategy` (`short` of them by default).

    The short campaign draws the same examples every run (derandomized), so the suite a commit
    is judged by never fails on a case no one has seen; the long one explores anew each time."""

    @settings(
        max_examples=examples or short, deadline=None, suppress_health_check=list(HealthCheck),
        derandomize=examples is None,
    )
    @given(strategy)
    def run(value):
        check(value)

    run()


# --- values of every kind -------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(), st.integers(-10**400, 10**400), st.floats(), st.decimals(),
    st.sampled_from([Decimal("sNaN"), Decimal("-Infinity"), Decimal("1e999999"), Decimal("-0"), 10**400, -(10**400)]),
    st.fractions(), st.complex_numbers(),
    st.builds(np.float64, st.floats()), st.builds(np.float32, st.floats(width=32)),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), NUMBERS, st.text(max_size=12), st.binary(max_size=12),
    st.dates(), st.datetimes(timezones=st.none() | st.just(UTC)),
    st.sampled_from(list(Action) + list(OrderType) + list(TimeInForce) + [object(), Ellipsis, type, len]),
)
ANYTHING = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.builds(np.array, st.lists(st.floats(), max_size=3)),
    ),
    max_leaves=8,
)


# --- (a) the config loader ------------------------------------------------------------------------


def loads_or_config_error(text: str) -> RunnerConfig | None:
    """A config, or None for a ConfigError; the cross-field checks run on what loads."""
    try:
        config = load_config_text(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
        return None
    assert isinstance(config, RunnerConfig)
    try:
        check_config(config)
    except ConfigError as exc:
        assert exc.problems
    return config


def _key_paths(model: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    """The key paths of the config models (a list item as index 0, a mapping entry as 'AAA')."""
    paths = []
    model = _bare(model)
    origin = typing.get_origin(model)
    if depth > 6:
        return paths
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(model):
            paths += _key_paths(member, prefix, depth + 1)
    elif origin is list:
        paths += _key_paths(typing.get_args(model)[0], prefix + (0,), depth + 1)
    elif origin is dict:
        paths += _key_paths(typing.get_args(model)[1], prefix + ("AAA",), depth + 1)
    elif isinstance(model, type) and issubclass(model, BaseModel):
        for name, field in model.model_fields.items():
            key = field.alias or name
            paths.append(prefix + (key,))
            paths += _key_paths(field.annotation, prefix + (key,), depth + 1)
    return paths


def _bare(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


PARAMS = {name for strategy in ("ma_crossover", "buy_and_hold", "rsi", "fib_rsi")
          for name in strategy_class(strategy).Params.model_fields}
KEY_PATHS = sorted(set(_key_paths(RunnerConfig)) | {("strategies", 0, "params", name) for name in PARAMS}, key=str)
SAFE_CODE_NAMES = ["nowhere.strategy", "strategies.no_such_module", "../missing.py", "missing.py", "", "1bad.name"]
YAML_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=16),
    st.sampled_from([
        "1m", "0m", "15m", "1h", "1d", "1w", "-1m", "30s", "1x", "m", "1e9d", "UTC", "Mars/Olympus",
        "America/New_York", "sqlite:///:memory:", "sqlite://", "postgres://x", "://", "ma_crossover",
        "buy_and_hold", "rsi", "fib_rsi", "csv", "parquet", "synthetic", "{symbol}.csv", "{symbol", "{0}",
        "data", "clock", "touch", "through", "inline", "threaded", "fail", "skip", "standard", "none",
        "2024-01-02T00:00:00Z", "2024-13-45", "1e309", "-0", "nan", ".inf",
    ]),
    st.dates(), st.datetimes(),
    st.lists(st.text(max_size=6) | st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6) | st.floats(), max_size=3),
)


def _put(data: dict, path: tuple, value: Any) -> None:
    """Set `value` at `path` (a list item is index 0), making the mappings and lists on the way."""
    node: Any = data
    for key, following in zip(path, path[1:]):
        kind = list if isinstance(following, int) else dict
        if isinstance(node, list):
            if not node or not isinstance(node[0], kind):
                node[:1] = [kind()]
            node = node[0]
        else:
            if not isinstance(node.get(key), kind):
                node[key] = kind()
            node = node[key]
    if isinstance(node, list):
        node[:1] = [value]
    else:
        node[path[-1]] = value


BASE = {
    "run": {"max_ticks": 10, "speed": 0},
    "market_data": {"symbols": ["AAA", "BBB"]},
    "strategies": [{"type": "ma_crossover", "params": {"fast": 2, "slow": 4}}],
}


@st.composite
def config_documents(draw) -> str:
    """A config built from BASE: values put at real key paths (code names kept harmless),
    sometimes a key removed or an unknown one added; dumped as YAML."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for _ in range(draw(st.integers(1, 6))):
        path = draw(st.sampled_from(KEY_PATHS))
        if path[-1] in ("module", "file"):
            value = draw(st.sampled_from(SAFE_CODE_NAMES))
        else:
            value = draw(YAML_VALUES)
        if draw(st.integers(0, 9)) == 0:
            path = path[:-1] + (draw(st.text(min_size=1, max_size=8)),)
        _put(data, path, value)
    if draw(st.integers(0, 3)) == 0:
        del data[draw(st.sampled_from(sorted(data)))]
    return yaml.safe_dump(data, allow_unicode=True)


YAML_TOKENS = st.sampled_from([
    "run", "market_data", "broker", "strategies", "storage", "risk", "type", "params", "symbols",
    "source", "interval", "path", "commission", "percent", "max_ticks", "speed", "seed", "name",
    ":", ": ", "- ", "  ", "    ", "\n", "\t", "[", "]", "{", "}", ",", "'", '"', "#", "&a ", "*a", "<<: *a",
    "!!str ", "!!int ", "!!float ", "!!binary ", "!!python/object:os.system ", "!!set ", "!!omap ", "? ",
    "|", ">", "---", "...", "%YAML 1.2", "~", "null", "true", "no", "1e309", ".nan", "-.inf", "0x1F",
    "0o17", "1_000", "2024-01-02", "2024-01-02T10:00:00+05:30", "csv", "synthetic", "ma_crossover",
    "\ufeff", "\x00", "\x85", "\u2028", "é",
])
YAML_TEXT = st.lists(YAML_TOKENS | st.text(max_size=4), max_size=40).map("".join)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_any_text_loads_as_a_config_or_raises_config_error(examples):
    fuzz(st.text(max_size=200) | YAML_TEXT, loads_or_config_error, examples, short=200)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_configs_with_random_values_at_real_key_paths_load_or_raise_config_error(examples):
    fuzz(config_documents(), loads_or_config_error, examples, short=200)


FILE_CONTENTS = (
    st.binary(max_size=200)
    | YAML_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))
    | config_documents().map(str.encode)
)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_runner_validate_exits_0_or_2_without_a_traceback(examples, tmp_path):
    path = tmp_path / "fuzz.yaml"

    def check(content: bytes) -> None:
        path.write_bytes(content)
        for extra in ([], ["--json"]):
            result = CliRunner().invoke(app, ["validate", str(path), *extra])
            assert result.exit_code in (0, 2), (result.output, result.exception)
            assert "Traceback" not in result.output
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception

    fuzz(FILE_CONTENTS, check, examples and examples // 10, short=40)


# --- (b) the CSV and Parquet loaders ---------------------------------------------------------------


def check_feed(feed: ReplayFeed) -> None:
    """What a loader returns replays bars that passed every row check."""
    assert feed.symbols
    previous, steps = None, 0
    for market in feed:
        steps += 1
        assert previous is None or market.timestamp > previous
        previous = market.timestamp
        assert market.timestamp.tzinfo is not None
        for bar in market.values():
            prices = (bar.open, bar.high, bar.low, bar.close)
            assert all(isinstance(p, Decimal) and p.is_finite() and p > 0 for p in prices), bar
            assert bar.low <= min(bar.open, bar.close) and bar.high >= max(bar.open, bar.close), bar
            assert bar.volume.is_finite() and bar.volume >= 0, bar
    assert steps == feed.total_steps


OPTIONS = st.fixed_dictionaries({
    "on_bad_rows": st.sampled_from(["fail", "skip"]),
    "interval": st.sampled_from([None, None, "1m", "1s", "1d"]),
    "timezone": st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
    "adjusted": st.booleans(),
    "price_precision": st.sampled_from([None, None, 0, 2, 4]),
})


def loads_or_data_error(folder: Path, file_format: str, name: str, options: dict, **where) -> None:
    try:
        feed = load_replay(file_format, folder, path=where.get("path", name), **options, **{
            k: v for k, v in where.items() if k != "path"
        })
    except DataError as exc:
        assert str(exc)
        return
    check_feed(feed)


TIMES = st.one_of(
    st.datetimes(datetime(1960, 1, 1), datetime(2250, 1, 1)).map(lambda t: t.isoformat()),
    st.datetimes(datetime(2024, 1, 1), datetime(2024, 1, 2), timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-5))],
    )).map(lambda t: t.isoformat()),
    st.integers(2024_01_01_0000, 2024_01_01_0100).map(lambda minute: f"2024-01-01 00:{minute % 60:02d}"),
    st.integers(1_704_067_200, 1_704_070_800).map(str),
    st.integers(1_704_067_200_000, 1_704_070_800_000).map(str),
    st.sampled_from(["20240102", "02/01/2024", "13/02/2024", "2024-03-10 02:30", "2024-11-03 01:30",
                     "never", "", "1e30", "nan", "-1", "0", "9999-12-31T00:00:00Z", "2024-01-02T10:00:00.500Z"]),
)
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-5, 500).map(str),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e309", "abc", "1,5", " 10 ", "0", "-0", "1e-300", "0.001"]),
    st.decimals(min_value=0, max_value=1000, places=3).map(str),
)
COLUMNS = ["timestamp", "date", "Date", "time", "open", "Open", "high", "low", "close", "Close",
           "Adj Close", "volume", "symbol", "ticker", "note", "", "Unnamed: 0"]


@st.composite
def csv_texts(draw) -> str:
    """CSV with some of the real columns (maybe repeated or unknown), rows of any cells."""
    columns = draw(st.lists(st.sampled_from(COLUMNS) | st.text(max_size=5), min_size=1, max_size=8))
    separator = draw(st.sampled_from([",", ",", ";", "\t"]))
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        cells = []
        for column in columns:
            if column.lower() in ("timestamp", "date", "time"):
                cells.append(draw(TIMES))
            elif column.lower() in ("symbol", "ticker"):
                cells.append(draw(st.sampled_from(["AAA", "BBB", "", "aaa"])))
            else:
                cells.append(draw(CELLS))
        rows.append(separator.join(cells))
    return "\n".join([separator.join(columns), *rows]) + draw(st.sampled_from(["", "\n", "\n\n"]))


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_any_bytes_or_text_as_a_csv_file_load_or_raise_data_error(examples, tmp_path):
    def check(drawn) -> None:
        content, options = drawn
        (tmp_path / "AAA.csv").write_bytes(content)
        loads_or_data_error(tmp_path, "csv", "AAA.csv", options)

    contents = st.binary(max_size=300) | csv_texts().map(str.encode)
    fuzz(st.tuples(contents, OPTIONS), check, examples, short=200)


@st.composite
def frames(draw) -> pd.DataFrame:
    """Frames with the real columns: numbers with NaN, inf, negatives and text mixed in; times
    repeated, unsorted, naive or in different zones, as text, datetimes or epoch numbers."""
    length = draw(st.integers(0, 10))
    start = datetime(2024, 1, 2, 14, 30)
    minutes = draw(st.lists(st.integers(0, 6), min_size=length, max_size=length))
    kind = draw(st.sampled_from(["naive", "utc", "mixed zones", "text", "epoch", "objects"]))
    zones = [UTC, timezone(timedelta(hours=-5)), None]
    times: list[Any] = [start + timedelta(minutes=m) for m in minutes]
    if kind == "utc":
        times = pd.to_datetime(times, utc=True)
    elif kind == "mixed zones":
        times = [t.replace(tzinfo=draw(st.sampled_from(zones))) for t in times]
    elif kind == "text":
        times = [t.isoformat() for t in times]
    elif kind == "epoch":
        times = [t.replace(tzinfo=UTC).timestamp() for t in times]
    elif kind == "objects":
        times = [draw(st.sampled_from([t, t.isoformat(), None, 3, "x"])) for t in times]
    data: dict[str, Any] = {draw(st.sampled_from(["timestamp", "date", "Datetime", "when"])): times}
    for column in draw(st.lists(st.sampled_from(["open", "high", "low", "close", "Adj Close", "volume", "symbol"]),
                                unique=True, min_size=0, max_size=7)):
        if column == "symbol":
            data[column] = draw(st.lists(st.sampled_from(["AAA", "BBB", None]), min_size=length, max_size=length))
            continue
        numbers = st.floats(allow_nan=True, allow_infinity=True) | st.floats(0.01, 500) | st.floats(0.0001, 0.01)
        values = draw(st.lists(numbers, min_size=length, max_size=length))
        if values and draw(st.integers(0, 4)) == 0:  # text in a numeric column
            values = [*values[:-1], draw(st.sampled_from(["abc", "", "1.5", None]))]
        data[column] = values
    return pd.DataFrame(data)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_frames_written_as_csv_and_parquet_load_or_raise_data_error(examples, tmp_path):
    def check(drawn) -> None:
        frame, options, index = drawn
        if index and len(frame.columns):
            frame = frame.set_index(frame.columns[0])
        frame.to_csv(tmp_path / "AAA.csv", index=index)
        loads_or_data_error(tmp_path, "csv", "AAA.csv", options)
        try:
            frame.to_parquet(tmp_path / "AAA.parquet")
        except Exception:  # noqa: BLE001 - pyarrow cannot write some mixed columns: not our input
            return
        loads_or_data_error(tmp_path, "parquet", "AAA.parquet", options)

    fuzz(st.tuples(frames(), OPTIONS, st.booleans()), check, examples, short=120)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_any_bytes_as_a_parquet_file_raise_data_error(examples, tmp_path):
    good = io.BytesIO()
    pd.DataFrame({"timestamp": ["2024-01-02T10:00Z"], "close": [1.0]}).to_parquet(good)

    def check(content: bytes) -> None:
        (tmp_path / "AAA.parquet").write_bytes(content)
        loads_or_data_error(tmp_path, "parquet", "AAA.parquet", {})

    damaged = st.builds(
        lambda cut, noise: good.getvalue()[:cut] + noise + good.getvalue()[cut + len(noise):],
        st.integers(0, len(good.getvalue())), st.binary(max_size=8),
    )
    fuzz(st.binary(max_size=300) | damaged, check, examples, short=100)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_any_path_pattern_loads_or_raises_data_error(examples, tmp_path):
    (tmp_path / "AAA.csv").write_text("timestamp,close\n2024-01-02T10:00Z,10\n2024-01-02T10:01Z,11\n")

    def check(drawn) -> None:
        pattern, symbols = drawn
        if "{symbol}" in pattern and not symbols:
            return  # the config refuses it: "a `path` with {symbol} needs `symbols`"
        loads_or_data_error(tmp_path, "csv", "", {}, path=pattern, symbols=symbols)

    patterns = st.lists(st.sampled_from(["{symbol}", "{", "}", "{0}", "{x}", "{symbol!r}", "{symbol:>9}",
                                         ".csv", "AAA", "/", "..", "%s"]) | st.text(max_size=3), max_size=5).map("".join)
    fuzz(st.tuples(patterns, st.sampled_from([None, ["AAA"], ["AAA", "BBB"], ["{x}"]])), check, examples, short=100)


# --- (c) signal coercion -----------------------------------------------------------------------------


def coerces_or_signal_error(raw: Any) -> None:
    try:
        signal = coerce_signal(raw)
    except SignalError as exc:
        assert str(exc)
        return
    assert isinstance(signal, Signal)
    assert isinstance(signal.symbol, str) and signal.symbol
    assert isinstance(signal.action, Action) and isinstance(signal.order_type, OrderType)
    assert isinstance(signal.time_in_force, TimeInForce) and isinstance(signal.reason, str)
    for value in (signal.quantity, signal.limit_price, signal.stop_price, signal.stop_loss, signal.take_profit):
        assert value is None or (isinstance(value, Decimal) and value.is_finite() and 0 < value < LARGEST)
    assert signal.confidence is None or (isinstance(signal.confidence, float) and 0 <= signal.confidence <= 1)


SIGNAL_KEYS = ["symbol", "action", "quantity", "order_type", "limit_price", "stop_price", "stop_loss",
               "take_profit", "confidence", "reason", "time_in_force"]
AMOUNTS = st.sampled_from([None, 1, 2.5, "3", Decimal("0.1"), np.float64(4.5), np.int64(2)])
VALID = {  # values that pass, so that the odd value in a dict is the one that is checked
    "symbol": st.sampled_from(["AAA", "btc-usd"]),
    "action": st.sampled_from(["BUY", "sell", " Close ", "HOLD", Action.BUY]),
    "order_type": st.sampled_from(["LIMIT", "market", "stop_limit", None, OrderType.STOP]),
    "time_in_force": st.sampled_from(["GTC", "day", "ioc", None]),
    "confidence": st.sampled_from([None, 0, 0.5, 1, 80, Decimal("0.3"), np.float32(0.25)]),
    "reason": st.sampled_from(["", "cross", None]),
}


@st.composite
def signal_dicts(draw) -> dict:
    """Dicts with the real keys, most holding a valid value and a few anything at all, and
    sometimes unknown keys of mixed kinds."""
    keys = draw(st.lists(st.sampled_from(SIGNAL_KEYS), unique=True, max_size=len(SIGNAL_KEYS)))
    data = {}
    for key in ["symbol", "action", *keys]:
        valid = VALID.get(key, AMOUNTS)
        data[key] = draw(valid if draw(st.integers(0, 3)) else valid | NUMBERS | ANYTHING)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # unknown keys of any hashable kind
        data[draw(st.text(max_size=5) | st.integers() | st.none() | st.tuples(st.integers()))] = draw(SCALARS)
    return data


SIGNAL_OBJECTS = signal_dicts().filter(lambda data: all(isinstance(key, str) for key in data)).map(
    lambda data: Signal(**{key: value for key, value in data.items() if key in SIGNAL_KEYS}),
)


@pytest.mark.parametrize("examples", CAMPAIGNS)
def test_any_object_coerces_to_a_signal_or_raises_signal_error(examples):
    fuzz(ANYTHING | signal_dicts() | SIGNAL_OBJECTS, coerces_or_signal_error, examples, short=300)


# --- cases the campaigns found -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("!!int", "fuzz.yaml:1:1: invalid YAML: cannot read '' as int"),
    ("run:\n  seed: !!int abc", "fuzz.yaml:2:9: invalid YAML: cannot read 'abc' as int"),
    ("run: {speed: !!float x}", "fuzz.yaml:1:14: invalid YAML: cannot read 'x' as float"),
    ("!!timestamp 2024-13-01", "cannot read '2024-13-01' as timestamp: month must be in 1..12"),
    ("!!set 0", "fuzz.yaml:1:1: invalid YAML: expected a mapping node, but found scalar"),
    ("{[1]: 2}", "fuzz.yaml:1:2: invalid YAML: a key must be a plain value, got a list"),
    ("? [a]\n: b", "fuzz.yaml:1:3: invalid YAML: a key must be a plain value, got a list"),
    ("run: &a {x: *a}", "invalid YAML: nested too deeply, or an alias (*name) inside the mapping or list its anchor"),
    ("a: " + "[" * 1500 + "]" * 1500, "invalid YAML: nested too deeply"),
])
def test_yaml_that_the_parser_cannot_construct_is_a_config_error(text, message):
    """Found by the config campaigns: tagged scalars their constructor cannot read raised
    IndexError or ValueError, a list or mapping as a key TypeError, a `!!set` of a scalar
    ValueError, and a recursive alias or deep nesting RecursionError, each a traceback from
    `runner validate`."""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "fuzz.yaml")
    assert message in str(caught.value)


def test_runner_validate_reports_an_unreadable_tagged_value_with_exit_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("run:\n  max_ticks: !!int\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert f"{tmp_path / 'bad.yaml'}:2:14: invalid YAML: cannot read '' as int" in result.output
    assert "Traceback" not in result.output


def test_a_path_pattern_with_other_braces_names_a_missing_file(tmp_path):
    """Found: `path: data/{symbol}{.csv` raised ValueError from str.format; only {symbol} is
    replaced now, and other braces are part of the file name."""
    with pytest.raises(DataError, match=r"data file not found: .*AAA\{\.csv"):
        load_replay("csv", tmp_path, path="{symbol}{.csv", symbols=["AAA"])
    (tmp_path / "AAA{x}.csv").write_text("timestamp,close\n2024-01-02T10:00Z,10\n2024-01-02T10:01Z,11\n")
    assert load_replay("csv", tmp_path, path="{symbol}{x}.csv", symbols=["AAA"]).total_steps == 2


def test_a_long_file_without_rows_is_a_data_error(tmp_path):
    """Found: a file with a symbol column and a header only raised ValueError (nothing to
    concatenate) instead of saying there is nothing to replay."""
    (tmp_path / "all.csv").write_text("timestamp,symbol,close\n")
    with pytest.raises(DataError, match="no rows to replay in .*all.csv"):
        load_replay("csv", tmp_path, path="all.csv")


def test_a_parquet_file_with_text_that_is_not_utf8_is_a_data_error(tmp_path):
    """Found: a damaged Parquet file whose text is not UTF-8 raised pyarrow's ArrowException
    when pandas decoded the column, after the read."""
    good = io.BytesIO()
    pd.DataFrame({"timestamp": ["2024-01-02T10:00Z"], "close": [1.0]}).to_parquet(good)
    damaged = good.getvalue()[:24] + b"\x80" + good.getvalue()[25:]
    (tmp_path / "AAA.parquet").write_bytes(damaged)
    with pytest.raises(DataError, match="cannot read parquet file"):
        load_replay("parquet", tmp_path, path="AAA.parquet")


def test_an_adj_close_of_zero_is_a_bad_row(tmp_path):
    """Found: with `adjusted: true` and no close column, the Adj Close (the close) was not
    checked, and a 0 in it replayed as a bar with a 0 close and NaN open, high and low."""
    (tmp_path / "AAA.csv").write_text("timestamp,Adj Close\n2024-01-02T14:30:00,0.0\n2024-01-02T14:31:00,10\n")
    with pytest.raises(DataError, match=r"AAA.csv:2: column close: close must be positive, got 0"):
        load_replay("csv", tmp_path, path="AAA.csv", adjusted=True)


def test_an_unadjusted_close_of_zero_is_a_bad_row_when_adjusting(tmp_path):
    """Found by the CI fuzz campaign: with `adjusted: true`, a Close of 0 beside a positive Adj
    Close, and no open, high or low columns, made the open, high and low (the close times Adj
    Close / Close) NaN, and the row replayed as a bar with NaN prices."""
    (tmp_path / "AAA.csv").write_text(
        "timestamp,close,Adj Close\n2024-01-02T14:30:00,0.0,1.0\n2024-01-02T14:31:00,10,5\n"
    )
    with pytest.raises(DataError, match=(
        r"AAA.csv:2: column open: open cannot be made from the close: the row's unadjusted Close is not a positive number"
    )):
        load_replay("csv", tmp_path, path="AAA.csv", adjusted=True)
    feed = load_replay("csv", tmp_path, path="AAA.csv", adjusted=True, on_bad_rows="skip", interval="1m")
    check_feed(feed)
    # Found with it: the missing columns were the Adj Close scaled once more (2.5, not 5).
    [bar] = [bar for market in feed for bar in market.values()]
    assert (bar.open, bar.high, bar.low, bar.close) == (Decimal("5"),) * 4


def test_a_price_that_rounds_to_zero_at_the_price_precision_is_a_bad_row(tmp_path):
    """Found while writing the feed property (prices > 0): `price_precision` rounds after the
    row checks, so a low of 0.004 at 2 places replayed as a price of 0."""
    (tmp_path / "AAA.csv").write_text(
        "timestamp,open,high,low,close\n2024-01-02T10:00Z,0.3,0.4,0.2,0.3\n2024-01-02T10:01Z,0.3,0.4,0.004,0.3\n"
    )
    with pytest.raises(DataError, match=r"AAA.csv:3: column low: low 0.004 rounds to 0 at market_data.price_precision 2"):
        load_replay("csv", tmp_path, path="AAA.csv", price_precision=2)
    feed = load_replay("csv", tmp_path, path="AAA.csv", price_precision=3)
    check_feed(feed)


@pytest.mark.parametrize(("raw", "message"), [
    ({"symbol": "AAA", "action": "BUY", "": None, 0: None}, "unknown signal key(s) '', 0"),
    ({"symbol": "AAA", "action": "BUY", "confidence": 10**400}, "confidence must be a number in 0..1"),
    ({"symbol": "AAA", "action": "BUY", "confidence": Decimal("sNaN")}, "confidence must be a number in 0..1 (or 0..100), got sNaN"),
])
def test_odd_signals_are_refused_with_the_reason(raw, message):
    """Found: unknown keys of mixed kinds raised TypeError (sorting them), and a confidence
    beyond floats or a signalling NaN raised OverflowError / ValueError. A strategy returning
    one stopped the whole run, as only SignalError is caught."""
    with pytest.raises(SignalError) as caught:
        coerce_signal(raw)
    assert message in str(caught.value)


def test_a_reason_of_any_kind_becomes_its_text():
    """Found: a reason such as a NumPy array raised ValueError (its truth value is ambiguous)."""
    assert coerce_signal({"symbol": "AAA", "action": "BUY", "reason": np.array([1.0, 2.0])}).reason == "[1. 2.]"
    assert coerce_signal({"symbol": "AAA", "action": "BUY", "reason": None}).reason == ""
