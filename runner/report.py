"""Performance statistics of a run, computed from its stored records.

`load_report(engine, run)` reads the run's equity snapshots, fills and positions and hands them
to `build_report`, a pure function: the same rows always give the same `RunReport`. Nothing here
prints or draws; `cli/report.py` renders the report as a table, JSON, a plot or a page.

Definitions (the README's "Reports" section repeats them):

The equity curve is E_0 = the starting cash (before the first step), then E_1 .. E_n, the
equity of each stored snapshot in step order. E_0 is placed one snapshot gap before the first
snapshot, at step 0.

- r_i = E_i / E_(i-1) - 1 for i = 1 .. n: one return per equity snapshot, n of them.
- snapshot gap = the median time between consecutive snapshots (one bar x `equity_every` on
  regular data); periods per year = 365 x 86400 s / snapshot gap.
- bar interval = `market_data.interval` of the run's config; when the config gives none (a
  replay that infers it), the snapshot gap / the median number of steps between snapshots.
- total return = E_n / starting cash - 1.
- annualised return = (1 + total return) ^ (periods per year / n) - 1.
- annualised volatility = stdev(r) x sqrt(periods per year), with the sample stdev (ddof 1).
- Sharpe = mean(r) / stdev(r) x sqrt(periods per year), risk-free rate 0.
- Sortino = mean(r) / downside deviation x sqrt(periods per year), where the downside
  deviation = sqrt(mean(min(r_i, 0)^2)) over all n returns.
- max drawdown = the largest (peak_t - E_t) / peak_t, with peak_t = max(E_0 .. E_t). Its
  duration runs from the peak (the last time the curve stood at it before the trough) to the
  first snapshot after the trough back at or above the peak, or to the last snapshot if it never
  got back; it is given in bars (steps) and in seconds.
- A trade is a round trip of one (strategy, symbol), built from the fills in the order they
  happened: it opens when the position leaves 0 and closes when it returns to 0. A fill that
  flips the position closes one trade and opens the next; its commission is split between the
  two in proportion to quantity. A trade's P&L = the cash its fills moved (sells minus buys)
  minus their commissions, which for a round trip equals its realised P&L (FIFO or average
  cost alike) minus its fees.
- trades = closed trades; win rate = winners / closed trades; profit factor = sum of winning
  P&L / |sum of losing P&L|; average win and average loss (a negative amount) over the closed
  winners and losers (rounded to 8 decimal places); a trade at exactly 0 is neither.
- exposure = the share of equity snapshots at which the strategy (overall: any strategy) holds a
  non-zero position, counting the fills up to and including the snapshot's timestamp.
- fees = the sum of the commissions of the fills.
- net P&L: overall E_n - starting cash; per strategy, from its stored positions, realised +
  unrealised - fees (at the last price each position row recorded).

Per strategy: its equity curve is its capital (its `allocation`, else the starting cash) plus
its net P&L at each snapshot (the `strategy_equity` records), and the return, volatility,
Sharpe, Sortino and drawdown figures are those of that curve. A run recorded before those
records existed gives them for the whole account only (None for a strategy).

A figure that is undefined (too few snapshots, zero deviation, no losing trade, a result that
does not fit a float) is None: `null` in JSON.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from runner.config import load_config_text
from runner.errors import ConfigError
from runner.intervals import interval_seconds
from runner.storage import queries
from runner.storage.models import EquityRecord, FillRecord, PositionRecord, RunRecord, StrategyEquityRecord

SECONDS_PER_YEAR = 365 * 86400
ZERO = Decimal(0)
RATIO_PLACES = 6
AVERAGE_QUANTUM = Decimal("1e-8")


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip of a strategy in a symbol; `pnl` and `closed_at` are None while open."""

    strategy: str
    symbol: str
    direction: str  # long or short
    opened_at: datetime
    closed_at: datetime | None
    quantity: Decimal  # the largest absolute position held during the trade
    pnl: Decimal | None
    fees: Decimal


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One point of the equity curve; point 0 is the starting cash at step 0."""

    step: int
    timestamp: datetime
    equity: Decimal
    drawdown: float  # (peak - equity) / peak, 0 at a new high


@dataclass(frozen=True, slots=True)
class Statistics:
    """The figures of the whole account (`scope` "overall") or of one strategy.

    Money is exact (`Decimal`); ratios are floats; None where undefined. For a strategy, the
    return, volatility, Sharpe, Sortino and drawdown fields come from its own curve (see the
    module docstring).
    """

    scope: str
    net_pnl: Decimal | None
    fees: Decimal
    trades: int
    open_trades: int
    winners: int
    losers: int
    win_rate: float | None
    profit_factor: float | None
    average_win: Decimal | None
    average_loss: Decimal | None
    exposure: float | None
    total_return: float | None = None
    annualised_return: float | None = None
    annualised_volatility: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    max_drawdown: float | None = None
    max_drawdown_bars: int | None = None
    max_drawdown_seconds: float | None = None
    max_drawdown_recovered: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings, ratios rounded to 6 places, None as null."""
        return {
            "net_pnl": _money(self.net_pnl),
            "total_return": _ratio(self.total_return),
            "annualised_return": _ratio(self.annualised_return),
            "annualised_volatility": _ratio(self.annualised_volatility),
            "sharpe": _ratio(self.sharpe),
            "sortino": _ratio(self.sortino),
            "max_drawdown": _ratio(self.max_drawdown),
            "max_drawdown_bars": self.max_drawdown_bars,
            "max_drawdown_seconds": self.max_drawdown_seconds,
            "max_drawdown_recovered": self.max_drawdown_recovered,
            "trades": self.trades,
            "open_trades": self.open_trades,
            "winners": self.winners,
            "losers": self.losers,
            "win_rate": _ratio(self.win_rate),
            "profit_factor": _ratio(self.profit_factor),
            "average_win": _money(self.average_win),
            "average_loss": _money(self.average_loss),
            "exposure": _ratio(self.exposure),
            "fees": _money(self.fees),
        }


@dataclass(frozen=True, slots=True)
class RunReport:
    """The statistics of one run: overall and per strategy, with the curve and trades behind them."""

    run_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    starting_cash: Decimal | None
    final_equity: Decimal | None
    bar_interval: str | None
    bar_seconds: float | None
    snapshot_seconds: float | None
    periods_per_year: float | None
    snapshots: int
    first_bar: datetime | None
    last_bar: datetime | None
    overall: Statistics
    strategies: tuple[Statistics, ...] = ()
    curve: tuple[CurvePoint, ...] = field(default=(), repr=False)
    trades: tuple[Trade, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the run, the time base, `overall` and `strategies` (name -> figures)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "first_bar": _iso(self.first_bar),
            "last_bar": _iso(self.last_bar),
            "starting_cash": _money(self.starting_cash),
            "final_equity": _money(self.final_equity),
            "bar_interval": self.bar_interval,
            "bar_seconds": self.bar_seconds,
            "snapshot_seconds": self.snapshot_seconds,
            "periods_per_year": _ratio(self.periods_per_year),
            "snapshots": self.snapshots,
            "overall": self.overall.to_dict(),
            "strategies": {s.scope: s.to_dict() for s in self.strategies},
        }


# --- reading ---------------------------------------------------------------------------------


def load_report(engine: Engine, run: RunRecord) -> RunReport:
    """Read the records of `run` and compute its report."""
    return build_report(
        run, queries.equity(engine, run.id), queries.fills(engine, run.id), queries.positions(engine, run.id),
        queries.strategy_equity(engine, run.id),
    )


@dataclass(frozen=True)
class _Point:
    """One snapshot of a strategy's own equity curve."""

    step: int
    timestamp: datetime
    equity: Decimal


# --- computing -------------------------------------------------------------------------------


def build_report(
    run: RunRecord,
    equity: Sequence[EquityRecord],
    fills: Sequence[FillRecord],
    positions: Sequence[PositionRecord],
    strategy_equity: Sequence[StrategyEquityRecord] = (),
) -> RunReport:
    """Compute the report of `run` from its rows (any order; they are sorted here)."""
    equity = sorted(equity, key=lambda row: row.step)
    fills = sorted(fills, key=lambda row: row.fill_id)
    config = _config_of(run)
    starting_cash = _starting_cash(run, config, equity)
    gap = _median_gap(equity)
    bar_interval, bar_seconds = _bar_interval(config, equity, gap)
    if gap is None and bar_seconds is not None and equity:
        gap = bar_seconds * _equity_every(config)
    periods_per_year = SECONDS_PER_YEAR / gap if gap else None

    curve = _curve(equity, starting_cash, gap)
    trades = tuple(round_trips(fills))
    names = _strategy_names(config, fills, positions)
    final_equity = equity[-1].equity if equity else starting_cash
    net_pnl = final_equity - starting_cash if starting_cash is not None else None

    overall = _trade_statistics("overall", trades, fills, equity, net_pnl=net_pnl, strategy=None)
    overall = _with_curve_statistics(overall, curve, starting_cash, periods_per_year)
    per_strategy = tuple(
        _with_curve_statistics(
            _trade_statistics(
                name, [t for t in trades if t.strategy == name], [f for f in fills if f.strategy == name],
                equity, net_pnl=sum((_net_pnl(p) for p in positions if p.strategy == name), ZERO), strategy=name,
            ),
            _curve(own, capital, gap), capital, periods_per_year,
        )
        for name in names
        for capital in [_capital(config, name, starting_cash)]
        for own in [_own_curve(strategy_equity, name, capital)]
    )
    return RunReport(
        run_id=run.id, status=run.status, started_at=run.started_at, ended_at=run.ended_at,
        starting_cash=starting_cash, final_equity=final_equity,
        bar_interval=bar_interval, bar_seconds=bar_seconds, snapshot_seconds=gap,
        periods_per_year=periods_per_year, snapshots=len(equity),
        first_bar=equity[0].timestamp if equity else None,
        last_bar=equity[-1].timestamp if equity else None,
        overall=overall, strategies=per_strategy, curve=curve, trades=trades,
    )


def round_trips(fills: Sequence[FillRecord]) -> list[Trade]:
    """The trades of `fills` (taken in the given order), open ones last in their key's order."""
    trades: list[Trade] = []
    state: dict[tuple[str, str], _OpenTrade] = {}
    for fill in fills:
        key = (fill.strategy, fill.symbol)
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        remaining, commission = signed, fill.commission
        while remaining:
            current = state.get(key)
            if current is None:
                current = state[key] = _OpenTrade(fill.strategy, fill.symbol, fill.timestamp, remaining > 0)
            held = current.position
            closing = held != 0 and (held > 0) != (remaining > 0)
            part = -held if closing and abs(remaining) > abs(held) else remaining
            share = commission * abs(part) / abs(remaining)
            current.add(part, fill.price, share)
            remaining -= part
            commission -= share
            if current.position == 0:
                trades.append(current.closed(fill.timestamp))
                del state[key]
    trades.extend(open_trade.still_open() for open_trade in state.values())
    return trades


class _OpenTrade:
    def __init__(self, strategy: str, symbol: str, opened_at: datetime, long: bool) -> None:
        self.strategy, self.symbol, self.opened_at, self.long = strategy, symbol, opened_at, long
        self.position = ZERO
        self.largest = ZERO
        self.cash = ZERO
        self.fees = ZERO

    def add(self, signed_quantity: Decimal, price: Decimal, commission: Decimal) -> None:
        self.position += signed_quantity
        self.largest = max(self.largest, abs(self.position))
        self.cash -= signed_quantity * price
        self.fees += commission

    def _trade(self, closed_at: datetime | None, pnl: Decimal | None) -> Trade:
        return Trade(
            self.strategy, self.symbol, "long" if self.long else "short", self.opened_at,
            closed_at, self.largest, pnl, self.fees,
        )

    def closed(self, at: datetime) -> Trade:
        return self._trade(at, self.cash - self.fees)

    def still_open(self) -> Trade:
        return self._trade(None, None)


def _trade_statistics(
    scope: str, trades: Sequence[Trade], fills: Sequence[FillRecord], equity: Sequence[EquityRecord],
    net_pnl: Decimal, strategy: str | None,
) -> Statistics:
    closed = [t.pnl for t in trades if t.pnl is not None]
    wins = [pnl for pnl in closed if pnl > 0]
    losses = [pnl for pnl in closed if pnl < 0]
    gross_loss = -sum(losses, ZERO)
    return Statistics(
        scope=scope,
        net_pnl=net_pnl,
        fees=sum((f.commission for f in fills), ZERO),
        trades=len(closed),
        open_trades=len(trades) - len(closed),
        winners=len(wins),
        losers=len(losses),
        win_rate=len(wins) / len(closed) if closed else None,
        profit_factor=float(sum(wins, ZERO) / gross_loss) if gross_loss else None,
        average_win=_average(wins),
        average_loss=_average(losses),
        exposure=_exposure(fills, equity, strategy),
    )


def _average(amounts: Sequence[Decimal]) -> Decimal | None:
    """The mean amount, rounded to 8 decimal places (trailing zeros dropped); None if none."""
    if not amounts:
        return None
    mean = (sum(amounts, ZERO) / len(amounts)).quantize(AVERAGE_QUANTUM)
    text = f"{mean:f}"
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _exposure(fills: Sequence[FillRecord], equity: Sequence[EquityRecord], strategy: str | None) -> float | None:
    """Share of snapshots holding a position, counting fills up to each snapshot's time."""
    if not equity:
        return None
    ordered = sorted((f for f in fills if strategy is None or f.strategy == strategy),
                     key=lambda f: (f.timestamp, f.fill_id))
    held: dict[tuple[str, str], Decimal] = {}
    exposed, index = 0, 0
    for snapshot in equity:
        while index < len(ordered) and ordered[index].timestamp <= snapshot.timestamp:
            fill = ordered[index]
            key = (fill.strategy, fill.symbol)
            held[key] = held.get(key, ZERO) + (fill.quantity if fill.side == "BUY" else -fill.quantity)
            index += 1
        exposed += any(held.values())
    return exposed / len(equity)


def _with_curve_statistics(
    stats: Statistics, curve: Sequence[CurvePoint], starting_cash: Decimal, periods_per_year: float | None,
) -> Statistics:
    if len(curve) < 2 or starting_cash is None:
        return stats
    values = [point.equity for point in curve]
    n = len(values) - 1
    total = float(values[-1] / starting_cash - 1)
    returns = (
        [float(values[i] / values[i - 1] - 1) for i in range(1, len(values))]
        if all(value > 0 for value in values[:-1]) else []
    )
    annualised = volatility = sharpe = sortino = None
    if periods_per_year:
        annualised = _annualised(total, periods_per_year / n)
        if len(returns) >= 2:
            mean, deviation = statistics.fmean(returns), statistics.stdev(returns)
            root = math.sqrt(periods_per_year)
            volatility = deviation * root
            sharpe = mean / deviation * root if deviation > 0 else None
            downside = math.sqrt(statistics.fmean(min(r, 0.0) ** 2 for r in returns))
            sortino = mean / downside * root if downside > 0 else None
    depth, bars, seconds, recovered = _max_drawdown(curve)
    return replace(
        stats, total_return=total, annualised_return=annualised, annualised_volatility=volatility,
        sharpe=sharpe, sortino=sortino, max_drawdown=depth, max_drawdown_bars=bars,
        max_drawdown_seconds=seconds, max_drawdown_recovered=recovered,
    )


def _annualised(total: float, exponent: float) -> float | None:
    if 1 + total < 0:
        return None
    try:
        return (1 + total) ** exponent - 1
    except OverflowError:
        return None


def _max_drawdown(curve: Sequence[CurvePoint]) -> tuple[float, int, float, bool]:
    """Depth, duration in bars and seconds, and whether the curve got back to the peak."""
    trough = max(range(len(curve)), key=lambda i: (curve[i].drawdown, -i))
    if curve[trough].drawdown == 0:
        return 0.0, 0, 0.0, True
    peak_value = max(point.equity for point in curve[: trough + 1])
    peak = max(i for i in range(trough + 1) if curve[i].equity == peak_value)
    end = next((i for i in range(trough + 1, len(curve)) if curve[i].equity >= peak_value), None)
    recovered = end is not None
    end = end if recovered else len(curve) - 1
    seconds = (curve[end].timestamp - curve[peak].timestamp).total_seconds()
    return curve[trough].drawdown, curve[end].step - curve[peak].step, seconds, recovered


def _curve(
    equity: Sequence[EquityRecord], starting_cash: Decimal | None, gap: float | None,
) -> tuple[CurvePoint, ...]:
    if not equity or starting_cash is None:
        return ()
    start = equity[0].timestamp - timedelta(seconds=gap or 0)
    points, peak = [], ZERO
    for step, timestamp, value in [(0, start, starting_cash)] + [(r.step, r.timestamp, r.equity) for r in equity]:
        peak = max(peak, value)
        drawdown = float((peak - value) / peak) if peak > 0 else 0.0
        points.append(CurvePoint(step, timestamp, value, drawdown))
    return tuple(points)


def _median_gap(equity: Sequence[EquityRecord]) -> float | None:
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in zip(equity, equity[1:])]
    gap = statistics.median(gaps) if gaps else None
    return float(gap) if gap else None


def _bar_interval(config, equity: Sequence[EquityRecord], gap: float | None) -> tuple[str | None, float | None]:
    interval = getattr(getattr(config, "market_data", None), "interval", None)
    if interval:
        return interval, float(interval_seconds(interval))
    steps = [b.step - a.step for a, b in zip(equity, equity[1:])]
    if gap is None or not steps or statistics.median(steps) <= 0:
        return None, None
    seconds = gap / statistics.median(steps)
    return _interval_text(seconds), seconds


def _interval_text(seconds: float) -> str | None:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return None


def _config_of(run: RunRecord):
    """The run's config parsed from its stored text, or None (no text, or it no longer parses)."""
    if not run.config_text.strip():
        return None
    try:
        return load_config_text(run.config_text, run.config_path or "<config>")
    except ConfigError:
        return None


def _starting_cash(run: RunRecord, config, equity: Sequence[EquityRecord]) -> Decimal | None:
    """From the run's summary, else its config, else the first snapshot's equity, else None."""
    try:
        return Decimal(json.loads(run.summary)["starting_cash"])
    except (ValueError, KeyError, TypeError, ArithmeticError):
        pass
    if config is not None:
        return config.broker.starting_cash
    return equity[0].equity if equity else None


def _capital(config, name: str, starting_cash: Decimal | None) -> Decimal | None:
    """What a strategy's returns are measured against: its allocation, else the starting cash."""
    entry = next((e for e in config.strategies if e.display_name == name), None) if config is not None else None
    return entry.allocation if entry is not None and entry.allocation else starting_cash


def _own_curve(rows: Sequence[StrategyEquityRecord], name: str, capital: Decimal | None) -> list[_Point]:
    if capital is None:
        return []
    return sorted(
        (_Point(row.step, row.timestamp, capital + row.pnl) for row in rows if row.strategy == name),
        key=lambda point: point.step,
    )


def _equity_every(config) -> int:
    return config.storage.equity_every if config is not None else 1


def _strategy_names(config, fills: Sequence[FillRecord], positions: Sequence[PositionRecord]) -> list[str]:
    """The config's enabled strategies in its order, then any other name the records hold."""
    names = [entry.display_name for entry in config.strategies if entry.enabled] if config is not None else []
    names += sorted({row.strategy for row in [*fills, *positions]})
    return list(dict.fromkeys(names))


def _net_pnl(position: PositionRecord) -> Decimal:
    unrealised = (position.last_price - position.average_cost) * position.quantity
    return position.realized_pnl + unrealised - position.fees


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _ratio(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, RATIO_PLACES)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
