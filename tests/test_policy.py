"""The policy layer: each rule blocks the signals it should (and records its name), the risk
mode scales orders, a daily loss halts a strategy until the next day, the regime classifier,
reading KEY VALUE pairs, and the precedence of the database's overrides."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import PolicyConfig
from runner.domain import Action, Bar, Fill, MarketData, Side, Signal
from runner.errors import ConfigError
from runner.history import HistoryStore
from runner.policy import RULES, PolicyGate, parse_setting, scaled, setting_text, starting_policy
from runner.portfolio import Portfolio
from runner.regime import REGIME_BARS, classify
from runner.risk import Denied
from runner.storage import queries
from runner.storage.db import open_database
from runner.storage.policy_store import PolicyWatcher, read_settings, write_setting
from strategies.base import StrategyInterface, StrategyParams
from tests.helpers import D, ListFeed

DAY1 = datetime(2024, 1, 2, 23, 50, tzinfo=UTC)


# --- runs of scripted strategies ----------------------------------------------------------------


class Plan(StrategyParams):
    signals: dict[int, list[dict[str, Any]]] = {}  # call number (from 1) -> the signals it emits


class Scripted(StrategyInterface):
    """Emits, on its n-th call, the signals its plan lists for n."""

    Params = Plan

    def on_start(self):
        self.calls = 0

    def on_tick(self, market_data):
        self.calls += 1
        return self.params.signals.get(self.calls, [])


def bars(symbol: str, closes: list, start: datetime = DAY1, spread: float = 0.5) -> list[Bar]:
    """One 1m bar per close, each opening at the previous close, `spread` above and below."""
    out, previous = [], D(closes[0])
    for i, close in enumerate(closes):
        close = D(close)
        out.append(Bar(
            symbol, start + timedelta(minutes=i), previous, max(previous, close) + D(spread),
            min(previous, close) - D(spread), close, D(1000),
        ))
        previous = close
    return out


def run(tmp_path, plans: dict[str, dict[int, list[dict]]], closes, policy: PolicyConfig | None = None,
        regimes: dict[str, list[str]] | None = None, others: dict[str, list] | None = None,
        database: str | None = None, timezone: str = "UTC"):
    """Run scripted strategies over bars of AAA (and `others`) with a policy; zero fees."""
    series = [bars("AAA", closes)] + [bars(symbol, c) for symbol, c in (others or {}).items()]
    steps = [list(step) for step in zip(*series)]
    feed = ListFeed(steps)
    broker = PaperBroker(Portfolio(D(100_000)), BarFillModel(), FeeSchedule(CommissionModel()), feed.symbols)
    runner = assemble(
        feed=feed, broker=broker, policy=policy, timezone=timezone,
        strategies=[
            StrategySetup(name, Scripted, {"signals": plan}, allowed_regimes=(regimes or {}).get(name))
            for name, plan in plans.items()
        ],
        database=database or f"sqlite:///{tmp_path / 'p.db'}",
    )
    summary = runner.run()
    assert summary.status == "completed", summary.error
    return runner, summary


def signal_rows(runner) -> list[tuple]:
    """(strategy, step, action, accepted, rule) of every recorded signal."""
    return [
        (s.strategy, s.step, s.action, s.accepted, s.rule)
        for s in queries.signals(runner.recorder.engine, runner.run_id)
    ]


def filled(runner) -> list[tuple]:
    return [(f.side, f.quantity) for f in queries.fills(runner.recorder.engine, runner.run_id)]


def buy(quantity=None, **more) -> dict:
    return {"symbol": "AAA", "action": "BUY", **({"quantity": quantity} if quantity is not None else {}), **more}


def test_without_a_policy_nothing_is_blocked_or_scaled(tmp_path):
    runner, summary = run(tmp_path, {"s": {1: [buy(10, confidence=0.1)]}}, [100] * 3)
    assert runner.loop.policy.active is False
    assert filled(runner) == [("BUY", D(10))]
    assert summary.to_dict()["policy_blocks"] == {}


def test_allowlist_blocks_the_strategies_not_on_it(tmp_path):
    runner, summary = run(
        tmp_path, {"s": {1: [buy(1)]}, "keeper": {1: [buy(1)]}}, [100] * 3,
        PolicyConfig(allowlist=("keeper",)),
    )
    assert signal_rows(runner) == [("s", 1, "BUY", False, "allowlist"), ("keeper", 1, "BUY", True, "")]
    [blocked] = [s for s in queries.signals(runner.recorder.engine, runner.run_id) if s.rule]
    assert blocked.rejection == "s is not on policy.allowlist (keeper); it may only reduce its positions"
    assert summary.to_dict()["policy_blocks"] == {"allowlist": 1}


def test_min_confidence_blocks_less_confident_signals_and_ignores_signals_without_one(tmp_path):
    plan = {1: [buy(1, confidence=0.4)], 2: [buy(1, confidence=0.9)], 3: [buy(1)], 4: [buy(1, confidence=55)]}
    runner, _ = run(tmp_path, {"s": plan}, [100] * 5, PolicyConfig(min_confidence=0.6))
    assert signal_rows(runner) == [
        ("s", 1, "BUY", False, "min_confidence"), ("s", 2, "BUY", True, ""), ("s", 3, "BUY", True, ""),
        ("s", 4, "BUY", False, "min_confidence"),  # 55 reads as 55 %
    ]
    rejection = queries.signals(runner.recorder.engine, runner.run_id)[0].rejection
    assert rejection == "confidence 0.4 is below policy.min_confidence 0.6"


def test_a_position_value_limit_per_symbol_blocks_what_would_exceed_it_and_lets_reductions_pass(tmp_path):
    plan = {1: [buy(6)], 2: [buy(5)], 3: [buy(6)], 5: [{"symbol": "AAA", "action": "SELL", "quantity": 2}]}
    runner, _ = run(tmp_path, {"s": plan}, [100] * 6, PolicyConfig(max_position_value_per_symbol=D(1000)))
    assert signal_rows(runner) == [
        ("s", 1, "BUY", True, ""), ("s", 2, "BUY", False, "max_position_value_per_symbol"),
        ("s", 3, "BUY", False, "max_position_value_per_symbol"), ("s", 5, "SELL", True, ""),
    ]
    rejection = queries.signals(runner.recorder.engine, runner.run_id)[1].rejection
    assert rejection == "the account's position in AAA would be worth 1100.00, above policy.max_position_value_per_symbol 1000"


def test_the_per_symbol_limit_counts_every_strategy_and_the_per_strategy_limit_every_symbol(tmp_path):
    plans = {
        "a": {1: [buy(6)]},
        "b": {2: [buy(5)], 3: [{"symbol": "BBB", "action": "BUY", "quantity": 9}]},
    }
    policy = PolicyConfig(max_position_value_per_symbol=D(1000), max_position_value_per_strategy=D(900))
    runner, summary = run(tmp_path, plans, [100] * 5, policy, others={"BBB": [50] * 5})
    assert signal_rows(runner) == [
        ("a", 1, "BUY", True, ""),
        ("b", 2, "BUY", False, "max_position_value_per_symbol"),  # 6 + 5 of AAA at 100
        ("b", 3, "BUY", True, ""),  # 9 of BBB at 50 = 450
    ]
    runner, _ = run(tmp_path, {"b": {1: [buy(5)], 3: [{"symbol": "BBB", "action": "BUY", "quantity": 9}]}},
                    [100] * 5, policy, others={"BBB": [50] * 5}, database=f"sqlite:///{tmp_path / 'q.db'}")
    assert signal_rows(runner) == [("b", 1, "BUY", True, ""), ("b", 3, "BUY", False, "max_position_value_per_strategy")]
    rejection = queries.signals(runner.recorder.engine, runner.run_id)[1].rejection
    assert rejection == "b's positions would be worth 950.00, above policy.max_position_value_per_strategy 900"


@pytest.mark.parametrize(
    ("mode", "asked", "filled_quantity"),
    [("defensive", 10, D(5)), ("defensive", 3, D(1)), ("defensive", "3.0", D("1.5")), ("aggressive", 10, D(15)),
     ("aggressive", 7, D(10)), ("normal", 7, D(7))],
)
def test_the_risk_mode_scales_filled_quantities_by_its_factor(tmp_path, mode, asked, filled_quantity):
    runner, _ = run(tmp_path, {"s": {1: [buy(asked)]}}, [100] * 3, PolicyConfig(risk_mode=mode))
    assert filled(runner) == [("BUY", filled_quantity)]


def test_scaling_also_applies_to_the_default_quantity_and_to_opening_shorts_but_never_to_reductions(tmp_path):
    plan = {1: [buy()], 3: [{"symbol": "AAA", "action": "SELL"}]}  # the default quantity 1; then sell all
    runner, _ = run(tmp_path, {"s": plan}, [100] * 4, PolicyConfig(risk_mode="aggressive", aggressive_factor=D(4)))
    assert filled(runner) == [("BUY", D(4)), ("SELL", D(4))]


def test_a_quantity_scaled_to_nothing_is_blocked_by_the_risk_mode(tmp_path):
    runner, _ = run(tmp_path, {"s": {1: [buy(1)]}}, [100] * 3, PolicyConfig(risk_mode="defensive"))
    assert signal_rows(runner) == [("s", 1, "BUY", False, "risk_mode")]
    assert queries.signals(runner.recorder.engine, runner.run_id)[0].rejection == (
        "risk_mode defensive scales 1 by 0.5 down to 0"
    )


def test_close_is_never_scaled(tmp_path):
    plan = {1: [buy(10)], 3: [{"symbol": "AAA", "action": "CLOSE"}]}
    runner, _ = run(tmp_path, {"s": plan}, [100] * 4, PolicyConfig(risk_mode="defensive"))
    assert filled(runner) == [("BUY", D(5)), ("SELL", D(5))]


# --- the daily loss -----------------------------------------------------------------------------


def test_a_daily_loss_halts_the_strategy_until_the_next_day_and_reductions_still_pass(tmp_path):
    # 23:50 buys 10 and 23:51 one more, filled at 100; 23:53 marks at 94: lost 66 >= 50, halted.
    closes = [100, 100, 100, 94, 94, 94, 94, 94, 94, 94, 94, 94]
    plan = {
        1: [buy(10)],
        2: [buy(1)],  # 23:51 accepted: lost nothing yet
        4: [buy(1)],  # 23:53 halted
        6: [{"symbol": "AAA", "action": "SELL", "quantity": 5}],  # 23:55 reduces: passes
        10: [buy(1)],  # 23:59 still halted
        11: [buy(1)],  # 00:00 the next day: trading again
    }
    runner, summary = run(tmp_path, {"s": plan}, closes, PolicyConfig(max_daily_loss_per_strategy=D(50)))
    assert signal_rows(runner) == [
        ("s", 1, "BUY", True, ""), ("s", 2, "BUY", True, ""), ("s", 4, "BUY", False, "max_daily_loss"),
        ("s", 6, "SELL", True, ""), ("s", 10, "BUY", False, "max_daily_loss"), ("s", 11, "BUY", True, ""),
    ]
    halted = queries.signals(runner.recorder.engine, runner.run_id)[2]
    assert halted.rejection == (
        "halted for the day: lost 66.00 since the day began, policy.max_daily_loss_per_strategy is 50; "
        "it may open positions again from 2024-01-03T00:00:00+00:00"
    )
    assert summary.strategies[0].halted_until is None  # the run ended on the next day


def test_a_strategy_halted_when_the_run_ends_shows_it_in_the_summary(tmp_path):
    plan = {1: [buy(10)], 5: [buy(1)]}
    runner, summary = run(tmp_path, {"s": plan, "calm": {}}, [100, 100, 100, 90, 90], PolicyConfig(max_daily_loss_per_strategy=D(50)))
    resumes = datetime(2024, 1, 3, tzinfo=UTC)
    assert [(s.name, s.halted_until) for s in summary.strategies] == [("s", resumes), ("calm", None)]
    data = summary.to_dict()
    assert data["strategies"]["s"]["halted_until"] == "2024-01-03T00:00:00+00:00"
    assert data["policy_blocks"] == {"max_daily_loss": 1}


def test_the_day_begins_at_midnight_in_the_market_data_timezone():
    portfolio = Portfolio(D(100_000))
    gate = PolicyGate(
        PolicyConfig(max_daily_loss_per_strategy=D(1)), portfolio, HistoryStore(0), ["s"],
        timezone="America/New_York",
    )
    gate.begin_step(1, datetime(2024, 1, 2, 20, 0, tzinfo=UTC))
    portfolio.apply_fill(Fill(1, 1, "s", "AAA", Side.BUY, D(1), D(100), D(5), DAY1))
    gate.check_daily_losses()
    assert gate.halted_until("s") == datetime(2024, 1, 3, 5, 0, tzinfo=UTC)  # midnight in New York
    assert gate.begin_step(2, datetime(2024, 1, 3, 4, 59, tzinfo=UTC)) == []
    assert gate.halted_until("s") is not None
    gate.begin_step(3, datetime(2024, 1, 3, 5, 0, tzinfo=UTC))
    assert gate.halted_until("s") is None


# --- regimes ------------------------------------------------------------------------------------


def history_of(closes, spreads) -> HistoryStore:
    history = HistoryStore(REGIME_BARS)
    series = [
        Bar("AAA", DAY1 + timedelta(minutes=i), D(c), D(c) + D(s), D(c) - D(s), D(c), D(1))
        for i, (c, s) in enumerate(zip(closes, spreads))
    ]
    history.append("1m", series)
    return history


def reading(closes, spreads):
    return classify(history_of(closes, spreads).bars("AAA", "1m"), 0.01, 0.2)


def test_a_steady_climb_with_narrow_bars_is_trending():
    result = reading([1000 + i for i in range(40)], [0.25] * 40)
    assert result.regime == "trending"
    assert result.trend == pytest.approx(1 / 1.25)  # 1 a bar / true range 1.25


def test_a_zigzag_around_a_level_is_ranging():
    result = reading([1000 + (i % 2) for i in range(40)], [0.25] * 40)
    assert result.regime == "ranging"
    assert result.trend < 0.01


def test_wide_bars_are_volatile_even_while_climbing():
    result = reading([1000 + 5 * i for i in range(40)], [40] * 40)
    assert result.regime == "volatile"
    assert result.volatility > 0.05


def test_flat_bars_are_ranging_and_too_few_bars_have_no_regime():
    assert reading([100] * 30, [0] * 30).regime == "ranging"
    assert reading([100] * 29, [0] * 29) is None


def test_the_regime_filter_lets_a_strategy_open_positions_only_in_its_regimes(tmp_path):
    plan = {5: [buy(1)], 35: [buy(1)], 36: [{"symbol": "AAA", "action": "SELL", "quantity": 1}]}
    trending = [1000 + i for i in range(40)]
    ranging = [1000 + (i % 2) for i in range(40)]
    runner, _ = run(tmp_path, {"s": plan}, trending, regimes={"s": ["trending"]})
    assert signal_rows(runner) == [
        ("s", 5, "BUY", False, "regime"), ("s", 35, "BUY", True, ""), ("s", 36, "SELL", True, ""),
    ]
    first = queries.signals(runner.recorder.engine, runner.run_id)[0].rejection
    assert first == "the regime of AAA at 1m is not known yet (5 of 30 bars); allowed_regimes: trending"
    runner, _ = run(tmp_path, {"s": plan}, ranging, regimes={"s": ["trending"]}, database=f"sqlite:///{tmp_path / 'r.db'}")
    rows = queries.signals(runner.recorder.engine, runner.run_id)
    assert [(r.step, r.rule) for r in rows] == [(5, "regime"), (35, "regime"), (36, "regime")]  # 36 would open a short
    assert rows[1].rejection.startswith("the regime of AAA at 1m is ranging (ATR/close 0.0")
    assert rows[1].rejection.endswith("allowed_regimes: trending")
    runner, _ = run(tmp_path, {"s": plan}, ranging, PolicyConfig(regime_filter=False), regimes={"s": ["trending"]},
                    database=f"sqlite:///{tmp_path / 's.db'}")
    assert [rule for *_, rule in signal_rows(runner)] == ["", "", ""]


# --- reading KEY VALUE pairs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("risk_mode", "DEFENSIVE", "defensive"), ("min_confidence", "0.6", 0.6), ("min_confidence", "none", None),
        ("allowlist", "a, b", ("a", "b")), ("allowlist", "[a,b]", ("a", "b")), ("allowlist", "[]", ()),
        ("allowlist", "[ ]", ()), ("allowlist", "null", None), ("max_daily_loss_per_strategy", "500.25", D("500.25")),
        ("regime_filter", "off", False), ("regime_filter", "true", True), ("aggressive_factor", "2", D(2)),
    ],
)
def test_settings_are_read_and_written_back_in_the_same_form(key, text, value):
    assert parse_setting(key, text) == value
    assert parse_setting(key, setting_text(value)) == value


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("min_confidance", "1", "unknown policy key 'min_confidance' (did you mean 'min_confidence'?); the keys are: "
         "risk_mode, aggressive_factor, defensive_factor, min_confidence, allowlist, max_position_value_per_symbol, "
         "max_position_value_per_strategy, max_daily_loss_per_strategy, regime_filter, regime_volatility, regime_trend"),
        ("risk_mode", "agressive", "policy.risk_mode: must be one of 'normal', 'aggressive', 'defensive' "
         "(got 'agressive'; did you mean 'aggressive'?)"),
        ("min_confidence", "1.5", "policy.min_confidence: must be a number >= 0 and <= 1, got '1.5'; none removes the limit"),
        ("max_position_value_per_symbol", "lots", "policy.max_position_value_per_symbol: must be a number > 0, got 'lots'; "
         "none removes the limit"),
        ("defensive_factor", "2", "policy.defensive_factor: must be a number > 0 and <= 1, got '2'"),
        ("regime_filter", "maybe", "policy.regime_filter: must be true or false, got 'maybe'"),
        ("regime_trend", "none", "policy.regime_trend: must be a number > 0, got 'none'"),
        ("allowlist", " ", "policy.allowlist: must be one or more strategy names such as ma_fast,hold_btc, got ''; "
         "none lets every strategy open positions, [] none"),
    ],
)
def test_a_bad_key_or_value_says_what_is_allowed(key, text, message):
    with pytest.raises(ConfigError) as error:
        parse_setting(key, text)
    assert str(error.value) == message


# --- precedence ---------------------------------------------------------------------------------


def test_a_run_starts_from_the_config_then_applies_the_databases_overrides(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = open_database(url)
    write_setting(engine, "risk_mode", "aggressive", datetime.now(UTC))
    write_setting(engine, "min_confidence", "0.5", datetime.now(UTC))
    engine.dispose()
    config = PolicyConfig(risk_mode="defensive", max_daily_loss_per_strategy=D(100))
    runner, _ = run(tmp_path, {"s": {1: [buy(10)]}}, [100] * 3, config, database=url)
    assert filled(runner) == [("BUY", D(15))]
    changes = [(c.step, c.key, c.old_value, c.new_value, c.source)
               for c in queries.policy_changes(runner.recorder.engine, runner.run_id)]
    assert changes[:11] == [(0, key, "", setting_text(getattr(config, key)), "config") for key in PolicyConfig.model_fields]
    assert changes[11:] == [(0, "min_confidence", "none", "0.5", "cli"), (0, "risk_mode", "defensive", "aggressive", "cli")]


def test_an_invalid_value_in_the_database_stops_the_run_before_it_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"^the database's policy table: policy.min_confidence: must be a number"):
        starting_policy(PolicyConfig(), {"min_confidence": "lots"})


def test_an_older_database_gains_the_rule_column_and_the_policy_tables(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE signals (id INTEGER PRIMARY KEY, run_id VARCHAR NOT NULL, step INTEGER NOT NULL, "
            "timestamp DATETIME NOT NULL, strategy VARCHAR NOT NULL, symbol VARCHAR NOT NULL, action VARCHAR NOT NULL, "
            "quantity VARCHAR, confidence FLOAT, reason VARCHAR NOT NULL, accepted BOOLEAN NOT NULL, "
            "rejection VARCHAR NOT NULL, order_id INTEGER)"
        )
        db.execute("INSERT INTO signals VALUES (1, 'old', 1, '2024-01-02', 's', 'AAA', 'BUY', '1', NULL, '', 1, '', 1)")
    runner, _ = run(tmp_path, {"s": {1: [buy(1, confidence=0.1)]}}, [100] * 3, PolicyConfig(min_confidence=0.5),
                    database=f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT run_id, rule FROM signals ORDER BY id").fetchall() == [
            ("old", ""), (runner.run_id, "min_confidence"),
        ]


# --- live changes ------------------------------------------------------------------------------


def test_the_watcher_offers_each_changed_value_and_skips_values_it_cannot_read(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = open_database(url)
    at = datetime(2024, 6, 1, tzinfo=UTC)
    write_setting(engine, "risk_mode", "defensive", at)
    offered: list = []
    watcher = PolicyWatcher(url, offered.append, read_settings(engine))
    watcher.poll(engine)
    assert offered == []  # the run started with it
    write_setting(engine, "min_confidence", "0.7", at + timedelta(seconds=1))
    write_setting(engine, "regime_trend", "steep", at + timedelta(seconds=1))  # as a hand edit could
    watcher.poll(engine)
    watcher.poll(engine)
    assert offered == [{"min_confidence": 0.7}]
    assert "the database's policy table: policy.regime_trend: must be a number > 0, got 'steep'" in caplog.text
    assert "(ignored: the run keeps its regime_trend)" in caplog.text
    engine.dispose()


def test_the_watcher_thread_stops_when_asked():
    watcher = PolicyWatcher("sqlite:///nowhere/none.db", lambda settings: None, {}, every=30)
    watcher.start()
    watcher.stop()  # returns at once: the thread waits on an event, never sleeps
    assert not watcher._thread.is_alive()


def test_offered_settings_apply_at_the_next_step_and_only_real_changes_are_recorded():
    portfolio = Portfolio(D(100_000))
    gate = PolicyGate(PolicyConfig(max_daily_loss_per_strategy=D(1)), portfolio, HistoryStore(0), ["s"])
    gate.begin_step(1, DAY1)
    portfolio.apply_fill(Fill(1, 1, "s", "AAA", Side.BUY, D(1), D(100), D(5), DAY1))
    gate.check_daily_losses()
    assert gate.halted_until("s") is not None
    gate.offer({"risk_mode": "normal", "max_daily_loss_per_strategy": D(10)})
    assert gate.policy.max_daily_loss_per_strategy == D(1)  # not before the next step
    [change] = gate.begin_step(2, DAY1 + timedelta(minutes=1))
    assert (change.step, change.key, change.old_value, change.new_value, change.source) == (
        2, "max_daily_loss_per_strategy", "1", "10", "cli",
    )
    assert gate.halted_until("s") is None  # a new limit lifts the halt; lost 5 < 10
    gate.check_daily_losses()
    assert gate.halted_until("s") is None


def test_an_allowlist_naming_strategies_the_run_does_not_have_is_warned_about_at_start_and_at_pickup(caplog):
    caplog.set_level(logging.WARNING, logger="runner.policy")
    gate = PolicyGate(
        PolicyConfig(allowlist=("ma_fast", "holdr")), Portfolio(D(100_000)), HistoryStore(0), ["ma_fast", "hold"],
    )
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(
        logging.WARNING,
        "policy.allowlist names holdr (did you mean 'hold'?), which this run does not have (its strategies: "
        "ma_fast, hold); of them only ma_fast may open or add to positions",
    )]
    caplog.clear()
    gate.offer({"risk_mode": "defensive"})
    gate.begin_step(1, DAY1)
    assert caplog.records == []  # the allowlist did not change: no second warning
    gate.offer({"allowlist": ("nobody", "ma_slow")})
    assert caplog.records == []  # offered from the watcher's thread; applied, and warned about, by the loop
    gate.begin_step(2, DAY1 + timedelta(minutes=1))
    assert [r.getMessage() for r in caplog.records] == [
        "policy.allowlist names nobody, ma_slow, which this run does not have (its strategies: ma_fast, hold); "
        "none of them may open or add to positions",
    ]
    caplog.clear()
    for step, allowlist in enumerate([("hold",), (), None], start=3):
        gate.offer({"allowlist": allowlist})
        gate.begin_step(step, DAY1 + timedelta(minutes=step))
    assert caplog.records == []  # names the run has, [] (on purpose) and none raise nothing


# --- properties ---------------------------------------------------------------------------------


@given(
    quantity=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e14"), places=4),
    factor=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1), places=2),
)
def test_a_defensive_quantity_never_exceeds_the_unscaled_one_nor_its_decimal_places(quantity, factor):
    result = scaled(quantity, factor)
    assert 0 <= result <= quantity
    assert result <= quantity * factor
    assert result.as_tuple().exponent >= min(quantity.as_tuple().exponent, 0)
    assert quantity * factor - result < Decimal(1).scaleb(min(quantity.as_tuple().exponent, 0))


SIGNALS = st.lists(
    st.fixed_dictionaries({
        "symbol": st.just("AAA"), "action": st.sampled_from(["BUY", "SELL", "CLOSE"]),
        "quantity": st.integers(1, 30), "confidence": st.sampled_from([None, 0.2, 0.5, 0.9]),
    }),
    max_size=3,
)
POLICIES = st.builds(
    PolicyConfig,
    risk_mode=st.sampled_from(["normal", "aggressive", "defensive"]),
    min_confidence=st.sampled_from([None, 0.4, 0.8]),
    allowlist=st.sampled_from([None, ("s",), ()]),
    max_position_value_per_symbol=st.sampled_from([None, D(500), D(2000)]),
    max_position_value_per_strategy=st.sampled_from([None, D(1000)]),
    max_daily_loss_per_strategy=st.sampled_from([None, D(5)]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(SIGNALS, min_size=8, max_size=8), policy=POLICIES, closes=st.lists(st.integers(90, 110), min_size=9, max_size=9))
def test_a_blocked_signal_never_becomes_an_order(plan, policy, closes):
    runner, summary = run(
        None, {"s": {call: signals for call, signals in enumerate(plan, 1)}}, closes, policy, database="sqlite://",
    )
    engine = runner.recorder.engine
    signals = queries.signals(engine, runner.run_id)
    orders = {o.order_id: o for o in queries.orders(engine, runner.run_id)}
    for row in signals:
        if row.rule:
            assert row.rule in RULES
            assert (row.accepted, row.order_id) == (False, None)
    assert sorted(orders) == sorted(row.order_id for row in signals if row.order_id is not None)
    assert sum(1 for row in signals if row.rule) == sum(summary.to_dict()["policy_blocks"].values())
    if policy.risk_mode == "defensive":
        for row in signals:
            if row.order_id is not None and row.action != "CLOSE":
                assert orders[row.order_id].quantity <= row.quantity


def test_the_gate_says_which_rule_blocked_a_signal():
    portfolio = Portfolio(D(100_000))
    gate = PolicyGate(PolicyConfig(min_confidence=0.5), portfolio, HistoryStore(0), ["s"])
    with pytest.raises(Denied) as denied:
        gate.check("s", "1m", Signal("AAA", Action.BUY, confidence=0.1), Side.BUY, D(1), D(0), D(100))
    assert denied.value.rule == "min_confidence"
    assert gate.check("s", "1m", Signal("AAA", Action.SELL, confidence=0.1), Side.SELL, D(1), D(3), D(100)) == D(1)
    step = MarketData(DAY1, "1m", {})
    assert gate.begin_step(1, step.timestamp) == []
