"""The README's commands and code run as written."""

import re
from decimal import Decimal
from pathlib import Path

from runner.bootstrap import StrategySetup, assemble
from runner.broker.fees import CommissionModel, FeeSchedule
from runner.broker.fills import BarFillModel
from runner.broker.paper import PaperBroker
from runner.config import SyntheticSymbol
from runner.feeds.synthetic import SyntheticFeed
from runner.portfolio import Portfolio
from tests.helpers import T0

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_setup_commands():
    commands = re.findall(r"^python3 -m venv .*$", README, flags=re.MULTILINE)
    assert commands[0].endswith("runner start configs/default.yaml")
    assert commands[1].endswith("python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest -q" in ci


def test_the_strategy_in_the_readme_runs(tmp_path):
    source = re.search(r"```python\n(.*?)```", README, flags=re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(source, "README.md", "exec"), namespace)
    feed = SyntheticFeed({"AAA": SyntheticSymbol(volatility=1.0)}, "1m", T0, seed=3)
    broker = PaperBroker(Portfolio(Decimal(10_000)), BarFillModel(), FeeSchedule(CommissionModel()), feed.symbols)
    runner = assemble(
        feed=feed, broker=broker, strategies=[StrategySetup("dip", namespace["DipBuyer"], {"drop": "0.001"})],
        database=f"sqlite:///{tmp_path / 'r.db'}", max_ticks=300,
    )
    summary = runner.run()
    assert summary.status == "completed"
    assert summary.errors == 0
    assert summary.fills > 2, "the example strategy trades on a volatile series"
