"""A fake exchange on 127.0.0.1 answering in Binance's spot REST format (the two public
endpoints ccxt needs: /api/v3/exchangeInfo and /api/v3/klines), and a clock that runs fast.

The server's candles are fixed in advance; at any moment it shows those that have opened by the
shared clock's time, the newest one still forming (its close and high/low differ from the final
values), as a real exchange does. `failing` makes every request answer 503.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.local_server import LocalServer

START = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE_MS = 60_000


class FastClock:
    """Wall-clock waits, but `now` runs `factor` x faster from START (a WallClock in every other way)."""

    def __init__(self, factor: float, start: datetime = START):
        self.factor = factor
        self.start = start
        self.origin = time.monotonic()

    def restart(self) -> None:
        """Be at `start` again now (call it right before the run starts, after slow imports)."""
        self.origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.origin) * self.factor)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds) if seconds > 0 else stop.is_set()


def candles(symbol: str, count: int, start: datetime = START, step_ms: int = MINUTE_MS) -> list[list]:
    """`count` candles (one minute each by default) of a seeded random walk:
    [ms, open, high, low, close, volume]."""
    rng = random.Random(symbol)
    price = 100.0 + 50 * rng.random()
    rows = []
    first = int(start.timestamp() * 1000)
    for index in range(count):
        close = round(price * (1 + rng.gauss(0, 0.01)), 2)
        high = round(max(price, close) * (1 + abs(rng.gauss(0, 0.002))), 2)
        low = round(min(price, close) * (1 - abs(rng.gauss(0, 0.002))), 2)
        rows.append([first + index * step_ms, price, high, low, close, round(10 + 90 * rng.random(), 3)])
        price = close
    return rows


class FakeExchange(LocalServer):
    """Serve `data` (ccxt symbol -> candles) by `clock`; use as a context manager."""

    def __init__(self, data: dict[str, list[list]], clock: FastClock, step_ms: int = MINUTE_MS):
        self.data = data
        self.step_ms = step_ms
        self.clock = clock
        self.failing = False
        self.requests: list[str] = []
        exchange = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                exchange.requests.append(self.path)
                if exchange.failing:
                    return self._send(503, {"code": -1, "msg": "Service unavailable"})
                parts = urlsplit(self.path)
                if parts.path == "/api/v3/exchangeInfo":
                    return self._send(200, exchange.markets())
                if parts.path == "/api/v3/klines":
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    return self._send(200, exchange.klines(query))
                return self._send(404, {"code": -1, "msg": "not found"})

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    def markets(self) -> dict:
        symbols = []
        for name in self.data:
            base, quote = name.split("/")
            symbols.append({
                "symbol": base + quote, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "permissions": ["SPOT"], "filters": [],
            })
        return {"timezone": "UTC", "serverTime": self._now_ms(), "rateLimits": [], "symbols": symbols}

    def klines(self, query: dict) -> list[list]:
        name = next(n for n in self.data if n.replace("/", "") == query["symbol"])
        now = self._now_ms()
        since = int(query.get("startTime", 0))
        limit = int(query.get("limit", 500))
        shown = []
        for row in self.data[name]:
            if row[0] > now or row[0] < since:
                continue
            stamp, open_, high, low, close, volume = row
            if stamp + self.step_ms > now:  # still forming: not yet its final values
                high, low, close, volume = open_ * 1.5, open_ * 0.5, open_ * 1.25, volume / 2
            shown.append([stamp, str(open_), str(high), str(low), str(close), str(volume),
                          stamp + self.step_ms - 1, "0", 1, "0", "0", "0"])
        return shown[:limit]

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)
