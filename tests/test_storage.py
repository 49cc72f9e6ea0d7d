"""Opening databases: old files are brought up to date, bad URLs are config errors."""

import sqlite3

import pytest

from runner.errors import ConfigError
from runner.storage.db import open_database


def test_a_database_from_an_earlier_version_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "create table orders (run_id varchar not null, order_id integer not null, strategy varchar not null,"
            " symbol varchar not null, side varchar not null, order_type varchar not null, quantity varchar not null,"
            " status varchar not null, filled_quantity varchar not null, average_price varchar, reason varchar not null,"
            " created_at datetime not null, updated_at datetime not null, primary key (run_id, order_id))"
        )
        db.execute(
            "insert into orders values ('old', 1, 's', 'AAA', 'BUY', 'MARKET', '1', 'FILLED', '1', '10', '',"
            " '2024-01-02 00:00:00', '2024-01-02 00:01:00')"
        )
    open_database(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        row = db.execute("select order_id, time_in_force, limit_price, parent_id from orders").fetchone()
    assert row == (1, "GTC", None, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "storage.url: not a database URL: 'not a url'"),
        ("mysql://host/db", "storage.url: unsupported database 'mysql'; supported: sqlite, postgresql"),
    ],
)
def test_bad_urls_are_config_errors(url, message):
    with pytest.raises(ConfigError) as error:
        open_database(url)
    assert message in str(error.value)
