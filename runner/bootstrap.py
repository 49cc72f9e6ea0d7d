"""The composition root: the only module that knows every concrete class.

`build(config)` turns a validated config into a ready `StrategyRunner`; `assemble(...)` does the
same from objects built in plain Python (see run_strategy_example.py).
"""

from __future__ import annotations

import os
import secrets
from contextlib import AbstractContextManager
from pathlib import Path
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from runner.broker import Broker
from runner.broker.fees import fee_schedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.clock import Clock, WallClock
from runner.bars import CandleAggregator
from runner.config import (
    ConfigSource, LiveFeedConfig, PolicyConfig, RunnerConfig, StrategyEntry, SyntheticFeedConfig,
)
from runner.catalog import live_entries
from runner.catalog_sync import CatalogSync
from runner.storage import catalog_store
from runner.storage.catalog_store import CatalogWatcher
from runner.engine import StrategyRunner
from runner.errors import ConfigError, StrategyLoadError
from runner.events import RunStarted, SignalEvent
from runner.feeds import Feed
from runner.feeds.synthetic import SyntheticFeed
from runner.feeds.exchange import open_exchange
from runner.feeds.live import LiveFeed
from runner.feeds.recording import BarRecording
from runner.history import HistoryStore
from runner.host import StrategyHost
from runner.intervals import interval_seconds
from runner.loop import TickLoop
from runner.manifest import DataInputs, RunManifest, build_manifest
from runner.pacing import Pacer
from runner.policy import PolicyGate, starting_policy
from runner.portfolio import Portfolio
from runner.regime import REGIME_BARS
from runner.registry import entry_class
from runner.risk import RiskGate, SignalValidator, signal_validator
from runner.storage import queries
from runner.storage.db import describe, is_in_memory, open_database
from runner.storage.policy_store import PolicyWatcher, read_settings
from runner.storage.recorder import Recorder
from runner.threaded import ThreadedHost
from runner.validators import check_config, symbol_problems
from runner.webhook import SignalWebhook
from strategies.base import StrategyContext, StrategyInterface


@dataclass(frozen=True)
class StrategySetup:
    """One strategy to run: its name, class, parameters, symbols (None for all), interval
    (None for the feed's own) and the market regimes it may open positions in (None for all)."""

    name: str
    cls: type[StrategyInterface]
    params: BaseModel | dict[str, Any] | None = None
    symbols: Sequence[str] | None = None
    max_errors: int = 10
    interval: str | None = None
    validator: str = "standard"
    subscriptions: dict[str, Sequence[str]] | None = None  # symbols per interval, instead of symbols x interval
    allowed_regimes: Sequence[str] | None = None


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def build(
    config: RunnerConfig, *, run_id: str | None = None, clock: Clock | None = None,
    on_signal: Callable[[SignalEvent], None] | None = None, replay_of: str = "", resuming: bool = False,
    feed: Feed | None = None, data_inputs: DataInputs | None = None,
) -> StrategyRunner:
    """Build a runner from a config (already loaded with `load_config`).

    The run's manifest (runner/manifest.py) is made here: the data files, the strategy sources
    and the model files are hashed before the run starts. `replay_of` names the run this one
    replays (`runner replay`). `resuming` builds the run `run_id` already recorded, to continue it
    (runner/resume.py). A parameter sweep passes the `feed` it loaded once for all its runs, and
    the `data_inputs` of its manifest (the data files hashed once, by the driver).

    Raises:
        ConfigError: a cross-field check failed, or `run_id` is already in the database.
        StrategyLoadError: a strategy could not be created.
        StorageError: the database cannot be opened.
    """
    check_config(config)
    enabled = [entry for _, entry in config.enabled_strategies()]
    clock = clock or WallClock()
    run_id = run_id or new_run_id(clock.now())
    headers = _webhook_headers(config)
    if feed is None:
        feed = _live_feed(config, clock, run_id) if isinstance(config.market_data, LiveFeedConfig) else load_feed(config)
    _check_against_data(config, feed)
    settings = config.broker
    broker = PaperBroker(
        Portfolio(settings.starting_cash, {
            entry.display_name: entry.allocation
            for entry in enabled if entry.allocation is not None
        }),
        BarFillModel(settings.slippage_bps, settings.limit_fill, settings.max_volume_participation),
        fee_schedule(settings),
        feed.symbols, settings.allow_short, settings.short_margin, settings.max_position,
        config.market_data.timezone,
    )
    classes = [(entry, entry_class(entry, config.source.base_dir)) for entry in enabled]
    strategies = [
        StrategySetup(
            entry.display_name, cls, entry.params,
            entry.symbols, entry.max_errors, entry.interval, entry.validator,
            entry.routes(feed.symbols, feed.interval) if entry.subscriptions else None, entry.allowed_regimes,
        )
        for entry, cls in classes
    ]
    run, market = config.run, config.market_data
    schedule: dict[int, list[tuple[str, dict]]] = {}
    for scheduled in getattr(market, "add_symbols", ()):
        spec = scheduled.model_dump(include={"start_price", "drift", "volatility"})
        schedule.setdefault(scheduled.after_step, []).append((scheduled.symbol, spec))
    webhook = None
    if config.signals.webhook is not None:
        hook = config.signals.webhook
        webhook = SignalWebhook(
            hook.url, run_id, headers=headers, timeout=hook.timeout, retries=hook.retries,
            backoff=hook.backoff, queue_size=hook.queue_size, prices=broker.portfolio.last_prices,
            orders_of=broker.orders_of,
        )
        on_signal = _both(on_signal, webhook)
    runner = assemble(
        feed=feed, broker=broker, strategies=strategies,
        risk=RiskGate(config.risk.default_quantity, config.risk.max_order_value), policy=config.policy,
        database=config.storage.url, equity_every=config.storage.equity_every,
        mode=run.mode, speed=run.speed, tick_interval=run.tick_interval,
        max_ticks=run.max_ticks, duration=run.duration, seed=run.seed,
        derived_intervals=market.derived_intervals, timezone=market.timezone,
        candle_grace_seconds=market.candle_grace_seconds, threaded=run.execution == "threaded",
        strategy_timeout=run.strategy_timeout, symbol_schedule=schedule, run_id=run_id, source=config.source, clock=clock, on_signal=on_signal,
        base_dir=config.source.base_dir, metrics_port=config.telemetry.metrics_port,
        metrics_host=config.telemetry.metrics_host,
        manifest=build_manifest(config, feed, classes, data=data_inputs), replay_of=replay_of, resuming=resuming,
        catalog_refresh=config.catalog.refresh_interval if config.strategies_from == "catalog" else None,
    )
    _attach(runner, feed, webhook)
    return runner


def _live_feed(config: RunnerConfig, clock: Clock, run_id: str) -> LiveFeed:
    """The live feed of a config: the exchange reached and every name checked, its recording
    file (if any) checked not to exist."""
    market = config.market_data
    recording = None
    if market.record_to:
        path = Path(market.record_to.replace("{run_id}", run_id))
        recording = BarRecording(path if path.is_absolute() else config.source.base_dir / path)
    exchange = open_exchange(market, config.source)
    return LiveFeed(
        exchange, market.symbols, market.interval, clock, cache_ttl=market.cache_ttl,
        stale_after=market.stale_after, max_backoff=market.max_backoff,
        on_bars=recording.write if recording is not None else None, recording=recording,
    )


def _webhook_headers(config: RunnerConfig) -> dict[str, str]:
    """The webhook's header values, read from the environment variables the config names."""
    hook = config.signals.webhook
    if hook is None:
        return {}
    missing = [
        config.source.problem(("signals", "webhook", "headers", name), f"environment variable {variable} is not set")
        for name, variable in hook.headers.items() if variable not in os.environ
    ]
    if missing:
        raise ConfigError(missing)
    return {name: os.environ[variable] for name, variable in hook.headers.items()}


def _both(first: Callable[[SignalEvent], None] | None, second: Callable[[SignalEvent], None]) -> Callable[[SignalEvent], None]:
    if first is None:
        return second

    def both(event: SignalEvent) -> None:
        first(event)
        second(event)

    return both


def _attach(runner: StrategyRunner, feed: Feed, webhook: SignalWebhook | None) -> None:
    """Record the live feed's status changes and the webhook's failures with the run, and
    report and close them (and the recording) with it."""
    companions = []
    if isinstance(feed, LiveFeed):
        feed.on_status = lambda status: runner.recorder.submit([status])
        feed.steps_taken = lambda: runner.loop.steps
        companions.append(feed)
        if feed.recording is not None:
            companions.append(feed.recording)
    if webhook is not None:
        webhook.on_failure = lambda failure: runner.recorder.submit([failure])
        companions.append(webhook)
    runner.companions = tuple(companions)


def load_feed(config: RunnerConfig) -> Feed:
    """The market data of a config: synthetic, or files read and checked now, before any run."""
    market = config.market_data
    if isinstance(market, SyntheticFeedConfig):
        return SyntheticFeed(
            market.symbols, market.interval, market.start, config.run.seed,
            market.price_precision, market.base_volume,
        )
    from runner.feeds.replay import load_replay  # pandas, only for runs that read files

    folder = Path(config.source.path).parent if config.source.path != "<python>" else Path.cwd()
    return load_replay(
        market.source, folder, path=market.path, files=market.files, symbols=market.symbols,
        interval=market.interval, timezone=market.timezone, adjusted=market.adjusted,
        on_bad_rows=market.on_bad_rows, price_precision=market.price_precision,
    )


def _check_against_data(config: RunnerConfig, feed: Feed) -> None:
    """Strategy symbols exist in the data, and every interval is a multiple of the data's."""
    source, problems = config.source, []
    for index, interval in enumerate(config.market_data.derived_intervals):
        wrong = _interval_problem(interval, feed.interval)
        if wrong:
            problems.append(source.problem(("market_data", "derived_intervals", index), wrong))
    for symbol in config.broker.commission_by_symbol:
        if symbol not in feed.symbols:
            problems.append(source.problem(
                ("broker", "commission_by_symbol", symbol),
                f"unknown symbol {symbol}; the data has: {', '.join(feed.symbols)}",
            ))
    problems += symbol_problems(config, feed.symbols)
    for index, entry in enumerate(config.strategies):
        wrong = _interval_problem(entry.interval, feed.interval) if entry.interval else None
        if wrong:
            problems.append(source.problem(("strategies", index, "interval"), wrong))
        for number, pair in enumerate(entry.subscriptions or ()):
            wrong = _interval_problem(pair.interval, feed.interval)
            if wrong:
                problems.append(source.problem(("strategies", index, "subscriptions", number, "interval"), wrong))
    if problems:
        raise ConfigError(problems)


def _interval_problem(interval: str, base: str) -> str | None:
    """Why candles of `interval` cannot be built from bars of `base`, if they cannot."""
    seconds, base_seconds = interval_seconds(interval), interval_seconds(base)
    if seconds < base_seconds:
        return f"{interval} is shorter than the data's interval {base}"
    if seconds % base_seconds:
        return f"{interval} is not a whole multiple of the data's interval {base}"
    return None


def assemble(
    *, feed: Feed, broker: Broker, strategies: Sequence[StrategySetup],
    risk: RiskGate | None = None, policy: PolicyConfig | None = None,
    database: str = "sqlite:///runs/runner.db",
    equity_every: int = 1, mode: str = "data", speed: float = 0.0, tick_interval: float = 1.0,
    max_ticks: int | None = None, duration: float | None = None, seed: int = 0,
    derived_intervals: Sequence[str] = (), timezone: str = "UTC", candle_grace_seconds: float = 0.0,
    threaded: bool = False, strategy_timeout: float = 30.0,
    symbol_schedule: dict[int, list[tuple[str, dict]]] | None = None,
    run_id: str | None = None, source: ConfigSource | None = None, clock: Clock | None = None,
    on_signal: Callable[[SignalEvent], None] | None = None, base_dir: Path | None = None,
    metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
    manifest: RunManifest | None = None, replay_of: str = "", resuming: bool = False,
    catalog_refresh: float | None = None,
) -> StrategyRunner:
    """Wire a runner from parts: the feed, the broker, the strategies and the run settings.

    Every interval a strategy runs on, and every one in `derived_intervals`, is built from the
    feed's bars. `threaded` runs each strategy on its own thread: in lockstep with the loop in
    data mode, never waited for in clock mode. With `metrics_port` (0: a free port), Prometheus
    metrics are served on `metrics_host` while the run goes on (`runner.metrics.url`). The run
    starts with `policy` overlaid by the database's policy table, and applies that table's later
    changes as it goes (unless the database is in memory). `manifest` (from `build`) is recorded
    with the run, completed with the database's policy overrides the run starts with. With
    `catalog_refresh` (seconds), the run also runs the LIVE entries of the database's strategy
    catalogue, and follows its changes (runner/catalog_sync.py).

    `resuming` builds the run `run_id` already in the database, to continue it (runner/resume.py).

    Raises:
        ConfigError: `run_id` is already in the database (unless `resuming`), or metrics are
            asked for without prometheus_client installed.
    """
    clock = clock or WallClock()
    run_id = run_id or new_run_id(clock.now())
    exporter = None
    if metrics_port is not None:
        from runner.metrics import MetricsExporter  # only runs with metrics need prometheus_client

        exporter = MetricsExporter(clock, metrics_host, metrics_port)
    engine = open_database(database)
    if not resuming and queries.run(engine, run_id) is not None:
        raise ConfigError(f"run id {run_id!r} already exists in {describe(database)}; choose another --run-id")
    recorder = Recorder(engine, run_id)
    overrides = read_settings(engine)
    policy, policy_changes = starting_policy(
        policy or PolicyConfig(), {key: row.value for key, row in overrides.items()},
    )
    history = HistoryStore(0)
    def own(interval: str) -> str:  # 60m on 1h bars is the bars themselves
        return feed.interval if interval_seconds(interval) == interval_seconds(feed.interval) else interval

    def routes(setup: StrategySetup) -> dict[str, tuple[str, ...]]:  # 60s and 1m pairs share one route
        pairs = setup.subscriptions or {setup.interval or feed.interval: setup.symbols or feed.symbols}
        merged: dict[str, tuple[str, ...]] = {}
        for interval, symbols in pairs.items():
            merged[own(interval)] = tuple(dict.fromkeys((*merged.get(own(interval), ()), *symbols)))
        return merged

    routes_of = {setup.name: routes(setup) for setup in strategies}
    catalog_rows = catalog_store.entries(engine) if catalog_refresh is not None else []
    catalog_intervals = [own(s.interval) for s in live_entries(catalog_rows).values() if s.interval]
    wanted = [
        *map(own, derived_intervals), *(i for routes in routes_of.values() for i in routes), *catalog_intervals,
    ]
    intervals = [i for i in dict.fromkeys(wanted) if i != feed.interval]
    aggregators = [CandleAggregator(interval, feed.interval, timezone) for interval in intervals]
    gate = PolicyGate(
        policy, broker.portfolio, history, [setup.name for setup in strategies],
        {setup.name: setup.allowed_regimes for setup in strategies if setup.allowed_regimes},
        timezone, policy_changes,
    )
    execution = "inline" if not threaded else "lockstep" if mode == "data" else "free"
    loop = TickLoop(
        broker, risk or RiskGate(default_quantity=Decimal(1)), history,
        recorder if exporter is None else exporter.tee(recorder), clock, equity_every,
        on_signal, base_interval=feed.interval, aggregators=aggregators,
        candle_grace_seconds=candle_grace_seconds, execution=execution,
        symbol_source=getattr(feed, "symbol_source", None), symbol_schedule=symbol_schedule,
        policy=gate,
    )
    if exporter is not None:
        exporter.read_snapshots(loop.snapshot)
    def host_for(setup: StrategySetup) -> StrategyHost:
        routes = routes_of[setup.name]
        interval = next(iter(routes))
        symbols = tuple(dict.fromkeys(s for symbols in routes.values() for s in symbols))
        strategy = _create(setup, symbols, interval, broker, history, base_dir or Path.cwd(), loop.books_lock)
        depth = _history_size(setup, strategy)
        history.deepen(max(depth, REGIME_BARS if setup.allowed_regimes else 0))
        gate.add_strategy(setup.name)
        common = dict(
            validator=_validator(setup.validator), history_depth=depth,
            follows_new_symbols=setup.symbols is None and setup.subscriptions is None,
        )
        if threaded:
            return ThreadedHost(
                setup.name, strategy, routes, setup.max_errors, loop.record_fault,
                lockstep=execution == "lockstep", timeout=strategy_timeout, **common,
            )
        return StrategyHost(setup.name, strategy, routes, setup.max_errors, loop.record_fault, **common)

    for setup in strategies:
        loop.add_host(host_for(setup))
    watchers: list[Any] = []
    if not is_in_memory(database):
        watchers.append(PolicyWatcher(database, gate.offer, overrides))
    if catalog_refresh is not None:
        def catalog_host(entry: StrategyEntry) -> StrategyHost:
            """A catalogue entry's host, if it can run on this run's data (ConfigError: why not)."""
            setup = _catalog_setup(entry)
            wanted = routes_of[setup.name] = routes(setup)
            missing = [i for i in wanted if i != feed.interval and i not in intervals]
            if missing:
                raise ConfigError(
                    f"it runs on {', '.join(missing)}, which this run does not build; add the interval "
                    "to market_data.derived_intervals"
                )
            unknown = sorted({s for symbols in wanted.values() for s in symbols} - broker.symbols)
            if unknown:
                raise ConfigError(f"unknown symbol(s) {', '.join(unknown)}; the data has: {', '.join(sorted(broker.symbols))}")
            return host_for(setup)

        sync = CatalogSync(loop, catalog_host)
        counter = catalog_store.change_counter(engine)
        sync.begin(catalog_rows)
        if not is_in_memory(database):
            watchers.append(CatalogWatcher(database, sync.offer, counter, catalog_refresh, clock.monotonic))
    source = source or ConfigSource("<python>", "")
    if manifest is not None:
        manifest = replace(manifest, policy_overrides={key: row.value for key, row in overrides.items()})
    started = RunStarted(
        run_id, clock.now(), source.path, source.text, source.sha256, seed,
        manifest.to_json() if manifest is not None else "", replay_of,
    )
    watcher = _Watchers(watchers) if watchers else None
    return StrategyRunner(
        run_id, feed, loop, recorder, Pacer(clock, mode, speed, tick_interval, on_wait=loop.waiting),
        clock, started, max_ticks=max_ticks, duration=duration, database=database, metrics=exporter,
        watcher=watcher,
    )


class _Watchers:
    """The run's helper threads (policy table, strategy catalogue), started and stopped together."""

    def __init__(self, watchers: Sequence[Any]):
        self.watchers = list(watchers)

    def start(self) -> None:
        for watcher in self.watchers:
            watcher.start()

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()


def _catalog_setup(entry: StrategyEntry) -> StrategySetup:
    """The setup of a catalogue entry (a file path in it is absolute).

    Raises:
        StrategyLoadError: its strategy cannot be found or imported.
    """
    cls = entry_class(entry, Path.cwd())
    return StrategySetup(
        entry.display_name, cls, entry.params, entry.symbols, entry.max_errors, entry.interval, entry.validator,
        None, entry.allowed_regimes,
    )


def _validator(name: str) -> SignalValidator:
    try:
        return signal_validator(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    except Exception as exc:  # noqa: BLE001 - a validator plugin may fail to load in any way
        raise ConfigError(f"validator {name!r} cannot be loaded: {type(exc).__name__}: {exc}") from None


def _history_size(setup: StrategySetup, strategy: StrategyInterface) -> int:
    try:
        depth = strategy.history_size()
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise StrategyLoadError(f"strategy {setup.name!r}: history_size() raised {type(exc).__name__}: {exc}") from exc
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise StrategyLoadError(f"strategy {setup.name!r}: history_size() must return an int >= 0, got {depth!r}")
    return depth


def _create(
    setup: StrategySetup, symbols: tuple[str, ...], interval: str, broker: Broker,
    history: HistoryStore, base_dir: Path, books_lock: AbstractContextManager | None,
) -> StrategyInterface:
    params = setup.params
    try:
        if not isinstance(params, BaseModel):
            params = setup.cls.Params.model_validate(params or {})
        context = StrategyContext(
            setup.name, params, symbols, broker.portfolio, history, interval, broker.orders_of,
            base_dir, books_lock,
        )
        return setup.cls(context)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything while constructing
        raise StrategyLoadError(
            f"strategy {setup.name!r} ({setup.cls.__name__}) could not be created: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
