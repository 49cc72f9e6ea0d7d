"""SQLModel tables: thin records, one per kind, every row keyed by its run id (except the
database-wide `policy` table).

Ledger amounts are stored as TEXT holding the exact `Decimal`, never as SQLite REAL.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, String, TypeDecorator
from sqlmodel import Field, SQLModel


class DecimalText(TypeDecorator):
    """A `Decimal` stored losslessly as its text."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(value)

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


def _money(**kwargs):
    return Field(sa_type=DecimalText, **kwargs)


class RunRecord(SQLModel, table=True):
    __tablename__ = "runs"

    id: str = Field(primary_key=True)
    started_at: datetime
    ended_at: datetime | None = None
    status: str = Field(index=True)  # running, completed, stopped, failed
    config_path: str
    config_text: str
    config_sha256: str
    seed: int = Field(sa_type=BigInteger)  # any int the config allows; PostgreSQL's INTEGER stops at 2**31
    ticks: int = 0
    summary: str = ""  # JSON of the end-of-run summary
    error: str = ""
    manifest: str = ""  # JSON of what the run took as input (runner/manifest.py)
    replay_of: str = ""  # the id of the run this one replays, if it is a replay


class OrderRecord(SQLModel, table=True):
    __tablename__ = "orders"

    run_id: str = Field(primary_key=True)
    order_id: int = Field(primary_key=True)
    strategy: str = Field(index=True)
    symbol: str
    side: str
    order_type: str
    quantity: Decimal = _money()
    status: str
    filled_quantity: Decimal = _money()
    average_price: Decimal | None = _money(default=None, nullable=True)
    limit_price: Decimal | None = _money(default=None, nullable=True)
    stop_price: Decimal | None = _money(default=None, nullable=True)
    time_in_force: str = "GTC"
    stop_loss: Decimal | None = _money(default=None, nullable=True)
    take_profit: Decimal | None = _money(default=None, nullable=True)
    parent_id: int | None = None  # the entry order of a bracket leg
    sibling_id: int | None = None  # the other leg it cancels (OCO)
    reason: str = ""
    created_at: datetime
    updated_at: datetime


class OrderEventRecord(SQLModel, table=True):
    """One status an order reached, in order: the order's history."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    order_id: int
    status: str
    timestamp: datetime
    reason: str = ""


class FillRecord(SQLModel, table=True):
    __tablename__ = "fills"

    run_id: str = Field(primary_key=True)
    fill_id: int = Field(primary_key=True)
    order_id: int
    strategy: str = Field(index=True)
    symbol: str
    side: str
    quantity: Decimal = _money()
    price: Decimal = _money()
    commission: Decimal = _money()
    timestamp: datetime


class PositionRecord(SQLModel, table=True):
    """The latest state of a strategy's position in a symbol."""

    __tablename__ = "positions"

    run_id: str = Field(primary_key=True)
    strategy: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    quantity: Decimal = _money()
    average_cost: Decimal = _money()
    realized_pnl: Decimal = _money()
    fees: Decimal = _money()
    last_price: Decimal = _money()


class EquityRecord(SQLModel, table=True):
    __tablename__ = "equity"

    run_id: str = Field(primary_key=True)
    step: int = Field(primary_key=True)
    timestamp: datetime
    cash: Decimal = _money()
    equity: Decimal = _money()


class StrategyEquityRecord(SQLModel, table=True):
    """A strategy's net P&L (realised + unrealised - fees) at an equity snapshot."""

    __tablename__ = "strategy_equity"

    run_id: str = Field(primary_key=True)
    step: int = Field(primary_key=True)
    strategy: str = Field(primary_key=True)
    timestamp: datetime
    pnl: Decimal = _money()


class SignalRecord(SQLModel, table=True):
    __tablename__ = "signals"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    step: int
    timestamp: datetime
    strategy: str
    symbol: str
    action: str
    quantity: Decimal | None = _money(default=None, nullable=True)
    confidence: float | None = None
    reason: str = ""
    accepted: bool
    rejection: str = ""
    order_id: int | None = None
    rule: str = ""  # the policy rule that blocked it, if one did


class StrategyErrorRecord(SQLModel, table=True):
    __tablename__ = "strategy_errors"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    strategy: str
    hook: str
    step: int
    timestamp: datetime | None = None
    error_type: str
    message: str
    disabled: bool = False


class StrategyStatsRecord(SQLModel, table=True):
    """A strategy's counters and processing times over the whole run (written when it ends)."""

    __tablename__ = "strategy_stats"

    run_id: str = Field(primary_key=True)
    strategy: str = Field(primary_key=True)
    state: str
    calls: int
    signals: int
    accepted: int
    rejected: int
    errors: int
    mean_ms: float
    p95_ms: float
    max_ms: float
    overruns: int
    queue_depth: int  # notifications still waiting when the run ended
    disabled_reason: str = ""


class HeartbeatRecord(SQLModel, table=True):
    """The latest sign of life of a run's loop (one row per run, replaced about once a second)."""

    __tablename__ = "heartbeats"

    run_id: str = Field(primary_key=True)
    step: int
    bar_time: datetime | None = None  # the bar time of the latest step
    wall_time: datetime  # UTC, when the heartbeat was written
    expected_every_seconds: float  # the next heartbeat is due within this
    strategies: str = "[]"  # JSON: [{"name", "state", "errors", "disabled_reason"}, ...]


class SymbolAddedRecord(SQLModel, table=True):
    """A symbol that joined the run after a step (by the API, the config schedule or a strategy)."""

    __tablename__ = "symbols_added"

    run_id: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    step: int
    timestamp: datetime | None = None
    requested_by: str = ""
class PolicyChangeRecord(SQLModel, table=True):
    """A policy value a run applied from `step` on (see events.PolicyChange)."""

    __tablename__ = "policy_changes"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    step: int
    timestamp: datetime | None = None
    key: str
    old_value: str
    new_value: str
    source: str  # config | cli


class PolicySettingRecord(SQLModel, table=True):
    """The operator's live override of one policy key, for every run of the database; written
    by `runner policy set`, in its form (see runner/policy.py)."""

    __tablename__ = "policy"

    key: str = Field(primary_key=True)
    value: str
    updated_at: datetime


class SchemaVersionRecord(SQLModel, table=True):
    """One upgrade of the database's schema: when, by which runner version, and what it added
    (see runner/storage/schema.py). The first row is the database's creation."""

    __tablename__ = "schema_version"

    id: int | None = Field(default=None, primary_key=True)
    applied_at: datetime
    runner_version: str
    changes: str  # JSON: ["add table runs", "add column runs.manifest", ...]


class ProgressRecord(SQLModel, table=True):
    """How far a run's records go: its last step, committed with that step's records."""

    __tablename__ = "run_progress"

    run_id: str = Field(primary_key=True)
    step: int
    bar_time: datetime


class ResumeRecord(SQLModel, table=True):
    """One time a run was taken up again (`runner start --resume`): when, after which step and
    status, with which config, and the input differences accepted with --force."""

    __tablename__ = "resumes"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    resumed_at: datetime  # wall clock, UTC
    from_step: int  # the last step recorded before; the resumed part starts after it
    bar_time: datetime | None = None  # the bar time of that step
    previous_status: str  # running (killed), stopped, completed or failed
    config_sha256: str
    forced: str = ""


# --- the strategy catalogue (runner/catalog.py) --------------------------------------------------


class CatalogEntryRecord(SQLModel, table=True):
    """A strategy of the catalogue: how to load it, its parameters, where it trades, and its
    lifecycle status (DRAFT, BACKTEST, LIVE, ARCHIVED), for every run of the database."""

    __tablename__ = "catalog"

    name: str = Field(primary_key=True)
    loader: str  # type | module | file, as a config strategy entry names it
    target: str  # the registered name, the dotted module, or the file's absolute path
    class_name: str = ""  # with module or file: the class, when the file holds several
    params: str = "{}"  # JSON
    symbols: str = ""  # JSON list; "" for every symbol of the data
    interval: str = ""  # "" for the data's own
    status: str = Field(index=True)
    created_at: datetime
    updated_at: datetime


class CatalogHistoryRecord(SQLModel, table=True):
    """One status change of a catalogue entry. Append-only: its largest id is the catalogue's
    change counter, which running runners watch."""

    __tablename__ = "catalog_history"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    from_status: str  # "" when the entry was first added
    to_status: str
    at: datetime
    reason: str = ""
    run_id: str = ""  # promotion to LIVE: the replay run the gate accepted


class CatalogBacktestRecord(SQLModel, table=True):
    """A replay run of a catalogue entry (`runner catalog backtest`), a candidate for the gate."""

    __tablename__ = "catalog_backtests"

    run_id: str = Field(primary_key=True)
    name: str = Field(index=True)
    data: str  # the file replayed
    created_at: datetime


class CatalogChangeRecord(SQLModel, table=True):
    """A strategy a run of `strategies_from: catalog` started, stopped or skipped, at a step."""

    __tablename__ = "catalog_changes"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    step: int
    timestamp: datetime | None = None
    strategy: str
    action: str  # started | stopped | skipped
    reason: str = ""


class FeedStatusRecord(SQLModel, table=True):
    """Whether a run's live market data is flowing: its latest state (see events.FeedStatus)."""

    __tablename__ = "feed_status"

    run_id: str = Field(primary_key=True)
    source: str
    stale: bool
    reason: str = ""
    last_bar_time: datetime | None = None
    last_response: datetime | None = None
    requests: int = 0
    errors: int = 0
    dropped_bars: int = 0
    updated_at: datetime


class WebhookFailureRecord(SQLModel, table=True):
    """An accepted signal the signal webhook could not deliver (attempts 0: dropped unsent)."""

    __tablename__ = "webhook_failures"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    wall_time: datetime
    strategy: str
    symbol: str
    step: int
    attempts: int
    error: str
    payload: str  # the JSON object that was not delivered


class SweepRecord(SQLModel, table=True):
    """One parameter sweep (`runner sweep`): its grid and how it ran; its runs are in
    `sweep_runs`."""

    __tablename__ = "sweeps"

    id: str = Field(primary_key=True)
    started_at: datetime
    ended_at: datetime | None = None
    status: str = Field(index=True)  # running, completed, interrupted, failed
    config_path: str
    strategy: str  # the swept strategy's name in the config
    grid: str  # JSON: parameter -> its values, in the order given
    executor: str  # local | ray
    workers: int
    combinations: int  # the grid's size, skipped combinations included
    error: str = ""


class SweepRunRecord(SQLModel, table=True):
    """One combination of a sweep: its parameters, its run (in `runs`) and what became of it."""

    __tablename__ = "sweep_runs"

    sweep_id: str = Field(primary_key=True)
    number: int = Field(primary_key=True)  # the combination's place in the grid, from 1
    run_id: str = Field(index=True)
    params: str  # JSON: parameter -> value
    status: str  # pending, then completed | stopped | failed (the run's), skipped or interrupted
    error: str = ""
