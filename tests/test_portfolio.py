"""Accounting invariants of the portfolio, over random fills (hypothesis)."""

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.domain import Fill, Side
from runner.portfolio import Portfolio
from tests.helpers import D, bar, step

T = datetime(2024, 1, 1, tzinfo=UTC)
prices = st.decimals(min_value="0.01", max_value="1000", places=2)
quantities = st.decimals(min_value="0.001", max_value="500", places=3)
fills = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]), st.sampled_from(["X", "Y"]), st.sampled_from(list(Side)),
        quantities, prices, st.decimals(min_value="0", max_value="20", places=4),
    ),
    max_size=40,
)
marks = st.fixed_dictionaries({"X": prices, "Y": prices})


def book(fill_list) -> tuple[Portfolio, list[Fill]]:
    portfolio = Portfolio(D(50_000))
    made = []
    for index, (strategy, symbol, side, quantity, price, commission) in enumerate(fill_list):
        fill = Fill(index, index, strategy, symbol, side, quantity, price, commission, T)
        portfolio.apply_fill(fill)
        made.append(fill)
    return portfolio, made


@settings(max_examples=300, deadline=None)
@given(fills, marks)
def test_equity_change_equals_the_sum_of_position_pnl(fill_list, mark):
    portfolio, made = book(fill_list)
    portfolio.mark(step(1, *(bar(s, 1, p) for s, p in mark.items())))
    net = sum((p.net_pnl for p in portfolio.positions()), Decimal(0))
    assert abs((portfolio.equity() - portfolio.starting_cash) - net) < Decimal("1e-12")


@settings(max_examples=300, deadline=None)
@given(fills)
def test_cash_moves_exactly_by_notional_and_fees(fill_list):
    portfolio, made = book(fill_list)
    flows = sum(
        ((-f.notional if f.side is Side.BUY else f.notional) - f.commission for f in made), Decimal(0)
    )
    assert portfolio.cash == portfolio.starting_cash + flows


@settings(max_examples=300, deadline=None)
@given(fills)
def test_quantity_is_the_sum_of_signed_fills(fill_list):
    portfolio, made = book(fill_list)
    for position in portfolio.positions():
        expected = sum(
            (f.quantity if f.side is Side.BUY else -f.quantity
             for f in made if (f.strategy, f.symbol) == (position.strategy, position.symbol)),
            Decimal(0),
        )
        assert position.quantity == expected


def test_realised_pnl_on_reduce_close_and_flip():
    portfolio = Portfolio(D(10_000))
    for side, quantity, price in [
        (Side.BUY, 10, 10), (Side.BUY, 10, 20),  # average 15
        (Side.SELL, 5, 25),  # realise 5 x 10 = 50
        (Side.SELL, 25, 5),  # close 15 at 5 (-150), then short 10 at 5
    ]:
        portfolio.apply_fill(Fill(0, 0, "s", "X", side, D(quantity), D(price), D(0), T))
    position = portfolio.position("s", "X")
    assert position.realized_pnl == D(-100)
    assert position.quantity == D(-10)
    assert position.average_cost == D(5)


@settings(max_examples=100, deadline=None)
@given(fills)
def test_open_positions_are_exactly_the_positions_that_hold_something(fill_list):
    portfolio, _ = book(fill_list)
    assert portfolio.open_positions() == [p for p in portfolio.positions() if p.quantity]
