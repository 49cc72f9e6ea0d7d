"""`runner report`: statistics checked by hand on a small fixed ledger, and the command's outputs.

The ledger is written straight into a SQLite file through the SQLModel tables. Its equity rows
are chosen for round returns and are not derived from its fills: the report takes each figure
from its own table, so the two can be checked apart.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from sqlmodel import Session
from typer.testing import CliRunner

from cli.report import report, timespan
from runner.report import load_report, round_trips
from runner.storage import queries
from runner.storage.db import open_database, sqlite_url
from runner.storage.models import EquityRecord, FillRecord, PositionRecord, RunRecord

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(sys.executable).parent / "runner"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Run A: daily bars, starting cash 10,000, two strategies.
CONFIG_A = """\
market_data:
  interval: 1d
  start: 2024-01-01
  symbols: [AAA, BBB]
broker:
  starting_cash: 10000
strategies:
  - name: alpha
    type: ma_crossover
    symbols: [AAA]
  - name: beta
    type: buy_and_hold
    symbols: [BBB]
"""
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(step: int) -> datetime:
    """The bar time of step `step` of run A: one day per step, step 1 on 2024-01-01."""
    return DAY0 + timedelta(days=step - 1)


# E_0 = 10,000 (the starting cash), then steps 1..10:
#   E:  10000 12500 10000  8000 10000 12500 12500 15000 12000 15000
#   r:      0  +.25   -.2   -.2  +.25  +.25     0   +.2   -.2  +.25
EQUITY_A = [10000, 12500, 10000, 8000, 10000, 12500, 12500, 15000, 12000, 15000]

# (step, strategy, symbol, side, quantity, price, commission)
FILLS_A = [
    (2, "alpha", "AAA", "BUY", "10", "100", "1"),  # opens trade 1 (long 10)
    (4, "alpha", "AAA", "SELL", "10", "120", "1"),  # closes trade 1: 10 x 20 - 2 = +198
    (5, "alpha", "AAA", "BUY", "5", "110", "1"),  # opens trade 2 (long 5)
    (7, "alpha", "AAA", "SELL", "10", "100", "2"),  # flips: closes trade 2 with half the commission,
    #                                                 5 x -10 - (1 + 1) = -52; opens trade 3 (short 5)
    (9, "alpha", "AAA", "BUY", "5", "90", "1"),  # closes trade 3: 5 x 10 - (1 + 1) = +48
    (8, "beta", "BBB", "BUY", "2", "50", "0.5"),  # opens a trade still open at the end
]

# Run B: no config text (its starting cash comes from the summary), hourly snapshots, no fills.
EQUITY_B = [1010, 1020, 1000]
HOUR0 = datetime(2024, 3, 4, 10, tzinfo=UTC)


def write_ledger(path: Path) -> Path:
    engine = open_database(sqlite_url(path))
    with Session(engine) as session:
        session.add(RunRecord(
            id="run-a", started_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
            ended_at=datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
            status="completed", config_path="a.yaml", config_text=CONFIG_A, config_sha256="", seed=1,
            ticks=10,
        ))
        for step, value in enumerate(EQUITY_A, start=1):
            session.add(EquityRecord(run_id="run-a", step=step, timestamp=day(step),
                                     cash=Decimal(value), equity=Decimal(value)))
        for fill_id, (step, strategy, symbol, side, quantity, price, commission) in enumerate(FILLS_A, start=1):
            session.add(FillRecord(
                run_id="run-a", fill_id=fill_id, order_id=fill_id, strategy=strategy, symbol=symbol, side=side,
                quantity=Decimal(quantity), price=Decimal(price), commission=Decimal(commission),
                timestamp=day(step),
            ))
        session.add(PositionRecord(run_id="run-a", strategy="alpha", symbol="AAA", quantity=Decimal(0),
                                   average_cost=Decimal(0), realized_pnl=Decimal(200), fees=Decimal(6),
                                   last_price=Decimal(90)))
        session.add(PositionRecord(run_id="run-a", strategy="beta", symbol="BBB", quantity=Decimal(2),
                                   average_cost=Decimal(50), realized_pnl=Decimal(0), fees=Decimal("0.5"),
                                   last_price=Decimal(55)))
        session.add(RunRecord(
            id="run-b", started_at=datetime(2024, 5, 2, 12, tzinfo=UTC), status="completed", config_path="<python>",
            config_text="", config_sha256="", seed=2, summary=json.dumps({"starting_cash": "1000"}),
        ))
        for step, value in enumerate(EQUITY_B, start=1):
            session.add(EquityRecord(run_id="run-b", step=step, timestamp=HOUR0 + timedelta(hours=step - 1),
                                     cash=Decimal(value), equity=Decimal(value)))
        session.commit()
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    """Written once: the tests only read it."""
    return write_ledger(tmp_path_factory.mktemp("report") / "ledger.db")


def report_of(path: Path, run_id: str):
    engine = open_database(sqlite_url(path))
    try:
        return load_report(engine, queries.run(engine, run_id))
    finally:
        engine.dispose()


# --- the statistics, by hand -----------------------------------------------------------------


def test_the_time_base_comes_from_the_config_and_the_snapshot_gap(ledger):
    r = report_of(ledger, "run-a")
    assert (r.bar_interval, r.bar_seconds, r.snapshot_seconds) == ("1d", 86400.0, 86400.0)
    assert r.periods_per_year == 365  # 365 x 86400 s / 86400 s
    assert r.snapshots == 10
    assert (r.starting_cash, r.final_equity) == (Decimal(10000), Decimal(15000))
    assert [p.step for p in r.curve] == list(range(11))  # E_0 at step 0, one day before step 1
    assert r.curve[0].timestamp == datetime(2023, 12, 31, tzinfo=UTC)


def test_the_return_figures_match_the_hand_computed_values(ledger):
    o = report_of(ledger, "run-a").overall
    # total: 15000 / 10000 - 1
    assert o.total_return == pytest.approx(0.5)
    # annualised: 1.5 ^ (365 / 10) - 1 = 1.5^36 x sqrt(1.5) - 1 = 2184164.40907 x 1.22474487 - 1
    assert o.annualised_return == pytest.approx(2675043.158290, rel=1e-9)
    # mean r = (4 x .25 + .2 - 3 x .2 + 0 + 0) / 10 = 0.6 / 10 = 0.06
    # squared deviations: 2 x (0 - .06)^2 = .0072; 4 x (.19)^2 = .1444; 3 x (-.26)^2 = .2028;
    # (.14)^2 = .0196; sum .374; sample variance .374 / 9 = .0415556; stdev 0.2038518
    # volatility = 0.2038518 x sqrt(365) = 0.2038518 x 19.1049732 = 3.894583
    assert o.annualised_volatility == pytest.approx(3.894583, abs=1e-6)
    # Sharpe = 0.06 / 0.2038518 x 19.1049732 = 0.2943347 x 19.1049732 = 5.623195
    assert o.sharpe == pytest.approx(5.623195, abs=1e-6)
    # downside deviation = sqrt(3 x .04 / 10) = sqrt(.012) = 0.1095445
    # Sortino = 0.06 / 0.1095445 x 19.1049732 = 0.5477226 x 19.1049732 = 10.464225
    assert o.sortino == pytest.approx(10.464225, abs=1e-6)


def test_the_max_drawdown_and_its_duration(ledger):
    o = report_of(ledger, "run-a").overall
    # peak 12500 at step 2, trough 8000 at step 4: 4500 / 12500 = 0.36 (the later 15000 -> 12000
    # is only 0.2); back at 12500 on step 6: 4 bars, 4 days.
    assert o.max_drawdown == pytest.approx(0.36)
    assert (o.max_drawdown_bars, o.max_drawdown_seconds, o.max_drawdown_recovered) == (4, 4 * 86400.0, True)


def test_the_trades_are_round_trips_and_a_flip_splits_its_commission(ledger):
    trades = report_of(ledger, "run-a").trades
    assert [(t.strategy, t.direction, t.opened_at, t.closed_at, t.quantity, t.pnl, t.fees) for t in trades] == [
        ("alpha", "long", day(2), day(4), Decimal(10), Decimal(198), Decimal(2)),
        ("alpha", "long", day(5), day(7), Decimal(5), Decimal(-52), Decimal(2)),
        ("alpha", "short", day(7), day(9), Decimal(5), Decimal(48), Decimal(2)),
        ("beta", "long", day(8), None, Decimal(2), None, Decimal("0.5")),
    ]


def test_the_trade_statistics_overall_and_per_strategy(ledger):
    r = report_of(ledger, "run-a")
    o, alpha, beta = r.overall, *r.strategies
    assert (alpha.scope, beta.scope) == ("alpha", "beta")
    # three closed trades (+198, -52, +48), one open; all in alpha
    for stats in (o, alpha):
        assert (stats.trades, stats.winners, stats.losers) == (3, 2, 1)
        assert stats.win_rate == pytest.approx(2 / 3)
        assert stats.profit_factor == pytest.approx(246 / 52)  # (198 + 48) / 52 = 4.730769
        assert (stats.average_win, stats.average_loss) == (Decimal(123), Decimal(-52))  # 246 / 2
    assert (o.open_trades, alpha.open_trades, beta.open_trades) == (1, 0, 1)
    assert (beta.trades, beta.win_rate, beta.profit_factor, beta.average_win, beta.average_loss) == (
        0, None, None, None, None)
    # fees: 1 + 1 + 1 + 2 + 1 = 6 for alpha, 0.5 for beta
    assert (o.fees, alpha.fees, beta.fees) == (Decimal("6.5"), Decimal(6), Decimal("0.5"))
    # holding after the fills up to each snapshot: alpha on steps 2, 3, 5, 6, 7, 8 (6 of 10);
    # beta on 8, 9, 10 (3 of 10); either on 2, 3, 5, 6, 7, 8, 9, 10 (8 of 10)
    assert (o.exposure, alpha.exposure, beta.exposure) == (0.8, 0.6, 0.3)
    # net P&L: overall 15000 - 10000; alpha 200 realised - 6 fees; beta 2 x (55 - 50) - 0.5
    assert (o.net_pnl, alpha.net_pnl, beta.net_pnl) == (Decimal(5000), Decimal(194), Decimal("9.5"))
    assert alpha.sharpe is None and alpha.total_return is None and alpha.max_drawdown is None


def test_without_config_text_the_summary_gives_the_cash_and_the_gaps_give_the_interval(ledger):
    r = report_of(ledger, "run-b")
    assert (r.starting_cash, r.bar_interval, r.snapshot_seconds, r.periods_per_year) == (
        Decimal(1000), "1h", 3600.0, 8760.0)
    o = r.overall
    assert o.total_return == 0.0  # 1000 / 1000 - 1
    # peak 1020 at step 2, then 1000 to the end: 20 / 1020, 1 bar, 1 hour, never recovered
    assert o.max_drawdown == pytest.approx(20 / 1020)
    assert (o.max_drawdown_bars, o.max_drawdown_seconds, o.max_drawdown_recovered) == (1, 3600.0, False)
    assert (o.trades, o.win_rate, o.profit_factor, o.exposure, o.fees) == (0, None, None, 0.0, Decimal(0))
    assert r.strategies == ()


def test_to_dict_writes_money_as_strings_ratios_rounded_and_undefined_as_null(ledger):
    data = report_of(ledger, "run-a").to_dict()
    assert data["starting_cash"] == "10000" and data["final_equity"] == "15000"
    o = data["overall"]
    assert (o["sharpe"], o["sortino"], o["profit_factor"], o["win_rate"]) == (5.623195, 10.464225, 4.730769, 0.666667)
    assert (o["fees"], o["average_win"], o["average_loss"]) == ("6.5", "123", "-52")
    assert data["strategies"]["beta"]["win_rate"] is None
    assert data["strategies"]["alpha"]["sharpe"] is None
    json.dumps(data)  # JSON-ready as it is


def test_a_zero_trade_is_neither_a_win_nor_a_loss():
    fills = [
        FillRecord(run_id="x", fill_id=1, order_id=1, strategy="s", symbol="A", side="BUY",
                   quantity=Decimal(3), price=Decimal(10), commission=Decimal(0), timestamp=DAY0),
        FillRecord(run_id="x", fill_id=2, order_id=2, strategy="s", symbol="A", side="SELL",
                   quantity=Decimal(3), price=Decimal(10), commission=Decimal(0), timestamp=DAY0),
    ]
    assert [t.pnl for t in round_trips(fills)] == [Decimal(0)]


def test_timespan_shows_the_two_largest_units():
    spans = [timespan(s) for s in (0, 45, 200, 7500, 4 * 86400, 90061)]
    assert spans == ["0s", "45s", "3m 20s", "2h 05m", "4d", "1d 01h"]


# --- the command, in-process -----------------------------------------------------------------


@pytest.fixture
def cli():
    """An app with only `report`, as `cli/app.py` registers it."""
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command()(report)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["report", *map(str, args)], env={"COLUMNS": "140"})


def test_one_run_prints_a_column_per_strategy(cli, ledger):
    result = cli("run-a", "--db", ledger)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "run run-a (completed)" in out
    header = next(line for line in out.splitlines() if "statistic" in line)
    assert re.search(r"overall.*alpha.*beta", header)
    assert re.search(r"Sharpe\s.*5\.62\s.*-\s.*-", out)
    assert re.search(r"max drawdown\s.*36\.00%", out)
    assert "4 bars, 4d" in out
    assert re.search(r"trades\s.*3 \(\+1 open\)\s.*3\s.*0 \(\+1 open\)", out)
    assert re.search(r"profit factor\s.*4\.73", out)


def test_json_without_a_run_id_reports_the_latest_run(cli, ledger):
    result = cli("--db", ledger, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["run_id"] == "run-b"


def test_json_of_one_run_is_the_object(cli, ledger):
    data = json.loads(cli("run-a", "--db", ledger, "--json").stdout)
    assert data["overall"]["max_drawdown"] == 0.36
    assert data["strategies"]["alpha"]["trades"] == 3


def test_several_runs_are_compared_side_by_side(cli, ledger):
    result = cli("run-a", "run-b", "--db", ledger)
    assert result.exit_code == 0, result.output
    assert re.search(r"statistic\s.*run-a\s.*run-b", result.stdout)
    assert re.search(r"total return\s.*\+50\.00%\s.*\+0\.00%", result.stdout)
    data = json.loads(cli("run-a", "run-b", "--db", ledger, "--json").stdout)
    assert [d["run_id"] for d in data] == ["run-a", "run-b"]


def test_an_unknown_run_id_exits_2_naming_it_and_the_latest_runs(cli, ledger):
    result = cli("nope", "--db", ledger)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no run 'nope'" in message and "latest runs: run-b, run-a" in message
    assert "Traceback" not in result.output
    data = json.loads(cli("run-a", "nope", "--db", ledger, "--json").stdout)
    assert data["exit_code"] == 2 and "no run 'nope'" in data["error"]


def test_a_missing_database_exits_2(cli, tmp_path):
    result = cli("--db", tmp_path / "none.db")
    assert result.exit_code == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "none.db").exists()


def png_pixels(path: Path):
    from matplotlib import image

    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 0
    return image.imread(path)


def test_plot_writes_a_png_that_is_not_blank(cli, ledger, tmp_path):
    plot = tmp_path / "out" / "equity.png"
    result = cli("run-a", "--db", ledger, "--plot", plot)
    assert result.exit_code == 0, result.output
    pixels = png_pixels(plot)
    height, width = pixels.shape[:2]
    assert width >= 400 and height >= 300
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[:: 7]}
    assert len(colours) > 10  # curves, fills, markers and text, not one flat colour
    # The equity curve itself is drawn: matplotlib's first line colour (tab:blue, #1f77b4)
    # appears in the upper part of the picture.
    top = pixels[: height // 2, :, :3]
    curve = (abs(top[..., 0] - 0x1F / 255) < 0.02) & (abs(top[..., 1] - 0x77 / 255) < 0.02) & (abs(top[..., 2] - 0xB4 / 255) < 0.02)
    assert curve.sum() > 200


def test_html_is_one_self_contained_page_with_the_table_and_the_plot(cli, ledger, tmp_path):
    page = tmp_path / "report.html"
    result = cli("run-a", "--db", ledger, "--html", page)
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    for figure in ("Sharpe", "5.62", "Sortino", "10.46", "36.00%", "4.73", "alpha", "beta"):
        assert figure in text
    image = re.search(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert image and base64.b64decode(image.group(1)).startswith(PNG_SIGNATURE)
    assert "http:" not in text and "https:" not in text and "<link" not in text and "<script" not in text


def test_plot_without_matplotlib_exits_2_naming_the_extra(cli, ledger, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.dates", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    result = cli("run-a", "--db", ledger, "--plot", tmp_path / "p.png")
    assert result.exit_code == 2
    assert "pip install -e '.[report]'" in " ".join(result.stderr.split())
    assert not (tmp_path / "p.png").exists()


# --- the installed command after a real run -------------------------------------------------


def test_the_installed_command_reports_a_real_run(tmp_path):
    db = tmp_path / "real.db"
    started = subprocess.run(
        [str(RUNNER), "start", str(REPO / "configs" / "default.yaml"), "--max-ticks", "200", "--speed", "0",
         "--db", str(db), "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert started.returncode == 0, started.stderr
    done = subprocess.run([str(RUNNER), "report", "--db", str(db), "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["snapshots"] == 200 and data["bar_interval"] == "1m" and data["periods_per_year"] == 525600
    assert set(data["strategies"]) == {"ma_fast", "hold_btc"}
    assert data["overall"]["trades"] >= 1
    final, start = Decimal(data["final_equity"]), Decimal(data["starting_cash"])
    assert data["overall"]["total_return"] == round(float(final / start - 1), 6)


def test_each_strategy_gets_the_statistics_of_its_own_equity_curve(tmp_path):
    """A strategy's curve is its capital (allocation, else the starting cash) + its net P&L at
    each snapshot; its figures follow from that curve as the account's do from the account's."""
    from runner.bootstrap import build
    from runner.config import load_config_text
    from runner.report import load_report
    from runner.storage import queries

    runner = build(load_config_text(
        "run: {max_ticks: 300, seed: 4}\n"
        "market_data: {symbols: {AAA: {volatility: 0.8}}}\n"
        f"storage: {{url: 'sqlite:///{tmp_path / 'own.db'}'}}\n"
        "strategies:\n"
        "  - {type: ma_crossover, name: fast, allocation: 20000, params: {fast: 3, slow: 8, quantity: 50}}\n"
        "  - {type: buy_and_hold, name: hold, params: {quantity: 100}}\n"
    ))
    summary = runner.run()
    engine = runner.recorder.engine
    report = load_report(engine, queries.run(engine, runner.run_id))
    rows = queries.strategy_equity(engine, runner.run_id)
    assert len(rows) == 2 * summary.steps
    stats = {s.scope: s for s in report.strategies}
    for name, capital in (("fast", Decimal(20000)), ("hold", Decimal(100000))):
        pnl = [row.pnl for row in rows if row.strategy == name]
        curve = [capital] + [capital + p for p in pnl]
        assert stats[name].total_return == pytest.approx(float(curve[-1] / capital - 1))
        peak, deepest = curve[0], 0.0
        for value in curve:
            peak = max(peak, value)
            deepest = max(deepest, float((peak - value) / peak))
        assert stats[name].max_drawdown == pytest.approx(deepest)
        assert stats[name].sharpe is not None
        assert str(pnl[-1]) == summary.to_dict()["pnl"][name]
