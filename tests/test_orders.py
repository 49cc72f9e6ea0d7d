"""Order types, time in force, brackets, partial fills, fees, margin and limits: the worked
examples of the README's "How orders are filled", each checked to the cent."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.domain import Bar, Fill, MarketData, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from runner.portfolio import Portfolio
from tests.helpers import D

T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def bar_at(minute, o, h, l, c, volume=1000, symbol="AAA", start=T0):
    return Bar(symbol, start + timedelta(minutes=minute), D(o), D(h), D(l), D(c), D(volume))


def at(minute, *bars, start=T0):
    return MarketData(start + timedelta(minutes=minute), "1m", {b.symbol: b for b in bars})


def broker(cash="100000", slippage="0", limit_fill="touch", participation=None, allow_short=False,
           margin="0.5", max_position=None, fees=None, allocations=None, timezone="UTC"):
    return PaperBroker(
        Portfolio(D(cash), allocations), BarFillModel(D(slippage), limit_fill, participation),
        fees or FeeSchedule(CommissionModel()), ("AAA", "BBB"), allow_short, D(margin),
        max_position, timezone,
    )


def submit(b, request, minute=0, strategy="s"):
    return b.submit(strategy, request, T0 + timedelta(minutes=minute))[-1]


def fills(events):
    return [e for e in events if isinstance(e, Fill)]


def states(events):
    return [(e.id, e.status) for e in events if isinstance(e, Order)]


# -- order types ---------------------------------------------------------------------------------

def test_market_buy_fills_at_next_open_plus_slippage():
    b = broker(slippage="10")
    submit(b, OrderRequest("AAA", Side.BUY, D(10)))
    [fill] = fills(b.match(at(1, bar_at(1, "100.00", "101", "99", "100.5"))))
    assert fill.price == D("100.10")


def test_limit_buy_fills_at_the_limit_when_the_low_reaches_it():
    b = broker()
    submit(b, OrderRequest("AAA", Side.BUY, D(10), OrderType.LIMIT, limit_price=D("99.50")))
    assert fills(b.match(at(1, bar_at(1, "100", "101", "99.60", "100")))) == []  # low above the limit
    [fill] = fills(b.match(at(2, bar_at(2, "100", "101", "99.50", "100"))))  # touches it
    assert fill.price == D("99.50")


def test_limit_buy_fills_at_the_open_when_it_opens_below_the_limit():
    b = broker()
    submit(b, OrderRequest("AAA", Side.BUY, D(10), OrderType.LIMIT, limit_price=D("99.50")))
    [fill] = fills(b.match(at(1, bar_at(1, "98.00", "99", "97", "98.5"))))
    assert fill.price == D("98.00")


def test_limit_through_needs_a_trade_beyond_the_limit():
    b = broker(limit_fill="through")
    submit(b, OrderRequest("AAA", Side.SELL, D(0), OrderType.LIMIT, limit_price=D("101")))  # rejected: qty
    b.portfolio.apply_fill(Fill(0, 0, "s", "AAA", Side.BUY, D(10), D(100), D(0), T0))
    submit(b, OrderRequest("AAA", Side.SELL, D(10), OrderType.LIMIT, limit_price=D("101")))
    assert fills(b.match(at(1, bar_at(1, "100", "101", "99", "100")))) == []  # only touched
    [fill] = fills(b.match(at(2, bar_at(2, "100", "101.01", "99", "100"))))
    assert fill.price == D("101")


def test_stop_buy_triggers_on_the_high_and_fills_at_the_stop_plus_slippage():
    b = broker(slippage="10")
    submit(b, OrderRequest("AAA", Side.BUY, D(5), OrderType.STOP, stop_price=D("102")))
    assert fills(b.match(at(1, bar_at(1, "100", "101.99", "99", "101")))) == []
    [fill] = fills(b.match(at(2, bar_at(2, "101", "103", "100.5", "102.5"))))
    assert fill.price == D("102.102")


def test_stop_sell_that_gaps_through_fills_at_the_open():
    b = broker()
    b.portfolio.apply_fill(Fill(0, 0, "s", "AAA", Side.BUY, D(5), D(100), D(0), T0))
    submit(b, OrderRequest("AAA", Side.SELL, D(5), OrderType.STOP, stop_price=D("95")))
    [fill] = fills(b.match(at(1, bar_at(1, "93", "94", "92", "93.5"))))
    assert fill.price == D("93")


def test_stop_limit_triggers_then_works_as_a_limit():
    b = broker()
    submit(b, OrderRequest("AAA", Side.BUY, D(5), OrderType.STOP_LIMIT, limit_price=D("102.50"), stop_price=D("102")))
    # Triggers at 102 but the bar opened at 103: above the limit, and never back down to it.
    events = b.match(at(1, bar_at(1, "103", "104", "102.60", "103.5")))
    assert fills(events) == [] and b.working_orders[0].triggered
    # Now a plain limit order at 102.50.
    [fill] = fills(b.match(at(2, bar_at(2, "103", "103.2", "102.40", "102.8"))))
    assert fill.price == D("102.50")


def test_stop_limit_fills_on_its_trigger_bar_from_the_stop():
    b = broker()
    submit(b, OrderRequest("AAA", Side.BUY, D(5), OrderType.STOP_LIMIT, limit_price=D("102.50"), stop_price=D("102")))
    [fill] = fills(b.match(at(1, bar_at(1, "101", "103", "100.5", "102.8"))))
    assert fill.price == D("102")


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT), "limit_price is required for a LIMIT order"),
        (OrderRequest("AAA", Side.BUY, D(1), OrderType.STOP), "stop_price is required for a STOP order"),
        (OrderRequest("AAA", Side.BUY, D(1), OrderType.STOP_LIMIT, stop_price=D(1)), "limit_price is required for a STOP_LIMIT order"),
        (OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT, limit_price=D(-2)), "limit_price must be positive, got -2"),
        (OrderRequest("AAA", Side.BUY, D(1), stop_loss=D(101)), "stop_loss 101 must be below the entry price 100 of a long"),
        (OrderRequest("AAA", Side.BUY, D(1), take_profit=D(99)), "take_profit 99 must be above the entry price 100 of a long"),
        (OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT, limit_price=D(90), stop_loss=D(95)), "stop_loss 95 must be below the entry price 90 of a long"),
    ],
)
def test_malformed_orders_are_rejected_naming_the_field(request_, reason):
    b = broker()
    b.portfolio.last_prices["AAA"] = D(100)
    order = submit(b, request_)
    assert order.status is OrderStatus.REJECTED
    assert order.reason == reason


# -- time in force -------------------------------------------------------------------------------

def test_day_order_expires_when_its_day_ends_in_the_market_timezone():
    b = broker(timezone="America/New_York")
    evening = datetime(2024, 1, 2, 20, 59, tzinfo=UTC)  # 15:59 in New York
    b.submit("s", OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT, limit_price=D(90), time_in_force=TimeInForce.DAY), evening)
    late = datetime(2024, 1, 3, 4, 0, tzinfo=UTC)  # still 2 January in New York
    assert states(b.match(MarketData(late, "1m", {"AAA": bar_at(0, 100, 101, 99, 100, start=late)}))) == []
    morning = datetime(2024, 1, 3, 14, 30, tzinfo=UTC)
    events = b.match(MarketData(morning, "1m", {"AAA": bar_at(0, 100, 101, 89, 100, start=morning)}))
    assert states(events) == [(1, OrderStatus.EXPIRED)] and fills(events) == []


def test_ioc_fills_what_it_can_on_its_first_bar_and_cancels_the_rest():
    b = broker(participation=D("0.01"))
    submit(b, OrderRequest("AAA", Side.BUY, D(50), time_in_force=TimeInForce.IOC))
    events = b.match(at(1, bar_at(1, 100, 101, 99, 100, volume=3000)))
    assert [f.quantity for f in fills(events)] == [D(30)]
    assert states(events)[-1] == (1, OrderStatus.CANCELLED)
    assert b.working_orders == []


def test_gtc_order_keeps_working():
    b = broker()
    submit(b, OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT, limit_price=D(50)))
    for minute in range(1, 5):
        b.match(at(minute, bar_at(minute, 100, 101, 99, 100)))
    assert [o.status for o in b.working_orders] == [OrderStatus.ACCEPTED]


# -- partial fills -------------------------------------------------------------------------------

def test_volume_participation_splits_an_order_over_bars_and_charges_per_order_fees_once():
    fees = FeeSchedule(CommissionModel(per_order=D(1), minimum=D("1.50")))
    b = broker(participation=D("0.1"), fees=fees)
    submit(b, OrderRequest("AAA", Side.BUY, D(250)))
    first = b.match(at(1, bar_at(1, 10, 11, 9, 10, volume=1000)))
    second = b.match(at(2, bar_at(2, 10, 11, 9, 10, volume=1000)))
    third = b.match(at(3, bar_at(3, 10, 11, 9, 10, volume=1000)))
    assert [f.quantity for f in fills(first + second + third)] == [D(100), D(100), D(50)]
    assert [s for _, s in states(first + second + third)] == [
        OrderStatus.PARTIALLY_FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
    ]
    assert sum(f.commission for f in fills(first + second + third)) == D("1.50")


# -- brackets ------------------------------------------------------------------------------------

def bracket(b, stop_loss="95", take_profit="110"):
    b.portfolio.last_prices["AAA"] = D(100)
    submit(b, OrderRequest("AAA", Side.BUY, D(10), stop_loss=D(stop_loss), take_profit=D(take_profit)))
    entry = b.match(at(1, bar_at(1, 100, 101, 99, 100)))
    return entry


def test_bracket_legs_start_working_when_the_entry_fills():
    b = broker()
    events = bracket(b)
    assert [f.price for f in fills(events)] == [D(100)]
    legs = b.working_orders
    assert [(o.order_type, o.side, o.stop_price or o.limit_price, o.parent_id) for o in legs] == [
        (OrderType.STOP, Side.SELL, D(95), 1), (OrderType.LIMIT, Side.SELL, D(110), 1),
    ]
    assert legs[0].sibling_id == legs[1].id and legs[1].sibling_id == legs[0].id


def test_take_profit_fills_and_cancels_the_stop_loss():
    b = broker()
    bracket(b)
    events = b.match(at(2, bar_at(2, 105, 111, 104, 110)))
    assert [f.price for f in fills(events)] == [D(110)]
    assert states(events) == [(3, OrderStatus.FILLED), (2, OrderStatus.CANCELLED)]
    assert b.portfolio.quantity("s", "AAA") == 0 and b.working_orders == []


def test_when_both_legs_could_fill_on_one_bar_the_stop_loss_is_taken():
    b = broker()
    bracket(b)
    events = b.match(at(2, bar_at(2, 100, 112, 94, 100)))
    assert [f.price for f in fills(events)] == [D(95)]
    assert states(events) == [(2, OrderStatus.FILLED), (3, OrderStatus.CANCELLED)]


def test_legs_are_cancelled_when_the_position_was_closed_otherwise():
    b = broker()
    bracket(b)
    submit(b, OrderRequest("AAA", Side.SELL, D(10)), minute=1)
    events = b.match(at(2, bar_at(2, 100, 101, 99, 100)))
    assert [e.reason for e in events if isinstance(e, Order) and e.parent_id] == [
        "the position was closed by another order"] * 2
    assert b.working_orders == []
    # A later position of the same strategy is not closed by the old legs.
    submit(b, OrderRequest("AAA", Side.BUY, D(10)), minute=2)
    b.match(at(3, bar_at(3, 100, 101, 99, 100)))
    assert fills(b.match(at(4, bar_at(4, 100, 120, 90, 100)))) == []
    assert b.portfolio.quantity("s", "AAA") == D(10)


def test_legs_shrink_when_part_of_the_position_is_sold_otherwise():
    b = broker()
    bracket(b)
    submit(b, OrderRequest("AAA", Side.SELL, D(4)), minute=1)
    b.match(at(2, bar_at(2, 100, 101, 99, 100)))
    assert [(o.quantity, o.reason) for o in b.working_orders] == [
        (D(6), "reduced to 6: the position is smaller now")] * 2


def test_a_bar_without_volume_keeps_the_legs_working():
    b = broker(participation=D("0.1"))
    bracket(b)  # the entry bar has volume 1000: 100 may fill, 10 do
    events = b.match(at(2, bar_at(2, 100, 120, 90, 100, volume=0)))
    assert fills(events) == [] and len(b.working_orders) == 2
    [fill] = fills(b.match(at(3, bar_at(3, 100, 101, 94, 95, volume=1000))))
    assert fill.price == D(95)


def test_a_day_order_made_on_the_last_bar_of_its_day_works_through_the_next_day():
    b = broker()
    b.submit("s", OrderRequest("AAA", Side.BUY, D(1), time_in_force=TimeInForce.DAY), datetime(2024, 1, 2, 23, 59, tzinfo=UTC))
    day = datetime(2024, 1, 3, tzinfo=UTC)
    [fill] = fills(b.match(MarketData(day, "1d", {"AAA": bar_at(0, 100, 101, 99, 100, start=day)})))
    assert fill.price == D(100)


def test_a_stop_entry_with_a_bracket_is_measured_from_its_stop():
    b = broker()
    b.portfolio.last_prices["AAA"] = D(100)
    order = submit(b, OrderRequest("AAA", Side.BUY, D(1), OrderType.STOP, stop_price=D(105),
                                   stop_loss=D(102), take_profit=D(115)))
    assert order.status is OrderStatus.ACCEPTED


def test_modify_checks_the_new_terms():
    b = broker()
    b.portfolio.last_prices["AAA"] = D(100)
    entry = submit(b, OrderRequest("AAA", Side.BUY, D(1), OrderType.LIMIT, limit_price=D(99), stop_loss=D(95)))
    assert b.modify("s", entry.id, T0, limit_price=D(90)) == ([], "stop_loss 95 must be below the entry price 90 of a long")
    stop = submit(b, OrderRequest("AAA", Side.BUY, D(1), OrderType.STOP, stop_price=D(110)))
    assert b.modify("s", stop.id, T0, limit_price=D(89)) == ([], "limit_price does not apply to a STOP order")


def test_covering_and_flipping_a_short_need_only_the_cash_of_the_new_long():
    b = broker(cash="1000", allow_short=True, margin="0.5")
    b.portfolio.last_prices["AAA"] = D(100)
    submit(b, OrderRequest("AAA", Side.SELL, D(20)))
    b.match(at(1, bar_at(1, 100, 101, 99, 100)))
    # Cash 3000 holds 150 % of the 2000 short. Buying 25 covers 20 (which frees 1000 of margin)
    # and opens a long of 5 (500): allowed.
    flip = submit(b, OrderRequest("AAA", Side.BUY, D(25)), minute=1)
    assert flip.status is OrderStatus.ACCEPTED, flip.reason
    b.match(at(2, bar_at(2, 100, 101, 99, 100)))
    assert b.portfolio.quantity("s", "AAA") == D(5) and b.portfolio.cash == D(500)


def test_a_short_bracket_mirrors_a_long_one():
    b = broker(allow_short=True)
    b.portfolio.last_prices["AAA"] = D(100)
    submit(b, OrderRequest("AAA", Side.SELL, D(10), stop_loss=D(105), take_profit=D(90)))
    b.match(at(1, bar_at(1, 100, 101, 99, 100)))
    events = b.match(at(2, bar_at(2, 100, 106, 99, 104)))
    assert [(f.side, f.price) for f in fills(events)] == [(Side.BUY, D(105))]


# -- cancel and modify ---------------------------------------------------------------------------

def test_cancel_and_modify_a_working_order():
    b = broker()
    order = submit(b, OrderRequest("AAA", Side.BUY, D(10), OrderType.LIMIT, limit_price=D(90)))
    [changed], refusal = b.modify("s", order.id, T0, limit_price=D(95), quantity=D(12))
    assert refusal == "" and changed.id == order.id and changed.limit_price == D(95) and changed.quantity == D(12)
    assert changed.reason == "replaced: quantity 10 -> 12, limit_price 90 -> 95"
    assert b.modify("other", order.id, T0, limit_price=D(1)) == ([], f"order {order.id} is not a working order of this strategy")
    [cancelled], refusal = b.cancel("s", order.id, T0, "cancelled by the strategy")
    assert cancelled.status is OrderStatus.CANCELLED and refusal == ""
    assert b.cancel("s", order.id, T0, "again") == ([], f"order {order.id} is not a working order of this strategy")


# -- fees, cash, margin, limits ------------------------------------------------------------------

def test_commission_has_a_maximum_share_of_notional_and_per_symbol_overrides():
    fees = FeeSchedule(
        CommissionModel(per_order=D(5), maximum_percent=D("0.5")),
        {"BBB": CommissionModel(percent=D("0.2"))},
    )
    b = broker(fees=fees)
    submit(b, OrderRequest("AAA", Side.BUY, D(1)))
    submit(b, OrderRequest("BBB", Side.BUY, D(10)))
    events = b.match(at(1, bar_at(1, 100, 101, 99, 100), bar_at(1, 50, 51, 49, 50, symbol="BBB")))
    assert [(f.symbol, f.commission) for f in fills(events)] == [("AAA", D("0.500")), ("BBB", D("1.000"))]


def test_allocated_strategies_trade_from_their_own_cash():
    b = broker(cash="10000", allocations={"a": D(2000)})
    b.portfolio.last_prices["AAA"] = D(100)
    assert submit(b, OrderRequest("AAA", Side.BUY, D(30)), strategy="a").reason.startswith("insufficient cash: needs about 3000.00, available 2000.00")
    assert submit(b, OrderRequest("AAA", Side.BUY, D(30)), strategy="b").status is OrderStatus.ACCEPTED
    b.match(at(1, bar_at(1, 100, 101, 99, 100)))
    assert (b.portfolio.cash_of("a"), b.portfolio.cash_of("b"), b.portfolio.cash) == (D(2000), D(5000), D(7000))


def test_short_sale_needs_margin_and_credits_the_proceeds():
    b = broker(cash="1000", allow_short=True, margin="0.5")
    b.portfolio.last_prices["AAA"] = D(100)
    assert submit(b, OrderRequest("AAA", Side.SELL, D(21))).reason == "insufficient margin: a short of 21 needs 1050.00, available 1000.00"
    assert submit(b, OrderRequest("AAA", Side.SELL, D(20))).status is OrderStatus.ACCEPTED
    b.match(at(1, bar_at(1, 100, 101, 99, 100)))
    assert b.portfolio.cash == D(3000) and b.portfolio.quantity("s", "AAA") == D(-20)
    assert b.portfolio.equity() == D(1000)
    # 3000 cash - 150 % of the 2000 short = 0 free: nothing more may be bought or shorted,
    # whether the price is known at submission or only at the fill.
    assert submit(b, OrderRequest("BBB", Side.BUY, D(1))).status is OrderStatus.ACCEPTED  # no price yet
    step = at(2, bar_at(2, 100, 101, 99, 100), bar_at(2, 50, 51, 49, 50, symbol="BBB"))
    events = b.match(step)
    b.portfolio.mark(step)
    assert [e.reason for e in events if isinstance(e, Order)] == ["insufficient cash at fill: needs 50.00, has 0.00"]
    assert submit(b, OrderRequest("BBB", Side.BUY, D(1))).reason == "insufficient cash: needs about 50.00, available 0.00"
    assert submit(b, OrderRequest("AAA", Side.BUY, D(20))).status is OrderStatus.ACCEPTED  # covering is allowed


def test_position_limit_counts_working_orders():
    b = broker(max_position=D(10))
    b.portfolio.last_prices["AAA"] = D(10)
    assert submit(b, OrderRequest("AAA", Side.BUY, D(6))).status is OrderStatus.ACCEPTED
    refused = submit(b, OrderRequest("AAA", Side.BUY, D(5)))
    assert refused.reason == "position limit: the position would reach 11, above broker.max_position 10"


# -- through a strategy --------------------------------------------------------------------------

from runner.bootstrap import StrategySetup, assemble  # noqa: E402
from runner.storage import queries  # noqa: E402
from strategies.base import StrategyInterface  # noqa: E402
from tests.helpers import ListFeed  # noqa: E402


class Scripted(StrategyInterface):
    """Emits the signals and requests a test scripts for each call, and notes what it is told."""

    script: dict = {}

    def on_start(self):
        self.calls = 0
        self.told = []

    def on_tick(self, market_data):
        action = self.script.get(self.calls)
        self.calls += 1
        return action(self) if action else None

    def on_fill(self, fill):
        self.told.append(("fill", fill.order_id, fill.price))

    def on_order_rejected(self, order):
        self.told.append(("rejected", order.id, order.reason))


def run_script(tmp_path, script, closes, cash="100000"):
    steps = [[bar_at(i, c, D(c) + 1, D(c) - 1, c)] for i, c in enumerate(closes)]
    Scripted.script = script
    b = broker(cash=cash)
    runner = assemble(
        feed=ListFeed(steps), broker=b, strategies=[StrategySetup("s", Scripted)],
        database=f"sqlite:///{tmp_path / 'o.db'}",
    )
    summary = runner.run()
    return runner, summary, runner.loop.hosts[0].strategy


def test_a_strategy_places_a_bracket_with_a_dict_and_is_told_of_its_fills(tmp_path):
    script = {0: lambda s: [{"symbol": "AAA", "action": "buy", "quantity": 10, "stop_loss": 95, "take_profit": 110}]}
    runner, summary, strategy = run_script(tmp_path, script, [100, 100, 104, 111])
    # Entry at the open of bar 1 (100); bar 3 opens at 111, above the take-profit of 110, so the
    # limit sell fills at that better open.
    assert [t[:3] for t in strategy.told] == [("fill", 1, D(100)), ("fill", 3, D(111))]
    orders = {o.order_id: o for o in queries.orders(runner.recorder.engine, runner.run_id)}
    assert orders[2].status == "CANCELLED" and orders[2].reason == "OCO: order 3 filled"
    assert (orders[2].parent_id, orders[2].sibling_id, orders[3].parent_id) == (1, 3, 1)
    assert summary.fills == 2


def test_a_strategy_cancels_and_modifies_orders_through_its_context(tmp_path):
    def place(s):
        return [{"symbol": "AAA", "action": "BUY", "quantity": 5, "order_type": "limit", "limit_price": 90},
                {"symbol": "AAA", "action": "BUY", "quantity": 5, "order_type": "limit", "limit_price": 80}]

    def change(s):
        first, second = s.context.orders()
        s.context.modify(first.id, limit_price=100)
        s.context.cancel(second.id)
        s.context.cancel(99)

    runner, summary, strategy = run_script(tmp_path, {0: place, 1: change}, [100, 100, 100, 100])
    orders = {o.order_id: o for o in queries.orders(runner.recorder.engine, runner.run_id)}
    assert orders[1].status == "FILLED" and orders[1].average_price == D(100)
    assert orders[2].status == "CANCELLED" and orders[2].reason == "cancelled by the strategy"
    refused = [s for s in queries.signals(runner.recorder.engine, runner.run_id) if not s.accepted]
    assert [r.rejection for r in refused] == ["cancel refused: order 99 is not a working order of this strategy"]
    assert summary.strategies[0].rejected == 1


def test_a_rejected_order_is_reported_to_the_strategy(tmp_path):
    script = {1: lambda s: [{"symbol": "AAA", "action": "BUY", "quantity": 5}]}
    runner, summary, strategy = run_script(tmp_path, script, [100, 100, 100], cash="100")
    reason = "insufficient cash: needs about 500.00, available 100.00"
    assert strategy.told == [("rejected", 1, reason)]
    [event] = [e for e in queries.order_events(runner.recorder.engine, runner.run_id) if e.status == "REJECTED"]
    assert event.reason == reason


def test_the_standard_validator_refuses_a_signal_before_it_becomes_an_order(tmp_path):
    script = {1: lambda s: [
        {"symbol": "AAA", "action": "BUY", "quantity": 5, "order_type": "STOP"},
        {"symbol": "AAA", "action": "BUY", "quantity": 5, "stop_loss": 101},
    ]}
    runner, summary, strategy = run_script(tmp_path, script, [100, 100, 100])
    signals = queries.signals(runner.recorder.engine, runner.run_id)
    assert [s.rejection for s in signals] == [
        "stop_price is required for a STOP order",
        "stop_loss 101 must be below the entry price 100 of a long",
    ]
    assert queries.orders(runner.recorder.engine, runner.run_id) == [] and summary.rejections == 2


def test_an_unknown_time_in_force_is_a_malformed_signal(tmp_path):
    script = {0: lambda s: [{"symbol": "AAA", "action": "BUY", "time_in_force": "FOK"}]}
    runner, summary, strategy = run_script(tmp_path, script, [100, 100])
    [signal] = queries.signals(runner.recorder.engine, runner.run_id)
    assert signal.rejection == "malformed signal: time_in_force must be one of GTC, DAY, IOC, got 'FOK'"
