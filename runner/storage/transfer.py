"""Copying recorded runs from one database to another: a SQLite file's runs into PostgreSQL
(`runner db migrate-from`), or between any two databases the runner supports.

Generic over the schema: every table with a `run_id` column is copied run by run, and every
other table (such as the policy overrides) row by row where the target lacks its key. Only the
columns both databases have are copied, so a file made by an older runner copies too (the
target's defaults fill the rest). A run is copied in one transaction, so it lands whole or not
at all; a run the target already has (by id) is left as it is, so copying again is safe.
Row ids that only order a table (`order_events.id`, `signals.id`...) are given anew by the
target, in the source's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, Table, inspect, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from runner.storage.models import RunRecord, SchemaVersionRecord

CHUNK_ROWS = 5_000  # rows read and written at a time, so a long run does not sit in memory


@dataclass
class Transfer:
    """What a copy did: the runs copied (with their row counts), those the target already had,
    and how many rows of each other table it offered (the target keeps those it had)."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    shared_rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "copied": [{"run_id": run_id, "rows": rows} for run_id, rows in self.copied.items()],
            "skipped": self.skipped, "other_rows": self.shared_rows,
        }


def copy_runs(source: Engine, target: Engine, on_run: Callable[[str], None] | None = None) -> Transfer:
    """Copy every run of `source` that `target` lacks, then the other tables' missing rows.

    `target` must be up to date (opened with `open_database`); `on_run` is called with each
    run id before it is copied (for progress).

    Raises:
        SQLAlchemyError: a database failed; the runs copied before stay copied.
    """
    columns = _shared_columns(source)
    run_tables = [t for t in SQLModel.metadata.sorted_tables if "run_id" in t.c and t.name in columns]
    result = Transfer()
    with source.connect() as reader:
        run_ids = list(reader.execute(select(RunRecord.id).order_by(RunRecord.started_at, RunRecord.id)).scalars())
        with target.connect() as writer:
            present = set(writer.execute(select(RunRecord.id)).scalars())
        for run_id in run_ids:
            if run_id in present:
                result.skipped.append(run_id)
                continue
            if on_run is not None:
                on_run(run_id)
            with target.begin() as writer:
                rows = _copy(reader, writer, RunRecord.__table__, columns, RunRecord.id == run_id)
                for table in run_tables:
                    rows += _copy(reader, writer, table, columns, table.c.run_id == run_id)
            result.copied[run_id] = rows
        shared = [
            t for t in SQLModel.metadata.sorted_tables
            if "run_id" not in t.c and t.name in columns
            and t.name not in (RunRecord.__tablename__, SchemaVersionRecord.__tablename__)
        ]
        with target.begin() as writer:
            for table in shared:
                result.shared_rows[table.name] = _copy(reader, writer, table, columns, None, keep_existing=True)
    return result


def _shared_columns(source: Engine) -> dict[str, list[str]]:
    """The columns of each runner table the source has, as the runner declares them."""
    found = inspect(source).get_multi_columns()
    have = {name: {column["name"] for column in cols} for (_, name), cols in found.items()}
    return {
        table.name: [c.name for c in table.columns if c.name in have[table.name] and not _is_row_number(table, c.name)]
        for table in SQLModel.metadata.sorted_tables if table.name in have
    }


def _is_row_number(table: Table, name: str) -> bool:
    """A surrogate key the target numbers itself: the autoincrement id of a table with run rows."""
    return "run_id" in table.c and table.autoincrement_column is not None and table.autoincrement_column.name == name


def _copy(reader: Connection, writer: Connection, table: Table, columns: dict[str, list[str]], where,
          keep_existing: bool = False) -> int:
    names = columns[table.name]
    query = select(*(table.c[name] for name in names)).order_by(*table.primary_key.columns)
    if where is not None:
        query = query.where(where)
    statement = _insert(writer, table) if keep_existing else insert(table)
    count = 0
    for chunk in reader.execution_options(yield_per=CHUNK_ROWS).execute(query).partitions():
        writer.execute(statement, [dict(zip(names, row)) for row in chunk])
        count += len(chunk)
    return count


def _insert(writer: Connection, table: Table):
    """An INSERT that leaves a row the target already has (by primary key) as it is."""
    module = postgresql if writer.dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()
