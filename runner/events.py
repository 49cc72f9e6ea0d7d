"""Records the loop publishes besides orders and fills: signals, equity, strategy faults,
heartbeats, policy changes, symbols added, runs.

They are immutable values handed to storage (and to callbacks); nothing mutates them later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from runner.domain import Signal


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """A signal a strategy emitted, and what became of it."""

    strategy: str
    step: int
    timestamp: datetime
    signal: Signal | None
    accepted: bool
    rejection: str = ""
    order_id: int | None = None
    raw: str = ""  # the malformed value, when `signal` is None
    rule: str = ""  # the policy rule that blocked it, if one did


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A policy value a run applied from `step` on: at step 0 its starting policy (the
    config's values, `source` "config", then the database's overrides, "cli"), later each
    change made with `runner policy set` ("cli"). Values are in `runner policy set` form."""

    step: int
    timestamp: datetime | None  # the step's bar time; None at the start
    key: str
    old_value: str
    new_value: str
    source: str


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    """The account's cash and equity at a step, and each strategy's net P&L then."""

    step: int
    timestamp: datetime
    cash: Decimal
    equity: Decimal
    strategy_pnl: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class StrategyFault:
    """A strategy hook raised; `disabled` is True when this error disabled the strategy."""

    strategy: str
    hook: str
    step: int
    timestamp: datetime | None
    error_type: str
    message: str
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class SymbolAdded:
    """A symbol joined the run after `step`; `requested_by` names the strategy that asked."""

    symbol: str
    step: int
    timestamp: datetime | None
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class StrategyHealth:
    """A strategy's state and error count (at a heartbeat, or as `runner health` reports it)."""

    name: str
    state: str
    errors: int
    disabled_reason: str = ""

    @property
    def disabled(self) -> bool:
        return self.state == "disabled" or bool(self.disabled_reason)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The loop is alive: written at most about once a second while it steps, and before each
    longer wait for its next step. The next one is due within `expected_every_seconds`."""

    step: int
    timestamp: datetime | None  # the bar time of the latest step
    wall_time: datetime
    expected_every_seconds: float
    strategies: tuple[StrategyHealth, ...] = ()


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    started_at: datetime
    config_path: str
    config_text: str
    config_sha256: str
    seed: int
    manifest: str = ""  # JSON of the run's RunManifest (runner/manifest.py); "" when built in Python
    replay_of: str = ""  # the run this one replays (`runner replay`)


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    ended_at: datetime
    status: str
    ticks: int
    summary_json: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class StepDone:
    """The last record of a step: committed with the step's other records, it marks how far the
    run's records go (where `runner start --resume` continues from)."""

    step: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class RunResumed:
    """A run taken up again (`runner start --resume`) after its last committed step `from_step`;
    `forced` lists the input differences accepted with --force, one a line."""

    run_id: str
    resumed_at: datetime
    from_step: int
    bar_time: datetime | None
    previous_status: str
    config_sha256: str
    forced: str = ""


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """A run of `strategies_from: catalog` started, stopped or skipped a catalogue strategy
    after `step` (0: as the run began)."""

    step: int
    timestamp: datetime | None  # the step's bar time; None at the start
    strategy: str
    action: str  # started | stopped | skipped
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """Whether live market data is flowing; `reason` says why it is stale. Recorded when it
    turns stale or fresh (one row per run, the latest)."""

    source: str
    stale: bool
    reason: str
    last_bar_time: datetime | None
    last_response: datetime | None
    requests: int
    errors: int
    dropped_bars: int  # malformed, or beyond what the loop could keep up with
    checked_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "stale": self.stale, "reason": self.reason,
            "last_bar_time": self.last_bar_time.isoformat() if self.last_bar_time else None,
            "last_response": self.last_response.isoformat() if self.last_response else None,
            "requests": self.requests, "errors": self.errors, "dropped_bars": self.dropped_bars,
            "checked_at": self.checked_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class WebhookFailure:
    """An accepted signal the webhook could not deliver (after `attempts` POSTs; 0: dropped)."""

    wall_time: datetime
    strategy: str
    symbol: str
    step: int
    attempts: int
    error: str
    payload: str  # the JSON object that was not delivered
