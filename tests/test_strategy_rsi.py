"""The RSI strategy on hand-made closes, and once through a whole run."""

import pytest
from pydantic import ValidationError

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.domain import Action
from runner.indicators import RSI
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.rsi import RSIStrategy
from tests.helpers import D, ListFeed, bar, closes_to_steps, make, step

# With period 2, RSI = 100 x G / (G + L), where G and L start as the means of the first two
# gains and losses and then follow G' = (G + gain) / 2, L' = (L + loss) / 2.
#   index  close  change  G        L         RSI
#   0      10
#   1      11     +1
#   2      10     -1      0.5      0.5       50
#   3       8     -2      0.25     1.25      16.67   below 30
#   4       7     -1      0.125    1.125     10      below 30
#   5      10     +3      1.5625   0.5625    73.53   above 70
#   6      12     +2      1.78125  0.28125   86.36   above 70
#   7       6     -6      0.890625 3.140625  22.09   below 30
CLOSES = [10, 11, 10, 8, 7, 10, 12, 6]


def feed(strategy, books, closes, fills=True):
    """Feed closes one step at a time; a BUY/SELL changes the position as if filled."""
    emitted = []
    for index, market in enumerate(closes_to_steps("AAA", closes)):
        for signal in strategy.on_tick(market) or []:
            emitted.append((index, signal.action, signal.quantity, signal.reason))
            if fills:
                delta = signal.quantity if signal.action is Action.BUY else -signal.quantity
                books.held["AAA"] = books.held.get("AAA", D(0)) + delta
    return emitted


def test_rsi_buys_below_lower_and_sells_the_whole_position_above_upper():
    strategy, books = make(RSIStrategy, period=2, quantity=D(3))
    # 3: flat and 16.67 < 30 -> BUY 3; 4: 10 < 30 but long; 5: long and 73.53 > 70 -> SELL 3;
    # 6: 86.36 > 70 but flat; 7: flat and 22.09 < 30 -> BUY 3.
    assert feed(strategy, books, CLOSES) == [
        (3, Action.BUY, D(3), "rsi 16.7 below 30"),
        (5, Action.SELL, D(3), "rsi 73.5 above 70"),
        (7, Action.BUY, D(3), "rsi 22.1 below 30"),
    ]


def test_rsi_uses_its_thresholds_strictly_and_waits_for_period_changes():
    # lower 16.6: 16.67 at index 3 is not below it, 10 at index 4 is; upper 73.6: 73.53 at
    # index 5 is not above it, 86.36 at index 6 is.
    strategy, books = make(RSIStrategy, period=2, lower=16.6, upper=73.6)
    assert [e[:3] for e in feed(strategy, books, CLOSES)] == [(4, Action.BUY, D(1)), (6, Action.SELL, D(1))]
    # lower 10: the RSI at index 4 is exactly 10.0 (0.125 / 1.25 = 1/10), which is not below 10.
    strategy, books = make(RSIStrategy, period=2, lower=10)
    indicator = RSI(2)
    assert [indicator.update(c) for c in CLOSES[:5]][-1] == 10.0
    assert feed(strategy, books, CLOSES[:5]) == []
    strategy, books = make(RSIStrategy, period=14, lower=99, upper=99.5)  # 8 closes: never warmed up
    assert feed(strategy, books, CLOSES) == []


def test_rsi_buys_only_when_flat_and_sells_only_when_long():
    strategy, books = make(RSIStrategy, period=2, quantity=D(3))
    books.held["AAA"] = D(5)  # already long: no buy at 3, 4 or 7; each overbought bar sells all 5
    assert [e[:3] for e in feed(strategy, books, CLOSES, fills=False)] == [
        (5, Action.SELL, D(5)), (6, Action.SELL, D(5)),
    ]
    strategy, books = make(RSIStrategy, period=2)
    assert feed(strategy, books, [10, 11, 12, 13, 14], fills=False) == []  # RSI 100 while flat


def test_rsi_keeps_each_symbol_apart():
    strategy, _ = make(RSIStrategy, symbols=("AAA", "BBB"), period=2)
    signals = []
    for minute, close in enumerate(CLOSES[:4]):  # AAA is oversold at index 3; BBB never moves
        signals += strategy.on_tick(step(minute, bar("AAA", minute, close), bar("BBB", minute, 10)))
    assert [(s.symbol, s.action) for s in signals] == [("AAA", Action.BUY)]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"lower": 70, "upper": 30}, "lower (70) must be smaller than upper (30)"),
     ({"lower": 50, "upper": 50}, "lower (50) must be smaller than upper (50)"),
     ({"period": 0}, "greater than 0"), ({"lower": 0}, "greater than 0"),
     ({"upper": 100}, "less than 100"), ({"quantity": 0}, "greater than 0")],
)
def test_rsi_rejects_bad_params(params, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RSIStrategy.Params(**params)


def test_rsi_orders_are_placed_and_filled_in_a_run(tmp_path):
    # Bars open at the previous close. BUY on bar 3 fills at bar 4's open (8); SELL on bar 5
    # fills at bar 6's open (10): realized 3 x (10 - 8) = 6.
    steps = [[s["AAA"]] for s in closes_to_steps("AAA", CLOSES[:7])]
    broker = PaperBroker(Portfolio(D(100_000)), BarFillModel(), FeeSchedule(CommissionModel()), ("AAA",))
    runner = assemble(
        feed=ListFeed(steps), broker=broker,
        strategies=[StrategySetup("rsi", RSIStrategy, {"period": 2, "quantity": "3"})],
        database=f"sqlite:///{tmp_path / 'r.db'}",
    )
    summary = runner.run()
    assert summary.status == "completed" and summary.errors == 0
    orders = queries.orders(runner.recorder.engine, runner.run_id)
    assert [(o.side, o.order_type, o.quantity, o.status, o.reason) for o in orders] == [
        ("BUY", "MARKET", D(3), "FILLED", "rsi 16.7 below 30"),
        ("SELL", "MARKET", D(3), "FILLED", "rsi 73.5 above 70"),
    ]
    fills = queries.fills(runner.recorder.engine, runner.run_id)
    assert [(f.side, f.quantity, f.price) for f in fills] == [("BUY", D(3), D(8)), ("SELL", D(3), D(10))]
    [position] = queries.positions(runner.recorder.engine, runner.run_id)
    assert (position.quantity, position.realized_pnl) == (D(0), D(6))


def test_rsi_description_is_one_line():
    assert RSIStrategy.description and "\n" not in RSIStrategy.description
