"""`signalproof worker --check` (the worker container's healthcheck) and what counts as a tick:
exit 0 only while the last successful tick is fresh and the exchange answers, 1 when stale,
3 when running but the exchange is failing; on SQLite and PostgreSQL."""

import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from conftest import Cli
from fakes import InMemoryMarket
from shared.database import transaction
from shared.models import WorkerHeartbeat
from shared.signal_files import RawRow
from worker.intake import store_rows
from worker.service import Worker

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"
HEALTHY = re.compile(r"^worker healthy: last tick \d+ s ago \(pid \d+ on \S+\)")


def write_heartbeat(engine: Engine, **fields: object) -> None:
    with transaction(engine) as session:
        session.merge(WorkerHeartbeat(id=1, pid=4242, hostname="box", **fields))


def heartbeat(engine: Engine) -> WorkerHeartbeat:
    with transaction(engine) as session:
        row = session.get(WorkerHeartbeat, 1)
        assert row is not None
        return row


def check(cli: Cli) -> tuple[int, str]:
    result = cli("worker", "--check", check=False)
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1, result.stdout  # one line
    return result.returncode, result.stdout.strip()


def test_never_reported(cli: Cli) -> None:
    assert check(cli) == (1, "worker has never reported")


def test_healthy_right_after_a_pass(cli: Cli) -> None:
    cli("worker", "--once")
    status, line = check(cli)
    assert status == 0 and HEALTHY.match(line), line


@pytest.mark.parametrize(("tick_age", "env", "status", "line"), [
    (timedelta(seconds=5), {}, 0, "worker healthy: last tick 5 s ago (pid 4242 on box)"),
    # default limit: 3 monitor intervals (3 × 30 s), but at least 60 s
    (timedelta(minutes=10), {}, 1, "worker heartbeat stale: last successful tick 10 min ago (limit 90 s)"),
    (timedelta(seconds=75), {"SIGNALPROOF_MONITOR_INTERVAL_SECONDS": "5"}, 1,
     "worker heartbeat stale: last successful tick 1 min ago (limit 60 s)"),
    (timedelta(minutes=10), {"SIGNALPROOF_MONITOR_INTERVAL_SECONDS": "300"}, 0,
     "worker healthy: last tick 10 min ago (pid 4242 on box)"),
    (timedelta(minutes=10), {"SIGNALPROOF_WORKER_STALE_AFTER_SECONDS": "3600"}, 0,
     "worker healthy: last tick 10 min ago (pid 4242 on box)"),
    (timedelta(days=3), {}, 1, "worker heartbeat stale: last successful tick 3 d ago (limit 90 s)"),
])
def test_freshness_limit(cli: Cli, engine: Engine, tick_age: timedelta, env: dict[str, str], status: int,
                         line: str) -> None:
    """The heartbeat is written here directly: nobody waits minutes for a real one to go stale."""
    write_heartbeat(engine, last_tick_at=datetime.now(timezone.utc) - tick_age)
    cli.env |= env
    # Seconds go by while the CLI starts (several on a loaded machine): "5 s ago" may read 6, 7 …
    pattern = re.escape(line).replace(re.escape("5 s ago"), "([5-9]|[1-2][0-9]) s ago")
    got_status, got_line = check(cli)
    assert got_status == status and re.fullmatch(pattern, got_line), got_line


def test_a_stale_heartbeat_says_what_failed(cli: Cli, engine: Engine) -> None:
    now = datetime.now(timezone.utc)
    write_heartbeat(engine, last_tick_at=now - timedelta(minutes=6), last_success_at=now - timedelta(minutes=6),
                    last_error="monitor: OperationalError: disk I/O error\n[SQL: UPDATE …]",
                    last_error_at=now - timedelta(seconds=20))
    status, line = check(cli)
    assert status == 1
    assert line.startswith("worker heartbeat stale: last successful tick 6 min ago (limit 90 s); last error ")
    assert line.endswith("s ago: monitor: OperationalError: disk I/O error [SQL: UPDATE …]")


def test_an_exchange_outage_is_status_3_saying_since_when_and_what_waits(cli: Cli) -> None:
    """Running, but the exchange refuses: not "healthy" (exit 3, distinct from a stopped worker),
    naming the host, the signals waiting for a symbol check and the trades not updated; the
    streak ends with the first pass where the exchange serves everything again."""
    signal = "still-open,2018-01-29T00:00:00Z,ADABTC,SHORT,SPOT,,0.00001,0.0001,,,,\n"  # stays open
    (cli.cwd / "open.csv").write_text(HEADER + signal)
    cli("signals", "import", str(cli.cwd / "open.csv"))
    cli("worker", "--once")  # the trade is open, checked up to the newest candle
    waiting = "waiting,2018-01-29T00:00:00Z,ETHBTC,LONG,SPOT,,0.2,0.01,,,,\n"
    (cli.cwd / "waiting.csv").write_text(HEADER + waiting)
    cli("signals", "import", str(cli.cwd / "waiting.csv"))
    exchange_url = cli.env["SIGNALPROOF_SPOT_API_URL"]
    cli.env |= {"SIGNALPROOF_SPOT_API_URL": "http://127.0.0.1:9"}
    assert cli("worker", "--once", check=False).returncode == 1  # the exchange is down: nothing resolved
    status, line = check(cli)
    assert status == 3, line
    assert re.match(r"^worker running, exchange failing for \d+ s: last tick \d+ s ago \(pid \d+ on \S+\); "
                    r"1 signal\(s\) waiting for a symbol check, 1 trade\(s\) not updated; last error ", line), line
    assert "127.0.0.1:9 refuses connections" in line

    cli("worker", "--once", check=False)  # still down: the streak keeps its first failure
    cli.env["SIGNALPROOF_SPOT_API_URL"] = exchange_url
    cli("worker", "--once")
    status, line = check(cli)
    assert status == 0 and HEALTHY.match(line) and "error" not in line, line


def test_the_streak_keeps_its_first_failure(cli: Cli, engine: Engine) -> None:
    (cli.cwd / "waiting.csv").write_text(HEADER + "w,2018-01-29T00:00:00Z,ETHBTC,LONG,SPOT,,0.2,0.01,,,,\n")
    cli("signals", "import", str(cli.cwd / "waiting.csv"))
    cli.env["SIGNALPROOF_SPOT_API_URL"] = "http://127.0.0.1:9"
    cli("worker", "--once", check=False)
    first = heartbeat(engine)
    cli("worker", "--once", check=False)
    again = heartbeat(engine)
    assert first.failing_since is not None and again.failing_since == first.failing_since
    assert again.last_error_at is not None and again.last_error_at > first.failing_since
    assert (again.waiting_signals, again.stuck_trades) == (1, 0)


@pytest.mark.parametrize(("url", "says"), [
    ("http://no-such-host.invalid", "no-such-host.invalid does not resolve"),
    ("http://127.0.0.1:9", "127.0.0.1:9 refuses connections"),
])
def test_worker_once_gives_up_at_once_on_a_host_that_cannot_answer(cli: Cli, url: str, says: str) -> None:
    """With the default retries and backoff (5 retries from 0.5 s, ten rounds: minutes before)."""
    (cli.cwd / "waiting.csv").write_text(HEADER + "w,2018-01-29T00:00:00Z,ETHBTC,LONG,SPOT,,0.2,0.01,,,,\n")
    cli("signals", "import", str(cli.cwd / "waiting.csv"))
    cli.env |= {"SIGNALPROOF_SPOT_API_URL": url, "SIGNALPROOF_HTTP_RETRIES": "5", "SIGNALPROOF_HTTP_BACKOFF_SECONDS": "0.5"}
    started = time.monotonic()
    result = cli("worker", "--once", check=False)
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert f"not finished: 1 signal(s) whose symbol could not be checked ({says}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_schema_is_one_line_and_status_2(database_kind: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    if database_kind == "sqlite":
        with closing(sqlite3.connect(tmp_path / "empty.db")) as connection:  # a database, not ours
            connection.execute("CREATE TABLE unrelated (x)")
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url = request.getfixturevalue("postgres_databases").create()  # created, never migrated
    result = Cli(url, "http://127.0.0.1:9", tmp_path)("worker", "--check", check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("signalproof: the database has no signalproof schema yet: "
                             "run `signalproof db upgrade` first\n")


def test_an_unreachable_database_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = Cli(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "http://127.0.0.1:9", tmp_path)(
        "worker", "--check", check=False)
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.startswith("signalproof: cannot open the database")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "no").exists()  # a healthcheck creates nothing


# --- what counts as a tick (Worker.tick, called directly) ----------------------------------

T0 = datetime(2018, 1, 22, 2, 0, tzinfo=timezone.utc)


def boom() -> None:
    raise RuntimeError("boom")


def test_only_successful_monitor_passes_count_as_ticks_and_the_exchange_is_not_the_worker(
        engine: Engine, candles_path: Path) -> None:
    market = InMemoryMarket.from_candle_dir(candles_path)
    now = [T0]
    worker = Worker(engine, market, clock=lambda: now[0])
    assert not worker.ticked_within(3600)
    worker.record_start()
    assert worker.ticked_within(3600)
    assert (heartbeat(engine).started_at, heartbeat(engine).last_tick_at) == (T0, T0)

    def at(minutes: int, name: str, job: Callable[[], object]) -> WorkerHeartbeat:
        now[0] = T0 + timedelta(minutes=minutes)
        worker.tick(name, job)
        return heartbeat(engine)

    # A job that raises: the error is kept, the last tick stays where it was.
    beat = at(1, "signals", boom)
    assert (beat.last_tick_at, beat.last_error, beat.last_error_at) == (T0, "signals: RuntimeError: boom",
                                                                        T0 + timedelta(minutes=1))
    # Other jobs succeeding do not make a worker whose monitor fails look alive …
    assert at(2, "signals", worker.process_signals).last_tick_at == T0
    beat = at(2, "monitor", boom)
    assert (beat.last_tick_at, beat.last_error) == (T0, "monitor: RuntimeError: boom")
    assert at(2, "signals", worker.process_signals).last_tick_at == T0
    # … a monitor pass that completes does.
    assert at(2, "monitor", worker.monitor).last_tick_at == T0 + timedelta(minutes=2)

    # An open trade the exchange cannot serve: the monitor records the error, and the tick still counts.
    with transaction(engine) as session:
        fields = {"id": "t1", "time": (T0 - timedelta(hours=1)).isoformat(), "symbol": "ETHBTC", "side": "LONG",
                  "take_profit": "0.2", "stop_loss": "0.01"}
        store_rows([RawRow(line=1, text="", fields=fields, error=None)], default_source="test",
                   received_at=now[0], actor="test", session=session)
    at(3, "signals", worker.process_signals)
    market.failing.add("ETHBTC")
    beat = at(4, "monitor", worker.monitor)
    assert beat.last_tick_at == beat.last_error_at == T0 + timedelta(minutes=4)
    assert beat.last_error is not None and beat.last_error.startswith("SPOT ETHBTC")
    assert beat.last_success_at == T0 + timedelta(minutes=2)  # not since: the exchange failed at minute 4
    market.failing.clear()
    beat = at(5, "monitor", worker.monitor)
    assert beat.last_tick_at == beat.last_success_at == T0 + timedelta(minutes=5)
    assert beat.behind_seconds is not None and beat.behind_seconds < 180


def test_a_monitor_pass_through_an_exchange_outage_keeps_the_watchdog_fed(engine: Engine,
                                                                           candles_path: Path) -> None:
    """Each symbol finished (even refused by the exchange) is progress; nothing finished is not."""
    market = InMemoryMarket.from_candle_dir(candles_path)
    worker = Worker(engine, market, clock=lambda: T0)
    with transaction(engine) as session:
        rows = [RawRow(line=n, text="", fields={"id": f"t{n}", "time": (T0 - timedelta(hours=1)).isoformat(),
                                                 "symbol": symbol, "side": "LONG", "take_profit": "0.2",
                                                 "stop_loss": "0.01"}, error=None)
                for n, symbol in enumerate(("ETHBTC", "ADABTC"))]
        store_rows(rows, default_source="test", received_at=T0, actor="test", session=session)
    worker.process_signals()
    assert not worker.ticked_within(3600)  # no tick recorded yet, no progress either
    market.failing.update({"ETHBTC", "ADABTC"})
    report = worker.monitor()  # the job alone, as in the middle of a tick: no heartbeat written
    assert len(report.failed) == 2
    assert worker.last_tick is None and worker.ticked_within(5)
