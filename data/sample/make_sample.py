"""Write the sample data set: three trading days of 1-minute bars for AAPL and MSFT.

    python data/sample/make_sample.py

The bars come from the runner's own seeded synthetic generator, so the files are the same on
every machine. AAPL trades 14:30-21:00 UTC; MSFT opens 30 minutes later and misses a few
minutes each day, so a replay shows symbols with different hours and gaps.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from runner.feeds.synthetic import SymbolPath

HERE = Path(__file__).resolve().parent
DAYS = [datetime(2024, 3, day, 14, 30, tzinfo=UTC) for day in (4, 5, 6)]
SESSION_MINUTES = 390


def write(symbol: str, start_price: str, volatility: float, late_open: int, gaps: int) -> None:
    path = SymbolPath(symbol, Decimal(start_price), 0.05, volatility, 60, seed=2024,
                      precision=2, base_volume=20_000)
    skip = random.Random(f"gaps:{symbol}")
    with open(HERE / f"{symbol}.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for day in DAYS:
            missing = set(skip.sample(range(late_open + 1, SESSION_MINUTES), gaps))
            for minute in range(late_open, SESSION_MINUTES):
                bar = path.next_bar(day + timedelta(minutes=minute))
                if minute not in missing:
                    out.writerow([bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), bar.open, bar.high,
                                  bar.low, bar.close, bar.volume])


if __name__ == "__main__":
    write("AAPL", "178.50", 0.25, late_open=0, gaps=0)
    write("MSFT", "402.00", 0.22, late_open=30, gaps=12)
    print(f"wrote {HERE / 'AAPL.csv'} and {HERE / 'MSFT.csv'}")
