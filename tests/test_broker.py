"""PaperBroker: next-bar market fills, slippage, commission, rejections with reasons."""

from decimal import Decimal

import pytest

from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.domain import Fill, Order, OrderRequest, OrderStatus, OrderType, Side
from runner.portfolio import Portfolio
from tests.helpers import D, bar, step


def make_broker(cash="10000", slippage="0", allow_short=False, **commission) -> PaperBroker:
    return PaperBroker(
        Portfolio(D(cash)), BarFillModel(D(slippage)),
        FeeSchedule(CommissionModel(**{k: D(v) for k, v in commission.items()})),
        symbols=("AAA", "BBB"), allow_short=allow_short,
    )


def fills_of(events) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def test_round_trip_with_slippage_and_commission_to_the_cent():
    broker = make_broker(
        cash="10000", slippage="10", per_share="0.01", percent="0.1", per_order="1", minimum="2",
    )
    book = broker.portfolio
    book.mark(step(0, bar("AAA", 0, 49.90)))
    states = broker.submit("s", OrderRequest("AAA", Side.BUY, D(100)), step(0).timestamp)
    assert [o.status for o in states] == [OrderStatus.NEW, OrderStatus.ACCEPTED]

    buy = fills_of(broker.match(step(1, bar("AAA", 1, 50.00, high=51, low=49))))[0]
    # 50.00 moved 10 bps against the buyer; 0.01 x 100 + 0.1 % of 5005 + 1 = 7.005
    assert buy.price == D("50.05")
    assert buy.commission == D("7.005")
    assert book.cash == D("4987.995")

    broker.submit("s", OrderRequest("AAA", Side.SELL, D(100)), step(1).timestamp)
    sell = fills_of(broker.match(step(2, bar("AAA", 2, 52.00, high=53, low=51))))[0]
    assert sell.price == D("51.948")
    assert sell.commission == D("7.1948")
    assert book.cash == D("10175.6002")
    position = book.position("s", "AAA")
    assert position.quantity == 0
    assert position.realized_pnl == D("189.80")
    assert position.fees == D("14.1998")
    assert round(position.net_pnl, 2) == D("175.60")
    assert book.equity() == book.cash


def test_minimum_commission_applies():
    broker = make_broker(per_share="0.001", minimum="1.50")
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(10)), step(0).timestamp)
    fill = fills_of(broker.match(step(1, bar("AAA", 1, 20))))[0]
    assert fill.commission == D("1.50")


def test_order_fills_on_the_next_bar_open_not_the_signal_bar():
    broker = make_broker()
    broker.portfolio.mark(step(0, bar("AAA", 0, 10, close=11)))
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(1)), step(0).timestamp)
    assert broker.working_orders, "the order waits for the next bar"
    fill = fills_of(broker.match(step(1, bar("AAA", 1, 12, high=13, low=11))))[0]
    assert fill.price == D(12)
    assert fill.timestamp == step(1).timestamp


def test_order_waits_while_its_symbol_has_no_bar():
    broker = make_broker()
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(1)), step(0).timestamp)
    assert broker.match(step(1, bar("BBB", 1, 5))) == []
    assert len(fills_of(broker.match(step(2, bar("AAA", 2, 7))))) == 1


def test_slippage_never_leaves_the_bar_range():
    broker = make_broker(slippage="100")  # 1 %
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(1)), step(0).timestamp)
    fill = fills_of(broker.match(step(1, bar("AAA", 1, 100, high="100.50", low=99))))[0]
    assert fill.price == D("100.50")


@pytest.mark.parametrize(
    ("side", "symbol", "quantity", "reason"),
    [
        (Side.BUY, "AAA", "0", "quantity must be positive"),
        (Side.BUY, "ZZZ", "1", "unknown symbol 'ZZZ'"),
        (Side.SELL, "AAA", "1", "short selling not allowed"),
        (Side.BUY, "AAA", "1000", "insufficient cash"),
    ],
)
def test_rejections_carry_their_reason(side, symbol, quantity, reason):
    broker = make_broker(cash="1000")
    broker.portfolio.mark(step(0, bar("AAA", 0, 50)))
    states = broker.submit("s", OrderRequest(symbol, side, D(quantity)), step(0).timestamp)
    assert states[-1].status is OrderStatus.REJECTED
    assert reason in states[-1].reason
    assert broker.working_orders == []


def test_cash_is_rechecked_at_the_fill_price():
    broker = make_broker(cash="1000")
    broker.portfolio.mark(step(0, bar("AAA", 0, 9)))
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(100)), step(0).timestamp)  # about 900: accepted
    events = broker.match(step(1, bar("AAA", 1, 20)))  # gaps up: 2000 needed
    assert fills_of(events) == []
    rejected = [e for e in events if isinstance(e, Order)][0]
    assert rejected.status is OrderStatus.REJECTED
    assert "insufficient cash at fill" in rejected.reason
    assert broker.portfolio.cash == D(1000)


def test_working_buys_reserve_cash():
    broker = make_broker(cash="1000")
    broker.portfolio.mark(step(0, bar("AAA", 0, 10)))
    assert broker.submit("s", OrderRequest("AAA", Side.BUY, D(60)), step(0).timestamp)[-1].status is OrderStatus.ACCEPTED
    second = broker.submit("s", OrderRequest("AAA", Side.BUY, D(60)), step(0).timestamp)[-1]
    assert second.status is OrderStatus.REJECTED and "insufficient cash" in second.reason


def test_pending_sells_count_against_the_position():
    broker = make_broker()
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(5)), step(0).timestamp)
    broker.match(step(1, bar("AAA", 1, 10)))
    assert broker.submit("s", OrderRequest("AAA", Side.SELL, D(5)), step(1).timestamp)[-1].status is OrderStatus.ACCEPTED
    again = broker.submit("s", OrderRequest("AAA", Side.SELL, D(1)), step(1).timestamp)[-1]
    assert again.status is OrderStatus.REJECTED


def test_short_selling_when_allowed():
    broker = make_broker(allow_short=True)
    broker.submit("s", OrderRequest("AAA", Side.SELL, D(10)), step(0).timestamp)
    broker.match(step(1, bar("AAA", 1, 10)))
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(10)), step(1).timestamp)
    broker.match(step(2, bar("AAA", 2, 8)))
    position = broker.portfolio.position("s", "AAA")
    assert position.quantity == 0
    assert position.realized_pnl == D(20)
    assert broker.portfolio.cash == D(10020)


def test_positions_are_kept_per_strategy():
    broker = make_broker()
    broker.submit("a", OrderRequest("AAA", Side.BUY, D(3)), step(0).timestamp)
    broker.submit("b", OrderRequest("AAA", Side.BUY, D(2)), step(0).timestamp)
    broker.match(step(1, bar("AAA", 1, 10)))
    sell = broker.submit("b", OrderRequest("AAA", Side.SELL, D(3)), step(1).timestamp)[-1]
    assert sell.status is OrderStatus.REJECTED, "b cannot sell a's shares"
    assert broker.portfolio.quantity("a", "AAA") == 3
    assert broker.portfolio.quantity("b", "AAA") == 2


def test_unsupported_order_type_is_rejected_with_reason():
    broker = make_broker()
    order = broker.submit("s", OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT), step(0).timestamp)[-1]
    assert order.status is OrderStatus.REJECTED
    assert "LIMIT" in order.reason


def test_cancel_all_cancels_working_orders():
    broker = make_broker()
    broker.submit("s", OrderRequest("AAA", Side.BUY, D(1)), step(0).timestamp)
    cancelled = broker.cancel_all(step(0).timestamp, "run stopped")
    assert [o.status for o in cancelled] == [OrderStatus.CANCELLED]
    assert cancelled[0].reason == "run stopped"
    assert broker.match(step(1, bar("AAA", 1, 10))) == []


def test_fill_at_last_price_for_orders_placed_at_stop():
    broker = make_broker(slippage="10")
    broker.portfolio.mark(step(0, bar("AAA", 0, 10, close=20)))
    order = broker.submit("s", OrderRequest("AAA", Side.BUY, D(1)), step(0).timestamp)[-1]
    fill = fills_of(broker.fill_at_last_price(order, step(0).timestamp))[0]
    assert fill.price == Decimal("20.02")
