"""Whether a run is alive and healthy, judged from its records (what `runner health` reports).

While a run goes on, its loop records a heartbeat at most about once a second, and before each
wait for a step that is further away than that, saying when the next one is due
(`expected_every_seconds`). The rule:

- **alive**: the run's status is `running` and its latest heartbeat (or, before the first one,
  its start) is at most max(5 s, 3 x `expected_every_seconds`) old. A process killed without a
  clean stop leaves its run `running` in the records; the heartbeat going stale tells.
- **healthy**: a running run that is alive (and, with live market data, not stale), or a run
  that ended `completed` or `stopped`, and in either case no strategy disabled. A `failed` run is unhealthy. Strategy errors that did not
  disable their strategy are reported, but do not make a run unhealthy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from runner.events import StrategyHealth
from runner.storage import queries
from runner.storage.models import RunRecord

STALE_AFTER_SECONDS = 5.0  # the least time without a heartbeat that counts as stale
STALE_AFTER_PERIODS = 3  # ... or this many announced heartbeat periods, when longer
FIRST_HEARTBEAT_SECONDS = 1.0  # the period assumed before a run's first heartbeat
ENDED_WELL = ("completed", "stopped")


@dataclass(frozen=True, slots=True)
class Health:
    """A run's liveness and health at one moment; `reasons` says why it is unhealthy."""

    run_id: str
    status: str
    alive: bool
    last_heartbeat: datetime | None
    seconds_since_heartbeat: float | None
    expected_every_seconds: float | None
    stale_after_seconds: float | None
    last_step: int
    last_bar_time: datetime | None
    strategies: tuple[StrategyHealth, ...]
    reasons: tuple[str, ...]
    market_data: dict[str, Any] | None = None  # a live run's feed status (stale or not)

    @property
    def healthy(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data: times ISO 8601 UTC, seconds rounded to milliseconds."""
        return {
            "run_id": self.run_id, "status": self.status, "alive": self.alive, "healthy": self.healthy,
            "last_heartbeat": _iso(self.last_heartbeat),
            "seconds_since_heartbeat": _rounded(self.seconds_since_heartbeat),
            "expected_every_seconds": _rounded(self.expected_every_seconds),
            "stale_after_seconds": _rounded(self.stale_after_seconds),
            "last_step": self.last_step, "last_bar_time": _iso(self.last_bar_time),
            "strategies": {
                s.name: {"state": s.state, "disabled": s.disabled, "disabled_reason": s.disabled_reason, "errors": s.errors}
                for s in self.strategies
            },
            "reasons": list(self.reasons),
            **({"market_data": self.market_data} if self.market_data is not None else {}),
        }


def stale_after(expected_every_seconds: float) -> float:
    """Seconds without a heartbeat after which a running run counts as dead."""
    return max(STALE_AFTER_SECONDS, STALE_AFTER_PERIODS * expected_every_seconds)


def assess(engine: Engine, run: RunRecord, now: datetime | None = None) -> Health:
    """Judge `run` from its records at time `now` (default: the current UTC time)."""
    now = _utc(now or datetime.now(UTC))
    beat = queries.heartbeat(engine, run.id)
    strategies = _strategies(engine, run, beat)
    reasons = []
    alive = False
    last_heartbeat = seconds_since = expected = limit = None
    if beat is not None:
        last_heartbeat = _utc(beat.wall_time)
        seconds_since = max((now - last_heartbeat).total_seconds(), 0.0)
        expected = beat.expected_every_seconds
    if run.status == "running":
        age = seconds_since if beat is not None else max((now - _utc(run.started_at)).total_seconds(), 0.0)
        limit = stale_after(expected if expected is not None else FIRST_HEARTBEAT_SECONDS)
        alive = age <= limit
        if not alive:
            since = "for" if beat is not None else "since the run started"
            reasons.append(
                f"no heartbeat {since} {age:.1f} s (stale after {limit:g} s): the process has died "
                "or is stuck (a run killed without a clean stop stays 'running' in the records)"
            )
    elif run.status == "failed":
        reasons.append(f"the run failed: {run.error}" if run.error else "the run failed")
    elif run.status not in ENDED_WELL:
        reasons.append(f"the run's status is {run.status!r}")
    feed = queries.feed_status(engine, run.id)
    if feed is not None and feed.stale and run.status == "running":
        reasons.append(f"live market data is stale: {feed.reason}")
    reasons += [f"strategy {s.name} is disabled: {s.disabled_reason or 'no reason recorded'}" for s in strategies if s.disabled]
    return Health(
        run.id, run.status, alive, last_heartbeat, seconds_since, expected, limit,
        beat.step if beat is not None else run.ticks,
        _utc(beat.bar_time) if beat is not None and beat.bar_time else None,
        strategies, tuple(reasons), _feed_status(feed),
    )


def _feed_status(row) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "source": row.source, "stale": row.stale, "reason": row.reason,
        "last_bar_time": _iso(row.last_bar_time), "last_response": _iso(row.last_response),
        "checked_at": _iso(row.updated_at),
    }


def _strategies(engine: Engine, run: RunRecord, beat) -> tuple[StrategyHealth, ...]:
    """Each strategy's state (from the end-of-run stats, else the latest heartbeat), its errors
    (the most any record counts) and why it was disabled."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in json.loads(beat.strategies) if beat is not None else ():
        seen[entry["name"]] = dict(entry)
    for stats in queries.strategy_stats(engine, run.id):
        mine = seen.setdefault(stats.strategy, {"name": stats.strategy})
        mine.update(state=stats.state, errors=max(stats.errors, mine.get("errors", 0)),
                    disabled_reason=stats.disabled_reason or mine.get("disabled_reason", ""))
    counted = queries.strategy_error_counts(engine, run.id)
    disabling = queries.disabling_faults(engine, run.id)
    for name in [*counted, *disabling]:
        seen.setdefault(name, {"name": name})
    return tuple(
        StrategyHealth(
            name, info.get("state") or ("running" if run.status == "running" else "unknown"),
            max(info.get("errors", 0), counted.get(name, 0)),
            info.get("disabled_reason") or disabling.get(name, ""),
        )
        for name, info in seen.items()
    )


def _utc(moment: datetime) -> datetime:
    """Records hold UTC times without an offset."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
