"""Read commands over the recorded runs: `runner runs`, `status`, `orders`, `fills`, `positions`.

Each reads the latest run unless a run id is given, from `--db` (default: runs/runner.db; a
SQLite file path, or a database URL such as postgresql+psycopg://host/db), and never creates or
changes a database. With `--json`, stdout holds one JSON array (lists) or
object (`status`) and nothing else: money as exact decimal strings, times as ISO 8601 UTC.
Without it, aligned tables (money with 2 decimals, gains green, losses red); on a pipe or a
file the same tables come as plain text: no colours, no trailing blanks, no wrapped rows.

Heavy modules (SQLAlchemy, the storage layer) are imported inside the commands, so that
`runner --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cli.errors import handled
from runner.domain import OrderStatus  # stdlib only: cheap to import

RECENT_IDS = 5  # how many run ids an "unknown run id" message lists
PIPE_WIDTH = 240  # the width of tables written to a pipe or file (no terminal to fit)
SINCE_FORMAT = "an ISO 8601 date or time such as 2024-01-02, 2024-01-02T14:30 or 2024-01-02T14:30:00Z (UTC unless an offset is given)"
ORDER_STATUSES = tuple(status.value for status in OrderStatus)
STATUS_STYLES = {
    "completed": "green", "running": "cyan", "stopped": "yellow", "failed": "bold red",
    "FILLED": "green", "PARTIALLY_FILLED": "cyan", "REJECTED": "red", "CANCELLED": "yellow",
    "EXPIRED": "yellow",
}

# --- options shared by the commands ---------------------------------------------------------------

RunIdArg = Annotated[Optional[str], typer.Argument(
    help="Id of a recorded run (see `runner runs`); default: the latest run. Example: 20240102-143000-ab12",
    show_default=False,
    metavar="RUN_ID",
)]
DbOption = Annotated[Optional[str], typer.Option(
    "--db", help="The records: a SQLite file (default: runs/runner.db) or a database URL. "
    "Example: --db runs/try.db, or --db postgresql+psycopg://runner@db.example/runs",
    show_default=False, metavar="PATH|URL",
)]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print JSON on stdout and nothing else there (money as exact strings, times ISO 8601 UTC). "
    "Example: --json | python -m json.tool",
)]
StrategyOption = Annotated[Optional[str], typer.Option(
    "--strategy", "-s", help="Only this strategy (its name in the config). Example: --strategy ma_fast",
    show_default=False,
)]
SymbolOption = Annotated[Optional[str], typer.Option(
    "--symbol", help="Only this symbol (any case). Example: --symbol AAPL", show_default=False,
)]
SinceOption = Annotated[Optional[str], typer.Option(
    "--since", help="Only from this time on (ISO 8601, UTC unless an offset is given). "
    "Example: --since 2024-01-02T14:30:00Z", show_default=False,
)]


def _limit_option(what: str) -> Any:
    return typer.Option(
        "--limit", "-n", min=0, max=2**62, help=f"Show at most N {what} (0 = all). Example: --limit 10",
    )


# --- the commands -------------------------------------------------------------------------------


def runs(
    db: DbOption = None,
    limit: Annotated[int, _limit_option("runs, newest first")] = 20,
    json_output: JsonOption = False,
) -> None:
    """List the recorded runs, newest first.

    Each with its status, start and end (UTC), ticks, final equity, P&L and strategies.

    Example:  runner runs --db runs/try.db --limit 5
    """
    with reading(db, json_output) as records:
        rows = [records.run_row(run) for run in records.queries.list_runs(records.engine, limit or None)]
    if json_output:
        return _print_json(rows)
    if not rows:
        return _say(f"no runs in {records.path}")
    table = plain_table("runs", f"newest first, from {records.path}; times UTC")
    for name, justify in (("run", "left"), ("status", "left"), ("started", "left"), ("ended", "left"),
                          ("ticks", "right"), ("final equity", "right"), ("P&L", "right"), ("strategies", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "strategies")
    for r in rows:
        table.add_row(
            r["id"], _status_text(r["status"]), _time(r["started_at"]), _time(r["ended_at"]),
            f"{r['ticks']:,}", _money(r["final_equity"]), _signed(r["pnl"]), escape(", ".join(r["strategies"])),
        )
    emit(table)


def status(run_id: RunIdArg = None, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Show a run's cash, equity and P&L, and each strategy's state and open positions.

    The run's status, times, ticks and error; cash and equity from its latest equity snapshot and
    P&L against the starting cash; per strategy its state, P&L, errors and open positions
    (average cost, last price, unrealised P&L).

    Example:  runner status --db runs/try.db

    Example:  runner status 20240102-143000-ab12 --json
    """
    with reading(db, json_output) as records:
        run = records.find_run(run_id)
        data = records.status(run)
    if json_output:
        return _print_json(data)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", escape(data["run_id"]))
    head.add_row("status", _status_text(data["status"]))
    if data["error"]:
        head.add_row("error", Text(data["error"], style="red"))
    head.add_row("started", _time(data["started_at"]) + " UTC")
    head.add_row("ended", _time(data["ended_at"]) + (" UTC" if data["ended_at"] else ""))
    head.add_row("ticks", f"{data['ticks']:,}" + (f"  (last bar {_time(data['last_bar_time'])} UTC)" if data["last_bar_time"] else ""))
    head.add_row("cash", _money(data["cash"]))
    head.add_row("equity", _money(data["equity"]) + (f"  (start {_money(data['starting_cash'])})" if data["starting_cash"] else ""))
    head.add_row("P&L", _signed(data["pnl"]))
    head.add_row("records", escape(str(records.path)))

    strategies = plain_table("strategies")
    for name, justify in (("strategy", "left"), ("state", "left"), ("P&L (net of fees)", "right"),
                          ("errors", "right"), ("open positions", "right")):
        strategies.add_column(name, justify=justify)
    positions = plain_table("open positions")
    for name, justify in (("strategy", "left"), ("symbol", "left"), ("quantity", "right"), ("avg cost", "right"),
                          ("last", "right"), ("unrealised", "right")):
        positions.add_column(name, justify=justify)
    for s in data["strategies"]:
        strategies.add_row(
            escape(s["name"]), Text(s["state"], style="red" if s["state"] in ("disabled", "failed") else ""),
            _signed(s["pnl"]), Text(f"{s['errors']:,}", style="red" if s["errors"] else ""),
            f"{len(s['positions']):,}",
        )
        for p in s["positions"]:
            positions.add_row(escape(s["name"]), escape(p["symbol"]), _quantity(p["quantity"]), _money(p["average_cost"]),
                              _money(p["last_price"]), _signed(p["unrealized_pnl"]))
    parts: list[Any] = [head, Text(), strategies if data["strategies"] else Text("strategies: none recorded")]
    parts += [Text(f"{s['name']} disabled: {s['disabled_reason']}", style="red")
              for s in data["strategies"] if s["disabled_reason"]]
    parts += [Text(), positions if positions.row_count else Text("open positions: none")]
    emit(*parts)


def orders(
    run_id: RunIdArg = None,
    db: DbOption = None,
    strategy: StrategyOption = None,
    symbol: SymbolOption = None,
    status_: Annotated[Optional[str], typer.Option(
        "--status", help=f"Only orders in this state: {', '.join(ORDER_STATUSES)} (any case). Example: --status filled",
        show_default=False,
    )] = None,
    since: SinceOption = None,
    limit: Annotated[int, _limit_option("orders: the latest, oldest first")] = 50,
    json_output: JsonOption = False,
) -> None:
    """List a run's orders, oldest first; with --limit, the latest N.

    Each with its id, time (UTC), strategy, symbol, side, type, quantity, limit/stop price,
    status, filled quantity, average fill price and reason.

    Example:  runner orders --strategy ma_fast --status filled --limit 20

    Example:  runner orders 20240102-143000-ab12 --since 2024-01-02T15:00:00Z --json
    """
    with reading(db, json_output) as records:
        wanted = _order_status(status_)
        start = _since(since)
        run = records.find_run(run_id)
        rows = [_order_row(o) for o in records.queries.filtered_orders(
            records.engine, run.id, strategy=strategy, symbol=symbol, status=wanted, since=start, limit=limit or None,
        )]
    if json_output:
        return _print_json(rows)
    if not rows:
        return _say(f"no orders match in run {run.id}")
    table = plain_table(f"orders of {escape(run.id)}", _caption(len(rows), limit, "oldest first; times UTC"))
    for name, justify in (("id", "right"), ("time", "left"), ("strategy", "left"), ("symbol", "left"),
                          ("side", "left"), ("type", "left"), ("quantity", "right"), ("limit/stop", "right"),
                          ("status", "left"), ("filled", "right"), ("avg price", "right"), ("reason", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "reason")
    for o in rows:
        prices = " / ".join(_money(p) for p in (o["limit_price"], o["stop_price"]) if p is not None)
        table.add_row(
            str(o["order_id"]), _time(o["created_at"]), escape(o["strategy"]), escape(o["symbol"]), o["side"],
            o["type"], _quantity(o["quantity"]), prices, _status_text(o["status"]), _quantity(o["filled_quantity"]),
            _money(o["average_price"]), escape(o["reason"]),
        )
    emit(table)


def fills(
    run_id: RunIdArg = None,
    db: DbOption = None,
    strategy: StrategyOption = None,
    symbol: SymbolOption = None,
    since: SinceOption = None,
    limit: Annotated[int, _limit_option("fills: the latest, oldest first")] = 50,
    json_output: JsonOption = False,
) -> None:
    """List a run's fills, oldest first; with --limit, the latest N.

    Each with its id, time (UTC), order, strategy, symbol, side, quantity, price, commission and
    notional (quantity x price).

    Example:  runner fills --symbol AAPL --limit 10

    Example:  runner fills --strategy hold_btc --since 2024-01-02 --json
    """
    with reading(db, json_output) as records:
        start = _since(since)
        run = records.find_run(run_id)
        rows = [_fill_row(f) for f in records.queries.filtered_fills(
            records.engine, run.id, strategy=strategy, symbol=symbol, since=start, limit=limit or None,
        )]
    if json_output:
        return _print_json(rows)
    if not rows:
        return _say(f"no fills match in run {run.id}")
    table = plain_table(f"fills of {escape(run.id)}", _caption(len(rows), limit, "oldest first; times UTC"))
    for name, justify in (("id", "right"), ("time", "left"), ("order", "right"), ("strategy", "left"),
                          ("symbol", "left"), ("side", "left"), ("quantity", "right"), ("price", "right"),
                          ("commission", "right"), ("notional", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for f in rows:
        table.add_row(
            str(f["fill_id"]), _time(f["timestamp"]), str(f["order_id"]), escape(f["strategy"]), escape(f["symbol"]),
            Text(f["side"], style="green" if f["side"] == "BUY" else "red"), _quantity(f["quantity"]),
            _money(f["price"]), _money(f["commission"]), _money(f["notional"]),
        )
    emit(table)


def positions(
    run_id: RunIdArg = None,
    db: DbOption = None,
    strategy: StrategyOption = None,
    symbol: SymbolOption = None,
    open_only: Annotated[bool, typer.Option(
        "--open-only", help="Only positions still held (quantity not 0). Example: --open-only",
    )] = False,
    json_output: JsonOption = False,
) -> None:
    """List a run's positions, one per strategy and symbol.

    Each with its quantity, average cost, last price, realised and unrealised P&L
    ((last - average cost) x quantity), fees and net P&L (realised + unrealised - fees).

    Example:  runner positions --open-only

    Example:  runner positions 20240102-143000-ab12 --strategy ma_fast --json
    """
    with reading(db, json_output) as records:
        run = records.find_run(run_id)
        rows = [_position_row(p) for p in records.queries.filtered_positions(
            records.engine, run.id, strategy=strategy, symbol=symbol, open_only=open_only,
        )]
    if json_output:
        return _print_json(rows)
    if not rows:
        return _say(f"no positions match in run {run.id}")
    table = plain_table(f"positions of {escape(run.id)}", "unrealised = (last - avg cost) x quantity; net = realised + unrealised - fees")
    for name, justify in (("strategy", "left"), ("symbol", "left"), ("quantity", "right"), ("avg cost", "right"),
                          ("last", "right"), ("realised", "right"), ("unrealised", "right"), ("fees", "right"),
                          ("net", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for p in rows:
        table.add_row(
            escape(p["strategy"]), escape(p["symbol"]), _quantity(p["quantity"]), _money(p["average_cost"]),
            _money(p["last_price"]), _signed(p["realized_pnl"]), _signed(p["unrealized_pnl"]), _money(p["fees"]),
            _signed(p["net_pnl"]),
        )
    emit(table)


# --- reading the database -----------------------------------------------------------------------


@dataclass
class _Records:
    """An open runner database: the engine, how to name it, and the reads the commands share."""

    engine: Any
    path: str  # the SQLite file, or the server's URL without the password (storage.db.describe)
    queries: Any

    def find_run(self, run_id: str | None):
        """The run `run_id`, or the latest run; a usage error naming the latest ids otherwise."""
        from runner.errors import ConfigError

        if run_id is None:
            run = self.queries.latest_run(self.engine)
            if run is None:
                raise ConfigError(f"no runs in {self.path} yet; start one with `runner start CONFIG --db {self.path}`")
            return run
        run = self.queries.run(self.engine, run_id)
        if run is None:
            recent = self.queries.recent_run_ids(self.engine, RECENT_IDS)
            listed = f"latest runs: {', '.join(recent)}" if recent else "it has no runs yet"
            raise ConfigError(f"no run {run_id!r} in {self.path}; {listed} (see `runner runs`)")
        return run

    def run_row(self, run) -> dict[str, Any]:
        """One line of `runner runs`: the run, with equity and P&L from its summary (or, while it
        runs, from its latest equity snapshot)."""
        summary = _summary(run)
        starting = _decimal(summary.get("starting_cash")) or _starting_cash(run)
        final = _decimal(summary.get("final_equity"))
        if final is None:
            last = self.queries.last_equity(self.engine, run.id)
            final = last.equity if last else None
        strategies = list(summary.get("strategies") or {}) or self.queries.strategies_of_run(self.engine, run.id)
        return {
            "id": run.id, "status": run.status, "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
            "ticks": run.ticks, "starting_cash": _text(starting), "final_equity": _text(final),
            "pnl": _text(final - starting if final is not None and starting is not None else None),
            "strategies": strategies, "seed": run.seed, "config_path": run.config_path, "error": run.error,
            "replay_of": run.replay_of,
        }

    def status(self, run) -> dict[str, Any]:
        """The run's state: cash and equity from its latest equity snapshot, P&L against the
        starting cash, and per strategy its state, P&L, errors and open positions."""
        from runner.domain import Position

        summary = _summary(run)
        starting = _decimal(summary.get("starting_cash")) or _starting_cash(run)
        last = self.queries.last_equity(self.engine, run.id)
        cash = last.cash if last else _decimal(summary.get("cash"))
        equity = last.equity if last else _decimal(summary.get("final_equity"))
        if last is None and equity is None:
            cash = equity = starting  # nothing traded yet
        held = [Position(p.strategy, p.symbol, p.quantity, p.average_cost, p.realized_pnl, p.fees, p.last_price)
                for p in self.queries.positions(self.engine, run.id)]
        errors = self.queries.strategy_error_counts(self.engine, run.id)
        recorded = summary.get("strategies") or {}
        names = list(recorded) + [n for n in self.queries.strategies_of_run(self.engine, run.id) if n not in recorded]
        strategies = []
        for name in names:
            mine = [p for p in held if p.strategy == name]
            info = recorded.get(name, {})
            pnl = _decimal(info.get("pnl"))
            if pnl is None:
                pnl = sum((p.net_pnl for p in mine), Decimal(0))
            strategies.append({
                "name": name,
                "state": info.get("state") or ("running" if run.status == "running" else "unknown"),
                "pnl": str(pnl),
                "errors": max(int(info.get("errors", 0)), errors.get(name, 0)),
                "disabled_reason": info.get("disabled_reason", ""),
                "positions": [
                    {"symbol": p.symbol, "quantity": str(p.quantity), "average_cost": str(p.average_cost),
                     "last_price": str(p.last_price), "unrealized_pnl": str(p.unrealized_pnl)}
                    for p in mine if p.quantity != 0
                ],
            })
        return {
            "run_id": run.id, "status": run.status, "started_at": _iso(run.started_at),
            "ended_at": _iso(run.ended_at), "ticks": run.ticks, "error": run.error,
            "last_bar_time": _iso(last.timestamp) if last else summary.get("last_bar_time"),
            "starting_cash": _text(starting), "cash": _text(cash), "equity": _text(equity),
            "pnl": _text(equity - starting if equity is not None and starting is not None else None),
            "strategies": strategies,
        }


@contextmanager
def reading(db: str | Path | None, json_output: bool) -> Iterator[_Records]:
    """Open the records without creating anything; user errors become messages and exit 2."""
    err = Console(stderr=True)
    with handled(err, json_output):
        from sqlalchemy.exc import SQLAlchemyError

        from runner.errors import ConfigError
        from runner.storage import queries
        from runner.storage.db import describe

        url = existing_database(db)
        engine = open_runner_database(url)
        try:
            yield _Records(engine, describe(url), queries)
        except SQLAlchemyError as exc:
            raise ConfigError(_unreadable(engine, url, exc)) from None
        finally:
            engine.dispose()


def _unreadable(engine: Any, url: str, exc: Exception) -> str:
    """Why a read failed: a schema older than this runner's (and the command that upgrades it), or the driver's words."""
    from runner.storage.db import describe
    from runner.storage.schema import pending_changes

    words = str(getattr(exc, "orig", exc)).splitlines()[0]
    try:
        missing = pending_changes(engine)
    except Exception:  # noqa: BLE001 - the first failure is the one to report
        missing = []
    if missing:
        listed = ", ".join(str(change).removeprefix("add ") for change in missing)
        return (f"cannot read {describe(url)}: it was made by an older runner and lacks {listed}; "
                f"upgrade it with `runner db upgrade --db {describe(url)}`")
    return f"cannot read {describe(url)}: {words}"


def writable_database(db: str | Path | None, create: bool) -> str:
    """The URL of the database a command changes (`--db`, or the default one). An existing SQLite
    file must be a runner's; a missing one is made only with `create` (a server's database is there
    to be connected to, and gets its tables when opened for writing).

    Raises:
        ConfigError: the file is missing (without `create`) or is not a runner database.
    """
    from runner.storage.db import database_url, sqlite_file

    url = database_url(db if db is not None else default_db_path())
    file = sqlite_file(url)
    if file is not None and (file.is_file() or not create):
        open_runner_database(existing_database(db)).dispose()
    return url


def open_runner_database(db: str | Path) -> Any:
    """Open the existing database `db` (a path or URL) read-only, changing nothing in it, and return its engine.

    Raises:
        ConfigError: the file is not a SQLite database, or the database is not a runner's (no runs table).
        StorageError: the database server cannot be reached.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from runner.errors import ConfigError, StorageError
    from runner.storage import queries
    from runner.storage.db import database_url, describe, driver_words, open_database, sqlite_file

    url = database_url(db)
    engine = open_database(url, create=False)
    try:
        is_ours = queries.is_runner_database(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        if sqlite_file(url) is None:
            raise StorageError(f"cannot reach the database {describe(url)}: {driver_words(exc)}") from None
        raise ConfigError(f"{describe(url)} is not a SQLite database ({str(exc).splitlines()[0]})") from None
    if not is_ours:
        engine.dispose()
        raise ConfigError(f"{describe(url)} is not a runner database (it has no runs table)")
    return engine


def existing_database(db: str | Path | None) -> str:
    """The URL of the database `--db` names (or the default one); a SQLite file must exist.

    Raises:
        ConfigError: there is no such file, or the URL is not one the runner supports.
    """
    from runner.config import parse_database_url
    from runner.errors import ConfigError
    from runner.storage.db import database_url, sqlite_file

    url = database_url(db if db is not None else default_db_path())
    try:
        parse_database_url(url)
    except ValueError as exc:
        raise ConfigError(f"--db: {exc}") from None
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise ConfigError(f"no database at {path}" + ("" if db is not None else " (the default; pick one with --db PATH|URL)"))
    return url


def default_db_path() -> Path:
    from runner.config import DEFAULT_DB_URL, parse_database_url

    return Path(parse_database_url(DEFAULT_DB_URL).database)


def _since(text: str | None) -> datetime | None:
    """--since as an aware UTC time; a naive one is read as UTC."""
    from runner.errors import ConfigError

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ConfigError(f"--since: expected {SINCE_FORMAT}; got {text!r}") from None


def _order_status(text: str | None) -> str | None:
    from runner.errors import ConfigError

    if text is None:
        return None
    wanted = text.strip().upper().replace("-", "_")
    if wanted == "CANCELED":
        wanted = "CANCELLED"
    if wanted not in ORDER_STATUSES:
        raise ConfigError(f"--status: expected one of {', '.join(ORDER_STATUSES)}; got {text!r}")
    return wanted


def _summary(run) -> dict[str, Any]:
    try:
        data = json.loads(run.summary) if run.summary else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _starting_cash(run) -> Decimal | None:
    """The starting cash of a run without a summary yet (still running, or killed): its config."""
    from runner.config import load_config_text

    try:
        return load_config_text(run.config_text, run.config_path).broker.starting_cash
    except Exception:  # noqa: BLE001 - an unreadable old config only loses the P&L column
        return None


# --- rows: JSON-ready dicts (money as exact strings, times ISO 8601 UTC) -----------------------


def _order_row(o) -> dict[str, Any]:
    return {
        "run_id": o.run_id, "order_id": o.order_id, "created_at": _iso(o.created_at), "updated_at": _iso(o.updated_at),
        "strategy": o.strategy, "symbol": o.symbol, "side": o.side, "type": o.order_type,
        "quantity": _text(o.quantity), "limit_price": _text(o.limit_price), "stop_price": _text(o.stop_price),
        "time_in_force": o.time_in_force, "status": o.status, "filled_quantity": _text(o.filled_quantity),
        "average_price": _text(o.average_price), "stop_loss": _text(o.stop_loss), "take_profit": _text(o.take_profit),
        "parent_id": o.parent_id, "sibling_id": o.sibling_id, "reason": o.reason,
    }


def _fill_row(f) -> dict[str, Any]:
    return {
        "run_id": f.run_id, "fill_id": f.fill_id, "order_id": f.order_id, "timestamp": _iso(f.timestamp),
        "strategy": f.strategy, "symbol": f.symbol, "side": f.side, "quantity": _text(f.quantity),
        "price": _text(f.price), "commission": _text(f.commission), "notional": _text(f.quantity * f.price),
    }


def _position_row(p) -> dict[str, Any]:
    unrealized = (p.last_price - p.average_cost) * p.quantity
    return {
        "run_id": p.run_id, "strategy": p.strategy, "symbol": p.symbol, "quantity": _text(p.quantity),
        "average_cost": _text(p.average_cost), "last_price": _text(p.last_price),
        "realized_pnl": _text(p.realized_pnl), "unrealized_pnl": _text(unrealized), "fees": _text(p.fees),
        "net_pnl": _text(p.realized_pnl + unrealized - p.fees),
    }


def _iso(moment: datetime | None) -> str | None:
    """Records hold UTC times without an offset; JSON says so."""
    if moment is None:
        return None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).isoformat()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


# --- rendering ----------------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")


def _say(message: str) -> None:
    emit(Text(message))


def _console() -> Console:
    """stdout; on a pipe or file, wide enough that no table wraps (unless COLUMNS says otherwise)."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def emit(*renderables: Any) -> None:
    """Print on stdout: styled on a terminal; elsewhere plain text without trailing blanks."""
    console = _console()
    if console.is_terminal:
        for renderable in renderables:
            console.print(renderable)
        return
    with console.capture() as captured:
        for renderable in renderables:
            console.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def plain_table(title: str, caption: str | None = None) -> Table:
    """Aligned columns without rules (as `runner start`'s live view): bold headings and
    coloured cells on a terminal, plain text elsewhere."""
    return Table(
        title=title, title_justify="left", caption=caption, caption_justify="left", show_edge=False,
        pad_edge=False, box=None, padding=(0, 1), header_style="bold",
    )


def _caption(shown: int, limit: int, order: str) -> str:
    return f"{order}; the latest {shown} (--limit {limit})" if limit and shown >= limit else order


def _money(value: str | None) -> str:
    from cli.render import money

    return "-" if value is None else money(Decimal(value))


def _signed(value: str | None) -> Text:
    from cli.render import signed

    return Text("-") if value is None else signed(Decimal(value))


def _quantity(value: str | None) -> str:
    """An exact quantity without trailing zeros: 10, 0.5, 1,250."""
    if value is None:
        return "-"
    number = Decimal(value)
    number = number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()
    return f"{number:,f}"


def _time(iso: str | None) -> str:
    return "-" if iso is None else datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def _status_text(value: str) -> Text:
    return Text(value, style=STATUS_STYLES.get(value, ""))
