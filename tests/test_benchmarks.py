"""The benchmark scripts run at a tiny size and print one JSON object with their figures.

Smoke tests only: nothing here checks how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("benchmark-data")


def run_script(name: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args, "--json"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout holds the one JSON object and nothing else
    assert set(result["machine"]) >= {"cpus", "cpu", "python", "date"}
    for target in result["targets"]:
        assert set(target) == {"figure", "value", "target", "met"}
    return result


def test_replay(data):
    result = run_script("replay.py", "--rows", "2000", "--data", str(data))
    assert result["rows"] == 2000
    assert set(result) >= {"wall_seconds", "bars_per_second", "loop_seconds", "peak_rss_mb", "rows_written", "fills"}
    assert result["fills"] == result["buys"] + result["sells"] > 0
    assert [t["figure"] for t in result["targets"]] == ["wall_seconds", "bars_per_second", "peak_rss_mb"]
    assert result["targets"][0]["met"] is None, "the wall-time target is set for 1,000,000 rows only"


def test_peers(data):
    result = run_script("peers.py", "--rows", "2000", "--data", str(data))
    assert result["skipped"] == {}, "the dev extra installs both peers"
    assert set(result["engines"]) == {"runner", "backtrader", "backtesting"}
    for engine in result["engines"].values():
        assert set(engine) >= {"wall_seconds", "bars_per_second", "peak_rss_mb", "buys", "sells", "open_at_end"}
    for ratio in result["ratios"].values():
        assert set(ratio) >= {"bars_per_second", "peak_rss", "trades"}
        assert ratio["trades"] == "agree", ratio


def test_fanout():
    result = run_script("fanout.py", "--steps", "5")
    assert set(result["runs"]) == {"inline", "threaded"}
    assert len(result["strategies"]) == 10 and result["symbols"] == 50
    for run in result["runs"].values():
        assert run["steps"] == 5
        assert set(run) >= {"p50_ms", "p99_ms", "max_ms", "steps_per_second", "peak_rss_mb"}
    assert result["runs"]["inline"]["fills"] == result["runs"]["threaded"]["fills"]


def test_startup():
    result = run_script("startup.py", "--repeat", "1")
    assert [c["command"] for c in result["commands"]][:2] == ["runner --help", "runner validate configs/default.yaml"]
    assert set(result["help_imports"]) >= {"pandas", "sqlalchemy"}
    assert not any(result["help_imports"].values())  # served from the cache: nothing heavy
    assert result["help_import_ms_by_package"]


def test_soak():
    result = run_script("soak.py", "--steps", "20000", "--every", "0.2")
    assert result["steps"] == 20000
    assert set(result) >= {"rss_after_warmup_mb", "rss_growth_after_warmup_mb", "threads", "open_files", "db_mb", "rows"}
    assert result["rows"]["fills"] > 0 and result["steady_samples"] >= 5
    assert [t["figure"] for t in result["targets"]] == [
        "rss_growth_after_warmup_mb", "thread_counts_seen", "open_file_counts_seen",
    ]


def test_sweep(data):
    result = run_script(
        "sweep.py", "--rows", "1000", "--data", str(data), "--fast", "5", "--slow", "50,60", "--executors", "local:1,local:2",
    )
    assert [(s["executor"], s["workers"], s["runs"]) for s in result["sweeps"]] == [("local", 1, 2), ("local", 2, 2)]
    for sweep in result["sweeps"]:
        assert set(sweep) >= {"wall_seconds", "replays_per_minute", "speed_up", "fills"}
    assert result["sweeps"][0]["speed_up"] == 1.0
    assert result["sweeps"][0]["fills"] == result["sweeps"][1]["fills"] > 0
