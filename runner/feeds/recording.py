"""Recording the bars a live session passed on, as a file the replay feed reads back.

The rows are one long table `timestamp,symbol,open,high,low,close,volume` (ISO 8601 UTC times,
numbers as the exchange sent them), replayed with `source: csv` (or `parquet`) and the same
`symbols` and `interval`. A CSV recording is appended and flushed at every step, so a crash
leaves a readable file holding every bar stepped. A Parquet recording is journalled the same way
to `<file>.journal.csv` and written as Parquet when the run ends; after a crash the journal is
the recording (replay it with `source: csv`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from runner.domain import MarketData
from runner.errors import ConfigError

COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


class BarRecording:
    """Appends each step's bars to `path` (.csv or .parquet), created with the first bars.

    Raises:
        ConfigError: the file (or its journal) exists already, or Parquet lacks pyarrow.
    """

    key = "recording"  # in the run's snapshot and summary

    def __init__(self, path: Path):
        self.path = path
        self.parquet = path.suffix.lower() == ".parquet"
        self.journal = path.with_name(path.name + ".journal.csv") if self.parquet else path
        for existing in {path, self.journal}:
            if existing.exists():
                raise ConfigError(
                    f"market_data.record_to: {existing} exists already; choose another name "
                    "(a {run_id} in the name makes one per run) or move the old recording away"
                )
        if self.parquet:
            try:
                import pyarrow  # noqa: F401 - checked now, used at the end of the run
            except ImportError:
                raise ConfigError("market_data.record_to: a .parquet recording needs pyarrow: pip install 'runner[parquet]'") from None
        self._file = None  # created with the first bars, so a run that fails to start leaves none
        self._writer = None
        self.bars = 0

    def write(self, market: MarketData) -> None:
        """Append the bars of one step and flush them to the operating system."""
        if self._file is None:
            self._create()
        stamp = market.timestamp.isoformat()
        for bar in market.values():
            self._writer.writerow((stamp, bar.symbol, bar.open, bar.high, bar.low, bar.close, bar.volume))
        self._file.flush()
        self.bars += len(market)

    def report(self) -> dict[str, object]:
        return {"path": str(self.path), "bars": self.bars}

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.journal.open("x", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)

    def close(self) -> None:
        """Close the file; a Parquet recording is written from its journal, which then goes."""
        if self._file is None or self._file.closed:
            return
        self._file.close()
        if self.parquet:
            import pyarrow.csv
            import pyarrow.parquet

            options = pyarrow.csv.ConvertOptions(column_types={"timestamp": pyarrow.string(), "symbol": pyarrow.string()})
            table = pyarrow.csv.read_csv(self.journal, convert_options=options)
            pyarrow.parquet.write_table(table, self.path)
            self.journal.unlink()
