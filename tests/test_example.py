"""run_strategy_example.py runs as written and records its run."""

import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_runs_and_records(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_strategy_example.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "completed, 400 bars" in result.stdout
    assert "ma_5_20" in result.stdout and "hold_msft" in result.stdout
    with sqlite3.connect(tmp_path / "runs" / "example.db") as db:
        (status, ticks), = db.execute("select status, ticks from runs").fetchall()
        fills = db.execute("select count(*) from fills").fetchone()[0]
    assert (status, ticks) == ("completed", 400)
    assert fills > 0
