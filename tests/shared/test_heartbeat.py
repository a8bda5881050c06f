"""The heartbeat's one judgement (`health`, pure: a row and a time in, a verdict out) and its
writes (the failure streak), on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine

from shared import heartbeat
from shared.database import transaction
from shared.heartbeat import State, health, stale_after
from shared.models import WorkerHeartbeat

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)


def row(**fields: object) -> WorkerHeartbeat:
    return WorkerHeartbeat(id=1, pid=7, hostname="box", **fields)


@pytest.mark.parametrize(("monitor", "override", "limit"), [(30, None, 90), (5, None, 60), (300, None, 900),
                                                            (30, 600, 600), (30, 20, 20)])
def test_stale_after_has_one_rule(monitor: float, override: float | None, limit: float) -> None:
    assert stale_after(monitor, override) == limit


@pytest.mark.parametrize(("beat", "state", "status", "line"), [
    (None, State.NEVER, 1, "worker has never reported"),
    (row(), State.NEVER, 1, "worker has never reported"),
    (row(last_tick_at=NOW - 5 * S), State.HEALTHY, 0, "worker healthy: last tick 5 s ago (pid 7 on box)"),
    (row(last_tick_at=NOW - 90 * S), State.HEALTHY, 0, "worker healthy: last tick 1 min ago (pid 7 on box)"),
    (row(last_tick_at=NOW - 91 * S), State.STALE, 1,
     "worker heartbeat stale: last successful tick 1 min ago (limit 90 s)"),
    # An error older than the last success is history, not news.
    (row(last_tick_at=NOW - 5 * S, last_success_at=NOW - 5 * S, last_error="x", last_error_at=NOW - 60 * S),
     State.HEALTHY, 0, "worker healthy: last tick 5 s ago (pid 7 on box)"),
    (row(last_tick_at=NOW - 5 * S, last_success_at=NOW - 60 * S, last_error="db\nlocked", last_error_at=NOW - 9 * S),
     State.HEALTHY, 0, "worker healthy: last tick 5 s ago (pid 7 on box); last error 9 s ago: db locked"),
    (row(last_tick_at=NOW - 5 * S, failing_since=NOW - 125 * S, waiting_signals=2, stuck_trades=3,
         last_error="h refuses connections", last_error_at=NOW - 5 * S), State.EXCHANGE_FAILING, 3,
     "worker running, exchange failing for 2 min: last tick 5 s ago (pid 7 on box); 2 signal(s) waiting for a "
     "symbol check, 3 trade(s) not updated; last error 5 s ago: h refuses connections"),
    # Stale wins: a worker that does not run cannot say anything about the exchange.
    (row(last_tick_at=NOW - 600 * S, failing_since=NOW - 700 * S, waiting_signals=1), State.STALE, 1,
     "worker heartbeat stale: last successful tick 10 min ago (limit 90 s)"),
])
def test_health(beat: WorkerHeartbeat | None, state: State, status: int, line: str) -> None:
    verdict = health(beat, now=NOW, stale_after=90)
    assert (verdict.state, verdict.exit_status, verdict.line) == (state, status, line)


@pytest.mark.parametrize(("failing_for", "severe"), [(timedelta(minutes=9, seconds=59), False),
                                                     (timedelta(minutes=10), True)])
def test_an_exchange_failing_ten_minutes_is_severe(failing_for: timedelta, severe: bool) -> None:
    verdict = health(row(last_tick_at=NOW, failing_since=NOW - failing_for, stuck_trades=1), now=NOW, stale_after=90)
    assert verdict.state is State.EXCHANGE_FAILING and verdict.severe is severe


def read(engine: Engine) -> WorkerHeartbeat:
    with transaction(engine) as session:
        beat = heartbeat.read(session=session)
        assert beat is not None
        return beat


def test_the_failure_streak_starts_stays_and_ends(engine: Engine) -> None:
    with transaction(engine) as session:
        assert heartbeat.read(session=session) is None  # reading writes nothing
        heartbeat.record_start(now=NOW, pid=7, hostname="box", session=session)
    with transaction(engine) as session:
        heartbeat.record_intake(now=NOW + S, waiting_signals=2, error="h does not resolve", session=session)
    with transaction(engine) as session:
        heartbeat.record_tick(now=NOW + 2 * S, behind_seconds=1.0, monitor_errors=["SPOT X: h"],
                              stuck_trades=1, session=session)
    beat = read(engine)
    assert (beat.failing_since, beat.waiting_signals, beat.stuck_trades) == (NOW + S, 2, 1)
    assert (beat.last_error, beat.last_error_at) == ("SPOT X: h", NOW + 2 * S)
    # The intake recovers; the monitor still fails: the streak goes on from its first failure.
    with transaction(engine) as session:
        heartbeat.record_intake(now=NOW + 3 * S, waiting_signals=0, error=None, session=session)
    assert read(engine).failing_since == NOW + S
    # Nothing waits any more: the streak ends and the last error is behind a success.
    with transaction(engine) as session:
        heartbeat.record_tick(now=NOW + 4 * S, behind_seconds=1.0, monitor_errors=[], stuck_trades=0, session=session)
    beat = read(engine)
    assert (beat.failing_since, beat.last_success_at, beat.last_tick_at) == (None, NOW + 4 * S, NOW + 4 * S)
    assert health(beat, now=NOW + 5 * S, stale_after=90).line == "worker healthy: last tick 1 s ago (pid 7 on box)"


def test_a_failed_job_keeps_the_last_tick_and_the_feed_counts(engine: Engine) -> None:
    with transaction(engine) as session:
        heartbeat.record_start(now=NOW, pid=7, hostname="box", session=session)
        heartbeat.record_failure(now=NOW + S, error="monitor: OperationalError: gone", session=session)
        heartbeat.record_feed(now=NOW + S, error=None, received=3, session=session)
        heartbeat.record_feed(now=NOW + 2 * S, error="HTTP 500", received=0, session=session)
    beat = read(engine)
    assert (beat.last_tick_at, beat.last_error, beat.last_error_at) == (NOW, "monitor: OperationalError: gone", NOW + S)
    assert (beat.feed_last_poll_at, beat.feed_last_error, beat.feed_received) == (NOW + 2 * S, "HTTP 500", 3)
