"""`signalproof signals import` through the real CLI, on SQLite and PostgreSQL: a file imported by
mistake is refused whole (exit 2, one line, nothing stored); a long import commits in batches,
so a concurrent `settings set` gets its turn instead of "database is locked"."""

import base64
import csv
import io
import json
import random
import re
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from conftest import Cli
from shared import events
from shared.database import insert_missing, make_engine, transaction
from shared.models import Event, Signal
from shared.signal_files import RawRow, read_rows
from shared.signals import SIGNAL_FIELDS, ValidSignal
from worker.intake import INSERT_BATCH, IntakeReport, _row_values, received, rejected, store_rows

HEADER = ",".join(SIGNAL_FIELDS)
VALID = "s1,2018-01-20T12:00:00Z,ETHBTC,LONG,SPOT,,0.095,0.085,,,,"
INVALID = "s2,2018-01-20T12:00:00Z,ETHBTC,SIDEWAYS,SPOT,,0.095,0.085,,,,"
PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" * 20
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def stored_signals(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM signal")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("content", "reason"), [
    pytest.param(PASSWD, "not a signal file: the first line must be JSON or a CSV header", id="/etc/passwd"),
    pytest.param(PNG, "not UTF-8 text", id="a PNG"),
    pytest.param("name,email,city\nann,ann@example.com,Oslo\nbob,bob@example.com,Rome\n",
                 "not a signal file", id="a CSV of something else"),
    pytest.param("foo,bar\n1,2\n", "not a signal file", id="unknown columns only"),
    pytest.param(f"{HEADER}\n{INVALID}\n{INVALID.replace('s2', 's3')}\n",
                 "not one of its 2 record(s) is a valid signal (line 2: side must be LONG", id="no valid row"),
    pytest.param('{"name": "ann"}\n{"name": "bob"}\n', "not one of its 2 record(s) is a valid signal (line 1: id is required",
                 id="JSON lines of something else"),
    # Beyond the first chunk the reader holds (1 MiB): the whole file is checked before anything is stored.
    pytest.param((f"{HEADER}\n" + f"{VALID}\n" * 30_000).encode() + b"\xff\n", "not UTF-8 text",
                 id="not UTF-8 at the end of a large file"),
    pytest.param(f"{HEADER}\n" + "".join(INVALID.replace("s2", f"n{n}") + "\n" for n in range(30_000)),
                 "not one of its 30000 record(s) is a valid signal (line 2: side must be LONG", id="no valid row in 30,000"),
])
def test_a_wrong_file_is_refused_whole(cli: Cli, database_url: str, tmp_path: Path, content: str | bytes,
                                       reason: str) -> None:
    path = tmp_path / "wrong"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli("signals", "import", str(path), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert reason in result.stderr and "Traceback" not in result.stderr
    assert stored_signals(database_url) == 0


def test_a_file_with_some_valid_rows_is_imported_with_its_rejections(cli: Cli, database_url: str,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(f"{HEADER}\n{VALID}\n{INVALID}\n")
    result = cli("signals", "import", str(path))
    assert result.stdout.splitlines() == ["accepted 1, rejected 1, duplicate 0",
                                          "  line 3: side must be LONG, SHORT, BUY or SELL (got 'SIDEWAYS')"]
    assert stored_signals(database_url) == 2


def test_a_file_can_come_through_standard_input(cli: Cli, database_url: str) -> None:
    """`docker compose exec -T worker signalproof signals import /dev/stdin < file` (README): a pipe
    cannot be read twice, so it is copied aside first; a wrong one is still refused whole."""
    for content, stored in ((f"{HEADER}\n{VALID}\n{INVALID}\n", 2), (PASSWD, 2)):
        result = subprocess.run(cli.command("signals", "import", "/dev/stdin"), cwd=cli.cwd, env=cli.env, input=content,
                                capture_output=True, text=True, timeout=120)
        if content == PASSWD:
            assert result.returncode == 2 and "/dev/stdin refused: not a signal file" in result.stderr
        else:
            assert result.stdout.splitlines()[0] == "accepted 1, rejected 1, duplicate 0", result.stderr
        assert stored_signals(database_url) == stored


def test_a_long_import_lets_a_concurrent_settings_change_through(cli: Cli, database_url: str, database_kind: str,
                                                                 tmp_path: Path) -> None:
    if database_kind != "sqlite":
        pytest.skip("the write lock this is about is SQLite's")
    rows = 25_000
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "\n" + "".join(f"big-{n},2018-01-20T12:00:00Z,ETHBTC,LONG,SPOT,,0.095,0.085,,,,\n"
                                            for n in range(rows)))
    started = time.monotonic()
    importing = subprocess.Popen(cli.command("signals", "import", str(path)), cwd=cli.cwd, env=cli.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while stored_signals(database_url) == 0:  # the first batch is committed: the import is writing
            assert importing.poll() is None, importing.communicate()
            time.sleep(0.05)
        changed = cli("settings", "set", "stake_usd", "250", check=False)
        changed_at = time.monotonic()
        still_importing = importing.poll() is None
        out, err = importing.communicate(timeout=300)
    finally:
        if importing.poll() is None:
            importing.kill()
            importing.wait()
    assert changed.returncode == 0, changed.stderr
    assert still_importing, f"the import ended first ({changed_at - started:.1f} s): the test proves nothing"
    assert importing.returncode == 0, err
    assert out.splitlines()[0] == f"accepted {rows}, rejected 0, duplicate 0"
    assert stored_signals(database_url) == rows
    assert "250" in cli("settings", "show").stdout
    # Re-running the same import changes nothing: every row is a duplicate.
    assert cli("signals", "import", str(path)).stdout.splitlines()[0] == f"accepted 0, rejected 0, duplicate {rows}"


# --- the chunked, bulk import stores exactly what the import stored before ------------------------------

def import_as_before(engine: Engine, text: str, *, source: str, received_at: datetime) -> list[str]:
    """`signals import` as it was before it read files in chunks and wrote in bulk (commit 4920064):
    the whole file read at once, stored 1000 records per transaction by the previous `store_rows`
    (kept here verbatim: `insert_missing` per 500 rows, the ledger appended, received_seq updated)."""
    report = IntakeReport()
    rows = read_rows(text)
    for start in range(0, len(rows), 1000):
        with transaction(engine) as session:
            part = store_rows_before(rows[start:start + 1000], default_source=source, received_at=received_at,
                                     actor="import", session=session)
        report.accepted, report.rejected = report.accepted + part.accepted, report.rejected + part.rejected
        report.duplicate += part.duplicate
        report.rejections += part.rejections
    return [report.summary(), *(f"  line {line}: {reason}" for line, reason in report.rejections)]


def store_rows_before(rows: list[RawRow], *, session: Session, default_source: str, received_at: datetime,
                      actor: str) -> IntakeReport:
    report = IntakeReport()
    prepared: dict[tuple[str, str], tuple[RawRow, dict[str, Any], ValidSignal | None, str | None]] = {}
    for row in rows:
        values, signal, reason = _row_values(row, default_source=default_source, received_at=received_at)
        key = (values["source"], values["signal_id"])
        if key in prepared:
            report.duplicate += 1
            continue
        prepared[key] = (row, {**values, "received_at": received_at, "processed_at": received_at if reason else None},
                         signal, reason)
    items = list(prepared.items())
    table = Signal.__table__  # type: ignore[attr-defined]
    for start in range(0, len(items), INSERT_BATCH):
        batch = items[start:start + INSERT_BATCH]
        returned = insert_missing(table, [values for _, (_, values, _, _) in batch],
                                  returning=(table.c.source, table.c.signal_id, table.c.id), session=session)
        inserted = {(source, signal_id): pk for source, signal_id, pk in returned}
        changes: list[events.Change] = []
        for key, (row, values, signal, reason) in batch:
            if key not in inserted:
                report.duplicate += 1
            elif signal is not None:
                report.accepted += 1
                changes.append(received(signal, inserted[key], received_at=received_at, actor=actor))
            else:
                assert reason is not None
                report.rejected += 1
                report.rejections.append((row.line, reason))
                changes.append(rejected(key[0], key[1], inserted[key], reason, values.get("raw"),
                                        received_at=received_at, at=received_at, actor=actor))
        entries = events.record_many(changes, session=session)
        seqs = [{"pk": change.signal_pk, "seq": entry.seq} for change, entry in zip(changes, entries)
                if change.kind == "signal.received"]
        if seqs:
            session.execute(sa.update(table).where(table.c.id == sa.bindparam("pk"))
                            .values(received_seq=sa.bindparam("seq")), seqs)
    return report


def signal_file(file_format: str, *, records: int = 2600, seed: int = 12) -> str:
    """A file with what an import meets: valid signals of every shape, ids repeated inside the file
    (also across its batches of 1000) and already stored (SEEDED), invalid rows of several kinds,
    unreadable records, and 600 invalid rows in a row (a group of 500 without one valid row)."""
    rng = random.Random(seed)
    records_: list[dict[str, str] | None] = []  # None: an unreadable record
    for number in range(records):
        price = rng.choice([0.0000051, 0.052, 3012.5, 61000])
        way = 1 if rng.random() < 0.6 else -1
        row = {
            "id": f"r{number}", "time": f"2018-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T12:{rng.randint(10, 59)}:00Z",
            "symbol": rng.choice(["ETHBTC", "eth/btc", "XRPUSDT"]), "side": "LONG" if way == 1 else "SHORT",
            "market": rng.choice(["SPOT", "", "spot"]), "entry": rng.choice([f"{price:.8f}", ""]),
            "take_profit": ";".join(f"{price * (1 + way * 0.02 * k):.8f}" for k in range(1, rng.randint(2, 4))),
            "stop_loss": f"{price * (1 - way * 0.03):.8f}", "leverage": "", "confidence": rng.choice(["", "0.7", "1"]),
            "source": rng.choice(["", "", "bot-b"]),
            "note": rng.choice(["", "plain", 'quoted "x", comma', "é ünïcode", "two\nlines"]),
        }
        if 1000 <= number < 1600:  # the long invalid stretch
            row["side"] = "SIDEWAYS"
        elif number % 37 == 5:
            row["time"] = "2100-01-01T00:00:00Z"  # in the future: its reason names when it was received
        elif number % 41 == 7:
            row["id"] = ""  # recorded under an id made from its text
        elif number % 43 == 9:
            row["stop_loss"] = row["take_profit"].split(";")[0]
        earlier = [r for r in records_[-50:] if r is not None]
        if number % 29 == 3 and earlier and not 1000 <= number < 1600:
            row = rng.choice(earlier) | {"note": "sent again"}  # the same id again: the first version stands
        if number in (999, 1700, 2001) and records_[5] is not None:
            row = records_[5] | {"note": "again, in another batch"}
        if number % 13 == 0:
            row["id"] = SEEDED[number // 13 % len(SEEDED)]  # stored by an earlier import
        records_.append(None if number % 53 == 11 else row)
    if file_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(SIGNAL_FIELDS)
        writer.writerows(["too", "few"] if row is None else [row[field] for field in SIGNAL_FIELDS]
                         for row in records_)
        return out.getvalue()
    if file_format == "jsonl":
        return "".join(('{"id": "broken' if row is None else json.dumps({k: v for k, v in row.items() if v}))
                       + "\n" for row in records_)
    return "[\n" + ",\n".join('"not an object"' if row is None else json.dumps({k: v for k, v in row.items() if v},
                                                                                  indent=1)
                               for row in records_) + "\n]\n"


SEEDED = ["r1", "r2", "r3", "r20", "r1500", "r2500"]
SEEDED_AT = datetime(2024, 1, 1, tzinfo=timezone.utc)


def seed(engine: Engine) -> None:
    rows = [RawRow(n, "", {"id": signal_id, "time": "2018-01-02T00:00:00Z", "symbol": "ADABTC", "side": "LONG",
                           "take_profit": "0.00002", "stop_loss": "0.00001"}, None)
            for n, signal_id in enumerate(SEEDED, start=1)]
    with transaction(engine) as session:
        store_rows(rows, default_source="default", received_at=SEEDED_AT, actor="import", session=session)


def stored(engine: Engine) -> tuple[dict[tuple[str, str], dict[str, Any]], list[dict[str, Any]]]:
    """Every signal row by (source, id), and every ledger entry after the genesis, with row ids
    replaced by keys (PostgreSQL's sequence skips ids differently) and without the chain's
    hashes (the genesis of each database differs; `signalproof verify` checks each chain)."""
    with engine.connect() as connection:
        signals = [dict(row._mapping) for row in connection.execute(sa.select(Signal.__table__))]
        entries = [dict(row._mapping) for row in connection.execute(
            sa.select(Event.__table__).where(Event.id > 1).order_by(Event.id))]
    keys = {row["id"]: (row["source"], row["signal_id"]) for row in signals}
    for entry in entries:
        data = json.loads(entry.pop("data"))
        data["signal_pk"] = keys.get(data.get("signal_pk"))
        entry.update(data=data, signal_pk=keys.get(entry["signal_pk"]))
        del entry["prev"], entry["hash"]
    return {keys[row["id"]]: {k: v for k, v in row.items() if k != "id"} for row in signals}, entries


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "json"])
def test_an_import_stores_exactly_what_it_stored_before(cli: Cli, database_url: str, new_database: Callable[[], str],
                                                         tmp_path: Path, file_format: str) -> None:
    text = signal_file(file_format)
    path = tmp_path / f"signals.{file_format}"
    path.write_text(text, encoding="utf-8", newline="")
    engines = [make_engine(database_url), make_engine(new_database())]
    try:
        for engine in engines:
            seed(engine)
        printed = cli("signals", "import", str(path), "--source", "bot-a").stdout.splitlines()
        with engines[0].connect() as connection:
            received_at = connection.execute(sa.select(sa.func.max(Signal.received_at))).scalar_one()
        before = import_as_before(engines[1], text, source="bot-a", received_at=received_at)
        assert printed == before
        accepted, rejected, duplicate = map(int, re.findall(r"\d+", printed[0]))
        assert accepted > 1500 and rejected > 500 and duplicate > 100  # the file holds what it should
        now, then = stored(engines[0]), stored(engines[1])
        assert now[0] == then[0]
        assert now[1] == then[1]
        # A rejected row's leverage: its server default in the group of 500 rejected rows, else none.
        assert {row["leverage"] for row in now[0].values() if row["status"] == "REJECTED"} == {None, 1}
    finally:
        for engine in engines:
            engine.dispose()
    verified = cli("verify", "db")
    assert "Traceback" not in verified.stderr


def test_a_large_import_verifies(cli: Cli, tmp_path: Path) -> None:
    """20,000 records, through every batch and group size: `signalproof verify db` checks the whole
    chain and that the signal table is what the ledger says."""
    path = tmp_path / "large.csv"
    path.write_text(signal_file("csv", records=20_000, seed=3), encoding="utf-8", newline="")
    assert cli("signals", "import", str(path)).stdout.startswith("accepted ")
    verified = cli("verify", "db", check=False)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
