"""Built-in strategies on hand-made price series."""


import pytest
from pydantic import ValidationError

from runner.domain import Action, Signal
from strategies.buy_and_hold import BuyAndHold
from strategies.ma_crossover import MACrossover
from tests.helpers import D, bar, closes_to_steps, make, step


def run_closes(strategy, books, closes, fills=True):
    """Feed closes one step at a time; a BUY/SELL changes the position as if filled."""
    emitted = []
    for index, market in enumerate(closes_to_steps("AAA", closes)):
        for signal in strategy.on_tick(market) or []:
            emitted.append((index, signal.action, signal.quantity))
            if fills:
                delta = signal.quantity if signal.action is Action.BUY else -signal.quantity
                books.held["AAA"] = books.held.get("AAA", D(0)) + delta
    return emitted


def test_ma_crossover_buys_on_upward_cross_and_sells_all_on_downward_cross():
    strategy, books = make(MACrossover, fast=2, slow=4, quantity=D(3))
    # index:      0   1   2   3   4   5  6   7   8  9
    closes = [10, 10, 10, 10, 12, 8, 8, 14, 15, 5]
    # 3: fast 10 = slow 10 (equal); 4: fast 11 > slow 10.5 but the previous bar was equal, so
    # no cross; 5: equal again; 6: fast 8 < slow 9.5; 7: fast 11 > slow 10.5 -> BUY;
    # 8: still above; 9: fast 10 < slow 10.5 -> SELL the whole position.
    assert run_closes(strategy, books, closes) == [(7, Action.BUY, D(3)), (9, Action.SELL, D(3))]


def test_ma_crossover_compares_averages_exactly():
    # fast (2.00 + 2.22) / 2 == slow (2.11 + 2.00 + 2.22) / 3 == 2.11 exactly: no cross,
    # although float arithmetic makes the fast average 2.1100000000000003.
    strategy, books = make(MACrossover, fast=2, slow=3)
    assert run_closes(strategy, books, ["3.00", "2.11", "2.00", "2.22"]) == []


def test_ma_crossover_buys_only_when_flat_and_sells_only_when_long():
    strategy, books = make(MACrossover, fast=2, slow=4, quantity=D(1))
    books.held["AAA"] = D(5)  # already long: an upward cross buys nothing
    closes = [10, 10, 10, 9, 8, 14]
    assert run_closes(strategy, books, closes, fills=False) == []
    strategy, books = make(MACrossover, fast=2, slow=4)
    closes = [10, 10, 10, 11, 12, 5]  # a downward cross while flat sells nothing
    assert run_closes(strategy, books, closes, fills=False) == []


def test_ma_crossover_keeps_each_symbol_apart():
    strategy, books = make(MACrossover, symbols=("AAA", "BBB"), fast=2, slow=3, quantity=D(1))
    ups = [10, 10, 9, 12]  # AAA crosses up on the last bar; BBB stays flat
    signals = []
    for minute, close in enumerate(ups):
        market = step(minute, bar("AAA", minute, close), bar("BBB", minute, 10))
        signals += strategy.on_tick(market)
    assert [(s.symbol, s.action) for s in signals] == [("AAA", Action.BUY)]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"fast": 30, "slow": 10}, "fast (30) must be smaller than slow (10)"),
     ({"fast": 0}, "greater than 0"), ({"quantity": -1}, "greater than 0")],
)
def test_ma_crossover_rejects_bad_params(params, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MACrossover.Params(**params)


def test_buy_and_hold_buys_each_symbol_once():
    strategy, _ = make(BuyAndHold, symbols=("AAA", "BBB"), quantity=D(2))
    first = strategy.on_tick(step(0, bar("AAA", 0, 10)))
    second = strategy.on_tick(step(1, bar("AAA", 1, 11), bar("BBB", 1, 5)))
    third = strategy.on_tick(step(2, bar("AAA", 2, 12), bar("BBB", 2, 6)))
    assert first == [Signal("AAA", Action.BUY, D(2), reason="first bar")]
    assert [(s.symbol, s.action) for s in second] == [("BBB", Action.BUY)]
    assert third == []
    assert strategy.on_stop() == []


def test_buy_and_hold_sells_on_stop_when_asked():
    strategy, books = make(BuyAndHold, quantity=D(2), sell_on_stop=True)
    strategy.on_tick(step(0, bar("AAA", 0, 10)))
    books.held["AAA"] = D(2)
    assert strategy.on_stop() == [Signal("AAA", Action.SELL, D(2), reason="run stopped")]
