"""An exchange opened through ccxt for public market data: no API keys, its rate limit respected.

Everything that can be wrong before a run is checked here, before anything is recorded: the
exchange id, the interval (one of its timeframes), the symbols (among its markets, which also
proves it can be reached).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from runner.config import ConfigSource, LiveFeedConfig, suggestion
from runner.errors import ConfigError, FeedError

SHOWN_SYMBOLS = 20
LOCATION = ("market_data",)


def open_exchange(settings: LiveFeedConfig, source: ConfigSource) -> Any:
    """A ccxt exchange for `settings`, its markets loaded and every name in `settings` checked.

    Raises:
        ConfigError: ccxt is not installed, or the exchange, the interval or a symbol is unknown
            (the message lists what exists, with the nearest match).
        FeedError: the exchange cannot be reached or answers with an error.
    """
    try:
        import ccxt
    except ImportError:
        raise ConfigError([source.problem(
            LOCATION + ("source",), "live market data needs ccxt: pip install 'runner[live]'",
        )]) from None
    name = settings.exchange
    if name not in ccxt.exchanges:
        hint = suggestion(name, list(ccxt.exchanges))
        raise ConfigError([source.problem(
            LOCATION + ("exchange",),
            f"unknown exchange {name!r}{f'; did you mean {hint!r}?' if hint else ''} "
            f"(ccxt knows {len(ccxt.exchanges)}: {', '.join(ccxt.exchanges[:SHOWN_SYMBOLS])}, ...)",
        )])
    exchange = getattr(ccxt, name)({"enableRateLimit": True, "timeout": int(settings.timeout * 1000)})
    if settings.rate_limit_ms is not None:
        exchange.rateLimit = settings.rate_limit_ms
    _spot_only(exchange)
    if settings.api_url:
        exchange.urls["api"] = _rebased(exchange.urls["api"], settings.api_url)
    problems = []
    if not exchange.has.get("fetchOHLCV"):
        problems.append(source.problem(LOCATION + ("exchange",), f"{name} has no public OHLCV endpoint in ccxt"))
    timeframes = list(exchange.timeframes or {})
    if settings.interval not in timeframes:
        problems.append(source.problem(
            LOCATION + ("interval",),
            f"{name} has no {settings.interval} candles; its timeframes: {', '.join(timeframes)}",
        ))
    if problems:
        raise ConfigError(problems)
    markets = _markets(exchange, settings)
    for index, symbol in enumerate(settings.symbols):
        if symbol not in markets:
            problems.append(source.problem(LOCATION + ("symbols", index), _unknown_symbol(name, symbol, markets)))
    if problems:
        raise ConfigError(problems)
    return exchange


def _markets(exchange: Any, settings: LiveFeedConfig) -> list[str]:
    import ccxt

    where = settings.api_url or exchange.id
    try:
        return list(exchange.load_markets())
    except ccxt.NetworkError as exc:
        raise FeedError(
            f"cannot reach exchange {exchange.id} ({where}): {type(exc).__name__}: {_short(exc)}; "
            "check the network (or market_data.api_url) and try again"
        ) from None
    except ccxt.BaseError as exc:
        raise FeedError(f"exchange {exchange.id} ({where}) refused the market list: {type(exc).__name__}: {_short(exc)}") from None


def _unknown_symbol(exchange: str, symbol: str, markets: list[str]) -> str:
    hint = suggestion(symbol, markets)
    listing = ", ".join(sorted(markets)[:SHOWN_SYMBOLS]) + (", ..." if len(markets) > SHOWN_SYMBOLS else "")
    return (
        f"{exchange} has no market {symbol!r}{f'; did you mean {hint!r}?' if hint else ''} "
        f"({len(markets)} markets: {listing or 'none'})"
    )


def _spot_only(exchange: Any) -> None:
    """Load spot markets only where ccxt would also load derivatives (fewer requests)."""
    wanted = exchange.options.get("fetchMarkets")
    if isinstance(wanted, dict) and "spot" in wanted.get("types", ()):
        wanted["types"] = ["spot"]
    elif isinstance(wanted, list) and "spot" in wanted:
        exchange.options["fetchMarkets"] = ["spot"]


def _rebased(urls: Any, base: str) -> Any:
    """The exchange's API URLs with scheme and host replaced by `base` (paths kept)."""
    if isinstance(urls, dict):
        return {key: _rebased(value, base) for key, value in urls.items()}
    if isinstance(urls, str):
        return base.rstrip("/") + urlsplit(urls).path
    return urls


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
