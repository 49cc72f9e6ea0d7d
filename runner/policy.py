"""The policy layer: which sized signals may become orders, and how large.

The policy a run applies is a `PolicyConfig` value (config.py): the config's `policy` section,
overlaid at the start by the database's `policy` table (the operator's live overrides, written
by `runner policy set`), then changed by each `runner policy set` while the run goes. Every
KEY VALUE pair, from the database or the command line, is read by `parse_setting`.

An order that only reduces the strategy's position (a CLOSE, a SELL of part or all of a long,
a BUY of part or all of a short) always passes, unscaled. Any other is checked against these
rules, in this order, and the first that blocks it is recorded with the signal as its `rule`:

    allowlist                        the strategy is not on policy.allowlist
    max_daily_loss                   the strategy is halted for the rest of the day
    min_confidence                   the signal's confidence is below policy.min_confidence
    regime                           the symbol's regime is not one of the strategy's allowed_regimes
    risk_mode                        the risk mode's factor scaled the quantity down to 0
    max_position_value_per_symbol    the account's position in the symbol would be worth too much
    max_position_value_per_strategy  the strategy's positions would be worth too much
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from runner.config import ConfigSource, PolicyConfig, suggestion, validation_problems
from runner.domain import ZERO, Side, Signal
from runner.errors import ConfigError
from runner.events import PolicyChange
from runner.history import HistoryStore
from runner.portfolio import Portfolio
from runner.regime import REGIME_BARS, classify
from runner.risk import Denied

POLICY_KEYS: tuple[str, ...] = tuple(PolicyConfig.model_fields)
RULES = (
    "allowlist", "max_daily_loss", "min_confidence", "regime", "risk_mode",
    "max_position_value_per_symbol", "max_position_value_per_strategy",
)
NONE_WORDS = ("none", "null")
_WIDE = Context(prec=80)  # products of quantities and factors, exact before rounding down
_NEVER = datetime.min.replace(tzinfo=UTC)
log = logging.getLogger(__name__)


def parse_setting(key: str, text: str) -> Any:
    """The value of policy key `key` written as `text` (`runner policy set` form: `none`
    removes an optional limit, `a,b` is a list, `true`/`false` or `on`/`off` a switch). An
    allowlist of no strategy must be written `[]`: an empty value is refused.

    Raises:
        ConfigError: the key is unknown or the value is not allowed; the message names the
            keys or the values that are.
    """
    field = PolicyConfig.model_fields.get(key)
    if field is None:
        hint = suggestion(key, list(POLICY_KEYS))
        raise ConfigError(
            f"unknown policy key {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            + f"; the keys are: {', '.join(POLICY_KEYS)}"
        )
    optional = field.default is None
    value: Any = text.strip()
    if optional and value.lower() in NONE_WORDS:
        value = None
    try:
        parsed = getattr(PolicyConfig.model_validate({key: value}), key)
    except ValidationError as exc:
        problems = validation_problems(exc, PolicyConfig, ConfigSource("", ""), ("policy",))
        if optional:
            problems = [replace(p, message=f"{p.message}; none removes the limit") for p in problems]
        raise ConfigError(problems) from None
    if key == "allowlist" and parsed == () and "".join(value.split()) != "[]":
        # An empty value would block every strategy; only `[]` says so on purpose.
        raise ConfigError(
            f"policy.allowlist: must be one or more strategy names such as ma_fast,hold_btc, got {value!r}; "
            f"{NONE_WORDS[0]} lets every strategy open positions, [] none"
        )
    return parsed


def parse_stored(key: str, text: str) -> Any:
    """`parse_setting` for a value read from the database's policy table.

    Raises:
        ConfigError: as `parse_setting`, saying where the value is and how to change it.
    """
    try:
        return parse_setting(key, text)
    except ConfigError as exc:
        raise ConfigError(f"the database's policy table: {exc}; change it with `runner policy set`") from None


def setting_text(value: Any) -> str:
    """A policy value in the form `parse_setting` reads (stored in the database and in
    policy_changes)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) if value else "[]"
    return str(value)


def setting_json(value: Any) -> Any:
    """A policy value for JSON: money and factors as exact strings, lists as arrays."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def changed(
    policy: PolicyConfig, settings: Mapping[str, Any], step: int, timestamp: datetime | None, source: str,
) -> tuple[PolicyConfig, list[PolicyChange]]:
    """`policy` with `settings` (each already read by `parse_setting`) applied, and a
    `PolicyChange` for each value that differs."""
    changes = [
        PolicyChange(step, timestamp, key, setting_text(getattr(policy, key)), setting_text(value), source)
        for key, value in settings.items() if getattr(policy, key) != value
    ]
    if not changes:
        return policy, []
    return policy.model_copy(update={change.key: settings[change.key] for change in changes}), changes


def starting_policy(configured: PolicyConfig, overrides: Mapping[str, str]) -> tuple[PolicyConfig, list[PolicyChange]]:
    """The policy a run starts with: the config's, then the database's overrides (key ->
    text). Returns it with the changes to record at step 0: every key as the config gives it,
    then each override that differs.

    Raises:
        ConfigError: the database holds a key or value `runner policy set` would refuse.
    """
    changes = [
        PolicyChange(0, None, key, "", setting_text(getattr(configured, key)), "config") for key in POLICY_KEYS
    ]
    settings = {key: parse_stored(key, text) for key, text in overrides.items()}
    policy, overridden = changed(configured, settings, 0, None, "cli")
    return policy, changes + overridden


def scaled(quantity: Decimal, factor: Decimal) -> Decimal:
    """`quantity` x `factor`, rounded down to the decimal places of `quantity` (whole units
    for a whole quantity): 10 x 0.5 = 5, 3 x 0.5 = 1, 3.0 x 0.5 = 1.5, 7 x 1.5 = 10."""
    places = Decimal(1).scaleb(min(quantity.as_tuple().exponent, 0))
    return _WIDE.multiply(quantity, factor).quantize(places, rounding=ROUND_DOWN, context=_WIDE)


class PolicyGate:
    """Applies the policy to each sized signal. Owned by the loop thread; only `offer` may be
    called from another.

    A day, for `max_daily_loss_per_strategy`, is a calendar day of the bars' time in
    `timezone` (market_data.timezone, as for DAY orders and daily candles). A strategy's loss
    of the day is its net P&L at the close of the last bar before the day began less its net
    P&L now; once it reaches the limit (checked after each step's marks) the strategy is
    halted until the first bar of the next day. Changing the limit lifts the halts, and the
    new limit is applied from the same step's marks.

    Args:
        policy: the policy to start with.
        portfolio: the books: positions, last prices, P&L.
        history: the bars the regime filter reads.
        strategies: the run's strategy names; an allowlist naming others is logged as a
            warning when the gate starts with it or takes it on (none given: not checked).
        allowed_regimes: strategy -> the regimes it may open or add to positions in (absent:
            every regime).
        timezone: where a day begins.
        starting_changes: the changes that made `policy` (see `starting_policy`), to record.

    `active` is False while no rule can block or scale a signal: the loop then skips `check`.
    """

    def __init__(
        self, policy: PolicyConfig, portfolio: Portfolio, history: HistoryStore,
        strategies: Sequence[str] = (), allowed_regimes: Mapping[str, Sequence[str]] | None = None,
        timezone: str = "UTC", starting_changes: Sequence[PolicyChange] = (),
    ):
        self._portfolio = portfolio
        self._history = history
        self._strategies = tuple(strategies)
        self._allowed_regimes = {name: frozenset(regimes) for name, regimes in (allowed_regimes or {}).items()}
        self._zone = ZoneInfo(timezone)
        self._day_end = _NEVER
        self._day_start_pnl: dict[str, Decimal] = {}
        self._halted: dict[str, tuple[datetime, Decimal]] = {}  # strategy -> (resumes at, loss)
        self._offers: queue.SimpleQueue[Mapping[str, Any]] = queue.SimpleQueue()
        self.starting_changes = tuple(starting_changes)
        self.policy = policy
        self._allowlist: frozenset[str] | None = None
        self._adopt(policy, limit_changed=True)

    def offer(self, settings: Mapping[str, Any]) -> None:
        """Hand over settings read by `parse_setting` (from any thread); the loop applies them
        at the start of its next step."""
        self._offers.put(settings)

    def add_strategy(self, name: str) -> None:
        """Apply the rules to a strategy that joined the run after it began (a catalogue run)."""
        if name not in self._strategies:
            self._strategies += (name,)

    def begin_step(self, step: int, timestamp: datetime) -> list[PolicyChange]:
        """Open a new day when the step begins one, and apply the settings offered since the
        last step; return the changes applied."""
        if timestamp >= self._day_end:
            self._open_day(timestamp)
        if self._offers.empty():
            return []
        changes: list[PolicyChange] = []
        while not self._offers.empty():
            policy, applied = changed(self.policy, self._offers.get(), step, timestamp, "cli")
            if applied:
                limit_changed = policy.max_daily_loss_per_strategy != self.policy.max_daily_loss_per_strategy
                self._adopt(policy, limit_changed)
                changes += applied
        return changes

    def check_daily_losses(self) -> None:
        """Halt each strategy whose loss of the day reached the limit (after the step's marks)."""
        limit = self.policy.max_daily_loss_per_strategy
        if limit is None:
            return
        start = self._day_start_pnl
        for name, pnl in self._portfolio.net_pnl_by_strategy(self._strategies):
            loss = start.get(name, ZERO) - pnl
            if loss >= limit and name not in self._halted:
                self._halted[name] = (self._day_end, loss)

    def halted_until(self, strategy: str) -> datetime | None:
        """When a halted strategy may open positions again (None: it is not halted)."""
        halt = self._halted.get(strategy)
        return halt[0] if halt else None

    def check(
        self, strategy: str, interval: str, signal: Signal, side: Side, quantity: Decimal,
        held: Decimal, last_price: Decimal | None,
    ) -> Decimal:
        """The quantity to order for a signal sized to `side` and `quantity`, given the
        strategy's position `held`: scaled by the risk mode unless it only reduces the position.

        Raises:
            Denied: a rule blocks it; `rule` names the rule.
        """
        signed = quantity if side is Side.BUY else -quantity
        if held and (held > 0) != (signed > 0) and quantity <= abs(held):
            return quantity  # only reduces the position
        policy = self.policy
        if self._allowlist is not None and strategy not in self._allowlist:
            names = ", ".join(sorted(self._allowlist)) or "no strategy"
            raise Denied(
                f"{strategy} is not on policy.allowlist ({names}); it may only reduce its positions", "allowlist",
            )
        halt = self._halted.get(strategy)
        if halt is not None:
            resumes, loss = halt
            raise Denied(
                f"halted for the day: lost {loss:.2f} since the day began, policy.max_daily_loss_per_strategy "
                f"is {policy.max_daily_loss_per_strategy}; it may open positions again from {resumes.isoformat()}",
                "max_daily_loss",
            )
        confidence = signal.confidence
        if policy.min_confidence is not None and confidence is not None and confidence < policy.min_confidence:
            raise Denied(
                f"confidence {confidence:g} is below policy.min_confidence {policy.min_confidence:g}", "min_confidence",
            )
        allowed = self._regimes.get(strategy)
        if allowed is not None:
            self._check_regime(signal.symbol, interval, allowed)
        if self._factor != 1:
            asked, quantity = quantity, scaled(quantity, self._factor)
            if quantity <= 0:
                raise Denied(
                    f"risk_mode {policy.risk_mode} scales {asked} by {self._factor} down to 0", "risk_mode",
                )
            signed = quantity if side is Side.BUY else -quantity
        if last_price is not None:
            self._check_values(strategy, signal.symbol, held, signed, last_price)
        return quantity

    def _adopt(self, policy: PolicyConfig, limit_changed: bool) -> None:
        """Take `policy` on, with what `check` reads per signal worked out once."""
        self.policy = policy
        factors = {"normal": Decimal(1), "aggressive": policy.aggressive_factor, "defensive": policy.defensive_factor}
        self._factor = factors[policy.risk_mode]
        allowlist = None if policy.allowlist is None else frozenset(policy.allowlist)
        if allowlist is not None and allowlist != self._allowlist:
            self._warn_of_unknown_names(policy.allowlist)
        self._allowlist = allowlist
        self._regimes = self._allowed_regimes if policy.regime_filter else {}
        self.active = bool(
            self._factor != 1 or self._allowlist is not None or policy.min_confidence is not None
            or self._regimes or policy.max_position_value_per_symbol is not None
            or policy.max_position_value_per_strategy is not None
            or policy.max_daily_loss_per_strategy is not None
        )
        if limit_changed:
            self._halted.clear()

    def _warn_of_unknown_names(self, allowlist: Sequence[str]) -> None:
        """Log the allowlist's names the run has no strategy of: a typo there silently keeps a
        strategy from opening positions (`runner validate` checks only the config's allowlist)."""
        known = self._strategies
        unknown = [name for name in dict.fromkeys(allowlist) if name not in known]
        if not known or not unknown:
            return
        named = ", ".join(
            name + (f" (did you mean {hint!r}?)" if (hint := suggestion(name, list(known))) else "")
            for name in unknown
        )
        allowed = [name for name in known if name in allowlist]
        log.warning(
            "policy.allowlist names %s, which this run does not have (its strategies: %s); %s",
            named, ", ".join(known),
            f"of them only {', '.join(allowed)} may open or add to positions" if allowed
            else "none of them may open or add to positions",
        )

    def _open_day(self, timestamp: datetime) -> None:
        day = timestamp.astimezone(self._zone).date()
        self._day_end = datetime.combine(day + timedelta(days=1), time(), self._zone).astimezone(UTC)
        self._day_start_pnl = dict(self._portfolio.net_pnl_by_strategy(self._strategies))
        self._halted.clear()

    def _check_regime(self, symbol: str, interval: str, allowed: frozenset[str]) -> None:
        policy = self.policy
        reading = classify(
            self._history.bars(symbol, interval, REGIME_BARS), policy.regime_volatility, policy.regime_trend,
        )
        if reading is None:
            raise Denied(
                f"the regime of {symbol} at {interval} is not known yet ({self._history.count(symbol, interval)} "
                f"of {REGIME_BARS} bars); allowed_regimes: {', '.join(sorted(allowed))}", "regime",
            )
        if reading.regime not in allowed:
            raise Denied(
                f"the regime of {symbol} at {interval} is {reading.regime} (ATR/close {reading.volatility:.4f}, "
                f"trend {reading.trend:.3f}); allowed_regimes: {', '.join(sorted(allowed))}", "regime",
            )

    def _check_values(self, strategy: str, symbol: str, held: Decimal, signed: Decimal, price: Decimal) -> None:
        policy = self.policy
        limit = policy.max_position_value_per_symbol
        if limit is not None:
            total = self._portfolio.symbol_quantity(symbol)
            after = abs(total + signed)
            if after > abs(total) and after * price > limit:
                raise Denied(
                    f"the account's position in {symbol} would be worth {after * price:.2f}, above "
                    f"policy.max_position_value_per_symbol {limit}", "max_position_value_per_symbol",
                )
        limit = policy.max_position_value_per_strategy
        if limit is not None:
            gross = self._portfolio.gross_value(strategy)
            value = gross + (abs(held + signed) - abs(held)) * price
            if value > gross and value > limit:
                raise Denied(
                    f"{strategy}'s positions would be worth {value:.2f}, above "
                    f"policy.max_position_value_per_strategy {limit}", "max_position_value_per_strategy",
                )
