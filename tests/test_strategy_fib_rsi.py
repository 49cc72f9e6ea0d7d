"""The Fibonacci-retracement + RSI strategy on hand-made bars, and once through a whole run."""

import pytest
from pydantic import ValidationError

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.domain import Action, Signal
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.fib_rsi import FibRSI
from tests.helpers import D, ListFeed, bar, make, step

# An up-swing over a window of 5 bars: the low L = 90.5 on bar 1, the high H = 110 on bar 3.
# H - L = 19.5, so the levels H - r x 19.5 are
#   0.236 -> 105.398   0.382 -> 102.551   0.5 -> 100.25   0.618 -> 97.949   0.786 -> 94.673
# RSI(2) of the closes 100, 91, 104, 109 (changes -9, +13, +5): G = 6.5, L = 4.5 after bar 2,
# then G = 5.75, L = 2.25 after bar 3.
SWING = [  # (open, high, low, close)
    (100, 101, 100, 100),
    (100, 100, "90.5", 91),
    (91, 105, 91, 104),
    (104, 110, 103, 109),
]
PULLBACK = (109, 109, 102, "102.55")  # bar 4: close 0.001 from the 0.382 level


def bars(rows, symbol="AAA"):
    return [bar(symbol, minute, *row) for minute, row in enumerate(rows)]


def feed(strategy, rows):
    """Feed one bar per step; return (index, signal) for each signal."""
    emitted = []
    for index, one in enumerate(bars(rows)):
        emitted += [(index, s) for s in strategy.on_tick(step(index, one)) or []]
    return emitted


def test_fib_rsi_buys_at_a_level_with_a_bracket_to_the_neighbouring_levels():
    strategy, _ = make(FibRSI, window=5, rsi_period=2, quantity=D(2))
    # Bar 4: |102.55 - 102.551| = 0.001 <= 0.002 x 102.55 = 0.2051, so at the 0.382 level.
    # RSI: change -6.45, G = 5.75 / 2 = 2.875, L = (2.25 + 6.45) / 2 = 4.35,
    # RSI = 100 x 2.875 / 7.225 = 39.79 < 40.
    # Stop at the next level below (0.5: 100.25), target at the next one above (0.236: 105.398,
    # rounded to the close's two places: 105.40).
    assert feed(strategy, [*SWING, PULLBACK]) == [(4, Signal(
        "AAA", Action.BUY, D(2), stop_loss=D("100.25"), take_profit=D("105.40"),
        reason="fib 0.382 at 102.55, rsi 39.8",
    ))]


def test_fib_rsi_stops_at_the_swing_low_below_the_lowest_level():
    strategy, _ = make(FibRSI, window=5, rsi_period=2)
    # Close 94.67 is 0.003 from the 0.786 level (94.673); RSI 25.8. Stop at L = 90.5 (90.50),
    # target at the 0.618 level 97.949 -> 97.95.
    [(index, signal)] = feed(strategy, [*SWING, (109, 109, 94, "94.67")])
    assert (index, signal.stop_loss, signal.take_profit) == (4, D("90.50"), D("97.95"))
    assert signal.reason.startswith("fib 0.786 at 94.67, rsi ")


def test_fib_rsi_targets_the_swing_high_above_the_highest_level():
    strategy, _ = make(FibRSI, window=5, rsi_period=2, rsi_confirm=50)
    # Close 105.40 is 0.002 from the 0.236 level (105.398). RSI: change -3.6,
    # G = 2.875, L = (2.25 + 3.6) / 2 = 2.925, RSI = 49.57 < 50. Stop at the 0.382 level
    # (102.551 -> 102.55), target at H = 110 (110.00).
    [(index, signal)] = feed(strategy, [*SWING, (109, 109, 105, "105.40")])
    assert (index, signal.stop_loss, signal.take_profit) == (4, D("102.55"), D("110.00"))
    assert signal.reason == "fib 0.236 at 105.40, rsi 49.6"


def test_fib_rsi_rounds_to_the_close_and_skips_a_stop_that_is_not_below_it():
    # Whole-number prices: H = 110, L = 90, close 100, RSI 33.8 (G = 2.875, L = 5.625).
    rows = [(100, 101, 100, 100), (100, 100, 90, 91), *SWING[2:], (109, 109, 100, 100)]
    # levels 0.5 -> 100 (the close), 0.55 -> 99: stop 99, target H = 110.
    strategy, _ = make(FibRSI, window=5, rsi_period=2, levels=[0.5, 0.55])
    [(_, signal)] = feed(strategy, rows)
    assert (signal.stop_loss, signal.take_profit) == (D(99), D(110))
    # levels 0.5 -> 100, 0.51 -> 99.8, which rounds to 100: not below the close, so no entry.
    strategy, _ = make(FibRSI, window=5, rsi_period=2, levels=[0.5, 0.51])
    assert feed(strategy, rows) == []


@pytest.mark.parametrize(
    ("params", "rows"),
    [
        # RSI 39.79 is not below 39.5.
        ({"rsi_confirm": 39.5}, [*SWING, PULLBACK]),
        # Close 103.5: 0.949 from the 0.382 level, more than 0.002 x 103.5 = 0.207.
        ({"rsi_confirm": 100}, [*SWING, (109, 109, 103, "103.5")]),
        # A window of 6 is not full after 5 bars.
        ({"window": 6}, [*SWING, PULLBACK]),
        # A down-swing: H = 110 on bar 1 comes before L = 90.5 on bar 3, so no levels, although
        # the close sits where the 0.382 level would be.
        ({"rsi_confirm": 100}, [(100, 101, 100, 100), (100, 110, 99, 109), (109, 109, 95, 96),
                                (96, 97, "90.5", 91), (91, 103, 91, "102.55")]),
        # H = 110 and L = 90.5 on the same bar 3: no direction, so no levels.
        ({"rsi_confirm": 100}, [(100, 101, 100, 100), (100, 100, 95, 96), (96, 105, 96, 104),
                                (104, 110, "90.5", 109), PULLBACK]),
        # H == L: every level is 100, the close, but there is no swing.
        ({"rsi_confirm": 100}, [(100, 100, 100, 100)] * 5),
    ],
    ids=["rsi-not-low-enough", "between-levels", "window-not-full", "down-swing", "one-bar-swing", "flat"],
)
def test_fib_rsi_does_not_buy(params, rows):
    strategy, _ = make(FibRSI, **{"window": 5, "rsi_period": 2, **params})
    assert feed(strategy, rows) == []


def test_fib_rsi_buys_only_when_flat():
    strategy, books = make(FibRSI, window=5, rsi_period=2)
    books.held["AAA"] = D(1)
    assert feed(strategy, [*SWING, PULLBACK]) == []


def test_fib_rsi_keeps_each_symbol_apart():
    strategy, _ = make(FibRSI, symbols=("AAA", "BBB"), window=5, rsi_period=2)
    signals = []
    for minute, one in enumerate(bars([*SWING, PULLBACK])):
        signals += strategy.on_tick(step(minute, one, bar("BBB", minute, 50)))
    assert [(s.symbol, s.action) for s in signals] == [("AAA", Action.BUY)]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"window": 2}, "greater than or equal to 3"),
     ({"levels": []}, "levels must name at least one ratio"),
     ({"levels": [0.5, 1.2, 0]}, "levels must be strictly between 0 and 1, got [1.2, 0.0]"),
     ({"levels": [0.5, 0.5]}, "levels must not repeat, got [0.5, 0.5]"),
     ({"tolerance": -0.1}, "greater than or equal to 0"), ({"rsi_period": 0}, "greater than 0"),
     ({"rsi_confirm": 101}, "less than or equal to 100"), ({"quantity": 0}, "greater than 0")],
)
def test_fib_rsi_rejects_bad_params(params, message):
    with pytest.raises(ValidationError) as error:
        FibRSI.Params(**params)
    assert message in str(error.value)


def test_fib_rsi_sorts_its_levels():
    assert FibRSI.Params(levels=[0.618, 0.382]).levels == [0.382, 0.618]
    assert FibRSI.Params().levels == [0.236, 0.382, 0.5, 0.618, 0.786]


def test_fib_rsi_bracket_is_placed_filled_and_closed_by_its_take_profit_in_a_run(tmp_path):
    rows = [
        *SWING, PULLBACK,            # bar 4: BUY 2 with stop 100.25 and target 105.40
        ("102.55", 103, 102, "102.8"),  # bar 5: the entry fills at the open, 102.55
        (103, 106, "102.9", "105.9"),   # bar 6: the legs work; the high passes 105.40, which fills
    ]
    # After bar 6 the window is bars 2-6 (H = 110, L = 91); 105.9 is 0.384 from the 0.236 level
    # 105.516, more than 0.002 x 105.9 = 0.2118: no new entry.
    broker = PaperBroker(Portfolio(D(100_000)), BarFillModel(), FeeSchedule(CommissionModel()), ("AAA",))
    runner = assemble(
        feed=ListFeed([[one] for one in bars(rows)]), broker=broker,
        strategies=[StrategySetup("fib", FibRSI, {"window": 5, "rsi_period": 2, "quantity": 2})],
        database=f"sqlite:///{tmp_path / 'f.db'}",
    )
    summary = runner.run()
    assert summary.status == "completed" and summary.errors == 0
    orders = {o.order_id: o for o in queries.orders(runner.recorder.engine, runner.run_id)}
    assert [(o.order_id, o.side, o.order_type, o.status, o.parent_id) for o in orders.values()] == [
        (1, "BUY", "MARKET", "FILLED", None),
        (2, "SELL", "STOP", "CANCELLED", 1),
        (3, "SELL", "LIMIT", "FILLED", 1),
    ]
    assert (orders[1].stop_loss, orders[1].take_profit) == (D("100.25"), D("105.40"))
    assert (orders[2].stop_price, orders[3].limit_price) == (D("100.25"), D("105.40"))
    assert (orders[2].sibling_id, orders[3].sibling_id) == (3, 2)
    fills = queries.fills(runner.recorder.engine, runner.run_id)
    assert [(f.order_id, f.side, f.quantity, f.price) for f in fills] == [
        (1, "BUY", D(2), D("102.55")), (3, "SELL", D(2), D("105.40")),
    ]
    [position] = queries.positions(runner.recorder.engine, runner.run_id)
    assert (position.quantity, position.realized_pnl) == (D(0), D("5.70"))  # 2 x (105.40 - 102.55)
