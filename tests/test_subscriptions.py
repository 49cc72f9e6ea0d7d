"""(symbol, interval) subscriptions: a strategy is called only for closed bars it subscribes to,
and sees only those symbols; config mistakes are reported with their key path (exit 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from runner.bootstrap import build
from runner.config import load_config_text
from runner.storage import queries
from tests.test_replay_runs import write_minutes

START = datetime(2024, 1, 2, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

RECORDER = '''
from strategies.base import StrategyInterface, StrategyParams


class Want(StrategyParams):
    want: list[str] = []


class Recorder(StrategyInterface):
    """Remembers every call; at its first call asks to buy each symbol in `want`."""

    Params = Want

    def on_start(self):
        self.seen = []

    def on_tick(self, market_data):
        self.seen.append((
            market_data.interval, market_data.timestamp, tuple(market_data), tuple(market_data.fresh),
            dict(market_data.items()),
        ))
        if len(self.seen) == 1:
            return [{"symbol": s, "action": "BUY", "quantity": 1} for s in self.params.want]
        return None
'''


def run(tmp_path: Path, text: str):
    (tmp_path / "recorder.py").write_text(RECORDER)
    config = load_config_text(text + f"storage: {{url: 'sqlite:///{tmp_path / 'runs.db'}'}}\n", str(tmp_path / "c.yaml"))
    runner = build(config)
    summary = runner.run()
    assert summary.status == "completed", summary.error
    return runner, summary


def seen(runner, name: str) -> list[tuple]:
    return next(h.strategy.seen for h in runner.loop.hosts if h.name == name)


@pytest.mark.parametrize("execution", ["inline", "threaded"])
def test_a_strategy_gets_its_1m_symbol_every_step_and_its_5m_symbol_every_fifth(tmp_path, execution):
    runner, summary = run(tmp_path, (
        f"run: {{max_ticks: 20, execution: {execution}}}\n"
        "market_data: {symbols: [A, B, C], start: 2024-01-02T00:00:00Z}\n"
        "strategies:\n"
        "  - name: pairs\n"
        "    file: recorder.py\n"
        "    subscriptions: [{symbol: A, interval: 1m}, {symbol: B, interval: 5m}]\n"
        "    params: {want: [A, B, C]}\n"
        "  - {name: b_minutes, file: recorder.py, symbols: [B]}\n"
    ))
    calls = seen(runner, "pairs")
    minutes = [c for c in calls if c[0] == "1m"]
    candles = [c for c in calls if c[0] == "5m"]
    assert len(calls) == 24 == {s.name: s for s in summary.strategies}["pairs"].calls
    assert [c[1] for c in minutes] == [START + i * MINUTE for i in range(20)]
    assert {(c[2], c[3]) for c in minutes} == {(("A",), ("A",))}
    assert [c[1] for c in candles] == [START + i * 5 * MINUTE for i in range(4)]  # labelled by open time
    assert {(c[2], c[3]) for c in candles} == {(("B",), ("B",))}
    # On a step that closes a 5m candle the 1m bar comes first, then the candle.
    assert [c[0] for c in calls[:6]] == ["1m"] * 5 + ["5m"]
    # The candle is the five 1m bars of B it covers.
    b_bars = [c[4]["B"] for c in seen(runner, "b_minutes")]
    for number, candle in enumerate(c[4]["B"] for c in candles):
        inside = b_bars[5 * number:5 * number + 5]
        assert (candle.open, candle.close) == (inside[0].open, inside[-1].close)
        assert (candle.high, candle.low) == (max(b.high for b in inside), min(b.low for b in inside))
        assert candle.volume == sum(b.volume for b in inside)
    # Orders for its symbols go through; C is not one of them.
    signals = [(s.symbol, s.accepted, s.rejection) for s in queries.signals(runner.recorder.engine, runner.run_id)]
    assert signals == [("A", True, ""), ("B", True, ""), ("C", False, "symbol 'C' is not subscribed by this strategy")]


def test_a_strategy_is_not_called_on_a_step_without_a_bar_it_subscribes_to(tmp_path):
    a_minutes = [0, 1, 2, 5, 6, 8, 9]
    write_minutes(tmp_path / "A.csv", a_minutes, seed=1)
    write_minutes(tmp_path / "B.csv", range(10), seed=2)
    runner, summary = run(tmp_path, (
        "market_data: {source: csv, path: '{symbol}.csv', symbols: [A, B]}\n"
        "strategies:\n"
        "  - {name: only_a, file: recorder.py, subscriptions: [{symbol: A, interval: 1m}]}\n"
        "  - {name: only_b, file: recorder.py, subscriptions: [{symbol: B, interval: 1m}]}\n"
    ))
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # write_minutes' first bar
    assert summary.steps == 10
    only_a = seen(runner, "only_a")
    assert [c[1] for c in only_a] == [start + m * MINUTE for m in a_minutes]
    assert {c[2] for c in only_a} == {("A",)}
    assert len(seen(runner, "only_b")) == 10


BOTH = """\
market_data: {symbols: [AAA, BBB]}
strategies:
  - type: ma_crossover
    symbols: [AAA]
    subscriptions: [{symbol: AAA, interval: 1m}]
"""
UNKNOWN = """\
market_data: {symbols: [AAA, BBB]}
strategies:
  - type: ma_crossover
    subscriptions:
      - {symbol: AAA, interval: 1m}
      - {symbol: ZZZ, interval: 5m}
"""
ODD_INTERVAL = """\
market_data: {symbols: [AAA], interval: 1m}
strategies:
  - type: ma_crossover
    subscriptions: [{symbol: AAA, interval: 90s}]
"""


@pytest.mark.parametrize(("command", "text", "message"), [
    ("validate", BOTH, "bad.yaml:3: strategies[0]: give either `subscriptions` or `symbols`/`interval`, not both"),
    ("validate", UNKNOWN, "bad.yaml:6: strategies[0].subscriptions[1].symbol: unknown symbol ZZZ; market_data has: AAA, BBB"),
    ("start", ODD_INTERVAL, "strategies[0].subscriptions[0].interval: 90s is not a whole multiple of the data's interval 1m"),
])
def test_a_bad_subscription_is_reported_with_its_key_path_and_exit_2(tmp_path, command, text, message):
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    database = ["--db", str(tmp_path / "x.db")] if command == "start" else []  # validate writes nothing
    result = CliRunner().invoke(app, [command, str(tmp_path / "bad.yaml"), *database])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in " ".join(result.stderr.split())
