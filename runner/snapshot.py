"""Immutable views of a run for callers outside the loop thread: the live view and the summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from runner.domain import Order, Position
from runner.timing import LatencyHistogram
from typing import Any


@dataclass(frozen=True, slots=True)
class StrategySnapshot:
    name: str
    state: str
    calls: int
    signals: int
    accepted: int
    rejected: int
    errors: int
    pnl: Decimal
    disabled_reason: str = ""
    mean_ms: float = 0.0  # on_tick processing time
    p95_ms: float = 0.0
    max_ms: float = 0.0
    overruns: int = 0  # market data it missed while busy (clock-driven, threaded)
    queue_depth: int = 0  # notifications waiting for it now
    latency: LatencyHistogram | None = None  # its on_tick times (a copy), for telemetry
    halted_until: datetime | None = None  # halted by policy.max_daily_loss_per_strategy until then

    @classmethod
    def timed(cls, *args, latency: LatencyHistogram, **kwargs) -> StrategySnapshot:
        """A snapshot whose timing figures come from `latency` (copied)."""
        return cls(
            *args, mean_ms=1000 * latency.mean, p95_ms=1000 * latency.quantile(0.95),
            max_ms=1000 * latency.slowest, latency=latency.copy(), **kwargs,
        )

    def timing(self) -> dict[str, Any]:
        """Calls and processing time as stored and printed (milliseconds)."""
        return {
            "calls": self.calls, "mean_ms": round(self.mean_ms, 4), "p95_ms": round(self.p95_ms, 4),
            "max_ms": round(self.max_ms, 4), "overruns": self.overruns, "queue_depth": self.queue_depth,
        }


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """The state of a run after one step. Money is exact; `to_dict` renders it as strings."""

    steps: int
    timestamp: datetime | None
    cash: Decimal
    equity: Decimal
    starting_cash: Decimal
    orders: int
    fills: int
    rejections: int
    strategies: tuple[StrategySnapshot, ...] = ()
    run_id: str = ""
    status: str = ""
    error: str = ""
    elapsed_seconds: float = 0.0
    database: str = ""
    total_steps: int | None = None
    skipped_rows: int = 0
    overruns: int = 0
    open_positions: tuple[Position, ...] = ()
    recent_orders: tuple[Order, ...] = ()  # the latest order states, newest last (live view only)
    policy_blocks: tuple[tuple[str, int], ...] = ()  # (rule, signals it blocked), by rule
    companions: tuple[tuple[str, dict], ...] = ()  # (key, report): live market data, recording, webhook

    @classmethod
    def empty(cls, cash: Decimal) -> RunSnapshot:
        return cls(0, None, cash, cash, cash, 0, 0, 0)

    @property
    def pnl(self) -> Decimal:
        return self.equity - self.starting_cash

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.strategies)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data: counts as numbers, money as exact decimal strings."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "ticks": self.steps,
            "total_steps": self.total_steps,
            "skipped_rows": self.skipped_rows,
            "overruns": self.overruns,
            "last_bar_time": self.timestamp.isoformat() if self.timestamp else None,
            "orders": self.orders,
            "fills": self.fills,
            "rejections": self.rejections,
            "starting_cash": str(self.starting_cash),
            "cash": str(self.cash),
            "final_equity": str(self.equity),
            "pnl": {s.name: str(s.pnl) for s in self.strategies},
            "errors": {s.name: s.errors for s in self.strategies},
            "strategies": {
                s.name: {
                    "state": s.state, "signals": s.signals,
                    "accepted": s.accepted, "rejected": s.rejected, "errors": s.errors,
                    "pnl": str(s.pnl), "disabled_reason": s.disabled_reason, **s.timing(),
                    "halted_until": s.halted_until.isoformat() if s.halted_until else None,
                }
                for s in self.strategies
            },
            "policy_blocks": dict(self.policy_blocks),
            "error": self.error,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "database": self.database,
            **dict(self.companions),
        }
