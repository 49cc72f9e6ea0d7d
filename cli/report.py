"""`runner report`: the performance statistics of a run, or of several runs side by side.

The figures are computed by `runner.report` (see its docstring for the definitions); this module
renders them as a rich table, JSON, a PNG (matplotlib, from the `report` extra) and one
self-contained HTML page. `cli/app.py` registers it with `app.command()(report)`; it reads the
records like the other read commands (`cli.records`), never creating or changing a database.
"""

from __future__ import annotations

import base64
import html as html_text
import io
import json
import sys
from bisect import bisect_right
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

MISSING_MATPLOTLIB = "--plot and --html draw with matplotlib, which is not installed: pip install -e '.[report]'"


def report(
    run_ids: Annotated[Optional[list[str]], typer.Argument(
        metavar="RUN_ID", show_default=False,
        help="Run id(s); default: the latest run. Several are compared side by side.",
    )] = None,
    db: Annotated[Optional[str], typer.Option(
        help="The records: a SQLite file (default: runs/runner.db) or a database URL such as "
        "postgresql+psycopg://runner@db.example/runs.", metavar="PATH|URL", show_default=False,
    )] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print JSON alone on stdout: one object, or a list for several runs.",
    )] = False,
    plot: Annotated[Optional[Path], typer.Option(
        dir_okay=False, help="Write a PNG: the equity curve, the drawdown below it, trade markers.",
    )] = None,
    html: Annotated[Optional[Path], typer.Option(
        dir_okay=False, help="Write one self-contained HTML page with the table and the plot.",
    )] = None,
) -> None:
    """Statistics of a run: returns, volatility, Sharpe, Sortino, drawdown, trades, win rate,
    profit factor, exposure and fees, overall and per strategy.

    Examples:  runner report --plot equity.png      runner report RUN_A RUN_B --json
    """
    from cli.records import emit, reading
    from runner.report import load_report

    err = Console(stderr=True)
    with reading(db, json_output) as records:
        runs = [records.find_run(run_id) for run_id in run_ids] if run_ids else [records.find_run(None)]
        reports = [load_report(records.engine, run) for run in runs]
        png = _figure_png(reports) if plot or html else None
        if plot:
            _write(plot, png)
            err.print(f"wrote {escape(str(plot))}", highlight=False)
        if html:
            _write(html, page(reports, png).encode("utf-8"))
            err.print(f"wrote {escape(str(html))}", highlight=False)
    if json_output:
        data = [r.to_dict() for r in reports]
        sys.stdout.write(json.dumps(data[0] if len(data) == 1 else data) + "\n")
        return
    if len(reports) == 1:
        emit(Text.from_markup(_heading(reports[0])), _rich_table(*statistics_table(reports[0])))
    else:
        emit(_rich_table(*comparison_table(reports)))


def _write(path: Path, content: bytes) -> None:
    from runner.errors import ConfigError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


# --- the table -------------------------------------------------------------------------------


def _plain_money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _signed_money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def _percent(value: float | None, sign: bool = False) -> str:
    return "-" if value is None else (f"{value:+.2%}" if sign else f"{value:.2%}")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def timespan(seconds: float | None) -> str:
    """A duration in its two largest units: 4d, 2h 05m, 3m 20s, 45s."""
    if seconds is None:
        return "-"
    left = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count or parts:
            parts.append((count, unit))
    parts = parts[:2] if parts else [(0, "s")]
    first, *rest = parts
    return " ".join([f"{first[0]}{first[1]}"] + [f"{count:02d}{unit}" for count, unit in rest if count])


def _drawdown_duration(s) -> str:
    if s.max_drawdown_bars is None:
        return "-"
    bars = f"{s.max_drawdown_bars} bar{'' if s.max_drawdown_bars == 1 else 's'}"
    text = f"{bars}, {timespan(s.max_drawdown_seconds)}"
    return text if s.max_drawdown_recovered else text + " (ongoing)"


def _trades(s) -> str:
    return f"{s.trades}" + (f" (+{s.open_trades} open)" if s.open_trades else "")


# (label, formatter of a Statistics, signed: coloured by sign in the terminal)
STATISTICS: list[tuple[str, Callable, bool]] = [
    ("net P&L", lambda s: _signed_money(s.net_pnl), True),
    ("total return", lambda s: _percent(s.total_return, sign=True), True),
    ("annualised return", lambda s: _percent(s.annualised_return, sign=True), True),
    ("annualised volatility", lambda s: _percent(s.annualised_volatility), False),
    ("Sharpe", lambda s: _number(s.sharpe), False),
    ("Sortino", lambda s: _number(s.sortino), False),
    ("max drawdown", lambda s: _percent(s.max_drawdown), False),
    ("drawdown duration", _drawdown_duration, False),
    ("trades", _trades, False),
    ("win rate", lambda s: _percent(s.win_rate), False),
    ("profit factor", lambda s: _number(s.profit_factor), False),
    ("average win", lambda s: _plain_money(s.average_win), False),
    ("average loss", lambda s: _plain_money(s.average_loss), False),
    ("exposure", lambda s: _percent(s.exposure), False),
    ("fees", lambda s: _plain_money(s.fees), False),
]

Rows = list[tuple[str, list[str], bool]]


def _time(moment) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _bars(r) -> str:
    if r.first_bar is None:
        return "no equity snapshots yet"
    last = f"{r.last_bar:%H:%M}" if r.last_bar.date() == r.first_bar.date() else _time(r.last_bar)
    return f"{_time(r.first_bar)} to {last} UTC"


def _run_rows(r) -> Rows:
    return [
        ("status", [r.status], False),
        ("first bar (UTC)", [_time(r.first_bar)], False),
        ("last bar (UTC)", [_time(r.last_bar)], False),
        ("bar interval", [r.bar_interval or "-"], False),
        ("snapshots", [f"{r.snapshots:,}"], False),
        ("starting cash", [_plain_money(r.starting_cash)], False),
        ("final equity", [_plain_money(r.final_equity)], False),
    ]


def statistics_table(r) -> tuple[list[str], Rows]:
    """One run: a row per statistic, a column for the whole account and one per strategy."""
    scopes = [r.overall, *r.strategies]
    headers = ["statistic", "overall", *(s.scope for s in r.strategies)]
    return headers, [(label, [cell(s) for s in scopes], signed) for label, cell, signed in STATISTICS]


def comparison_table(reports: list) -> tuple[list[str], Rows]:
    """Several runs: a row per statistic (overall figures), a column per run."""
    headers = ["statistic", *(r.run_id for r in reports)]
    rows: Rows = []
    for index, (label, _, _) in enumerate(_run_rows(reports[0])):
        rows.append((label, [_run_rows(r)[index][1][0] for r in reports], False))
    rows += [(label, [cell(r.overall) for r in reports], signed) for label, cell, signed in STATISTICS]
    return headers, rows


def _span(r) -> str:
    span = _bars(r)
    if r.snapshots:
        span += f", {r.snapshots:,} snapshots" + (f" of {r.bar_interval} bars" if r.bar_interval else "")
    return span


def _heading(r) -> str:
    return (
        f"[bold]run {escape(r.run_id)}[/] ({escape(r.status)})\n{_span(r)}\n"
        f"starting cash {_plain_money(r.starting_cash)}   final equity {_plain_money(r.final_equity)}\n"
    )


def _rich_table(headers: list[str], rows: Rows) -> Table:
    from cli.records import plain_table

    table = plain_table("")
    table.add_column(headers[0], style="bold")
    for header in headers[1:]:
        table.add_column(escape(header), justify="right")
    for label, cells, signed in rows:
        table.add_row(label, *(_styled(cell, signed) for cell in cells))
    return table


def _styled(cell: str, signed: bool) -> Text:
    if signed and cell.startswith("+") and cell.strip("+0.,%"):
        return Text(cell, style="green")
    if signed and cell.startswith("-") and cell != "-":
        return Text(cell, style="red")
    return Text(cell)


# --- the plot and the page -------------------------------------------------------------------


def _figure_png(reports: list) -> bytes:
    """The equity curve(s) on top, the drawdown below; with one run, its trades as markers."""
    from runner.errors import ConfigError

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
        from matplotlib.ticker import StrMethodFormatter
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None

    figure = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for r in reports:
        times = [point.timestamp for point in r.curve]
        top.plot(times, [float(point.equity) for point in r.curve], linewidth=1.2, label=r.run_id)
        depth = [-100 * point.drawdown for point in r.curve]
        line, = bottom.plot(times, depth, linewidth=1)
        bottom.fill_between(times, depth, 0, alpha=0.25, color=line.get_color())
    if len(reports) == 1:
        _trade_markers(top, reports[0])
    if not any(r.curve for r in reports):
        top.text(0.5, 0.5, "no equity snapshots recorded", transform=top.transAxes, ha="center", va="center")
    title = f"run {reports[0].run_id}" if len(reports) == 1 else f"{len(reports)} runs"
    top.set_title(f"{title}: equity and drawdown")
    top.set_ylabel("equity")
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 100,035, not +1e5 and 35
    bottom.set_ylabel("drawdown %")
    for axes in (top, bottom):
        axes.grid(True, alpha=0.3)
    if any(r.curve for r in reports):
        locator = AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        top.legend(loc="best", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _trade_markers(axes, r) -> None:
    """Entries as triangles (up long, down short); exits as dots, green won, red lost."""
    if not r.curve:
        return
    times = [point.timestamp for point in r.curve]

    def equity_at(moment) -> float:
        return float(r.curve[max(bisect_right(times, moment) - 1, 0)].equity)

    markers = {
        "long entry": ([t.opened_at for t in r.trades if t.direction == "long"], "^", "tab:blue"),
        "short entry": ([t.opened_at for t in r.trades if t.direction == "short"], "v", "tab:orange"),
        "winning exit": ([t.closed_at for t in r.trades if t.pnl is not None and t.pnl > 0], "o", "tab:green"),
        "losing exit": ([t.closed_at for t in r.trades if t.pnl is not None and t.pnl <= 0], "o", "tab:red"),
    }
    for label, (moments, marker, colour) in markers.items():
        if moments:
            axes.scatter(moments, [equity_at(m) for m in moments], marker=marker, color=colour, s=28, zorder=3,
                         label=f"{label} ({len(moments)})")


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 62rem;
       color: #1f2328; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
p.meta { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.8rem; border-bottom: 1px solid #d1d9e0; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #59636e; }
td.pos { color: #1a7f37; } td.neg { color: #cf222e; }
img { max-width: 100%; border: 1px solid #d1d9e0; }
"""


def page(reports: list, png: bytes) -> str:
    """One self-contained HTML page: inline CSS, the table, the plot as an inline PNG."""
    esc = html_text.escape
    if len(reports) == 1:
        r = reports[0]
        headers, rows = statistics_table(r)
        title = f"runner report {r.run_id}"
        meta = (f"{esc(r.status)} &middot; {esc(_span(r))} &middot; starting cash "
                f"{esc(_plain_money(r.starting_cash))} &middot; final equity {esc(_plain_money(r.final_equity))}")
    else:
        headers, rows = comparison_table(reports)
        title = "runner report: " + ", ".join(r.run_id for r in reports)
        meta = f"{len(reports)} runs side by side (overall figures)"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr><td>" + esc(label) + "</td>" + "".join(_html_cell(cell, signed) for cell in cells) + "</tr>"
        for label, cells, signed in rows
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p class="meta">{meta}</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<img alt="equity curve with the drawdown below it" src="data:image/png;base64,{image}">
<p class="meta">Returns per equity snapshot; annualised with 365-day years; Sharpe and Sortino with a
risk-free rate of 0; "-" where a figure is undefined. Return, volatility, Sharpe, Sortino and drawdown
are for the whole account only.</p>
</body>
</html>
"""


def _html_cell(cell: str, signed: bool) -> str:
    styled = _styled(cell, signed).style
    kind = {"green": ' class="pos"', "red": ' class="neg"'}.get(str(styled), "")
    return f"<td{kind}>{html_text.escape(cell)}</td>"
