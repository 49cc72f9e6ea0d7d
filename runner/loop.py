"""One step of the tick loop, readable as one method (`TickLoop.step`)."""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from runner.bars import CandleAggregator
from runner.clock import Clock
from runner.broker import Broker, BrokerEvent
from runner.config import PolicyConfig
from runner.domain import Action, Bar, Fill, MarketData, Order, OrderStatus, Side, Signal
from runner.events import EquitySnapshot, Heartbeat, SignalEvent, StepDone, StrategyFault, StrategyHealth, SymbolAdded
from runner.history import HistoryStore
from runner.host import StrategyHost
from runner.intervals import interval_seconds
from runner.policy import PolicyGate
from runner.portfolio import Portfolio
from runner.risk import Denied, RiskGate
from runner.signals import SignalError, coerce_signal
from runner.snapshot import RunSnapshot, StrategySnapshot

SNAPSHOT_EVERY_SECONDS = 0.1
HEARTBEAT_EVERY_SECONDS = 1.0  # the most often a heartbeat is recorded (one upserted row per run)
RECENT_ORDERS = 24  # order states kept for the live view (a few per order)
log = logging.getLogger(__name__)


AddSymbol = Callable[[], None]
"""Adds a prepared symbol to the feed (called in the loop thread, between steps)."""
SymbolSource = Callable[..., AddSymbol]
"""Prepares a new symbol for the feed: `source(symbol, **spec)` checks the spec and returns the
function that adds it. Raises ValueError for a bad spec."""


class Route(NamedTuple):
    """One strategy's subscription at one interval, resolved once (and again when symbols change)."""

    host: StrategyHost
    symbols: frozenset[str]
    ordered: tuple[str, ...]
    sees_all: bool  # it takes every symbol of the feed, so a full step needs no filtering


class Sink(Protocol):
    """Where the loop hands each step's records (the storage recorder, or a list in tests)."""

    def submit(self, records: list[object]) -> None: ...


class TickLoop:
    """Owns the books for one run and moves them forward one market step at a time.

    Args:
        broker: the paper broker (which owns the portfolio it fills into).
        risk: sizing and limits for signals.
        history: rolling bars shared by the strategies' contexts.
        sink: receives every record of every step.
        clock: paces how often the published snapshot is rebuilt and a heartbeat recorded.
        equity_every: record an equity snapshot every N steps.
        on_signal: optional callback with each `SignalEvent`, called in the loop thread.
        base_interval: the interval of the feed's bars.
        aggregators: builders of the derived intervals strategies run on.
        candle_grace_seconds: with a wall-clock time passed to `step`, a candle counts as
            closed this long after its end even if its last base bar never came.
        execution: "inline" (strategies called in this thread), "lockstep" (threaded hosts,
            each step waited for) or "free" (threaded hosts, never waited for; clock-driven).
        symbol_source: how the feed takes symbols added mid-run (None: it cannot).
        symbol_schedule: symbols to add after given steps: {step: [(symbol, spec), ...]}.
        policy: the policy gate (default: a policy that blocks and scales nothing).
    """

    def __init__(
        self, broker: Broker, risk: RiskGate, history: HistoryStore, sink: Sink,
        clock: Clock, equity_every: int = 1,
        on_signal: Callable[[SignalEvent], None] | None = None, base_interval: str = "",
        aggregators: Sequence[CandleAggregator] = (), candle_grace_seconds: float = 0.0,
        execution: str = "inline", symbol_source: SymbolSource | None = None,
        symbol_schedule: dict[int, list[tuple[str, dict]]] | None = None, policy: PolicyGate | None = None,
    ):
        self.broker = broker
        self.portfolio: Portfolio = broker.portfolio
        self.clock = clock
        self.hosts: list[StrategyHost] = []
        self._hosts_by_name: dict[str, StrategyHost] = {}
        self.risk = risk
        self.policy = policy or PolicyGate(PolicyConfig(), self.portfolio, history)
        self.history = history
        self.sink = sink
        self.equity_every = equity_every
        self.on_signal = on_signal
        self.base_interval = base_interval
        self.aggregators = list(aggregators)
        self.candle_grace_seconds = candle_grace_seconds
        self.execution = execution
        # Free-running strategies read the books from their own threads: they take this lock to
        # read, and the loop holds it through each step (inline and lockstep need none).
        self.books_lock = threading.Lock() if execution == "free" else None
        self.symbol_source = symbol_source
        self.symbol_schedule = symbol_schedule or {}
        self._symbol_requests: deque[tuple[str, AddSymbol]] = deque()  # from other threads
        self._between_steps: deque[Callable[[], None]] = deque()  # jobs from other threads
        self._retired: set[str] = set()  # strategies stopped during the run (see retire_host)
        self._routes: dict[str, list[Route]] = {}
        self._length = {
            interval: timedelta(seconds=interval_seconds(interval))
            for interval in [base_interval, *(a.interval for a in self.aggregators)] if interval
        }
        self._latest: dict[str, dict[str, Bar]] = {interval: {} for interval in self._length}
        self.steps = 0
        self.timestamp: datetime | None = None
        self.orders = self.fills = self.rejections = 0
        self.policy_blocks: dict[str, int] = {}  # rule -> signals it blocked
        self._records: list[object] = list(self.policy.starting_changes)
        self._snapshot = RunSnapshot.empty(self.portfolio.cash)
        self._recent_orders: deque[Order] = deque(maxlen=RECENT_ORDERS)
        self._snapshot_at = 0.0
        self._heartbeat_at = -HEARTBEAT_EVERY_SECONDS  # the first step records one

    def step(self, market: MarketData, now: datetime | None = None) -> None:
        """Apply policy changes, fill working orders on the new bars, mark, run the
        strategies, record the step.

        `now` is the wall-clock time of a clock-driven step over a live feed: candles whose
        end plus the grace has passed close then, whether or not their last bar came.
        Free-running strategies read the books between steps, never during one (`books_lock`).
        """
        if self.books_lock is None:
            self._step(market, now)
        else:
            with self.books_lock:
                self._step(market, now)
        while self._between_steps:  # outside the books lock: a job may wait for a strategy's call
            self._between_steps.popleft()()

    def _step(self, market: MarketData, now: datetime | None) -> None:
        self.steps += 1
        self.timestamp = market.timestamp
        self._records.extend(self.policy.begin_step(self.steps, market.timestamp))
        self._publish(self.broker.match(market))
        self.portfolio.mark(market)
        self.policy.check_daily_losses()
        if self.execution == "free":
            self._collect()
        offers: dict[StrategyHost, list[MarketData]] = {}
        for interval, bars in self._closed_candles(market, now):
            self._dispatch(interval, bars, market, offers)
        for host, views in offers.items():
            host.offer(views, self.steps)  # all of the step at once; its signals come in a later step
        if self.steps % self.equity_every == 0:
            self._record_equity()
        if self._symbol_requests or self.steps in self.symbol_schedule:
            self._add_requested_symbols()
        self._records.append(StepDone(self.steps, market.timestamp))  # where a resume continues
        self._flush()

    def _closed_candles(self, market: MarketData, now: datetime | None) -> list[tuple[str, list[Bar]]]:
        """The step's base bars and every derived candle that closed with them, grouped by
        candle and ordered by when each candle ended (a candle that includes the base bar
        comes after it)."""
        base_bars = list(market.values())
        if not self.aggregators:
            return [(self.base_interval, base_bars)] if base_bars else []
        rounds = [(market.timestamp, 0, self.base_interval, base_bars)] if base_bars else []
        for aggregator in self.aggregators:
            closed = aggregator.update(market.timestamp, base_bars)
            if now is not None:
                closed += aggregator.close_due(now, self.candle_grace_seconds)
            if not closed:
                continue
            candles: dict[datetime, list[Bar]] = {}
            for candle in closed:
                candles.setdefault(candle.timestamp, []).append(candle)
            rounds += [(start, aggregator.size, aggregator.interval, bars) for start, bars in candles.items()]
        if len(rounds) > 1:
            length = self._length
            rounds.sort(key=lambda r: (r[0] + length[r[2]], r[1]))
        return [(interval, bars) for _, _, interval, bars in rounds]

    def _dispatch(
        self, interval: str, bars: list[Bar], market: MarketData, offers: dict[StrategyHost, list[MarketData]],
    ) -> None:
        """Remember the new bars of one interval and call the strategies subscribed to them
        (free-running ones get them in `offers`, handed over once the step's candles are done)."""
        self.history.append(interval, bars)
        latest = self._latest[interval]
        for bar in bars:
            latest[bar.symbol] = bar
        base = interval == self.base_interval
        fresh = market.keys() if base else frozenset(bar.symbol for bar in bars)  # the base bars are all of the step
        complete = base and len(market) == len(latest)
        calls = []
        for route in self._routes.get(interval, ()):
            host = route.host
            if not host.active or route.symbols.isdisjoint(fresh):
                continue
            if host.warming and not self._warm(host):
                continue
            if route.sees_all and complete:
                view = market
            else:
                view = MarketData(
                    market.timestamp if base else bars[0].timestamp, interval,
                    {s: latest[s] for s in route.ordered if s in latest},
                    tuple(s for s in route.ordered if s in fresh),
                )
            calls.append((host, view))
        if self.execution == "free":
            for host, view in calls:
                offers.setdefault(host, []).append(view)
            return
        results = self._in_parallel(calls) if self.execution == "lockstep" else None
        for index, (host, view) in enumerate(calls):
            raws = results[index] if results is not None else host.on_tick(view, self.steps)
            for raw in raws:
                self._submit_signal(host, raw)
            for symbol in view.fresh:
                for raw in host.on_bar(view[symbol], self.steps):
                    self._submit_signal(host, raw)
            self._serve_requests(host)

    def _collect(self) -> None:
        """Free-running hosts: submit the signals of every call finished since the last step."""
        for host in self.hosts:
            for raws in host.collect():
                for raw in raws:
                    self._submit_signal(host, raw)
            if host.active:
                self._serve_requests(host)
            else:  # disabled (or stuck) meanwhile: what it asked for is dropped
                host.strategy.context.take_requests()

    def _in_parallel(self, calls: list[tuple[Any, MarketData]]) -> list[list[Any]]:
        """Hand the step to every threaded strategy, then wait for each: lockstep, so nothing
        the loop owns changes while they run, and their results are taken in a fixed order."""
        for host, view in calls:
            host.begin_tick(view, self.steps)
        return [host.tick_result() for host, _ in calls]

    def _warm(self, host: StrategyHost) -> bool:
        """Call a strategy's `warmup` once its history is full; True when it is warm."""
        depth = host.history_depth
        if any(self.history.count(s, host.interval) < depth for s in host.ordered_symbols):
            return False
        history = {s: self.history.bars(s, host.interval, depth) for s in host.ordered_symbols}
        if any(len(bars) < depth for bars in history.values()):
            return False
        host.warm_up(history, self.steps, self.timestamp)
        return host.active

    def finish(self, timestamp: datetime) -> None:
        """Stop the strategies, fill their closing orders at the last price, cancel the rest."""
        timestamp = self.timestamp or timestamp
        running = [host for host in self.hosts if host.name not in self._retired]
        if self.execution == "free":
            for host in running:
                host.run_in_lockstep()  # wait (bounded) for the call in progress, and every later call
            self._collect()
        for host in running:
            self._stop_host(host, timestamp)
        self._publish(self.broker.cancel_all(timestamp, "run stopped"))
        for host in running:
            host.shut_down(self.steps, timestamp)
        self._records.extend(self.portfolio.positions())
        if self.steps:
            self._record_equity()  # after the closing fills; replaces this step's earlier row
        self._flush(force_snapshot=True)
        self.sink.submit(list(self._snapshot.strategies))  # each strategy's counters and timing

    def _stop_host(self, host: StrategyHost, timestamp: datetime) -> None:
        """Call `on_stop` and fill the orders it emits at the last price."""
        closing = host.stop(self.steps, timestamp)  # a free-running strategy reads the books meanwhile
        with self.books_lock or nullcontext():
            for raw in closing:
                order = self._submit_signal(host, raw)
                if order is not None:
                    self._publish(self.broker.fill_at_last_price(order, timestamp))

    def add_host(self, host: StrategyHost) -> None:
        """Add a strategy; it is called from the next step on. One of the name stopped
        earlier in the run (`retire_host`) is replaced."""
        if host.name in self._retired:
            self._retired.discard(host.name)
            self.hosts.remove(self._hosts_by_name[host.name])
        self.hosts.append(host)
        self._hosts_by_name[host.name] = host
        self._route()

    def between_steps(self, job: Callable[[], None]) -> None:
        """Run `job` on the loop thread after the current step, outside the books lock (safe
        from any thread)."""
        self._between_steps.append(job)

    def retire_host(self, name: str, reason: str) -> None:
        """Stop strategy `name` during the run, as the end of a run stops it: `on_stop` (its
        closing orders filled at the last price), its other working orders cancelled with
        `reason`, then `shutdown`. It stays in the summary. Call on the loop thread."""
        host, timestamp = self._hosts_by_name[name], self.timestamp
        if self.execution == "free":
            host.run_in_lockstep()
            with self.books_lock:  # the other strategies still read the books from their threads
                for raws in host.collect():
                    for raw in raws:
                        self._submit_signal(host, raw)
        self._stop_host(host, timestamp)
        with self.books_lock or nullcontext():
            for order in self.broker.orders_of(name):
                states, _ = self.broker.cancel(name, order.id, timestamp, reason)
                self._publish(states, after_acceptance=False)
        host.shut_down(self.steps, timestamp)
        self._retired.add(name)
        self._route()

    def record(self, item: object) -> None:
        """Hand a record to storage with the current step's."""
        self._records.append(item)

    def _route(self) -> None:
        """Build the routing map: per interval, the strategies subscribed to it, in order."""
        routes: dict[str, list[Route]] = {}
        every = self.broker.symbols
        for host in self.hosts:
            if host.name in self._retired:
                continue
            for interval, symbols in host.routes.items():
                sees_all = interval == self.base_interval and set(symbols) == every
                routes.setdefault(interval, []).append(Route(host, frozenset(symbols), symbols, sees_all))
        self._routes = routes

    def request_symbol(self, symbol: str, add: AddSymbol) -> None:
        """Add a symbol after the current step (safe to call from any thread)."""
        self._symbol_requests.append((symbol, add))

    def symbol_requested(self, symbol: str) -> bool:
        """True when `symbol` waits to be added after the current step."""
        return any(pending == symbol for pending, _ in list(self._symbol_requests))

    def _add_requested_symbols(self) -> None:
        for symbol, spec in self.symbol_schedule.pop(self.steps, ()):
            self._add_symbol(symbol, spec)
        while self._symbol_requests:
            symbol, add = self._symbol_requests.popleft()
            self._add_symbol(symbol, add=add)

    def _add_symbol(
        self, symbol: str, spec: dict | None = None, requester: StrategyHost | None = None,
        add: AddSymbol | None = None,
    ) -> str | None:
        """Trade `symbol` from the next step: the feed carries it, the broker accepts it, and the
        strategies that follow every symbol (and the one that asked for it) subscribe to it and
        are told through `on_symbol_added`. Returns why it cannot be added, if it cannot."""
        if symbol in self.broker.symbols:
            if requester is None or symbol in requester.symbols:
                return f"symbol {symbol!r} is already traded"
        elif add is None:
            if self.symbol_source is None:
                return "this market data cannot add symbols during a run"
            try:
                add = self.symbol_source(symbol, **(spec or {}))
            except (TypeError, ValueError) as exc:
                return f"cannot add symbol {symbol!r}: {exc}"
        if add is not None:
            add()
            self.broker.add_symbol(symbol)
            # Recorded once, when it joins the run; a strategy that asks for a symbol the run
            # has already (another asked first) only subscribes to it.
            self._records.append(SymbolAdded(symbol, self.steps, self.timestamp, requester.name if requester else ""))
        joined = [h for h in self.hosts if h is requester or (h.follows_new_symbols and symbol not in h.symbols)]
        for host in joined:
            host.subscribe(symbol, host.interval)
        self._route()
        for host in joined:
            if host.notify("on_symbol_added", symbol, self.steps, self.timestamp):
                self._serve_requests(host)
        return None

    def record_fault(self, fault: StrategyFault) -> None:
        self._records.append(fault)

    def snapshot(self) -> RunSnapshot:
        """The state published after the latest step; safe to read from any thread."""
        return self._snapshot

    def _submit_signal(self, host: StrategyHost, raw: Any) -> Order | None:
        """Validate, size, apply the policy to and submit one signal; record what became of it."""
        host.stats.signals += 1
        try:
            signal = coerce_signal(raw)
        except SignalError as exc:
            return self._deny(host, None, f"malformed signal: {exc}", raw=repr(raw)[:200])
        if signal.symbol not in host.symbols:
            return self._deny(host, signal, f"symbol {signal.symbol!r} is not subscribed by this strategy")
        last_price = self.portfolio.last_prices.get(signal.symbol)
        try:
            refusal = host.validator(signal, last_price)
        except Exception as exc:  # noqa: BLE001 - a validator plugin may raise anything
            refusal = f"the signal validator raised {type(exc).__name__}: {exc}"
        if refusal:
            return self._deny(host, signal, refusal)
        held = self.portfolio.quantity(host.name, signal.symbol)
        try:
            sized = self.risk.size(signal, held)
            if sized is None:
                return None
            side, quantity = sized
            if self.policy.active:
                quantity = self.policy.check(host.name, host.interval, signal, side, quantity, held, last_price)
            request = self.risk.order_request(signal, side, quantity, last_price)
        except Denied as exc:
            return self._deny(host, signal, str(exc), rule=exc.rule)
        states = self.broker.submit(host.name, request, self.timestamp)
        self.orders += 1
        order = states[-1]
        if order.status is OrderStatus.REJECTED:
            host.stats.rejected += 1
            self._signal_event(host, signal, False, order.reason, order.id)
        else:
            host.stats.accepted += 1
            self._signal_event(host, signal, True, order_id=order.id)
        self._publish(states, after_acceptance=False)
        return None if order.status is OrderStatus.REJECTED else order

    def _serve_requests(self, host: StrategyHost) -> None:
        """Carry out the cancel and modify requests a strategy made through its context."""
        for request in host.strategy.context.take_requests():
            if request.action == "add_symbol":
                refusal = self._add_symbol(request.symbol, request.changes, requester=host)
                if refusal:
                    self._deny(host, None, f"add_symbol refused: {refusal}", raw=str(request))
                continue
            if request.action == "cancel":
                states, refusal = self.broker.cancel(host.name, request.order_id, self.timestamp, "cancelled by the strategy")
            else:
                states, refusal = self.broker.modify(host.name, request.order_id, self.timestamp, **request.changes)
            if refusal:
                self._deny(host, None, f"{request.action} refused: {refusal}", raw=str(request), order_id=request.order_id)
            self._publish(states, after_acceptance=False)

    def _deny(
        self, host: StrategyHost, signal: Signal | None, reason: str, raw: str = "",
        order_id: int | None = None, rule: str = "",
    ) -> None:
        """Record a refused signal or request (with the policy rule that blocked it, if one
        did); a well-formed signal refused before it became an order is reported through
        `on_order_rejected` as an order with id 0."""
        host.stats.rejected += 1
        self.rejections += 1
        if rule:
            self.policy_blocks[rule] = self.policy_blocks.get(rule, 0) + 1
        self._signal_event(host, signal, False, reason, order_id, raw=raw, rule=rule)
        if signal is not None and signal.action in (Action.BUY, Action.SELL, Action.CLOSE):
            self._recent_orders.append(refused := self._refused_order(host, signal, reason))
            if host.notify("on_order_rejected", refused, self.steps, self.timestamp):
                self._serve_requests(host)
        return None

    def _refused_order(self, host: StrategyHost, signal: Signal, reason: str) -> Order:
        """The order a signal would have been, rejected before it was made (id 0)."""
        closing_long = signal.action is Action.CLOSE and self.portfolio.quantity(host.name, signal.symbol) > 0
        side = Side.SELL if signal.action is Action.SELL or closing_long else Side.BUY
        return Order(
            0, host.name, signal.symbol, side, signal.quantity or Decimal(0), signal.order_type,
            self.timestamp, OrderStatus.REJECTED, reason=reason, limit_price=signal.limit_price,
            stop_price=signal.stop_price, time_in_force=signal.time_in_force,
            stop_loss=signal.stop_loss, take_profit=signal.take_profit,
        )

    def _signal_event(
        self, host: StrategyHost, signal: Signal | None, accepted: bool, rejection: str = "",
        order_id: int | None = None, raw: str = "", rule: str = "",
    ) -> None:
        event = SignalEvent(
            host.name, self.steps, self.timestamp, signal, accepted, rejection, order_id, raw, rule,
        )
        self._records.append(event)
        if self.on_signal is not None:
            try:
                self.on_signal(event)
            except Exception:  # noqa: BLE001 - a caller's callback must not stop the run
                log.exception("the signal callback raised; the run goes on")

    def _publish(self, events: list[BrokerEvent], after_acceptance: bool = True) -> None:
        """Record broker events and tell each strategy of its fills and rejections (through
        `on_fill` / `on_order_rejected` when it has them). A rejection of an order accepted
        earlier (at its fill) also counts against its strategy."""
        records = self._records
        notices = []
        for event in events:
            records.append(event)
            if type(event) is Order:
                self._recent_orders.append(event)
            if type(event) is Fill:
                self.fills += 1
                records.append(self.portfolio.position(event.strategy, event.symbol))
                notices.append(("on_fill", event))
            elif event.status is OrderStatus.REJECTED:
                self.rejections += 1
                if after_acceptance:
                    self._hosts_by_name[event.strategy].stats.rejected += 1
                notices.append(("on_order_rejected", event))
        for hook, event in notices:
            host = self._hosts_by_name.get(event.strategy)
            if host is not None and host.notify(hook, event, self.steps, self.timestamp):
                self._serve_requests(host)

    def _record_equity(self) -> None:
        """Record cash and equity, and the open positions at their current marks (so readers
        of a live run see up-to-date P&L)."""
        equity, pnl, open_positions = self.portfolio.valuation(host.name for host in self.hosts)
        self._records += open_positions
        self._records.append(EquitySnapshot(self.steps, self.timestamp, self.portfolio.cash, equity, pnl))

    def waiting(self, seconds: float) -> None:
        """The next step is `seconds` away: if that is longer than the heartbeat period, record
        a heartbeat saying when the next one is due (so a slow pace does not look stale)."""
        if seconds > HEARTBEAT_EVERY_SECONDS:
            self._heartbeat_at = self.clock.monotonic()
            self.sink.submit([self._heartbeat(seconds)])

    def _heartbeat(self, expected_every: float = HEARTBEAT_EVERY_SECONDS) -> Heartbeat:
        return Heartbeat(
            self.steps, self.timestamp, self.clock.now(), expected_every,
            tuple(
                StrategyHealth(host.name, host.state.value, host.stats.errors, host.disabled_reason)
                for host in self.hosts
            ),
        )

    def _flush(self, force_snapshot: bool = False) -> None:
        now = self.clock.monotonic()
        if force_snapshot or now - self._heartbeat_at >= HEARTBEAT_EVERY_SECONDS:
            self._heartbeat_at = now
            self._records.append(self._heartbeat())
        records, self._records = self._records, []
        self.sink.submit(records)
        if force_snapshot or now - self._snapshot_at >= SNAPSHOT_EVERY_SECONDS:
            self._snapshot_at = now
            self._snapshot = self._build_snapshot()

    def _build_snapshot(self) -> RunSnapshot:
        portfolio = self.portfolio
        pnl = dict(portfolio.net_pnl_by_strategy(host.name for host in self.hosts))
        return RunSnapshot(
            steps=self.steps, timestamp=self.timestamp, cash=portfolio.cash,
            equity=portfolio.equity(), starting_cash=portfolio.starting_cash,
            orders=self.orders, fills=self.fills, rejections=self.rejections,
            strategies=tuple(
                StrategySnapshot.timed(
                    name=host.name, state=host.state.value, calls=host.stats.calls,
                    signals=host.stats.signals, accepted=host.stats.accepted,
                    rejected=host.stats.rejected, errors=host.stats.errors,
                    pnl=pnl[host.name], disabled_reason=host.disabled_reason,
                    overruns=host.stats.overruns, queue_depth=host.queue_depth,
                    latency=host.stats.latency, halted_until=self.policy.halted_until(host.name),
                )
                for host in self.hosts
            ),
            policy_blocks=tuple(sorted(self.policy_blocks.items())),
            open_positions=tuple(portfolio.open_positions()),
            recent_orders=tuple(self._recent_orders),
        )

