"""Checkpoints of the ledger's head: recorded when the head moved, signed with the configured
key, handed to the anchor command (outcome recorded, time limit enforced), and never in the way
of trading — on SQLite and PostgreSQL, with real subprocesses for the anchor and the worker.
"""

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from conftest import Cli
from shared import signing
from shared.database import make_engine, transaction
from shared.events import record
from shared.models import Checkpoint, WorkerHeartbeat
from worker.checkpoints import CheckpointPolicy, anchor, checkpoint_job, record_checkpoint, run_anchor

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def checkpoints(engine: Engine) -> list[Checkpoint]:
    with transaction(engine) as session:
        return list(session.exec(select(Checkpoint).order_by(Checkpoint.id)))


def test_a_checkpoint_is_recorded_when_the_head_moved_and_signed(engine: Engine) -> None:
    keys = signing.generate()
    first = record_checkpoint(engine, now=NOW, signing_key=keys.private)
    assert first is not None and first.seq == 1  # the genesis entry
    assert record_checkpoint(engine, now=NOW + timedelta(minutes=10), signing_key=keys.private) is None  # unmoved
    with transaction(engine) as session:
        entry = record(kind="settings.changed", message="test", at=NOW, data={"key": "k", "old": "", "new": ""}, session=session)
    second = record_checkpoint(engine, now=NOW + timedelta(minutes=20), signing_key=keys.private)
    assert second is not None and (second.seq, second.hash) == (entry.seq, entry.hash)
    assert second.public_key == keys.public
    point = signing.checkpoint(second.seq, second.hash, NOW + timedelta(minutes=20))
    assert signing.signature_ok(point, second.signature or "", keys.public)
    unsigned = None
    with transaction(engine) as session:
        record(kind="settings.changed", message="test", at=NOW, data={"key": "k", "old": "", "new": ""}, session=session)
    unsigned = record_checkpoint(engine, now=NOW + timedelta(minutes=30))
    assert unsigned is not None and unsigned.signature is None and unsigned.public_key is None
    assert [c.seq for c in checkpoints(engine)] == [1, entry.seq, entry.seq + 1]


def test_the_anchor_gets_the_signed_checkpoint_on_stdin_and_its_outcome_is_recorded(engine: Engine,
                                                                                  tmp_path: Path) -> None:
    keys = signing.generate()
    received = tmp_path / "anchor.json"
    script = f"import sys; open({str(received)!r}, 'wb').write(sys.stdin.buffer.read()); print('posted ok')"
    policy = CheckpointPolicy(signing_key=keys.private, anchor_command=f"{sys.executable} -c {json.dumps(script)}")
    row = checkpoint_job(engine, policy, now=NOW)
    assert row is not None
    sent = json.loads(received.read_bytes())
    assert sent == {"seq": 1, "hash": row.hash, "time": "2024-05-01T12:00:00.000000Z", "signature": row.signature,
                    "public_key": keys.public}
    assert signing.signature_ok(sent, sent["signature"], keys.public)
    stored = checkpoints(engine)[-1]
    assert (stored.anchor_status, stored.anchor_detail) == ("ok", "exit 0: posted ok")


def test_a_failing_or_missing_anchor_is_recorded_not_raised(engine: Engine) -> None:
    row = record_checkpoint(engine, now=NOW)
    assert row is not None
    fail = f"{sys.executable} -c \"import sys; print('webhook said 403'); sys.exit(3)\""
    assert anchor(engine, row, command=fail, timeout=10) == ("failed", "exit 3: webhook said 403")
    status, detail = anchor(engine, row, command="/nonexistent/anchor --flag", timeout=10)
    assert status == "failed" and detail.startswith("cannot start:")
    assert checkpoints(engine)[-1].anchor_status == "failed"


def test_a_hanging_anchor_is_killed_at_its_time_limit() -> None:
    started = time.monotonic()
    status, detail = run_anchor(f"{sys.executable} -c \"import time; time.sleep(60)\"", b"{}", timeout=0.5)
    assert (status, detail) == ("timeout", "killed after 0.5 s")
    assert time.monotonic() - started < 5


def heartbeat_tick(engine: Engine) -> datetime | None:
    with transaction(engine) as session:
        row = session.get(WorkerHeartbeat, 1)
        return None if row is None else row.last_tick_at


def test_a_hanging_anchor_does_not_delay_the_monitor(cli: Cli, database_url: str) -> None:
    """The real worker with an anchor that hangs past its time limit: while it hangs, monitor
    ticks go on (the heartbeat moves), then the anchor is killed and recorded as a timeout."""
    cli.env.update({"SIGNALPROOF_MONITOR_INTERVAL_SECONDS": "1", "SIGNALPROOF_CHECKPOINT_MINUTES": "10",
                    "SIGNALPROOF_ANCHOR_COMMAND": f"{sys.executable} -c \"import time; time.sleep(60)\"",
                    "SIGNALPROOF_ANCHOR_TIMEOUT_SECONDS": "6"})
    engine = make_engine(database_url)
    worker = cli.popen("worker")
    try:
        deadline = time.monotonic() + 30
        while not checkpoints(engine) and time.monotonic() < deadline:
            time.sleep(0.2)
        hanging = checkpoints(engine)
        assert hanging and hanging[0].anchor_status is None, "the checkpoint is committed before its anchor runs"
        first = heartbeat_tick(engine)
        time.sleep(2.5)
        assert checkpoints(engine)[0].anchor_status is None, "the anchor is still hanging"
        later = heartbeat_tick(engine)
        assert first is not None and later is not None and later > first, "the monitor kept ticking"
        while checkpoints(engine)[0].anchor_status is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (checkpoints(engine)[0].anchor_status, checkpoints(engine)[0].anchor_detail) == \
            ("timeout", "killed after 6 s")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        engine.dispose()


def test_worker_once_ends_with_a_checkpoint_of_the_head_it_moved(cli: Cli, database_url: str, tmp_path: Path) -> None:
    keys = signing.generate()
    cli.env["SIGNALPROOF_SIGNING_KEY"] = keys.private
    (tmp_path / "s.csv").write_text("id,time,symbol,side,market,take_profit,stop_loss\n"
                                    "a,2018-01-21T00:00:00Z,ADABTC,SHORT,SPOT,0.0000530,0.0000570\n")
    cli("signals", "import", str(tmp_path / "s.csv"))
    cli("worker", "--once")
    engine = make_engine(database_url)
    try:
        rows = checkpoints(engine)
        with engine.connect() as connection:
            head = connection.execute(sa.text("SELECT id, hash FROM event ORDER BY id DESC LIMIT 1")).one()
    finally:
        engine.dispose()
    assert [(r.seq, r.hash) for r in rows] == [tuple(head)]
    assert rows[0].public_key == keys.public
    cli("worker", "--once")  # nothing moved: no second checkpoint
    engine = make_engine(database_url)
    try:
        assert len(checkpoints(engine)) == 1
    finally:
        engine.dispose()
