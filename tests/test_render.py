"""What the terminal shows: the progress line and the summary, rendered to text."""

from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console

from cli.render import progress_line, summary
from runner.snapshot import RunSnapshot, StrategySnapshot


def snap(**changes) -> RunSnapshot:
    base = dict(
        steps=250, timestamp=datetime(2024, 3, 4, 15, 0, tzinfo=UTC), cash=Decimal(900),
        equity=Decimal("1012.5"), starting_cash=Decimal(1000), orders=4, fills=3, rejections=1,
        strategies=(StrategySnapshot("ma", "stopped", 250, 4, 3, 1, 0, Decimal("12.5")),),
        run_id="r-1", status="completed", elapsed_seconds=5.0,
    )
    base.update(changes)
    return RunSnapshot(**base)


def text_of(renderable) -> str:
    console = Console(record=True, width=140)
    console.print(renderable)
    return console.export_text()


def test_progress_shows_share_consumed_and_eta_when_the_data_length_is_known():
    line = text_of(progress_line(snap(total_steps=1000)))
    assert "25%" in line and "250/1,000" in line
    assert "ETA 0:15" in line  # 750 steps left at 50 steps/s
    assert "equity 1,012.50 (+12.50)" in line
    assert "rejected 1" in line


def test_progress_without_a_known_end_counts_steps():
    line = text_of(progress_line(snap(total_steps=None)))
    assert "step 250" in line and "ETA" not in line


def test_summary_names_the_run_its_totals_and_each_strategy():
    text = text_of(summary(snap(skipped_rows=3)))
    for words in ("r-1", "completed", "final equity", "1,012.50", "skipped rows", "3 bad data rows", "ma", "+12.50"):
        assert words in text


def test_the_dashboard_shows_strategies_timing_positions_and_the_latest_orders():
    from cli.render import dashboard
    from runner.domain import Order, OrderStatus, OrderType, Position, Side

    t = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
    orders = tuple(
        Order(i, "ma", "AAA", Side.BUY, Decimal(5), OrderType.MARKET, t, status, reason=reason)
        for i, status, reason in [(1, OrderStatus.NEW, ""), (1, OrderStatus.FILLED, ""),
                                  (2, OrderStatus.REJECTED, "insufficient cash: needs about 500.00")]
    )
    strategy = StrategySnapshot(
        "ma", "running", 250, 4, 3, 1, 2, Decimal("12.5"), mean_ms=0.25, p95_ms=1.25, max_ms=3.5,
        overruns=17, queue_depth=1,
    )
    text = text_of(dashboard(snap(
        total_steps=1000, strategies=(strategy,), recent_orders=orders,
        open_positions=(Position("ma", "AAA", Decimal(5), Decimal(100), last_price=Decimal(101)),),
    )))
    assert "25%" in text and "ETA 0:15" in text
    assert "0.25/1.25/3.50" in text  # mean, p95 and slowest on_tick, in ms
    assert "overruns" in text and "17" in text and "queue" in text
    assert "+5.00" in text  # unrealised P&L of the open position
    assert "insufficient cash: needs about 500.00" in text and "REJECTED" in text
    assert text.count("FILLED") == 1 and "NEW" not in text  # one row per order, its latest state


def test_the_summary_gives_each_strategy_its_timing_overruns_and_queue():
    strategy = StrategySnapshot(
        "slow", "disabled", 40, 9, 9, 0, 1, Decimal("-3"), mean_ms=101.5, p95_ms=104.25, max_ms=612.0,
        overruns=31, queue_depth=2, disabled_reason="stuck: on_tick did not return within 0.5 s",
    )
    text = text_of(summary(snap(strategies=(strategy,))))
    header = next(line for line in text.splitlines() if "strategy" in line and "calls" in line)
    assert all(word in header for word in ("ms mean/p95/max", "overruns", "queue"))
    row = next(line for line in text.splitlines() if line.lstrip().startswith("slow"))
    assert "101.50/104.25/612.00" in row and " 31 " in row and " 2 " in row
    assert "slow disabled: stuck: on_tick did not return within 0.5 s" in text


def test_the_summary_and_the_dashboard_show_policy_blocks_and_halted_strategies():
    from cli.render import dashboard

    resumes = datetime(2024, 3, 5, tzinfo=UTC)
    halted = StrategySnapshot("ma", "running", 250, 4, 3, 1, 0, Decimal("-60"), halted_until=resumes)
    state = snap(strategies=(halted,), policy_blocks=(("max_daily_loss", 2), ("regime", 5)))
    text = text_of(summary(state))
    assert "policy blocks  max_daily_loss 2, regime 5" in text
    assert "ma halted by policy.max_daily_loss_per_strategy until 2024-03-05 00:00 UTC" in text
    assert "halted" in text_of(dashboard(state))
