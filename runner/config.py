"""Typed, closed config models and `load_config(path)`.

Every section is a frozen pydantic model that forbids unknown keys, so a typo is an error
with a did-you-mean suggestion rather than a silently ignored setting. Errors name the file,
the line, the dotted key path, what was expected and what was found.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from runner.errors import ConfigError, ConfigProblem
from runner.intervals import interval_seconds

DEFAULT_DB_URL = "sqlite:///runs/runner.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(_Section):
    """How the loop is paced and when it ends."""

    mode: Literal["data", "clock"] = Field(
        "data",
        description="data: step through the feed (as fast as possible, or at `speed` x real "
        "time); clock: one step every `tick_interval` seconds of wall time.",
    )
    speed: float = Field(
        0.0, ge=0, description="Data mode only: 0 runs as fast as possible; N plays N x faster "
        "than the bar timestamps (speed 60 plays one 1m bar per second).",
    )
    tick_interval: float = Field(1.0, gt=0, description="Clock mode only: seconds between steps.")
    max_ticks: int | None = Field(None, gt=0, description="Stop after this many steps.")
    duration: float | None = Field(None, gt=0, description="Stop after this many wall seconds.")
    seed: int = Field(42, description="Seed of every random component; recorded with the run.")


class SyntheticSymbol(_Section):
    """Geometric Brownian motion parameters of one synthetic symbol (annualised)."""

    start_price: Decimal = Field(Decimal(100), gt=0, description="Price of the first bar's open.")
    drift: float = Field(0.0, description="Annualised drift, 0.05 for +5 % a year.")
    volatility: float = Field(0.2, ge=0, le=5, description="Annualised volatility, 0.2 for 20 %.")


class SyntheticFeedConfig(_Section):
    """Seeded synthetic OHLCV bars for any number of symbols."""

    source: Literal["synthetic"] = Field("synthetic", description="Where market data comes from.")
    symbols: dict[str, SyntheticSymbol] = Field(
        default_factory=lambda: {"SYN": SyntheticSymbol()},
        description="Symbols to generate: a list of names, or a mapping name -> "
        "{start_price, drift, volatility}.",
    )
    interval: str = Field("1m", description="Bar interval, such as 30s, 1m, 15m, 1h, 1d.")
    start: datetime = Field(
        datetime(2024, 1, 2, tzinfo=UTC), description="UTC open time of the first bar."
    )
    price_precision: int = Field(2, ge=0, le=8, description="Decimal places of generated prices.")
    base_volume: int = Field(10_000, gt=0, description="Mean volume of one bar.")

    @field_validator("symbols", mode="before")
    @classmethod
    def _list_of_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not all(isinstance(name, str) for name in value):
                raise ValueError("must be a list of symbol names or a mapping name -> parameters")
            return {name: {} for name in value}
        return value

    @field_validator("symbols")
    @classmethod
    def _at_least_one(cls, value: dict) -> dict:
        if not value:
            raise ValueError("must name at least one symbol")
        return value

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        interval_seconds(value)
        return value

    @field_validator("start", mode="before")
    @classmethod
    def _utc_start(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    @field_validator("start")
    @classmethod
    def _aware_start(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CommissionConfig(_Section):
    """Commission of one order: per_share x quantity + percent of notional + per_order,
    and at least `minimum`."""

    per_share: Decimal = Field(Decimal(0), ge=0, description="Currency per unit traded.")
    percent: Decimal = Field(
        Decimal(0), ge=0, le=100, description="Percent of notional: 0.1 means 0.1 %."
    )
    per_order: Decimal = Field(Decimal(0), ge=0, description="Flat amount per filled order.")
    minimum: Decimal = Field(Decimal(0), ge=0, description="Smallest commission of an order.")


class BrokerConfig(_Section):
    """The paper broker: starting cash, slippage, commission, shorting."""

    starting_cash: Decimal = Field(Decimal(100_000), gt=0, description="Cash at the start.")
    slippage_bps: Decimal = Field(
        Decimal(0), ge=0, le=10_000,
        description="Basis points moved against the trader on market fills (10 = 0.1 %).",
    )
    commission: CommissionConfig = Field(default_factory=CommissionConfig)
    allow_short: bool = Field(False, description="Allow selling more than the position holds.")


class StorageConfig(_Section):
    """Where records go."""

    url: str = Field(DEFAULT_DB_URL, description="SQLAlchemy URL of the database.")
    equity_every: int = Field(1, ge=1, description="Record an equity snapshot every N steps.")


class RiskConfig(_Section):
    """Sizing and limits applied to every signal before it becomes an order."""

    default_quantity: Decimal = Field(
        Decimal(1), gt=0, description="Quantity of a BUY signal that names none."
    )
    max_order_value: Decimal | None = Field(
        None, gt=0, description="Reject orders whose estimated notional exceeds this."
    )


class StrategyEntry(_Section):
    """One strategy to run."""

    type: str = Field(description="Registered strategy name, see `runner strategies`.")
    name: str | None = Field(None, description="Name in records and summaries; default: type.")
    symbols: list[str] | None = Field(None, description="Symbols it sees; default: all of them.")
    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's parameters.")
    enabled: bool = Field(True, description="false keeps the entry but does not run it.")
    max_errors: int = Field(
        10, ge=1, description="Consecutive errors after which the strategy is disabled."
    )

    @property
    def display_name(self) -> str:
        return self.name or self.type


@dataclass(frozen=True)
class ConfigSource:
    """The text a config came from, and the line of each key path in it."""

    path: str
    text: str
    lines: dict[tuple, int] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def line_of(self, loc: tuple) -> int | None:
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def problem(self, loc: tuple, message: str) -> ConfigProblem:
        return ConfigProblem(self.path, key_path(loc), message, self.line_of(loc))


class RunnerConfig(_Section):
    """A whole run: pacing, market data, broker, storage, risk and strategies."""

    run: RunConfig = Field(default_factory=RunConfig)
    market_data: SyntheticFeedConfig = Field(default_factory=SyntheticFeedConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    strategies: list[StrategyEntry] = Field(default_factory=list)

    _source: ConfigSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> ConfigSource:
        """The file this config was read from (an in-memory stand-in when built in Python)."""
        if self._source is None:
            return ConfigSource("<python>", self.model_dump_json(indent=2))
        return self._source

    def with_overrides(self, **sections: dict[str, Any]) -> RunnerConfig:
        """Return a copy with some fields of some sections replaced (`run={"seed": 7}`).

        Values are validated as if they had been in the file.
        """
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        config = _validate(data, self.source)
        config._source = self._source
        return config


def key_path(loc: tuple) -> str:
    """Render a location such as ('strategies', 0, 'params', 'fast') as `strategies[0].params.fast`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_config(path: str | Path) -> RunnerConfig:
    """Read, parse and validate a YAML config file.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML, or does not match
            the models; every problem found is listed with its file, line and key path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return load_config_text(text, str(path))


def load_config_text(text: str, name: str = "<config>") -> RunnerConfig:
    """Parse and validate YAML text; `name` stands for the file in messages."""
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(name, text, exc)]) from None
    source = ConfigSource(name, text, lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([source.problem((), f"must be a mapping of sections, got {_kind(data)}")])
    config = _validate(data, source)
    config._source = source
    return config


def _validate(data: dict, source: ConfigSource) -> RunnerConfig:
    try:
        return RunnerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, RunnerConfig, source)) from None


def validation_problems(
    exc: ValidationError, model: type[BaseModel], source: ConfigSource, prefix: tuple = ()
) -> list[ConfigProblem]:
    """Turn a pydantic error into problems that name the key path and what was expected.

    `model` is the class that was validated and `prefix` where its data sits in the file.
    """
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        problems.append(source.problem(prefix + loc, _describe(error, model, loc)))
    return problems


def _describe(error: dict, model: type[BaseModel], loc: tuple) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        allowed = sorted(_fields_at(model, loc[:-1]))
        hint = _suggestion(str(loc[-1]), allowed)
        return f"unknown key {loc[-1]!r}" + (f" (did you mean {hint!r}?)" if hint else "") + (
            f"; expected one of: {', '.join(allowed)}" if allowed else "; no keys are expected here"
        )
    if kind == "missing":
        return "is required but missing"
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", ""))
        hint = _suggestion(str(value), allowed)
        choices = ", ".join(repr(a) for a in allowed)
        return f"must be one of {choices} (got {value!r}" + (
            f"; did you mean {hint!r}?)" if hint else ")"
        )
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{message} (got {value!r})" if repr(value) not in message else message
    expected = _expected(_field_at(model, loc))
    return f"must be {expected}, got {value!r}" if expected else f"{error['msg']}, got {value!r}"


def _suggestion(word: str, choices: list[str]) -> str | None:
    """Return the choice closest to a mistyped word, if one is close enough."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional and Annotated so the underlying type shows."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field_at(model: type[BaseModel], loc: tuple):
    """Return the pydantic FieldInfo at `loc` inside `model`, or None when it cannot be told."""
    current: Any = model
    info = None
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or typing.get_origin(current) is dict:
            args = typing.get_args(current)
            current = args[-1] if args else Any
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = info.annotation
    return info


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    if not loc:
        return list(model.model_fields)
    info = _field_at(model, loc)
    target = _unwrap(info.annotation) if info else None
    while typing.get_origin(target) in (list, dict):
        target = _unwrap(typing.get_args(target)[-1])
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


_TYPE_WORDS = {
    int: "an integer", float: "a number", Decimal: "a number", bool: "true or false",
    str: "a string", datetime: "a date-time such as 2024-01-02T09:30:00Z",
}
_BOUND_SYMBOLS = {
    annotated_types.Gt: (">", "gt"), annotated_types.Ge: (">=", "ge"),
    annotated_types.Lt: ("<", "lt"), annotated_types.Le: ("<=", "le"),
}


def _expected(info) -> str | None:
    if info is None:
        return None
    base = _unwrap(info.annotation)
    origin = typing.get_origin(base)
    if origin is list:
        words = "a list"
    elif origin is dict or (isinstance(base, type) and issubclass(base, BaseModel)):
        words = "a mapping"
    else:
        words = _TYPE_WORDS.get(base)
    if words is None:
        return None
    bounds = []
    for item in info.metadata:
        for kind, (symbol, attr) in _BOUND_SYMBOLS.items():
            if isinstance(item, kind):
                bounds.append(f"{symbol} {getattr(item, attr)}")
    return " ".join([words, " and ".join(bounds)]).strip()


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _yaml_problem(name: str, text: str, exc: yaml.YAMLError) -> ConfigProblem:
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return ConfigProblem(name, "", f"invalid YAML: {reason}")
    line_text = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
    pointer = " " * mark.column + "^"
    return ConfigProblem(
        name, "", f"invalid YAML: {reason}\n    {line_text}\n    {pointer}",
        line=mark.line + 1, column=mark.column + 1,
    )


def _key_lines(node: yaml.Node | None, loc: tuple = ()) -> dict[tuple, int]:
    """Map every key path in a composed YAML document to its 1-based line."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = loc + (key.value,)
            lines[child] = key.start_mark.line + 1
            lines.update(_key_lines(value, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = loc + (index,)
            lines[child] = item.start_mark.line + 1
            lines.update(_key_lines(item, child))
    return lines
