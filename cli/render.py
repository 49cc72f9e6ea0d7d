"""Rich renderables for runs: the live progress line and the end-of-run summary."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from runner.snapshot import RunSnapshot, StrategySnapshot


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def signed(value: Decimal) -> Text:
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:+,.2f}", style=style)


def progress_line(snap: RunSnapshot, bar: bool = True) -> Text:
    """One line: progress (a bar and ETA when the end is known, else the elapsed time), bar time,
    equity and P&L, orders, fills, rejections, errors. `bar=False` leaves out the block glyphs,
    for logs."""
    rate = snap.steps / snap.elapsed_seconds if snap.elapsed_seconds > 0 else 0.0
    line = Text("▶ ", style="bold cyan") if bar else Text()
    total = snap.total_steps
    if total:
        share = min(snap.steps / total, 1.0)
        if bar:
            filled = int(share * 20)
            line.append("█" * filled + "░" * (20 - filled) + " ", style="cyan")
        eta = (total - snap.steps) / rate if rate > 0 else None
        line.append(f"{share:4.0%} {snap.steps:,}/{total:,}  ")
        line.append(f"ETA {_clock(eta)}  " if eta is not None else "ETA -  ", style="dim")
    else:
        line.append(f"step {snap.steps:,}  elapsed {_clock(snap.elapsed_seconds)}  ")
    bar_time = f"{snap.timestamp:%Y-%m-%d %H:%M}" if snap.timestamp else "-"
    line.append_text(Text.assemble(
        (f"{rate:,.0f}/s  ", "dim"), f"{bar_time}  ",
        f"equity {money(snap.equity)} (", signed(snap.pnl), ")  ",
        f"orders {snap.orders}  fills {snap.fills}  ",
    ))
    line.append(f"rejected {snap.rejections}", style="yellow" if snap.rejections else "")
    line.append("  ")
    line.append(f"errors {snap.errors}", style="red" if snap.errors else "")
    feed = dict(snap.companions).get("market_data")
    if feed is not None and feed["stale"]:
        line.append("  market data STALE", style="bold red")
    return line


def companion_rows(snap: RunSnapshot) -> list[tuple[str, Text]]:
    """(label, text) for the live market data, its recording and the signal webhook, if any."""
    parts = dict(snap.companions)
    rows = []
    feed = parts.get("market_data")
    if feed is not None:
        state = Text(f"STALE: {feed['reason']}", style="bold red") if feed["stale"] else Text("live", style="green")
        state.append(
            f"  {feed['source']}  last bar {feed['last_bar_time'] or '-'}  requests {feed['requests']:,}  "
            f"errors {feed['errors']:,}", style="",
        )
        rows.append(("market data", state))
    recording = parts.get("recording")
    if recording is not None:
        rows.append(("recording", Text(f"{recording['bars']:,} bars to {recording['path']}")))
    hook = parts.get("webhook")
    if hook is not None:
        trouble = hook["failed"] or hook["dropped"]
        rows.append(("webhook", Text(
            f"sent {hook['sent']:,}  failed {hook['failed']:,}  dropped {hook['dropped']:,}  "
            f"queued {hook['queued']:,}  ({hook['url']})", style="yellow" if trouble else "",
        )))
    return rows


def _clock(seconds: float) -> str:
    minutes, second = divmod(int(seconds + 0.5), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


def summary(snap: RunSnapshot) -> Group:
    """The end-of-run summary: totals, then one row per strategy."""
    status_style = {"completed": "green", "stopped": "yellow", "failed": "bold red"}.get(snap.status, "")
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    totals.add_row("run", snap.run_id)
    totals.add_row("status", Text(snap.status, style=status_style))
    if snap.error:
        totals.add_row("error", Text(snap.error, style="red"))
    totals.add_row("ticks", f"{snap.steps:,}" + (f"  (last bar {snap.timestamp:%Y-%m-%d %H:%M} UTC)" if snap.timestamp else ""))
    totals.add_row("orders", f"{snap.orders:,}")
    totals.add_row("fills", f"{snap.fills:,}")
    totals.add_row("rejections", Text(f"{snap.rejections:,}", style="yellow" if snap.rejections else ""))
    if snap.policy_blocks:
        blocks = ", ".join(f"{rule} {count:,}" for rule, count in snap.policy_blocks)
        totals.add_row("policy blocks", Text(blocks, style="yellow"))
    if snap.skipped_rows:
        totals.add_row("skipped rows", Text(f"{snap.skipped_rows:,} bad data rows dropped (on_bad_rows: skip)", style="yellow"))
    totals.add_row("final equity", f"{money(snap.equity)}  (start {money(snap.starting_cash)})")
    totals.add_row("P&L", signed(snap.pnl))
    totals.add_row("records", snap.database)
    for label, text in companion_rows(snap):
        totals.add_row(label, text)

    table = Table(title="strategies", title_justify="left", show_edge=False)
    table.add_column("strategy")
    table.add_column("state")
    for name in ("calls", "signals", "accepted", "rejected", "errors", "ms mean/p95/max", "overruns", "queue"):
        table.add_column(name, justify="right")
    table.add_column("P&L (net of fees)", justify="right")
    for s in snap.strategies:
        table.add_row(
            s.name, Text(s.state, style="red" if s.state == "disabled" else ""),
            f"{s.calls:,}", f"{s.signals:,}", f"{s.accepted:,}",
            Text(f"{s.rejected:,}", style="yellow" if s.rejected else ""),
            Text(f"{s.errors:,}", style="red" if s.errors else ""), _timing(s), _overruns(s),
            f"{s.queue_depth:,}", signed(s.pnl),
        )
    parts = [totals, Text(), table]
    parts.extend(
        Text(f"{s.name} disabled: {s.disabled_reason}", style="red")
        for s in snap.strategies if s.disabled_reason
    )
    parts.extend(
        Text(f"{s.name} halted by policy.max_daily_loss_per_strategy until {s.halted_until:%Y-%m-%d %H:%M} UTC", style="yellow")
        for s in snap.strategies if s.halted_until
    )
    return Group(*parts)


def _timing(s: StrategySnapshot) -> str:
    return f"{s.mean_ms:.2f}/{s.p95_ms:.2f}/{s.max_ms:.2f}"


def _overruns(s: StrategySnapshot) -> Text:
    return Text(f"{s.overruns:,}", style="yellow" if s.overruns else "")


LATEST_ORDERS = 6
MAX_ROWS = 10  # open positions shown in the live view


def dashboard(snap: RunSnapshot) -> Group:
    """The live view of `runner start` on a terminal: progress, strategies with their timing and
    errors, open positions, and the latest orders (rejections in yellow)."""
    strategies = Table(show_edge=False, box=None, padding=(0, 1), title="strategies", title_justify="left")
    for name, justify in (("strategy", "left"), ("state", "left"), ("calls", "right"), ("signals", "right"),
                          ("rejected", "right"), ("errors", "right"), ("ms mean/p95/max", "right"),
                          ("overruns", "right"), ("queue", "right"), ("P&L", "right")):
        strategies.add_column(name, justify=justify)
    for s in snap.strategies:
        state = Text("halted", style="yellow") if s.halted_until and s.state == "running" else Text(
            s.state, style="red" if s.state == "disabled" else "",
        )
        strategies.add_row(
            s.name, state, f"{s.calls:,}",
            f"{s.signals:,}", Text(f"{s.rejected:,}", style="yellow" if s.rejected else ""),
            Text(f"{s.errors:,}", style="red" if s.errors else ""), _timing(s), _overruns(s),
            f"{s.queue_depth:,}", signed(s.pnl),
        )
    positions = Table(show_edge=False, box=None, padding=(0, 1), title="open positions", title_justify="left")
    for name, justify in (("strategy", "left"), ("symbol", "left"), ("quantity", "right"),
                          ("avg cost", "right"), ("last", "right"), ("unrealised", "right")):
        positions.add_column(name, justify=justify)
    for p in snap.open_positions[:MAX_ROWS]:
        positions.add_row(p.strategy, p.symbol, f"{p.quantity:,}", money(p.average_cost), money(p.last_price), signed(p.unrealized_pnl))
    orders = Table(show_edge=False, box=None, padding=(0, 1), title="latest orders", title_justify="left")
    for name in ("id", "strategy", "symbol", "side", "qty", "status", "reason"):
        orders.add_column(name)
    # Each order's last state; orders refused before they were made all have id 0: keep each.
    latest = list({o.id or id(o): o for o in snap.recent_orders}.values())[-LATEST_ORDERS:]
    for o in latest:
        style = "yellow" if o.status.value == "REJECTED" else ""
        orders.add_row(str(o.id), o.strategy, o.symbol, o.side.value, f"{o.quantity:,}",
                       Text(o.status.value, style=style), Text(o.reason[:60], style=style))
    parts = [progress_line(snap), Text(), strategies]
    if snap.companions:
        extras = Table.grid(padding=(0, 2))
        extras.add_column(style="bold")
        extras.add_column()
        for label, text in companion_rows(snap):
            extras.add_row(label, text)
        parts[1:1] = [extras]
    if snap.open_positions:
        parts += [Text(), positions]
        if len(snap.open_positions) > MAX_ROWS:
            parts.append(Text(f"... and {len(snap.open_positions) - MAX_ROWS} more open positions", style="dim"))
    if snap.recent_orders:
        parts += [Text(), orders]
    return Group(*parts)
