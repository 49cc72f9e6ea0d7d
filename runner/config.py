"""Typed, closed config models and `load_config(path)`.

Every section is a frozen pydantic model that forbids unknown keys, so a typo is an error
with a did-you-mean suggestion rather than a silently ignored setting. Errors name the file,
the line, the dotted key path, what was expected and what was found.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import annotated_types
import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator,
)

from runner.errors import ConfigError, ConfigProblem
from runner.intervals import interval_seconds

DEFAULT_DB_URL = "sqlite:///runs/runner.db"
ENABLED_VARIABLE = "RUNNER_STRATEGIES_ENABLED"


def _interval(value: str) -> str:
    interval_seconds(value)  # raises ValueError naming what is expected
    return value


Interval = Annotated[str, AfterValidator(_interval)]
"""A bar interval such as 30s, 1m, 15m, 1h, 1d, 1w."""


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
    execution: Literal["inline", "threaded"] = Field(
        "inline", description="inline: strategies run in the loop's thread (the fastest for light "
        "strategies); threaded: each in a thread of its own. In data mode threaded strategies run "
        "in lockstep with the loop (the same records as inline); in clock mode nothing waits for "
        "them: a busy strategy gets only the newest data, and what it missed counts as overruns.",
    )
    strategy_timeout: float = Field(
        30.0, gt=0, description="Threaded only: seconds a strategy call may take before the "
        "strategy is marked stuck and disabled (the others go on).",
    )


class SyntheticSymbol(_Section):
    """Geometric Brownian motion parameters of one synthetic symbol (annualised)."""

    start_price: Decimal = Field(Decimal(100), gt=0, description="Price of the first bar's open.")
    drift: float = Field(0.0, ge=-10, le=10, description="Annualised drift, 0.05 for +5 % a year.")
    volatility: float = Field(0.2, ge=0, le=5, description="Annualised volatility, 0.2 for 20 %.")


class _MarketDataSection(_Section):
    """Settings every market data source shares."""

    derived_intervals: list[Interval] = Field(
        default_factory=list,
        description="Higher intervals built from the base bars, such as [5m, 15m, 1h, 1d]; a "
        "strategy's `interval` is added here by itself.",
    )
    timezone: str = Field(
        "UTC", description="Zone of timestamps written without one, and of daily candle boundaries.",
    )
    candle_grace_seconds: float = Field(
        0.0, ge=0, description="Clock-driven live feeds: seconds after a candle's end at which it "
        "counts as closed even if its last base bar has not arrived.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; expected an IANA name such as 'UTC', "
                "'America/New_York' or 'Europe/London'"
            ) from None
        return value


def _or_list_of_names(schema: dict) -> None:
    """In the JSON Schema, `symbols` may also be a plain list of names (see _list_of_names)."""
    mapping = {key: schema.pop(key) for key in ("type", "additionalProperties") if key in schema}
    schema["anyOf"] = [mapping, {"type": "array", "items": {"type": "string"}, "minItems": 1}]


class ScheduledSymbol(SyntheticSymbol):
    """A synthetic symbol that joins the run after a given step."""

    symbol: str = Field(min_length=1, description="Its name.")
    after_step: int = Field(
        ge=1, description="It is traded from the step after this one (a symbol there from the "
        "first step belongs under `symbols`).",
    )


class SyntheticFeedConfig(_MarketDataSection):
    """Seeded synthetic OHLCV bars for any number of symbols."""

    source: Literal["synthetic"] = Field("synthetic", description="Where market data comes from.")
    symbols: dict[str, SyntheticSymbol] = Field(
        default_factory=lambda: {"SYN": SyntheticSymbol()},
        description="Symbols to generate: a list of names, or a mapping name -> "
        "{start_price, drift, volatility}.",
        json_schema_extra=_or_list_of_names,
    )
    interval: Interval = Field("1m", description="Bar interval, such as 30s, 1m, 15m, 1h, 1d.")
    start: datetime = Field(
        datetime(2024, 1, 2, tzinfo=UTC), description="UTC open time of the first bar."
    )
    price_precision: int = Field(2, ge=0, le=8, description="Decimal places of generated prices.")
    base_volume: int = Field(10_000, gt=0, description="Mean volume of one bar.")
    add_symbols: list[ScheduledSymbol] = Field(
        default_factory=list, description="Symbols that join during the run, as a scanner would "
        "add them: each {symbol, after_step, start_price, drift, volatility}.",
    )

    @property
    def symbol_names(self) -> list[str]:
        return list(self.symbols)

    @model_validator(mode="after")
    def _new_symbols_are_new(self) -> SyntheticFeedConfig:
        seen = set(self.symbols)
        for scheduled in self.add_symbols:
            if scheduled.symbol in seen:
                raise ValueError(f"add_symbols: {scheduled.symbol} is already a symbol of the feed")
            seen.add(scheduled.symbol)
        return self

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


class ReplayFeedConfig(_MarketDataSection):
    """OHLCV bars replayed from CSV or Parquet files."""

    source: Literal["csv", "parquet"] = Field(description="File format of the data.")
    path: str | None = Field(
        None, description="One file, or a pattern with {symbol} such as data/{symbol}.csv; "
        "relative paths are taken from the config file's folder.",
    )
    files: dict[str, str] | None = Field(None, description="Explicit mapping symbol -> file.")
    symbols: list[str] | None = Field(
        None, description="Symbols to replay: required with a {symbol} pattern; with one file, "
        "a filter on its `symbol` column (default: every symbol in it).",
    )
    interval: Interval | None = Field(
        None, description="Interval of the rows; default: the smallest gap between them.",
    )
    adjusted: bool = Field(
        False, description="Use the `Adj Close` column as the close and scale open, high and "
        "low by the same factor.",
    )
    on_bad_rows: Literal["fail", "skip"] = Field(
        "fail", description="fail: stop before the run with every bad row listed; skip: drop "
        "them, count them, and report them in the summary and the run record.",
    )
    price_precision: int | None = Field(
        None, ge=0, le=12, description="Round prices to this many decimal places (default: as written).",
    )

    @property
    def symbol_names(self) -> list[str]:
        if self.files:
            return list(self.files)
        return list(self.symbols or ())

    @model_validator(mode="after")
    def _one_way_to_name_files(self) -> ReplayFeedConfig:
        if (self.path is None) == (self.files is None):
            raise ValueError("give either `path` (a file or a {symbol} pattern) or `files`, not both or neither")
        if self.path and "{symbol}" in self.path and not self.symbols:
            raise ValueError("a `path` with {symbol} needs `symbols`, the list of symbols to replay")
        if self.files is not None and not self.files:
            raise ValueError("`files` must map at least one symbol to a file")
        return self


class LiveFeedConfig(_MarketDataSection):
    """Closed OHLCV candles polled from an exchange's public API through ccxt (extra `live`)."""

    source: Literal["live"] = Field(description="Where market data comes from.")
    exchange: str = Field(min_length=1, description="The ccxt exchange id, such as binance (tested), kraken or bybit.")
    symbols: list[str] = Field(min_length=1, description="Exchange symbols in ccxt form, such as [BTC/USDT, ETH/USDT].")
    interval: Interval = Field("1m", description="Candle interval; one of the exchange's timeframes.")
    cache_ttl: float = Field(
        5.0, gt=0, description="Seconds an OHLCV response is reused (one request per symbol per "
        "TTL, whatever the number of strategies).",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds one request may take.")
    rate_limit_ms: int | None = Field(
        None, ge=0, description="Least milliseconds between requests; default: the exchange's own "
        "rateLimit as ccxt knows it.",
    )
    stale_after: float = Field(
        60.0, gt=0, description="Seconds without an answer from the exchange, or past a candle's "
        "due close without it, after which the data counts as stale (shown in the live view, "
        "--json and `runner health`).",
    )
    max_backoff: float = Field(60.0, gt=0, description="The longest wait between retries after network errors.")
    api_url: str | None = Field(
        None, description="Send every request to this base URL instead of the exchange's own "
        "(a proxy, or a test server such as http://127.0.0.1:8080).",
    )
    record_to: str | None = Field(
        None, description="Record the bars passed on to this .csv or .parquet file (relative "
        "to the config file), replayable with `source: csv|parquet`.",
    )

    @property
    def symbol_names(self) -> list[str]:
        return list(self.symbols)

    @field_validator("record_to")
    @classmethod
    def _recordable(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().endswith((".csv", ".parquet")):
            raise ValueError(f"must name a .csv or .parquet file, got {value!r}")
        return value

    @field_validator("api_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None:
            web_url(value)
        return value


def web_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host.

    Raises:
        ValueError: it is not.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    return value


MarketDataConfig = Annotated[
    SyntheticFeedConfig | ReplayFeedConfig | LiveFeedConfig, Field(discriminator="source")
]


class CommissionConfig(_Section):
    """Commission of one order: per_share x quantity + percent of notional + per_order,
    and at least `minimum`."""

    per_share: Decimal = Field(Decimal(0), ge=0, description="Currency per unit traded.")
    percent: Decimal = Field(
        Decimal(0), ge=0, le=100, description="Percent of notional: 0.1 means 0.1 %."
    )
    per_order: Decimal = Field(Decimal(0), ge=0, description="Flat amount per filled order.")
    minimum: Decimal = Field(Decimal(0), ge=0, description="Smallest commission of an order.")
    maximum_percent: Decimal | None = Field(
        None, ge=0, le=100, description="Largest commission of an order, in percent of its notional.",
    )


class CommissionOverride(_Section):
    """Commission keys of one symbol; the keys left out keep the broker's values."""

    per_share: Decimal | None = Field(None, ge=0)
    percent: Decimal | None = Field(None, ge=0, le=100)
    per_order: Decimal | None = Field(None, ge=0)
    minimum: Decimal | None = Field(None, ge=0)
    maximum_percent: Decimal | None = Field(None, ge=0, le=100)


class BrokerConfig(_Section):
    """The paper broker: starting cash, slippage, commission, shorting."""

    starting_cash: Decimal = Field(
        Decimal(100_000), gt=0, le=Decimal(10) ** 15, description="Cash at the start."
    )
    slippage_bps: Decimal = Field(
        Decimal(0), ge=0, le=10_000,
        description="Basis points moved against the trader on market fills (10 = 0.1 %).",
    )
    commission: CommissionConfig = Field(default_factory=CommissionConfig)
    commission_by_symbol: dict[str, CommissionOverride] = Field(
        default_factory=dict,
        description="Per-symbol commission keys that replace those of `commission` for that symbol.",
    )
    allow_short: bool = Field(False, description="Allow selling more than the position holds.")
    short_margin: Decimal = Field(
        Decimal("0.5"), ge=0, le=10, description="Share of a short's value held as margin on top "
        "of its proceeds (0.5: the account keeps 150 % of the short value in cash).",
    )
    limit_fill: Literal["touch", "through"] = Field(
        "touch", description="touch: a limit order fills when the bar reaches its price; "
        "through: the bar must trade beyond it.",
    )
    max_volume_participation: Decimal | None = Field(
        None, gt=0, le=1, description="Fill at most this share of a bar's volume per order (partial fills).",
    )
    max_position: Decimal | None = Field(
        None, gt=0, description="Largest position in units a strategy may hold in one symbol.",
    )

    def commission_for(self, symbol: str) -> CommissionConfig:
        """The commission settings of `symbol`: the broker's, with its overrides applied."""
        override = self.commission_by_symbol.get(symbol)
        if override is None:
            return self.commission
        return self.commission.model_copy(update=override.model_dump(exclude_none=True))


class StorageConfig(_Section):
    """Where records go."""

    url: str = Field(
        DEFAULT_DB_URL, description="SQLAlchemy URL of the database: sqlite:///runs/runner.db (a file), or "
        "postgresql+psycopg://USER@HOST:PORT/DATABASE for a PostgreSQL server many runners share "
        "(needs pip install 'runner[postgres]').",
    )
    equity_every: int = Field(1, ge=1, description="Record an equity snapshot every N steps.")

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        parse_database_url(value)
        return value


class TelemetryConfig(_Section):
    """Prometheus metrics served while the run goes on (needs the metrics extra)."""

    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus metrics at http://HOST:PORT/metrics "
        "while the run goes on; 0 picks a free port. Needs pip install 'runner[metrics]'.",
    )
    metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="The address the metrics endpoint listens on: "
        "127.0.0.1 (the default) serves this machine only; 0.0.0.0 or another address exposes "
        "the metrics to the network.",
    )


class WebhookConfig(_Section):
    """Where accepted signals are POSTed as JSON (see the README for the object)."""

    url: str = Field(description="The http:// or https:// URL that receives each accepted signal.")
    timeout: float = Field(5.0, gt=0, description="Seconds one POST may take.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Header name -> the environment variable holding its "
        "value, such as {Authorization: SIGNAL_TOKEN}; values are read at start, never stored.",
    )
    retries: int = Field(3, ge=0, le=10, description="Further attempts after a failed POST.")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry; doubled each time.")
    queue_size: int = Field(
        1000, ge=1, description="Signals waiting to be sent; when full, a new one is dropped "
        "and counted as a failure (the loop never waits).",
    )

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        return web_url(value)


class SignalsConfig(_Section):
    """What else happens with accepted signals."""

    webhook: WebhookConfig | None = Field(None, description="POST each accepted signal to a URL.")


class RiskConfig(_Section):
    """Sizing and limits applied to every signal before it becomes an order."""

    default_quantity: Decimal = Field(
        Decimal(1), gt=0, description="Quantity of a BUY signal that names none."
    )
    max_order_value: Decimal | None = Field(
        None, gt=0, description="Reject orders whose estimated notional exceeds this."
    )


RiskMode = Literal["normal", "aggressive", "defensive"]
Regime = Literal["trending", "ranging", "volatile"]


class PolicyConfig(_Section):
    """The policy and risk rules a run starts with; `runner policy set KEY VALUE` changes any
    of them while runs go (see runner/policy.py). The rules restrict orders that open, add to
    or flip a position; orders that only reduce one (CLOSE among them) always pass."""

    risk_mode: RiskMode = Field(
        "normal", description="normal: orders keep their size; aggressive / defensive: orders "
        "that open or add to a position are scaled by aggressive_factor / defensive_factor "
        "(rounded down to the decimal places of the quantity).",
    )
    aggressive_factor: Decimal = Field(
        Decimal("1.5"), ge=1, le=10, description="Size factor of risk_mode aggressive.",
    )
    defensive_factor: Decimal = Field(
        Decimal("0.5"), gt=0, le=1, description="Size factor of risk_mode defensive.",
    )
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Block signals whose confidence (0..1) is below this; "
        "signals without a confidence are not checked. Default: no minimum.",
    )
    allowlist: tuple[str, ...] | None = Field(
        None, description="The strategies (by name) that may open or add to positions; the "
        "others may only reduce them. Default: every strategy.",
    )
    max_position_value_per_symbol: Decimal | None = Field(
        None, gt=0, description="Block orders that would take the account's position in a "
        "symbol (all strategies together) above this value, at the last price.",
    )
    max_position_value_per_strategy: Decimal | None = Field(
        None, gt=0, description="Block orders that would take the value of a strategy's "
        "positions (long and short, at the last prices) above this.",
    )
    max_daily_loss_per_strategy: Decimal | None = Field(
        None, gt=0, description="Halt a strategy for the rest of the day (in "
        "market_data.timezone) once its net P&L has fallen this much since the day began.",
    )
    regime_filter: bool = Field(
        True, description="Apply each strategy's allowed_regimes (false: ignore them).",
    )
    regime_volatility: float = Field(
        0.01, gt=0, description="Regime volatile: ATR(14) / close above this.",
    )
    regime_trend: float = Field(
        0.2, gt=0, description="Regime trending (when not volatile): |slope of SMA(20) per "
        "bar over the last 10 bars| / ATR(14) above this.",
    )

    @field_validator("risk_mode", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allowlist", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """`a,b` and `[a, b]` written as one string (on the command line) are lists too."""
        if isinstance(value, str):
            return [name.strip() for name in value.strip().strip("[]").split(",") if name.strip()]
        return value


class Subscription(_Section):
    """One (symbol, interval) pair a strategy is called for."""

    symbol: str = Field(min_length=1, description="A symbol of the market data.")
    interval: Interval = Field(description="A candle interval: the data's own or a multiple of it.")


class SweepConfig(_Section):
    """A parameter sweep (`runner sweep`): the strategy whose parameters vary, and their values.
    Command-line options given to `runner sweep` take precedence over these keys."""

    strategy: str | None = Field(
        None, description="Name of the strategy to sweep; default: the only enabled one.",
    )
    params: dict[str, list[Any] | str | int | float] = Field(
        default_factory=dict, description="Parameter -> its values: a list, '5,10,20', or a "
        "range 'start:stop:step' that includes stop (30:90:10 is 30, 40, ..., 90).",
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="local: a process pool on this machine; ray: Ray tasks (extra `distributed`).",
    )
    workers: int | None = Field(
        None, ge=1, description="Replays at once; default: the machine's CPUs (local) or the cluster's (ray).",
    )
    ray_address: str | None = Field(
        None, description="host:port of a Ray cluster to join (executor ray); default: start a local Ray.",
    )
    max_runs: int = Field(
        10_000, ge=1, description="Refuse a grid of more combinations than this unless --yes is given.",
    )


class StrategyEntry(_Section):
    """One strategy to run, named by exactly one of `type`, `module` or `file`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str | None = Field(None, description="Registered strategy name, see `runner strategies list`.")
    module: str | None = Field(None, description="Dotted module holding the strategy class.")
    file: str | None = Field(
        None, description="A .py file holding the strategy class (relative to the config file).",
    )
    class_name: str | None = Field(
        None, alias="class", description="The class in `module` or `file`; default: the one "
        "StrategyInterface subclass defined there.",
    )
    validator: str = Field("standard", description="Signal validator, see `runner strategies list`.")
    name: str | None = Field(None, description="Name in records and summaries; default: type.")
    symbols: list[str] | None = Field(
        None, min_length=1, description="Symbols it sees; default (when left out): all of them.",
    )
    interval: Interval | None = Field(
        None, description="Candle interval it runs on (called once per closed candle); default: "
        "the base interval of the market data.",
    )
    subscriptions: list[Subscription] | None = Field(
        None, min_length=1, description="Explicit (symbol, interval) pairs it is called for, "
        "instead of `symbols` x `interval`; the first pair's interval is its own (history, "
        "warmup).",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's parameters.")
    enabled: bool = Field(True, description="false keeps the entry but does not run it.")
    max_errors: int = Field(
        10, ge=1, description="Consecutive errors after which the strategy is disabled."
    )
    allocation: Decimal | None = Field(
        None, gt=0, description="Cash set aside for this strategy alone; default: it trades "
        "from the pool shared by every strategy without an allocation.",
    )
    allowed_regimes: list[Regime] | None = Field(
        None, min_length=1, description="Market regimes in which it may open or add to "
        "positions, judged per signal on the signal's symbol at the strategy's interval (see "
        "policy.regime_filter); default: every regime.",
    )

    @model_validator(mode="after")
    def _one_way_to_load(self) -> StrategyEntry:
        given = [key for key in ("type", "module", "file") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError(
                "name the strategy with exactly one of `type` (registered name), `module` "
                f"(dotted module) or `file` (path to a .py file); got {', '.join(given) or 'none'}"
            )
        if self.class_name and self.type:
            raise ValueError("`class` goes with `module` or `file`, not with `type`")
        if self.subscriptions and (self.symbols or self.interval):
            raise ValueError("give either `subscriptions` or `symbols`/`interval`, not both")
        return self

    def routes(self, all_symbols: Sequence[str], base_interval: str) -> dict[str, tuple[str, ...]]:
        """Its subscriptions as symbols per interval, its own interval first."""
        if not self.subscriptions:
            return {self.interval or base_interval: tuple(self.symbols or all_symbols)}
        routes: dict[str, tuple[str, ...]] = {}
        for pair in self.subscriptions:
            routes[pair.interval] = tuple(dict.fromkeys((*routes.get(pair.interval, ()), pair.symbol)))
        return routes

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.type:
            return self.type
        return self.class_name or (self.module or "").rpartition(".")[2] or Path(self.file).stem


@dataclass(frozen=True)
class ConfigSource:
    """The text a config came from, and the line of each key path in it."""

    path: str
    text: str
    lines: dict[tuple, int] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the config start from: the file's, else the current one."""
        return Path(self.path).parent if self.path not in ("<python>", "<config>") else Path.cwd()

    def line_of(self, loc: tuple) -> int | None:
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def problem(self, loc: tuple, message: str) -> ConfigProblem:
        return ConfigProblem(self.path, key_path(loc), message, self.line_of(loc))


class CatalogConfig(_Section):
    """How a run of `strategies_from: catalog` follows the strategy catalogue (runner/catalog.py)."""

    refresh_interval: float = Field(
        300.0, gt=0, description="Seconds between full re-reads of the catalogue; a `runner catalog "
        "promote` or `archive` is noticed within a second anyway.",
    )


class RunnerConfig(_Section):
    """A whole run: pacing, market data, broker, storage, risk, policy, strategies and telemetry."""

    run: RunConfig = Field(default_factory=RunConfig)
    market_data: MarketDataConfig = Field(default_factory=SyntheticFeedConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    strategies: list[StrategyEntry] = Field(default_factory=list)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    strategies_from: Literal["config", "catalog"] = Field(
        "config", description="config: run the `strategies` list; catalog: run every LIVE entry of "
        "the strategy catalogue in the run's database, starting and stopping them as they are "
        "promoted or archived (`strategies` must then be empty).",
    )
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    sweep: SweepConfig | None = Field(None, description="A parameter sweep, used by `runner sweep` only.")

    _source: ConfigSource | None = PrivateAttr(default=None)

    @field_validator("market_data", mode="before")
    @classmethod
    def _synthetic_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "source" not in value:
            return {"source": "synthetic", **value}
        return value

    @property
    def source(self) -> ConfigSource:
        """The file this config was read from (an in-memory stand-in when built in Python)."""
        if self._source is None:
            return ConfigSource("<python>", self.model_dump_json(indent=2))
        return self._source

    def enabled_strategies(self, environ: Mapping[str, str] | None = None) -> list[tuple[int, StrategyEntry]]:
        """The entries to run, with their index: those with `enabled: true`, or, when the
        environment variable RUNNER_STRATEGIES_ENABLED lists names (a,b), exactly those.

        Raises:
            ConfigError: the variable names a strategy the config does not have.
        """
        listed = (os.environ if environ is None else environ).get(ENABLED_VARIABLE, "").strip()
        entries = list(enumerate(self.strategies))
        if not listed:
            return [(i, e) for i, e in entries if e.enabled]
        wanted = [name.strip() for name in listed.split(",") if name.strip()]
        known = [e.display_name for _, e in entries]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise ConfigError(
                f"{ENABLED_VARIABLE} names {', '.join(map(repr, unknown))}, not in {self.source.path}; "
                f"its strategies are: {', '.join(known) or 'none'}"
            )
        return [(i, e) for i, e in entries if e.display_name in wanted]

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


SUPPORTED_DATABASES = ("sqlite", "postgresql")


def parse_database_url(url: str) -> URL:
    """Parse a storage URL.

    Raises:
        ValueError: it is not a URL, or names a database the runner does not support.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL: {url!r} (expected e.g. sqlite:///runs/runner.db)") from None
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}; supported: {', '.join(SUPPORTED_DATABASES)}"
        )
    return parsed


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
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(name, text, exc)]) from None
    except RecursionError:  # PyYAML parses recursively, and an alias may hold its own anchor
        raise ConfigError([ConfigProblem(
            name, "", "invalid YAML: nested too deeply, or an alias (*name) inside the mapping or "
            "list its anchor (&name) marks",
        )]) from None
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
        loc, message = _describe(error, model)
        problems.append(source.problem(prefix + loc, message))
    return problems


def _describe(error: dict, model: type[BaseModel]) -> tuple[tuple, str]:
    """Return the key path of an error (union tags removed) and what it says to the user."""
    kind, value = error["type"], error.get("input")
    loc, info, target = _walk(model, tuple(error["loc"]))
    if kind == "extra_forbidden":
        allowed = sorted(_keys_at(model, tuple(error["loc"])[:-1]))
        hint = suggestion(str(loc[-1]), allowed)
        return loc, f"unknown key {loc[-1]!r}" + (f" (did you mean {hint!r}?)" if hint else "") + (
            f"; expected one of: {', '.join(allowed)}" if allowed else "; no keys are expected here"
        )
    if kind == "missing":
        return loc, "is required but missing"
    if kind in ("literal_error", "enum", "union_tag_invalid"):
        ctx = error.get("ctx", {})
        if kind == "union_tag_invalid":
            loc, value = loc + (ctx.get("discriminator", "").strip("'"),), ctx.get("tag")
        allowed = re.findall(r"'([^']*)'", ctx.get("expected", "") or ctx.get("expected_tags", ""))
        hint = suggestion(str(value), allowed)
        choices = ", ".join(repr(a) for a in allowed)
        return loc, f"must be one of {choices} (got {value!r}" + (
            f"; did you mean {hint!r}?)" if hint else ")"
        )
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        shown = isinstance(value, dict) or repr(value) in message
        return loc, message if shown else f"{message} (got {value!r})"
    expected = _expected(info, target)
    return loc, f"must be {expected}, got {value!r}" if expected else f"{error['msg']}, got {value!r}"


def suggestion(word: str, choices: list[str]) -> str | None:
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


def _tagged_members(annotation: Any) -> dict[str, type[BaseModel]]:
    """For a union of models told apart by `source`, map each tag to its model."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return {}
    members = {}
    for member in typing.get_args(annotation):
        field = getattr(member, "model_fields", {}).get("source")
        for tag in typing.get_args(field.annotation) if field else ():
            members[tag] = member
    return members


def _walk(model: type[BaseModel], loc: tuple) -> tuple[tuple, Any, Any]:
    """Follow `loc` through the models.

    Returns the path with union tags removed, the FieldInfo of its last key (None when it
    cannot be told), and the type found there.
    """
    current: Any = model
    info, clean = None, []
    for index, part in enumerate(loc):
        current = _unwrap(current)
        members = _tagged_members(current)
        if members and part in members:
            current = members[part]
            continue
        clean.append(part)
        if isinstance(part, int) or typing.get_origin(current) in (list, dict):
            args = typing.get_args(current)
            current, info = (args[-1] if args else Any), None
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return tuple(clean) + tuple(loc[index + 1:]), None, None
        info, current = field, field.annotation
    return tuple(clean), info, _unwrap(current)


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed in the mapping found at `loc`."""
    _, _, target = _walk(model, loc)
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


def _expected(info, target: Any) -> str | None:
    """Say what a field (or, for a list item, its type) expects: "an integer > 0"."""
    base = _unwrap(info.annotation) if info is not None else target
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
    for item in info.metadata if info is not None else ():
        for kind, (symbol, attr) in _BOUND_SYMBOLS.items():
            if isinstance(item, kind):
                bounds.append(f"{symbol} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen):
            bounds.append(f"of at least {item.min_length} item{'s' if item.min_length != 1 else ''}")
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            # A tagged scalar its constructor cannot read (`!!int` alone, `!!float x`).
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {node.tag.rpartition(':')[2]}: {exc}", node.start_mark,
            ) from None

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):  # `!!set 0`: the base class says what is wrong
            return super().construct_mapping(node, deep)
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, got {_kind(key)}", key_node.start_mark,
                ) from None
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


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
