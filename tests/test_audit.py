"""`runner audit`: real runs reconcile; each kind of tampering with the database is caught.

Every shipped config is run briefly and audited clean. One run with partial fills, a cancelled
order and a percent-plus-per-order commission is recorded once for the module; each tamper
test copies its database, changes one thing with sqlite3, and checks that the right check
reports it, with exit 1 from the CLI and the discrepancy in `--json`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.audit import CHECKS, NEXT_STATUSES, audit_report, audit_run
from runner.bootstrap import StrategySetup, assemble, build
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import load_config_text
from runner.domain import OrderStatus
from runner.errors import ConfigError
from runner.portfolio import Portfolio
from runner.storage.db import open_database, sqlite_url
from strategies.buy_and_hold import BuyAndHold
from tests.helpers import ListFeed, bar

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
RUN_ID = "tamper-me"
CONFIG = """\
run: {speed: 0, max_ticks: 200, seed: 3}
market_data:
  interval: 1m
  symbols:
    AAA: {start_price: 50, volatility: 0.8}
    BBB: {start_price: 80, volatility: 0.5}
broker:
  commission: {per_order: 1, percent: 0.1, minimum: 1.5}
  max_volume_participation: 0.002   # 20 of the ~10,000 volume of a bar: orders of 40 fill in parts
storage: {equity_every: 5}
strategies:
  - {name: crosser, type: ma_crossover, params: {fast: 3, slow: 8, quantity: 40}}
  - {name: holder, type: buy_and_hold, symbols: [BBB], params: {quantity: 3, sell_on_stop: true}}
"""


def invoke(*args: str):
    return CliRunner().invoke(app, ["audit", *args])


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_a_run_of_every_shipped_config_audits_clean(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "run.db"
    started = CliRunner().invoke(app, ["start", str(config), "--max-ticks", "60", "--speed", "0", "--db", str(db), "--json"])
    assert started.exit_code == 0, started.output
    result = invoke("--db", str(db))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("clean: ") and "orders" in result.stdout and "not checked" not in result.stdout
    data = json.loads(invoke("--db", str(db), "--json").stdout)
    assert data["clean"] is True and data["discrepancies"] == [] and data["skipped"] == []
    assert data["checks"] == list(CHECKS)


# --- tampering --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("audit")
    db = folder / "books.db"
    config = load_config_text(CONFIG, str(folder / "tamper.yaml"))
    config = config.with_overrides(storage={"url": sqlite_url(db)})
    summary = build(config, run_id=RUN_ID).run()
    assert summary.status == "completed", summary.error
    with sqlite3.connect(db) as connection:
        parts = connection.execute("SELECT count(*) FROM fills GROUP BY order_id HAVING count(*) > 1").fetchall()
        commissions = {row[0] for row in connection.execute("SELECT DISTINCT commission FROM fills")}
    assert parts, "some orders fill in parts"
    assert len(commissions) > 2, "commissions vary with the notional"
    return db


@pytest.fixture
def books(recorded, tmp_path) -> Path:
    """A copy of the recorded database to tamper with."""
    copy = tmp_path / "tampered.db"
    shutil.copy(recorded, copy)
    return copy


def tamper(db: Path, sql: str, *params) -> None:
    with sqlite3.connect(db) as connection:
        changed = connection.execute(sql, params).rowcount
    assert changed == 1, f"{sql} changed {changed} rows"


def one(db: Path, sql: str, *params):
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchone()


def found_by(db: Path) -> dict[str, list[dict]]:
    """The CLI's discrepancies by check (exit 1 and the JSON asserted on the way)."""
    result = invoke(RUN_ID, "--db", str(db), "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["clean"] is False
    checks: dict[str, list[dict]] = {}
    for item in data["discrepancies"]:
        checks.setdefault(item["check"], []).append(item)
    return checks


def test_the_recorded_run_is_clean(recorded):
    result = invoke(RUN_ID, "--db", str(recorded))
    assert result.exit_code == 0, result.output
    assert "clean: 41 orders, 90 fills, 3 positions, 40 equity snapshots checked" in result.stdout


def test_a_changed_fill_price_breaks_its_order_average_the_position_and_the_cash(books):
    fill_id, order_id, price = one(books, "SELECT fill_id, order_id, price FROM fills WHERE side = 'BUY' LIMIT 1")
    tamper(books, "UPDATE fills SET price = ? WHERE fill_id = ?", str(Decimal(price) + 1), fill_id)
    checks = found_by(books)
    assert [d["orders"] for d in checks["order_fills"]] == [[order_id]]
    assert "average price" in checks["order_fills"][0]["what"]
    assert checks["positions"] and checks["cash"]


def test_a_deleted_fill_leaves_its_order_filled_more_than_its_fills(books):
    fill_id, order_id, quantity = one(books, "SELECT fill_id, order_id, quantity FROM fills WHERE fill_id = 5")
    filled = one(books, "SELECT filled_quantity FROM orders WHERE order_id = ?", order_id)[0]
    tamper(books, "DELETE FROM fills WHERE fill_id = ?", fill_id)
    [wrong_quantity, *_] = found_by(books)["order_fills"]
    assert wrong_quantity["orders"] == [order_id]
    assert (wrong_quantity["expected"], wrong_quantity["found"]) == (str(Decimal(filled) - Decimal(quantity)), filled)


def test_a_changed_order_status_disagrees_with_its_fills_and_its_history(books):
    order_id = one(books, "SELECT order_id FROM orders WHERE status = 'FILLED' LIMIT 1")[0]
    tamper(books, "UPDATE orders SET status = 'PARTIALLY_FILLED' WHERE order_id = ?", order_id)
    checks = found_by(books)
    assert [d["orders"] for d in checks["order_status"]] == [[order_id]]
    assert checks["order_status"][0]["expected"] == "0 < filled < quantity"
    assert [d["orders"] for d in checks["order_history"]] == [[order_id]]
    assert [d["orders"] for d in checks["working_orders"]] == [[order_id]]


def test_a_changed_position_quantity_differs_from_the_replayed_fills(books):
    tamper(books, "UPDATE positions SET quantity = '41' WHERE strategy = 'crosser' AND symbol = 'AAA'")
    checks = found_by(books)
    assert [(d["position"], d["expected"], d["found"]) for d in checks["positions"]] == [
        ({"strategy": "crosser", "symbol": "AAA"}, "40", "41"),
    ]
    assert set(checks) == {"positions"}, "the equity check marks the replayed quantities, not the rows'"


def test_changed_cash_in_an_equity_snapshot_is_reported_at_its_step(books):
    cash = one(books, "SELECT cash FROM equity WHERE step = 100")[0]
    tamper(books, "UPDATE equity SET cash = ? WHERE step = 100", str(Decimal(cash) - Decimal("0.01")))
    checks = found_by(books)
    assert set(checks) == {"cash"}
    assert [(d["step"], d["expected"]) for d in checks["cash"]] == [(100, cash)]


def test_changed_equity_in_the_last_snapshot_is_reported(books):
    tamper(books, "UPDATE equity SET equity = '1' WHERE step = 200")
    checks = found_by(books)
    assert set(checks) == {"equity"} and checks["equity"][0]["step"] == 200


def test_a_changed_commission_differs_from_the_fee_schedule(books):
    fill_id, commission = one(books, "SELECT fill_id, commission FROM fills WHERE fill_id = 7")
    tamper(books, "UPDATE fills SET commission = ? WHERE fill_id = ?", str(Decimal(commission) + Decimal("0.5")), fill_id)
    checks = found_by(books)
    assert [(d["fills"], d["expected"]) for d in checks["commission"]] == [([fill_id], commission)]


def test_a_fill_of_an_unknown_order_and_an_overfill_are_reported(books):
    tamper(books, "UPDATE fills SET order_id = 999 WHERE fill_id = 3")
    fill_id, order_id = one(books, "SELECT fill_id, order_id FROM fills WHERE fill_id = 4")
    quantity = one(books, "SELECT quantity FROM orders WHERE order_id = ?", order_id)[0]
    tamper(books, "UPDATE fills SET quantity = ? WHERE fill_id = ?", str(Decimal(quantity) + 1), fill_id)
    checks = found_by(books)
    assert [d["fills"] for d in checks["fill_order"]] == [[3]]
    assert [d["orders"] for d in checks["overfill"]] == [[order_id]]


def test_the_table_lists_each_discrepancy(books):
    tamper(books, "UPDATE fills SET commission = '0' WHERE fill_id = 7")
    result = invoke(RUN_ID, "--db", str(books))
    assert result.exit_code == 1
    assert "discrepancies in run tamper-me" in result.stdout
    assert "fill 7: commission (the run's fee schedule)" in result.stdout


def test_a_value_that_is_not_a_number_is_a_clear_error(books):
    tamper(books, "UPDATE fills SET price = 'lots' WHERE fill_id = 3")
    result = invoke(RUN_ID, "--db", str(books), "--json")
    assert result.exit_code == 2
    assert "cannot be read" in json.loads(result.stdout)["error"]


def test_an_unknown_run_or_a_file_that_is_no_database_exits_2(recorded, tmp_path):
    result = invoke("no-such-run", "--db", str(recorded))
    assert result.exit_code == 2 and f"no run 'no-such-run' in {recorded}" in result.output
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    assert invoke("--db", str(junk)).exit_code == 2
    engine = open_database(sqlite_url(recorded), create=False)
    with pytest.raises(ConfigError, match="no run 'nope'"):
        audit_run(engine, "nope")


# --- what the checks rest on ----------------------------------------------------------------------


def test_the_order_transitions_are_those_of_the_broker():
    assert set(NEXT_STATUSES) == {status.value for status in OrderStatus}
    assert NEXT_STATUSES["NEW"] == {"ACCEPTED", "REJECTED"}
    assert all(not NEXT_STATUSES[s] for s in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED"))


def test_a_run_built_in_python_is_audited_without_its_fee_schedule_unless_given(tmp_path):
    fees = FeeSchedule(CommissionModel(per_order=Decimal(1)))
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(), fees, ("AAA",))
    runner = assemble(
        feed=ListFeed([[bar("AAA", minute, 10 + minute)] for minute in range(5)]), broker=broker,
        strategies=[StrategySetup("hold", BuyAndHold, {"quantity": 2})],
        database=sqlite_url(tmp_path / "py.db"),
    )
    assert runner.run().status == "completed"
    engine = runner.recorder.engine
    report = audit_report(engine, runner.run_id)
    assert report.clean and report.fills == 1
    assert report.skipped == (("commission", "no fee schedule: the run records no config (it was built in Python)"),)
    assert audit_report(engine, runner.run_id, fees=fees).skipped == ()
    assert audit_run(engine, runner.run_id, fees=FeeSchedule(CommissionModel())) != []


def test_a_running_run_audits_clean_as_of_each_commit(tmp_path):
    db = tmp_path / "live.db"
    text = CONFIG.replace("run: {speed: 0, max_ticks: 200, seed: 3}", "run: {speed: 60000, max_ticks: 2000, seed: 3}")
    config = load_config_text(text, str(tmp_path / "live.yaml")).with_overrides(storage={"url": sqlite_url(db)})
    runner = build(config)
    runner.start()
    engine = open_database(sqlite_url(db), create=False)
    audits = []
    try:
        while not runner.wait(0.02):
            report = audit_report(engine, runner.run_id)
            audits.append((report.status, report.fills, report.discrepancies))
    finally:
        runner.stop()
        runner.wait()
    running = [a for a in audits if a[0] == "running"]
    assert len(running) >= 3 and running[-1][1] > running[0][1], "audited several times while it traded"
    assert [a for a in audits if a[2]] == []
    assert audit_report(engine, runner.run_id).clean
