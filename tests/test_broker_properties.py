"""Property tests of the paper broker's accounting over random order streams and random bars.

A scenario is a broker configuration plus a sequence of steps. Before each step's match, two
strategies submit random orders (market / limit / stop / stop-limit, buy / sell, GTC / DAY / IOC,
some with bracket legs) and cancel random working orders; then the step's bars (a random subset
of the symbols, consistent OHLC, Decimal prices with 2 places) are matched and marked, as the
loop does. `simulate` records everything the broker returned; each test checks one family of
invariants on that record. Two small fixed cases the properties found come after them, and an
end-to-end run checks that the database's fills reproduce its positions and cash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from runner import audit
from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.domain import (
    Bar, Fill, MarketData, Order, OrderRequest, OrderStatus, OrderType, Position, Side, TimeInForce,
)
from runner.portfolio import Portfolio
from runner.storage import queries
from strategies.base import Action, Signal, StrategyInterface, StrategyParams

SYMBOLS = ("AAA", "BBB", "CCC")
STRATEGIES = ("a", "b")
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
GAPS = (timedelta(minutes=1), timedelta(minutes=1), timedelta(minutes=47), timedelta(hours=9), timedelta(days=1))
CENT = Decimal("0.01")
TOLERANCE = Decimal("1e-9")

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- scenarios -----------------------------------------------------------------------------------
#
# Hypothesis draws the broker's configuration and one seed per step; each step's bars and
# actions come from a `random.Random` seeded with it. Drawing every price and order field
# through hypothesis costs ~40 ms an example against ~1 ms to simulate it; with a seed per step
# the search runs many more examples, and shrinking can still drop whole steps and simplify the
# configuration.


@dataclass(frozen=True)
class Submit:
    strategy: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce
    limit_bps: int  # limit price: this many basis points from the last close
    stop_bps: int  # stop price: likewise
    stop_loss_bps: int | None  # bracket legs: this far on the losing / winning side of the entry
    take_profit_bps: int | None
    sizing: str  # "fixed"; "close" / "sliver": all / 0.01 of an opposite position; "cash": see below
    cash_share: Decimal  # with sizing "cash": the quantity this share of the pool buys at the entry


@dataclass(frozen=True)
class Cancel:
    strategy: str
    pick: int  # which of its working orders (modulo their number)


@dataclass(frozen=True)
class Modify:
    strategy: str
    pick: int  # which of its working entry orders (modulo their number)
    quantity_bps: int  # the new quantity, from the remaining one: this far away, at least 0.01 more
    price_bps: int  # new limit / stop price: this far from the old one


@dataclass(frozen=True)
class Move:
    """One symbol's bar, in basis points from the previous close."""

    open_bps: int
    close_bps: int
    up_bps: int
    down_bps: int
    volume: Decimal


@dataclass(frozen=True)
class StepSpec:
    gap: timedelta
    moves: dict[str, Move]
    with_stale_bars: bool  # also pass the latest earlier bars of the other symbols, not fresh
    actions: list[Submit | Cancel | Modify]  # done before this step's match


@dataclass(frozen=True)
class Scenario:
    allow_short: bool
    participation: Decimal | None
    slippage_bps: Decimal
    limit_fill: str
    fees: dict[str, Decimal]
    cash: Decimal
    allocation: Decimal | None  # strategy "a"'s own pool, None: both share one pool
    starts: dict[str, int]  # starting price of each symbol in cents
    step_seeds: list[int]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.starts)

    def steps(self) -> list[StepSpec]:
        return [step_spec(random.Random(seed), self.symbols) for seed in self.step_seeds]


QUANTITIES = [Decimal(q) for q in ("0.5", "0.001", "1.25", "7.5", "0.01", "3", "1")]


def quantity(rng: random.Random) -> Decimal:
    roll = rng.random()
    if roll < 0.45:
        return Decimal(rng.randint(1, 40))
    if roll < 0.8:
        return Decimal(rng.randint(1, 2500)).scaleb(-2)
    return rng.choice(QUANTITIES)


def volume(rng: random.Random) -> Decimal:
    roll = rng.random()
    if roll < 0.5:
        return Decimal(rng.randint(1, 5000))
    if roll < 0.8:
        return Decimal(rng.randint(1, 6))
    return Decimal(rng.randint(1, 500)).scaleb(-1)


def submit(rng: random.Random, symbols: tuple[str, ...]) -> Submit:
    bracket = rng.choice((0, 0, 1, 2, 3))  # 0: none, 1: stop-loss, 2: take-profit, 3: both
    return Submit(
        strategy=rng.choice(("a", "a", "b")),
        symbol=rng.choice(symbols[:1] * len(symbols) + symbols),
        side=rng.choice((Side.BUY, Side.BUY, Side.SELL)),
        order_type=rng.choice(list(OrderType)),
        quantity=quantity(rng),
        time_in_force=rng.choice(list(TimeInForce)),
        limit_bps=rng.randint(-300, 300),
        stop_bps=rng.randint(-300, 300),
        stop_loss_bps=rng.randint(10, 400) if bracket in (1, 3) else None,
        take_profit_bps=rng.randint(10, 400) if bracket in (2, 3) else None,
        sizing=rng.choice(("fixed", "fixed", "close", "sliver", "cash", "cash")),
        cash_share=rng.choice((Decimal("0.9"), Decimal("0.98"), Decimal("0.995"), Decimal(1))),
    )


def step_spec(rng: random.Random, symbols: tuple[str, ...]) -> StepSpec:
    fresh = [symbol for symbol in symbols if rng.random() < 0.75]
    moves = {
        symbol: Move(rng.randint(-250, 250), rng.randint(-300, 300), rng.randint(0, 250), rng.randint(0, 250), volume(rng))
        for symbol in fresh
    }
    actions: list[Submit | Cancel | Modify] = []
    for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
        roll = rng.random()
        if roll < 0.15:
            actions.append(Cancel(rng.choice(STRATEGIES), rng.randint(0, 20)))
        elif roll < 0.25:
            actions.append(Modify(rng.choice(STRATEGIES), rng.randint(0, 20), rng.randint(-5000, 5000), rng.randint(-200, 200)))
        else:
            actions.append(submit(rng, symbols))
    return StepSpec(rng.choice(GAPS), moves, rng.random() < 0.5, actions)


@st.composite
def scenarios(draw, allow_short: bool | None = None, participation: bool | None = None,
              allocation: bool | None = None) -> Scenario:
    symbols = SYMBOLS[: draw(st.sampled_from([1, 1, 2, 3]))]
    if allow_short is None:
        allow_short = draw(st.booleans())
    if participation is None:
        participation = draw(st.booleans())
    if allocation is None:
        allocation = draw(st.booleans())
    cash = draw(st.sampled_from([Decimal(60), Decimal(800), Decimal(5000), Decimal(5000), Decimal(100_000)]))
    return Scenario(
        allow_short=allow_short,
        participation=draw(st.sampled_from([Decimal("0.1"), Decimal("0.25"), Decimal("0.5"), Decimal(1)])) if participation else None,
        slippage_bps=draw(st.sampled_from([Decimal(0), Decimal(0), Decimal(7), Decimal(40)])),
        limit_fill=draw(st.sampled_from(["touch", "touch", "through"])),
        fees={
            "percent": draw(st.sampled_from([Decimal(0), Decimal("0.1"), Decimal("0.25")])),
            "per_order": draw(st.sampled_from([Decimal(0), Decimal(1), Decimal("0.35")])),
            "minimum": draw(st.sampled_from([Decimal(0), Decimal(1), Decimal("2.5")])),
            "per_share": draw(st.sampled_from([Decimal(0), Decimal(0), Decimal("0.005")])),
        },
        cash=cash,
        allocation=(cash * draw(st.sampled_from([Decimal("0.25"), Decimal("0.5"), Decimal(1)]))) if allocation else None,
        starts={symbol: draw(st.integers(50, 20_000)) for symbol in symbols},
        step_seeds=draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=30)),
    )


# -- the simulation ------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The books right after a step's match and mark."""

    cash: Decimal
    pool_cash: dict[str, Decimal]
    equity: Decimal
    positions: list[Position]
    fill_count: int  # fills returned up to and including this step
    closes: dict[str, Decimal]  # the latest close of every symbol that has had a bar


@dataclass
class Trace:
    scenario: Scenario
    broker: PaperBroker
    markets: list[MarketData] = field(default_factory=list)
    fills: list[tuple[int, Fill]] = field(default_factory=list)  # (step, fill)
    states: dict[int, list[Order]] = field(default_factory=dict)  # order id -> every state returned
    eligible: dict[int, int] = field(default_factory=dict)  # order id -> first step it may fill on
    snapshots: list[Snapshot] = field(default_factory=list)

    def record(self, events, eligible: int, step: int | None = None) -> None:
        for event in events:
            if isinstance(event, Fill):
                assert step is not None, f"a fill came outside a match: {event}"
                self.fills.append((step, event))
            else:
                self.states.setdefault(event.id, []).append(event)
                self.eligible.setdefault(event.id, eligible)

    def last(self, order_id: int) -> Order:
        return self.states[order_id][-1]

    def fills_of(self, order_id: int) -> list[Fill]:
        return [fill for _, fill in self.fills if fill.order_id == order_id]


def new_portfolio(scenario: Scenario) -> Portfolio:
    allocations = {"a": scenario.allocation} if scenario.allocation is not None else None
    return Portfolio(scenario.cash, allocations)


def cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def moved(price_cents: int, bps: int) -> int:
    return max(1, price_cents + round(price_cents * bps / 10_000))


def make_bar(symbol: str, stamp: datetime, previous_close: int, move: Move) -> Bar:
    open_ = moved(previous_close, move.open_bps)
    close = moved(open_, move.close_bps)
    high = moved(max(open_, close), move.up_bps)
    low = moved(min(open_, close), -move.down_bps)
    return Bar(symbol, stamp, cents(open_), cents(high), cents(low), cents(close), move.volume)


def affordable(budget: Decimal, price: Decimal, fees: CommissionModel) -> Decimal:
    """The largest quantity (in hundredths) whose cost and commission at `price` fit `budget`;
    at least 0.01."""
    by_rate = (budget - fees.per_order) / (price * (1 + fees.rate) + fees.per_share)
    by_minimum = (budget - fees.minimum) / price
    quantity = max(min(by_rate, by_minimum).quantize(CENT, rounding=ROUND_FLOOR), CENT)
    while quantity > CENT and quantity * price + fees.commission(quantity, price) > budget:
        quantity -= CENT
    return quantity


def request_of(action: Submit, close: int, held: Decimal, cash: Decimal, fees: CommissionModel) -> OrderRequest:
    """The order an action asks for: prices set from the symbol's last close (in cents), bracket
    legs on the right sides of the entry, the quantity as its sizing says."""
    side, quantity = action.side, action.quantity
    closing = action.sizing in ("close", "sliver") and held != 0
    if closing:  # trade against the position held: all of it, or a sliver
        side = Side.SELL if held > 0 else Side.BUY
        quantity = abs(held) if action.sizing == "close" else min(abs(held), CENT)
    limit = stop = stop_loss = take_profit = None
    entry = close
    if action.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        limit = entry = moved(close, action.limit_bps)
    if action.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        stop = moved(close, action.stop_bps)
        entry = stop if action.order_type is OrderType.STOP else entry
    losing, winning = (-1, 1) if side is Side.BUY else (1, -1)
    if action.stop_loss_bps is not None and not closing:
        stop_loss = cents(moved(entry, losing * action.stop_loss_bps))
    if action.take_profit_bps is not None and not closing:
        take_profit = cents(moved(entry, winning * action.take_profit_bps))
    if action.sizing == "cash" and cash > 0:
        quantity = affordable(cash * action.cash_share, cents(entry), fees)
    return OrderRequest(
        action.symbol, side, quantity, action.order_type,
        None if limit is None else cents(limit), None if stop is None else cents(stop),
        action.time_in_force, stop_loss, take_profit, reason="random",
    )


def changes_of(action: Modify, order: Order) -> dict[str, Decimal]:
    """New terms for a working entry order: its quantity, or one of the prices it has."""
    def shifted(price: Decimal) -> Decimal:
        return cents(moved(int(price * 100), action.price_bps))

    if order.limit_price is not None and action.price_bps % 3 == 0:
        return {"limit_price": shifted(order.limit_price)}
    if order.stop_price is not None and action.price_bps % 3 == 1:
        return {"stop_price": shifted(order.stop_price)}
    more = (order.remaining * (10_000 + action.quantity_bps) / 10_000).quantize(CENT, rounding=ROUND_FLOOR)
    return {"quantity": order.filled_quantity + max(more, CENT)}


def simulate(scenario: Scenario) -> Trace:
    portfolio = new_portfolio(scenario)
    broker = PaperBroker(
        portfolio,
        BarFillModel(scenario.slippage_bps, scenario.limit_fill, scenario.participation),
        FeeSchedule(CommissionModel(**scenario.fees)),
        scenario.symbols, allow_short=scenario.allow_short,
    )
    trace = Trace(scenario, broker)
    closes = dict(scenario.starts)  # cents
    latest: dict[str, Bar] = {}
    now = T0 - timedelta(minutes=1)
    for index, spec in enumerate(scenario.steps()):
        for action in spec.actions:
            if isinstance(action, Submit):
                held = portfolio.quantity(action.strategy, action.symbol)
                request = request_of(
                    action, closes[action.symbol], held, portfolio.cash_of(action.strategy), broker.fees.default,
                )
                states = broker.submit(action.strategy, request, now)
                assert [s.status for s in states][0] is OrderStatus.NEW
                trace.record(states, eligible=index)
            elif isinstance(action, Cancel):
                working = broker.orders_of(action.strategy)
                if working:
                    target = working[action.pick % len(working)]
                    states, refusal = broker.cancel(action.strategy, target.id, now, "random cancel")
                    assert refusal == "", refusal
                    trace.record(states, eligible=index)
            else:
                entries = [order for order in broker.orders_of(action.strategy) if order.parent_id is None]
                if entries:
                    target = entries[action.pick % len(entries)]
                    states, refusal = broker.modify(action.strategy, target.id, now, **changes_of(action, target))
                    assert refusal or [s.id for s in states] == [target.id]
                    trace.record(states, eligible=index)
        now += spec.gap
        fresh = {}
        for symbol, move in spec.moves.items():
            fresh[symbol] = latest[symbol] = make_bar(symbol, now, closes[symbol], move)
            closes[symbol] = int(fresh[symbol].close * 100)
        bars = {**latest, **fresh} if spec.with_stale_bars else fresh
        market = MarketData(now, "1m", bars, tuple(fresh))
        trace.markets.append(market)
        trace.record(broker.match(market), eligible=index + 1, step=index)
        portfolio.mark(market)
        trace.snapshots.append(Snapshot(
            portfolio.cash, dict(portfolio.pool_cash), portfolio.equity(), portfolio.positions(),
            len(trace.fills), {symbol: bar.close for symbol, bar in latest.items()},
        ))
    return trace


# -- helpers for the checks ----------------------------------------------------------------------


def close_enough(a: Decimal, b: Decimal, scale: Decimal) -> bool:
    return abs(a - b) <= TOLERANCE * max(abs(a), abs(b), abs(scale), Decimal(1))


def book_of(position: Position) -> tuple:
    return position.quantity, position.average_cost, position.realized_pnl, position.fees


def books(portfolio_positions: list[Position]) -> dict[tuple[str, str], tuple]:
    return {(p.strategy, p.symbol): book_of(p) for p in portfolio_positions}


def replay(scenario: Scenario, fills: list[Fill]) -> Portfolio:
    fresh = new_portfolio(scenario)
    for fill in fills:
        fresh.apply_fill(fill)
    return fresh


# -- the properties ------------------------------------------------------------------------------


@PROPERTY
@given(scenarios())
def test_equity_is_cash_plus_marked_positions_and_equals_the_sum_of_net_pnl(scenario):
    trace = simulate(scenario)
    start = scenario.cash
    for step, snap in enumerate(trace.snapshots):
        marked = sum((p.quantity * snap.closes[p.symbol] for p in snap.positions), Decimal(0))
        assert close_enough(snap.equity, snap.cash + marked, start), (step, snap.equity, snap.cash, marked)
        net = sum((p.realized_pnl + p.unrealized_pnl - p.fees for p in snap.positions), Decimal(0))
        assert close_enough(snap.equity - start, net, start), (step, snap.equity - start, net)
        assert sum(snap.pool_cash.values(), Decimal(0)) == snap.cash, (step, snap.pool_cash, snap.cash)


@PROPERTY
@given(scenarios())
def test_replaying_the_fills_in_a_fresh_portfolio_reproduces_the_books_exactly(scenario):
    trace = simulate(scenario)
    shadow = new_portfolio(scenario)
    applied = 0
    for step, snap in enumerate(trace.snapshots):
        for _, fill in trace.fills[applied:snap.fill_count]:
            shadow.apply_fill(fill)
        applied = snap.fill_count
        assert books(shadow.positions()) == books(snap.positions), step
        assert shadow.cash == snap.cash, step
        assert shadow.pool_cash == snap.pool_cash, step
    replayed = replay(scenario, [fill for _, fill in trace.fills])
    portfolio = trace.broker.portfolio
    assert books(replayed.positions()) == books(portfolio.positions())
    assert replayed.cash == portfolio.cash
    assert replayed.pool_cash == portfolio.pool_cash


@PROPERTY
@given(scenarios(allow_short=False))
def test_without_shorting_no_cash_pool_goes_negative(scenario):
    trace = simulate(scenario)
    for step, snap in enumerate(trace.snapshots):
        assert snap.cash >= 0, (step, snap.cash, trace.fills[:snap.fill_count])
        for pool, cash in snap.pool_cash.items():
            assert cash >= 0, (step, pool or "shared", cash, trace.fills[:snap.fill_count])


@PROPERTY
@given(scenarios(allow_short=False))
def test_without_shorting_no_position_ever_goes_short(scenario):
    """"allow_short: when False, a sell larger than the strategy's position is rejected"."""
    trace = simulate(scenario)
    for step, snap in enumerate(trace.snapshots):
        for position in snap.positions:
            assert position.quantity >= 0, (step, position, trace.fills[:snap.fill_count])


@PROPERTY
@given(scenarios())
def test_every_fill_is_at_a_price_inside_its_bar_and_at_its_step(scenario):
    trace = simulate(scenario)
    for step, fill in trace.fills:
        market = trace.markets[step]
        assert fill.timestamp == market.timestamp
        assert market.is_fresh(fill.symbol), f"{fill} filled on a stale bar"
        bar = market[fill.symbol]
        assert bar.low <= fill.price <= bar.high, (fill, bar)
        assert fill.quantity > 0 and fill.commission >= 0, fill


@PROPERTY
@given(scenarios())
def test_no_order_fills_on_the_step_it_was_submitted_in(scenario):
    trace = simulate(scenario)
    for step, fill in trace.fills:
        assert fill.order_id in trace.eligible, f"fill of an order never returned: {fill}"
        assert trace.eligible[fill.order_id] <= step, (
            f"order {fill.order_id} was placed after step {trace.eligible[fill.order_id] - 1} "
            f"and filled on step {step}"
        )


@PROPERTY
@given(scenarios())
def test_an_order_never_fills_more_than_its_quantity_and_its_fills_add_up(scenario):
    trace = simulate(scenario)
    working = {order.id: order for order in trace.broker.working_orders}
    for order_id, states in trace.states.items():
        for state in states:
            assert Decimal(0) <= state.filled_quantity <= state.quantity, state
        current = working.get(order_id, states[-1])
        filled = sum((fill.quantity for fill in trace.fills_of(order_id)), Decimal(0))
        assert filled == current.filled_quantity, (current, trace.fills_of(order_id))
        assert current.filled_quantity <= current.quantity, current
        for fill in trace.fills_of(order_id):
            assert (fill.strategy, fill.symbol, fill.side) == (current.strategy, current.symbol, current.side)


@PROPERTY
@given(scenarios(participation=True))
def test_no_fill_exceeds_the_participation_share_of_its_bar_volume(scenario):
    trace = simulate(scenario)
    share = scenario.participation
    for step, fill in trace.fills:
        bar = trace.markets[step][fill.symbol]
        assert fill.quantity <= share * bar.volume, (fill, bar.volume, share)


@PROPERTY
@given(scenarios())
def test_bracket_legs_close_at_most_what_their_entry_filled_and_cancel_each_other(scenario):
    trace = simulate(scenario)
    legs: dict[int, list[int]] = {}
    for order_id, states in trace.states.items():
        if states[0].parent_id is not None:
            legs.setdefault(states[0].parent_id, []).append(order_id)
    working = {order.id for order in trace.broker.working_orders}
    for parent_id, leg_ids in legs.items():
        parent = trace.last(parent_id)
        assert not parent.is_working and parent_id not in working, "legs start once their entry stopped working"
        assert 1 <= len(leg_ids) <= 2
        leg_fills = sum((f.quantity for leg in leg_ids for f in trace.fills_of(leg)), Decimal(0))
        assert leg_fills <= parent.filled_quantity, (parent, [trace.states[leg] for leg in leg_ids])
        for leg_id in leg_ids:
            first = trace.states[leg_id][0]
            assert first.quantity == parent.filled_quantity
            if len(leg_ids) == 2:
                assert first.sibling_id in leg_ids and first.sibling_id != leg_id
        if len(leg_ids) == 2:
            for leg_id, other_id in (leg_ids, leg_ids[::-1]):
                if trace.last(leg_id).status is OrderStatus.FILLED:
                    other = trace.last(other_id)
                    assert other_id not in working, (trace.last(leg_id), other)
                    assert other.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED), (trace.last(leg_id), other)


@PROPERTY
@given(scenarios(allocation=True, allow_short=False))
def test_strategies_with_an_allocation_trade_from_their_own_pool(scenario):
    trace = simulate(scenario)
    portfolio = trace.broker.portfolio
    spent = {"a": Decimal(0), "b": Decimal(0)}
    for _, fill in trace.fills:
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        spent[fill.strategy] += signed * fill.price + fill.commission
    assert portfolio.pool_cash["a"] == scenario.allocation - spent["a"]
    assert portfolio.pool_cash[""] == scenario.cash - scenario.allocation - spent["b"]


# -- cases the properties found (fixed in 5de5a16) -------------------------------------------------


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def one_bar(minute: int, open_, high=None, low=None, close=None) -> MarketData:
    open_ = Decimal(str(open_))
    high, low, close = (Decimal(str(v)) if v is not None else open_ for v in (high, low, close))
    return MarketData(at(minute), "1m", {"AAA": Bar("AAA", at(minute), open_, high, low, close, Decimal(1000))})


def test_a_sell_whose_commission_exceeds_its_proceeds_cannot_overdraw_the_cash():
    broker = PaperBroker(
        Portfolio(Decimal(60)), BarFillModel(), FeeSchedule(CommissionModel(minimum=Decimal("2.5"))), ("AAA",),
    )
    broker.submit("s", OrderRequest("AAA", Side.BUY, Decimal(1)), at(0))
    broker.match(one_bar(1, 57))
    assert broker.portfolio.cash == Decimal("0.5")
    broker.submit("s", OrderRequest("AAA", Side.SELL, CENT), at(1))  # proceeds 0.57, commission 2.50
    events = broker.match(one_bar(2, 57))
    assert broker.portfolio.cash >= 0, events
    assert sum((e.commission - e.notional for e in events if isinstance(e, Fill)), Decimal(0)) <= Decimal("0.5")


def test_a_sell_beside_a_working_stop_loss_cannot_open_a_short_without_allow_short():
    broker = PaperBroker(Portfolio(Decimal(1000)), BarFillModel(), FeeSchedule(CommissionModel()), ("AAA",))
    broker.submit("s", OrderRequest("AAA", Side.BUY, Decimal(10), stop_loss=Decimal(9)), at(0))
    broker.match(one_bar(1, 10))  # the entry fills; its stop-loss leg works from the next bar
    sell = broker.submit("s", OrderRequest("AAA", Side.SELL, Decimal(10)), at(1))[-1]
    assert sell.status is OrderStatus.ACCEPTED, "legs are not counted as pending sells"
    events = broker.match(one_bar(2, "8.5", high="9.5", low=8))  # the stop triggers, the sell fills
    assert broker.portfolio.quantity("s", "AAA") >= 0, events
    sold = sum((e.quantity for e in events if isinstance(e, Fill) and e.side is Side.SELL), Decimal(0))
    assert sold == 10


# -- end to end through assemble and SQLite --------------------------------------------------------


class SeededFeed:
    """A hand-made two-symbol feed: seeded random walks, one symbol sometimes missing a bar."""

    interval, symbols, skipped_rows, live = "1m", ("AAA", "BBB"), 0, False

    def __init__(self, steps: int, seed: int):
        self.total_steps = steps
        self.seed = seed

    def __iter__(self):
        rng = random.Random(self.seed)
        closes = {"AAA": 5_000, "BBB": 1_200}
        for minute in range(self.total_steps):
            stamp = T0 + timedelta(minutes=minute) + timedelta(hours=20) * (minute // 60)
            bars = {}
            for symbol in self.symbols:
                if symbol == "BBB" and rng.random() < 0.2:
                    continue
                move = Move(rng.randint(-60, 60), rng.randint(-150, 150), rng.randint(0, 80),
                            rng.randint(0, 80), Decimal(rng.randint(1, 400)))
                bars[symbol] = make_bar(symbol, stamp, closes[symbol], move)
                closes[symbol] = int(bars[symbol].close * 100)
            yield MarketData(stamp, self.interval, bars)


class RandomTraderParams(StrategyParams):
    seed: int = Field(0)


class RandomTrader(StrategyInterface):
    """Random but seeded signals of every kind, random cancels, and a flattening at stop."""

    Params = RandomTraderParams

    def on_start(self) -> None:
        self.rng = random.Random(self.params.seed)

    def on_tick(self, market_data):
        rng, signals = self.rng, []
        for symbol in market_data.fresh:
            close = market_data[symbol].close
            held = self.context.position(symbol).quantity
            roll = rng.random()
            kind = rng.choice(list(OrderType))
            price = (close * Decimal(1 + rng.uniform(-0.02, 0.02))).quantize(CENT)
            stop = (close * Decimal(1 + rng.uniform(-0.02, 0.02))).quantize(CENT)
            quantity = Decimal(rng.choice(["1", "2.5", "10", "0.25", "4"]))
            extra = {
                "order_type": kind,
                "limit_price": price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
                "stop_price": stop if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
                "time_in_force": rng.choice(list(TimeInForce)),
            }
            if roll < 0.35:
                if rng.random() < 0.4:
                    extra["stop_loss"] = (close * Decimal("0.97")).quantize(CENT)
                    extra["take_profit"] = (close * Decimal("1.03")).quantize(CENT)
                signals.append(Signal(symbol, Action.BUY, quantity, **extra))
            elif roll < 0.55 and held > 0:
                signals.append(Signal(symbol, Action.SELL, min(held, quantity), **extra))
            elif roll < 0.62:
                signals.append(Signal(symbol, Action.SELL, quantity, **extra))  # a short
            elif roll < 0.7 and held != 0:
                signals.append(Signal(symbol, Action.CLOSE))
        working = self.context.orders()
        if working and rng.random() < 0.3:
            self.context.cancel(rng.choice(working).id)
        return signals

    def on_stop(self):
        return [Signal(p.symbol, Action.CLOSE) for p in self.context.positions() if p.quantity != 0 and self.rng.random() < 0.5]


def test_replaying_the_recorded_fills_reproduces_the_recorded_positions_and_cash(tmp_path):
    portfolio = Portfolio(Decimal(20_000), {"one": Decimal(6_000)})
    broker = PaperBroker(
        portfolio, BarFillModel(Decimal(5), max_volume_participation=Decimal("0.05")),
        FeeSchedule(CommissionModel(percent=Decimal("0.1"), per_order=Decimal(1), minimum=Decimal("1.5"))),
        SeededFeed.symbols, allow_short=True,
    )
    runner = assemble(
        feed=SeededFeed(400, seed=11), broker=broker,
        strategies=[
            StrategySetup("one", RandomTrader, {"seed": 1}),
            StrategySetup("two", RandomTrader, {"seed": 2}),
            StrategySetup("three", RandomTrader, {"seed": 3}, symbols=["BBB"]),
        ],
        database=f"sqlite:///{tmp_path / 'p.db'}",
    )
    summary = runner.run()
    assert summary.status == "completed", summary.error
    engine = runner.recorder.engine
    fills = queries.fills(engine, runner.run_id)
    assert len(fills) > 100, "the run trades enough to exercise the books"
    assert {f.side for f in fills} == {"BUY", "SELL"}

    fresh = audit.replay(fills, Decimal(20_000), {"one": Decimal(6_000)})
    recorded = {
        (row.strategy, row.symbol): (row.quantity, row.average_cost, row.realized_pnl, row.fees)
        for row in queries.positions(engine, runner.run_id)
    }
    assert recorded == books(fresh.positions())
    assert recorded == books(portfolio.positions())
    last = queries.equity(engine, runner.run_id)[-1]
    assert last.cash == fresh.cash == portfolio.cash
    assert last.equity == portfolio.equity() == summary.equity
    assert fresh.pool_cash == portfolio.pool_cash
    assert audit.audit_run(engine, runner.run_id, fees=broker.fees) == []
