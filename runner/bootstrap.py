"""The composition root: the only module that knows every concrete class.

`build(config)` turns a validated config into a ready `StrategyRunner`; `assemble(...)` does the
same from objects built in plain Python (see run_strategy_example.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from runner.broker.fees import CommissionModel
from runner.broker.fills import NextOpenFillModel
from runner.broker.paper import PaperBroker
from runner.clock import Clock, WallClock
from runner.config import ConfigSource, RunnerConfig
from runner.engine import StrategyRunner
from runner.errors import ConfigError, StrategyLoadError
from runner.events import RunStarted, SignalEvent
from runner.feeds import Feed
from runner.feeds.synthetic import SyntheticFeed
from runner.history import HistoryStore
from runner.host import StrategyHost
from runner.loop import TickLoop
from runner.pacing import Pacer
from runner.portfolio import Portfolio
from runner.registry import strategy_class
from runner.risk import RiskGate
from runner.storage import queries
from runner.storage.db import open_database
from runner.storage.recorder import Recorder
from runner.validators import check_config
from strategies.base import StrategyContext, StrategyInterface


@dataclass(frozen=True)
class StrategySetup:
    """One strategy to run: its name, class, parameters and symbols (None for all)."""

    name: str
    cls: type[StrategyInterface]
    params: BaseModel | dict[str, Any] | None = None
    symbols: Sequence[str] | None = None
    max_errors: int = 10


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def build(
    config: RunnerConfig, *, run_id: str | None = None, clock: Clock | None = None,
    on_signal: Callable[[SignalEvent], None] | None = None,
) -> StrategyRunner:
    """Build a runner from a config (already loaded with `load_config`).

    Raises:
        ConfigError: a cross-field check failed, or `run_id` is already in the database.
        StrategyLoadError: a strategy could not be created.
        StorageError: the database cannot be opened.
    """
    check_config(config)
    market, broker_config = config.market_data, config.broker
    feed = SyntheticFeed(
        market.symbols, market.interval, market.start, config.run.seed,
        market.price_precision, market.base_volume,
    )
    commission = broker_config.commission
    broker = PaperBroker(
        Portfolio(broker_config.starting_cash),
        NextOpenFillModel(broker_config.slippage_bps),
        CommissionModel(commission.per_share, commission.percent, commission.per_order, commission.minimum),
        feed.symbols, broker_config.allow_short,
    )
    strategies = [
        StrategySetup(entry.display_name, strategy_class(entry.type), entry.params, entry.symbols, entry.max_errors)
        for entry in config.strategies if entry.enabled
    ]
    run = config.run
    return assemble(
        feed=feed, broker=broker, strategies=strategies,
        risk=RiskGate(config.risk.default_quantity, config.risk.max_order_value),
        database=config.storage.url, equity_every=config.storage.equity_every,
        mode=run.mode, speed=run.speed, tick_interval=run.tick_interval,
        max_ticks=run.max_ticks, duration=run.duration, seed=run.seed,
        run_id=run_id, source=config.source, clock=clock, on_signal=on_signal,
    )


def assemble(
    *, feed: Feed, broker: PaperBroker, strategies: Sequence[StrategySetup],
    risk: RiskGate | None = None, database: str = "sqlite:///runs/runner.db",
    equity_every: int = 1, mode: str = "data", speed: float = 0.0, tick_interval: float = 1.0,
    max_ticks: int | None = None, duration: float | None = None, seed: int = 0,
    run_id: str | None = None, source: ConfigSource | None = None, clock: Clock | None = None,
    on_signal: Callable[[SignalEvent], None] | None = None,
) -> StrategyRunner:
    """Wire a runner from parts: the feed, the broker, the strategies and the run settings."""
    clock = clock or WallClock()
    run_id = run_id or new_run_id(clock.now())
    engine = open_database(database)
    if queries.run(engine, run_id) is not None:
        raise ConfigError(f"run id {run_id!r} already exists in {database}; choose another --run-id")
    recorder = Recorder(engine, run_id)
    history = HistoryStore(0)
    hosts: list[StrategyHost] = []
    loop = TickLoop(broker, hosts, risk or RiskGate(default_quantity=1), history, recorder, equity_every, on_signal)
    for setup in strategies:
        symbols = tuple(setup.symbols or feed.symbols)
        strategy = _create(setup, symbols, broker.portfolio, history)
        history.depth = max(history.depth, strategy.history_size())
        hosts.append(StrategyHost(
            setup.name, strategy, symbols, setup.max_errors, loop.record_fault,
            sees_all=set(symbols) == set(feed.symbols),
        ))
    source = source or ConfigSource("<python>", "")
    started = RunStarted(run_id, clock.now(), source.path, source.text, source.sha256, seed)
    return StrategyRunner(
        run_id, feed, loop, recorder, Pacer(clock, mode, speed, tick_interval), clock, started,
        max_ticks=max_ticks, duration=duration, database=database,
    )


def _create(
    setup: StrategySetup, symbols: tuple[str, ...], portfolio: Portfolio, history: HistoryStore,
) -> StrategyInterface:
    params = setup.params
    try:
        if not isinstance(params, BaseModel):
            params = setup.cls.Params.model_validate(params or {})
        context = StrategyContext(setup.name, params, symbols, portfolio, history)
        return setup.cls(context)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything while constructing
        raise StrategyLoadError(
            f"strategy {setup.name!r} ({setup.cls.__name__}) could not be created: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
