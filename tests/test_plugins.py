"""Strategy plugins: loading by name, module, file or entry point; enablement; optional hooks;
signal validators; the strategies commands."""

import json
import textwrap
from importlib.metadata import EntryPoint

import pytest
from typer.testing import CliRunner

import runner.registry as registry
from cli.app import app
from runner.bootstrap import StrategySetup, assemble, build
from runner.config import load_config_text
from runner.errors import ConfigError, StrategyLoadError
from runner.storage import queries
from runner.validators import check_config
from strategies.base import StrategyInterface
from tests.helpers import D, ListFeed, bar, config_text


def run_config(tmp_path, strategies, **sections):
    sections.setdefault("storage", f"{{url: 'sqlite:///{tmp_path / 'p.db'}'}}")
    sections.setdefault("run", "{max_ticks: 60, seed: 3}")
    config = load_config_text(config_text(strategies, **sections), str(tmp_path / "c.yaml"))
    runner = build(config)
    return runner, runner.run()


STRATEGY_FILE = '''
from strategies.base import StrategyInterface, StrategyParams
from pydantic import Field

class EveryTenthParams(StrategyParams):
    every: int = Field(10, gt=0)

class EveryTenth(StrategyInterface):
    """Buy one share every `every` bars."""
    Params = EveryTenthParams

    def on_start(self):
        self.calls = 0

    def on_tick(self, market_data):
        self.calls += 1
        if self.calls % self.params.every == 0:
            return [{"symbol": market_data.fresh[0], "action": "BUY", "quantity": 1}]
'''


# -- loading routes ------------------------------------------------------------------------------

def test_a_strategy_from_a_file_outside_any_package(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "every.py").write_text(STRATEGY_FILE)
    runner, summary = run_config(tmp_path, "  - {file: mine/every.py, params: {every: 20}}\n")
    assert summary.strategies[0].name == "every"  # the file's name, unless the entry gives one
    assert summary.fills == 2  # bought on bars 20 and 40, filled on 21 and 41


def test_a_strategy_from_a_dotted_module_with_and_without_class(tmp_path):
    _, found = run_config(tmp_path, "  - {module: strategies.ma_crossover, name: a}\n")
    _, named = run_config(tmp_path, "  - {module: strategies.buy_and_hold, class: BuyAndHold}\n",
                          storage=f"{{url: 'sqlite:///{tmp_path / 'q.db'}'}}")
    assert found.status == named.status == "completed"
    assert named.strategies[0].name == "BuyAndHold"


def test_a_strategy_registered_by_an_installed_package(tmp_path, monkeypatch):
    (tmp_path / "plugin_pkg.py").write_text(STRATEGY_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="every_tenth", value="plugin_pkg:EveryTenth", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    assert "every_tenth" in registry.known_strategies()
    runner, summary = run_config(tmp_path, "  - {type: every_tenth, params: {every: 30}}\n")
    assert summary.fills == 1


@pytest.mark.parametrize(
    ("source", "entry", "message"),
    [
        (None, "{file: nothere.py}", "strategy file not found: "),
        ("def broken(:\n", "{file: s.py}", "s.py:1: syntax error: "),
        ("import os\nx = 1\nraise RuntimeError('bad config')\n", "{file: s.py}", "s.py:3: RuntimeError: bad config"),
        ("class Helper:\n    pass\n", "{file: s.py}", "no StrategyInterface subclass in "),
        (STRATEGY_FILE + "\nclass Other(EveryTenth):\n    pass\n", "{file: s.py}", "several strategies in "),
        (STRATEGY_FILE, "{file: s.py, class: Nope}", "no class 'Nope' in "),
        (None, "{module: no.such.module}", "cannot import module 'no.such.module': "),
        (None, "{type: not_registered}", "unknown strategy 'not_registered'; known strategies: "),
    ],
)
def test_loader_errors_name_the_place_and_what_was_found(tmp_path, source, entry, message):
    if source is not None:
        (tmp_path / "s.py").write_text(source)
    config = load_config_text(config_text(f"  - {entry}\n"), str(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError) as error:
        check_config(config)
    [problem] = error.value.problems
    assert message in problem.message
    assert problem.line == 5 and problem.key_path.startswith("strategies[0].")
    if "several" in message:
        assert "(EveryTenth, Other); name one with `class:`" in problem.message
    if "no StrategyInterface" in message:
        assert problem.message.endswith("classes there: Helper")


def test_a_strategy_entry_needs_exactly_one_way_to_load():
    with pytest.raises(ConfigError, match="name the strategy with exactly one of .* got type, file"):
        load_config_text(config_text("  - {type: rsi, file: x.py}\n"))


def test_cli_exits_2_for_a_strategy_file_that_does_not_compile(tmp_path):
    (tmp_path / "s.py").write_text("def broken(:\n")
    (tmp_path / "c.yaml").write_text(config_text("  - {file: s.py}\n"))
    result = CliRunner().invoke(app, ["start", str(tmp_path / "c.yaml"), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "s.py:1: syntax error" in result.stderr and "Traceback" not in result.stderr


# -- enablement ----------------------------------------------------------------------------------

TWO = "  - {type: ma_crossover, name: fast}\n  - {type: buy_and_hold, name: hold, enabled: false}\n"


def test_the_environment_chooses_which_entries_run(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNER_STRATEGIES_ENABLED", "hold")
    _, summary = run_config(tmp_path, TWO)
    assert [s.name for s in summary.strategies] == ["hold"]


def test_an_unknown_name_in_the_environment_lists_the_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNER_STRATEGIES_ENABLED", "fast,slow")
    config = load_config_text(config_text(TWO), str(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError, match="RUNNER_STRATEGIES_ENABLED names 'slow', not in .*c.yaml; its strategies are: fast, hold"):
        check_config(config)


# -- optional hooks ------------------------------------------------------------------------------

class Hooks(StrategyInterface):
    """Notes every optional hook the runner calls."""

    model_ok = True
    log: list = []

    def history_size(self):
        return 3

    def load_model(self):
        Hooks.log.append("load_model")
        return self.model_ok

    def warmup(self, history):
        Hooks.log.append(("warmup", {s: len(h) for s, h in history.items()}))

    def on_start(self):
        Hooks.log.append("on_start")

    def on_tick(self, market_data):
        Hooks.log.append(("on_tick", market_data.timestamp.minute))

    def on_bar(self, bar):
        Hooks.log.append(("on_bar", bar.symbol, bar.timestamp.minute))

    def on_stop(self):
        Hooks.log.append("on_stop")

    def shutdown(self):
        Hooks.log.append("shutdown")


class Plain(StrategyInterface):
    def on_start(self):
        self.first = True

    def on_tick(self, market_data):
        first, self.first = self.first, False
        return [{"symbol": "AAA", "action": "BUY", "quantity": 1}] if first else None


def run_hooks(tmp_path, model_ok=True, load_error=False):
    Hooks.log = []
    Hooks.model_ok = model_ok

    class Variant(Hooks):
        def load_model(self):
            if load_error:
                raise FileNotFoundError("model.skops")
            return super().load_model()

    steps = [[bar("AAA", m, 10 + m)] for m in range(5)]
    runner = assemble(
        feed=ListFeed(steps), broker=_broker(), database=f"sqlite:///{tmp_path / 'h.db'}",
        strategies=[StrategySetup("hooks", Variant), StrategySetup("plain", Plain)],
    )
    return runner, runner.run()


def _broker():
    from runner.broker.fees import CommissionModel, FeeSchedule
    from runner.broker.fills import BarFillModel
    from runner.broker.paper import PaperBroker
    from runner.portfolio import Portfolio

    return PaperBroker(Portfolio(D(1000)), BarFillModel(), FeeSchedule(CommissionModel()), ("AAA",))


def test_optional_hooks_are_called_in_order(tmp_path):
    run_hooks(tmp_path)
    assert Hooks.log == [
        "load_model", "on_start",
        ("warmup", {"AAA": 3}), ("on_tick", 32), ("on_bar", "AAA", 32),  # nothing before the history is full
        ("on_tick", 33), ("on_bar", "AAA", 33), ("on_tick", 34), ("on_bar", "AAA", 34),
        "on_stop", "shutdown",
    ]


@pytest.mark.parametrize(("model_ok", "load_error", "reason"), [
    (False, False, "load_model returned False"),
    (True, True, "FileNotFoundError in load_model: model.skops"),
])
def test_a_model_that_does_not_load_disables_that_strategy_alone(tmp_path, model_ok, load_error, reason):
    runner, summary = run_hooks(tmp_path, model_ok, load_error)
    hooks, plain = summary.strategies
    assert (hooks.state, hooks.disabled_reason) == ("disabled", reason)
    assert hooks.calls == 0 and "on_start" not in Hooks.log and "shutdown" in Hooks.log
    assert plain.state == "stopped" and summary.fills == 1
    recorded = json.loads(queries.run(runner.recorder.engine, runner.run_id).summary)
    assert recorded["strategies"]["hooks"]["disabled_reason"] == reason


# -- signal validators ---------------------------------------------------------------------------

def test_validators_are_chosen_per_entry(tmp_path):
    (tmp_path / "s.py").write_text(textwrap.dedent('''
        from strategies.base import StrategyInterface
        class BadBracket(StrategyInterface):
            def on_tick(self, market_data):
                return [{"symbol": "AAA", "action": "BUY", "quantity": 1, "stop_loss": 10_000}]
    '''))
    strategies = (
        "  - {file: s.py, name: checked}\n"
        "  - {file: s.py, name: unchecked, validator: none}\n"
    )
    runner, summary = run_config(tmp_path, strategies, market_data="{symbols: [AAA]}", run="{max_ticks: 3}")
    signals = queries.signals(runner.recorder.engine, runner.run_id)
    checked = [s for s in signals if s.strategy == "checked"]
    unchecked = [s for s in signals if s.strategy == "unchecked"]
    assert len(checked) == len(unchecked) == 3
    assert all(s.rejection.startswith("stop_loss 10000 must be below the entry price") and s.order_id is None for s in checked)
    # Unchecked signals became orders, which the broker then rejected for the same reason.
    assert all(s.order_id is not None and s.rejection.startswith("stop_loss 10000 must be below") for s in unchecked)


def test_an_unknown_validator_is_a_config_error():
    config = load_config_text(config_text("  - {type: rsi, validator: strict}\n"))
    with pytest.raises(ConfigError, match=r"strategies\[0\].validator: unknown validator 'strict'; known validators: none, standard"):
        check_config(config)


# -- counters and the CLI ------------------------------------------------------------------------

def test_per_strategy_counters_are_kept_with_the_run(tmp_path):
    runner, summary = run_config(tmp_path, "  - {type: ma_crossover, params: {fast: 3, slow: 8}}\n", run="{max_ticks: 200}")
    recorded = json.loads(queries.run(runner.recorder.engine, runner.run_id).summary)["strategies"]["ma_crossover"]
    ours = summary.strategies[0]
    assert recorded["calls"] == ours.calls == 200
    assert (recorded["signals"], recorded["accepted"], recorded["rejected"], recorded["errors"]) == (
        ours.signals, ours.accepted, ours.rejected, ours.errors)
    assert ours.signals > 0


def test_strategies_list_and_show(tmp_path):
    cli = CliRunner()
    listed = json.loads(cli.invoke(app, ["strategies", "list", "--json"]).stdout)
    names = [row["name"] for row in listed]
    assert {"ma_crossover", "buy_and_hold", "rsi", "fib_rsi", "ml_model", "hybrid"} <= set(names)
    assert {row["name"]: row["extra"] for row in listed}["ml_model"] == "ml"
    shown = json.loads(cli.invoke(app, ["strategies", "show", "ma_crossover", "--json"]).stdout)
    assert [p["name"] for p in shown["params"]] == ["fast", "slow", "quantity"]
    assert shown["params"][0] == {"name": "fast", "type": "int", "default": 10, "bounds": "> 0",
                                  "description": "Bars in the fast simple moving average."}
    text = cli.invoke(app, ["strategies", "show", "ma_crossover"], env={"COLUMNS": "200"}).stdout
    assert "Bars in the slow simple moving average." in text
    missing = cli.invoke(app, ["strategies", "show", "nope"])
    assert missing.exit_code == 2 and "unknown strategy 'nope'" in missing.stderr


def test_a_strategy_class_must_implement_on_tick(tmp_path):
    (tmp_path / "s.py").write_text(
        "from strategies.base import StrategyInterface\nclass Half(StrategyInterface):\n    pass\n"
    )
    with pytest.raises(StrategyLoadError, match="Half in .* does not implement on_tick"):
        registry.class_from_file(tmp_path / "s.py", "Half")


# -- hostile strategies and plugins ---------------------------------------------------------------

def test_a_signal_refused_before_it_is_an_order_is_reported_as_order_zero(tmp_path):
    told = []

    class Asks(StrategyInterface):
        def on_tick(self, market_data):
            return [{"symbol": "AAA", "action": "BUY", "quantity": 1, "order_type": "LIMIT"}]

        def on_order_rejected(self, order):
            told.append((order.id, order.status.value, order.reason))

    steps = [[bar("AAA", m, 10)] for m in range(2)]
    assemble(feed=ListFeed(steps), broker=_broker(), database=f"sqlite:///{tmp_path / 'z.db'}",
             strategies=[StrategySetup("asks", Asks)]).run()
    assert told == [(0, "REJECTED", "limit_price is required for a LIMIT order")] * 2


def test_a_hook_that_always_fails_disables_the_strategy_even_when_others_succeed(tmp_path):
    class BadFills(StrategyInterface):
        def on_tick(self, market_data):
            return [{"symbol": "AAA", "action": "BUY", "quantity": 1}]

        def on_fill(self, fill):
            raise RuntimeError("cannot handle fills")

    steps = [[bar("AAA", m, 10)] for m in range(6)]
    runner = assemble(feed=ListFeed(steps), broker=_broker(), database=f"sqlite:///{tmp_path / 'f.db'}",
                      strategies=[StrategySetup("bad", BadFills, max_errors=2)])
    summary = runner.run()
    assert summary.strategies[0].state == "disabled"
    assert summary.strategies[0].disabled_reason == "2 consecutive errors in on_fill, last RuntimeError: cannot handle fills"


def test_a_raising_validator_refuses_the_signal_and_the_run_goes_on(tmp_path, monkeypatch):
    import runner.risk as risk

    def broken(signal, last_price):
        raise ZeroDivisionError("oops")

    monkeypatch.setitem(risk.BUILT_IN_VALIDATORS, "broken", broken)
    runner, summary = run_config(tmp_path, "  - {type: buy_and_hold, validator: broken}\n", run="{max_ticks: 3}")
    assert summary.status == "completed"
    rejections = {s.rejection for s in queries.signals(runner.recorder.engine, runner.run_id)}
    assert rejections == {"the signal validator raised ZeroDivisionError: oops"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"symbol": "AAA", "action": "BUY", "quantity": "1e999999999"}, "quantity must be below 1e15"),
    ({"symbol": "AAA", "action": "BUY", "quantity": 1, "order_type": "LIMIT", "limit_price": float("nan")}, "limit_price must be a number > 0, got nan"),
    ({"symbol": "AAA", "action": "BUY", "order_type": 0}, "order_type must be one of MARKET"),
])
def test_outlandish_signal_values_are_refused_not_fatal(raw, message):
    from runner.signals import SignalError, coerce_signal

    with pytest.raises(SignalError, match=message):
        coerce_signal(raw)


def test_bad_cancel_and_modify_requests_fail_the_hook_not_the_run(tmp_path):
    class Clumsy(StrategyInterface):
        def on_tick(self, market_data):
            self.context.modify(1, limit_price=float("nan"))

    class Clumsier(StrategyInterface):
        def on_tick(self, market_data):
            self.context.cancel([1])

    steps = [[bar("AAA", m, 10)] for m in range(3)]
    runner = assemble(feed=ListFeed(steps), broker=_broker(), database=f"sqlite:///{tmp_path / 'c.db'}",
                      strategies=[StrategySetup("a", Clumsy), StrategySetup("b", Clumsier)])
    summary = runner.run()
    assert summary.status == "completed" and [s.errors for s in summary.strategies] == [3, 3]
    errors = queries.strategy_errors(runner.recorder.engine, runner.run_id)
    assert {(e.strategy, e.message) for e in errors} == {
        ("a", "limit_price must be a number > 0, got nan"), ("b", "an order id is an int, got [1]"),
    }


def test_a_strategy_file_can_import_the_modules_beside_it(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "shared_rules.py").write_text("EVERY = 25\n")
    (tmp_path / "plugins" / "uses.py").write_text(STRATEGY_FILE.replace(
        "every: int = Field(10, gt=0)", "every: int = Field(__import__('shared_rules').EVERY, gt=0)"))
    _, summary = run_config(tmp_path, "  - {file: plugins/uses.py}\n")
    assert summary.fills == 2  # bought on bars 25 and 50


def test_a_file_that_is_not_python_is_refused(tmp_path):
    (tmp_path / "s.txt").write_text(STRATEGY_FILE)
    with pytest.raises(StrategyLoadError, match="a strategy file must be a .py file, got .*s.txt"):
        registry.class_from_file(tmp_path / "s.txt")


def test_a_module_that_re_exports_its_strategy_is_found(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "impl.py").write_text(STRATEGY_FILE)
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg.impl import EveryTenth\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.class_from_module("pkg").__name__ == "EveryTenth"


def test_a_broken_plugin_is_reported_not_a_traceback(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('half installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="broken", value="broken_plugin:Thing", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    listed = CliRunner().invoke(app, ["strategies", "list", "--json"])
    assert listed.exit_code == 0
    [row] = [r for r in json.loads(listed.stdout) if r["name"] == "broken"]
    assert "cannot be imported" in row["description"] and "RuntimeError: half installed" in row["description"]


def test_allocations_count_only_the_strategies_the_environment_enables(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNER_STRATEGIES_ENABLED", "a,b")
    strategies = (
        "  - {type: buy_and_hold, name: a, allocation: 60000}\n"
        "  - {type: buy_and_hold, name: b, allocation: 60000, enabled: false}\n"
    )
    config = load_config_text(config_text(strategies), str(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError, match="the allocations add up to 120000, more than broker.starting_cash 100000"):
        check_config(config)
