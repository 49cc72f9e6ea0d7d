"""The runner as a library: a broker, two strategies and a run in plain Python (no CLI, no YAML).

    python run_strategy_example.py

Runs 400 one-minute bars of two synthetic symbols as fast as possible, records everything in
runs/example.db, and prints a short summary.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import SyntheticSymbol
from runner.feeds.synthetic import SyntheticFeed
from runner.portfolio import Portfolio
from strategies.buy_and_hold import BuyAndHold
from strategies.ma_crossover import MACrossover


def main() -> None:
    feed = SyntheticFeed(
        {"AAPL": SyntheticSymbol(start_price=Decimal("190.00"), volatility=0.3),
         "MSFT": SyntheticSymbol(start_price=Decimal("410.00"), drift=0.1)},
        interval="1m", start=datetime(2024, 1, 2, 14, 30, tzinfo=UTC), seed=7,
    )
    broker = PaperBroker(
        Portfolio(starting_cash=Decimal(50_000)),
        BarFillModel(slippage_bps=Decimal(2)),
        FeeSchedule(CommissionModel(per_share=Decimal("0.005"), minimum=Decimal(1))),
        symbols=feed.symbols,
    )
    runner = assemble(
        feed=feed,
        broker=broker,
        strategies=[
            StrategySetup("ma_5_20", MACrossover, MACrossover.Params(fast=5, slow=20, quantity=Decimal(20))),
            StrategySetup("hold_msft", BuyAndHold, BuyAndHold.Params(quantity=Decimal(10)), symbols=["MSFT"]),
        ],
        database="sqlite:///runs/example.db",
        max_ticks=400,
    )
    summary = runner.run()

    print(f"run {summary.run_id}: {summary.status}, {summary.steps} bars, "
          f"{summary.orders} orders, {summary.fills} fills, {summary.rejections} rejections")
    for strategy in summary.strategies:
        print(f"  {strategy.name:<10} signals {strategy.signals:>3}  P&L {strategy.pnl:+.2f}")
    print(f"equity {summary.equity:.2f} (started with {summary.starting_cash:.2f}); records in runs/example.db")


if __name__ == "__main__":
    main()
