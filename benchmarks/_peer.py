"""One peer engine's run for benchmarks/peers.py, as a process of its own:

    python benchmarks/_peer.py backtrader|backtesting DATA.csv

Loads the CSV with pandas, runs the moving-average crossover of ma_crossover in that engine and
prints one JSON object: the engine and its version, the bars, the buys and sells filled, whether
a position is still open at the end, and the load and run times.

The rule is the runner's, written idiomatically for each engine: simple moving averages of the
close from the engine's own indicator (fast 10, slow 30); buy 100 units at market while flat
when the previous fast average was below the previous slow one and the current one is above;
sell the whole position at market while long on the mirror cross; equal averages are no cross
(averages of 2-decimal prices that differ do so by at least 0.01 / 30, so a float difference
under 1e-9 is taken as equal). Market orders fill at the next bar's open, no fees, cash
1,000,000 (as the runner's run in peers.py).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

FAST, SLOW, SIZE, CASH = 10, 30, 100, 1_000_000
EQUAL = 1e-9


def sign(difference: float) -> int:
    """+1, -1, or 0 for equal averages (or a NaN one, before the slow average has its bars)."""
    return int(difference > EQUAL) - int(difference < -EQUAL)


def load(path: str):
    import pandas as pd

    frame = pd.read_csv(path, parse_dates=["timestamp"], date_format="%Y-%m-%dT%H:%M:%SZ")
    return frame.set_index("timestamp")


def run_backtrader(path: str) -> dict:
    import backtrader as bt

    class Crossover(bt.Strategy):
        def __init__(self):
            self.fast = bt.indicators.SMA(self.data.close, period=FAST)
            self.slow = bt.indicators.SMA(self.data.close, period=SLOW)
            self.buys = self.sells = 0

        def next(self):
            previous, current = sign(self.fast[-1] - self.slow[-1]), sign(self.fast[0] - self.slow[0])
            if previous < 0 < current and not self.position:
                self.buy(size=SIZE)
            elif previous > 0 > current and self.position.size > 0:
                self.sell(size=self.position.size)

        def notify_order(self, order):
            if order.status in (order.Margin, order.Rejected, order.Canceled):
                raise RuntimeError(f"backtrader refused an order: {order.getstatusname()}")
            if order.status == order.Completed:
                if order.isbuy():
                    self.buys += 1
                else:
                    self.sells += 1

    started = time.perf_counter()
    frame = load(path)
    loaded = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, openinterest=None))
    cerebro.addstrategy(Crossover)
    cerebro.broker.setcash(CASH)
    [strategy] = cerebro.run()
    return {
        "engine": "backtrader", "version": bt.__version__, "bars": len(frame),
        "buys": strategy.buys, "sells": strategy.sells, "open_at_end": strategy.position.size != 0,
        "load_seconds": round(loaded - started, 3), "run_seconds": round(time.perf_counter() - loaded, 3),
    }


def run_backtesting(path: str) -> dict:
    import backtesting
    import pandas as pd
    from backtesting import Backtest, Strategy

    def sma(values, period):
        return pd.Series(values).rolling(period).mean()

    class Crossover(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self):
            previous, current = sign(self.fast[-2] - self.slow[-2]), sign(self.fast[-1] - self.slow[-1])
            if previous < 0 < current and not self.position:
                self.buy(size=SIZE)
            elif previous > 0 > current and self.position.is_long:
                self.position.close()

    started = time.perf_counter()
    frame = load(path).rename(columns=str.capitalize)
    loaded = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open at the end": counted below
        stats = Backtest(frame, Crossover, cash=CASH, commission=0, trade_on_close=False).run()
    strategy = stats["_strategy"]
    closed, still_open = len(strategy.closed_trades), len(strategy.trades)
    return {
        "engine": "backtesting", "version": backtesting.__version__, "bars": len(frame),
        "buys": closed + still_open, "sells": closed, "open_at_end": still_open > 0,
        "load_seconds": round(loaded - started, 3), "run_seconds": round(time.perf_counter() - loaded, 3),
    }


ENGINES = {"backtrader": run_backtrader, "backtesting": run_backtesting}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ENGINES:
        raise SystemExit(f"usage: python benchmarks/_peer.py {'|'.join(ENGINES)} DATA.csv")
    print(json.dumps(ENGINES[sys.argv[1]](sys.argv[2])))
