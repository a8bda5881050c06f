"""Rows a bot inserts with its own SQL (docs/signals.md, way 3), through the real CLI on
SQLite and PostgreSQL: values no Python datetime holds (PostgreSQL's ±infinity), a status
written in lower case, times before any exchange history. Each odd row ends REJECTED with its
reason (or, for 'new', is taken as NEW), the other rows go on, and the export still works."""

import csv
import io

import sqlalchemy as sa

from conftest import Cli
from shared.database import make_engine

INSERT = ("INSERT INTO signal (signal_id, time, symbol, side, take_profit, stop_loss, status, received_at)"
          " VALUES (:id, :time, 'ETHBTC', 'LONG', '0.095', '0.085', :status, :received_at)")
GOOD_TIME = "2018-01-20T12:00:00Z"


def insert(database_url: str, *rows: dict[str, str]) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            for row in rows:
                values = {"time": GOOD_TIME, "status": "NEW", "received_at": "2024-05-01T12:00:00Z"} | row
                connection.execute(sa.text(INSERT), values)
    finally:
        engine.dispose()


def exported(cli: Cli) -> dict[str, dict[str, str]]:
    result = cli("signals", "export")
    assert "Traceback" not in result.stderr
    return {row["id"]: row for row in csv.DictReader(io.StringIO(result.stdout))}


def test_odd_direct_rows_are_rejected_and_the_others_go_on(cli: Cli, database_url: str, database_kind: str) -> None:
    insert(database_url,
           {"id": "infinite-time", "time": "infinity"},
           {"id": "minus-infinite-time", "time": "-infinity"},
           {"id": "infinite-received", "received_at": "infinity"},
           {"id": "minus-infinite-received", "received_at": "-infinity"},
           {"id": "year-1", "time": "0001-01-01T00:00:00Z"},
           {"id": "epoch", "time": "1970-01-01T00:00:00Z"},
           {"id": "lower-case", "status": "new"},
           {"id": "mixed-case", "status": "New"},
           {"id": "good"})
    before = exported(cli)  # before the worker has seen them: the export works, odd times empty
    assert {key: row["status"] for key, row in before.items()} == {key: (
        "new" if key == "lower-case" else "New" if key == "mixed-case" else "NEW") for key in before}
    if database_kind == "postgres":
        assert before["infinite-time"]["time"] == "" and before["infinite-received"]["received_at"] == ""
    result = cli("worker", "--once", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    signals = exported(cli)
    time_reason = "time must be ISO 8601"  # 'infinity' is not a time, on either database
    expected = {
        "infinite-time": ("REJECTED", time_reason), "minus-infinite-time": ("REJECTED", time_reason),
        "infinite-received": ("REJECTED", "received_at is not a usable time (got 'infinity')"),
        "minus-infinite-received": ("REJECTED", "received_at is not a usable time (got '-infinity')"),
        "year-1": ("REJECTED", "time is too old (0001-01-01T00:00:00+00:00 is before 2017-01-01"),
        "epoch": ("REJECTED", "time is too old (1970-01-01T00:00:00+00:00 is before 2017-01-01"),
        "lower-case": ("ACCEPTED", ""), "mixed-case": ("ACCEPTED", ""), "good": ("ACCEPTED", ""),
    }
    assert {key: (row["status"], row["reason"][:len(expected[key][1])]) for key, row in signals.items()} == expected
    trades = {row["signal_id"] for row in csv.DictReader(io.StringIO(cli("trades", "export").stdout))}
    assert trades == {"lower-case", "mixed-case", "good"}
    assert cli("worker", "--once").returncode == 0  # and the next pass is clean too
