"""The worker's heartbeat: the one row that says whether the worker runs and the exchange answers.

This module is its only home. The worker writes it (`record_*`: start, a tick, a failed job,
what the exchange did to the intake and the monitor, the feed's status); `health()` is the one
judgement of it, a pure function used by `signalproof worker --check` (and so by the compose
healthcheck) and by the site's freshness line. "Stale" is defined once, by `stale_after()`.

A *tick* is one monitor pass that finished and whose heartbeat write committed (see
worker/service.py). An exchange that cannot be reached is not a failed tick (restarting the
worker would not fix it), but it is not health either: the signals whose symbol could not be
checked and the trades the monitor could not update are counted here, and `failing_since`
keeps the first failure of the current streak until a pass where nothing is left waiting.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from shared.clock import seconds_ago
from shared.database import single_row
from shared.models import WorkerHeartbeat

# Stale after this many monitor intervals (never under a minute): the margin covers a long
# monitor pass. SIGNALPROOF_WORKER_STALE_AFTER_SECONDS overrides it, for everyone at once.
STALE_AFTER_MONITOR_INTERVALS = 3
MIN_STALE_AFTER_SECONDS = 60.0
# An exchange failing this long is an error (red on the site), before that a warning (amber).
EXCHANGE_ERROR_AFTER = timedelta(minutes=10)
MAX_ERROR_LENGTH = 1000


def stale_after(monitor_interval_seconds: float, override: float | None = None) -> float:
    """The age in seconds after which the last successful tick means "the worker is not running"."""
    if override is not None:
        return override
    return max(MIN_STALE_AFTER_SECONDS, STALE_AFTER_MONITOR_INTERVALS * monitor_interval_seconds)


class State(StrEnum):
    HEALTHY = "healthy"
    STALE = "stale"  # no successful tick for longer than stale_after: not running, hung, or no database
    EXCHANGE_FAILING = "exchange-failing"  # ticking, but signals or trades wait for the exchange
    NEVER = "never"  # the worker has never reported


# `signalproof worker --check`'s exit status per state (2 = unusable database or configuration,
# raised before any heartbeat is read).
EXIT_STATUS = {State.HEALTHY: 0, State.STALE: 1, State.NEVER: 1, State.EXCHANGE_FAILING: 3}


@dataclass(frozen=True)
class Health:
    state: State
    line: str  # one line for people: `worker --check` prints it, the site shows its gist
    last_tick_at: datetime | None = None
    failing_since: datetime | None = None  # first exchange failure of the current streak
    failing_for: timedelta | None = None
    last_error: str | None = None  # the last error not followed by a success, one line
    waiting_signals: int = 0  # NEW signals waiting for their symbol to be checked
    stuck_trades: int = 0  # active trades the last monitor pass could not update

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.state]

    @property
    def severe(self) -> bool:
        """The exchange has been failing for EXCHANGE_ERROR_AFTER or more (an error, not a warning)."""
        return self.failing_for is not None and self.failing_for >= EXCHANGE_ERROR_AFTER

    def waiting(self) -> str:
        """"3 signal(s) waiting for a symbol check, 1 trade(s) not updated", or ""."""
        parts = []
        if self.waiting_signals:
            parts.append(f"{self.waiting_signals} signal(s) waiting for a symbol check")
        if self.stuck_trades:
            parts.append(f"{self.stuck_trades} trade(s) not updated")
        return ", ".join(parts)


def health(beat: WorkerHeartbeat | None, *, now: datetime, stale_after: float) -> Health:
    """Judge the heartbeat row at `now`: never reported, stale, exchange failing, or healthy."""
    if beat is None or beat.last_tick_at is None:
        return Health(State.NEVER, "worker has never reported")
    age = (now - beat.last_tick_at).total_seconds()
    error = _unresolved_error(beat, now)
    failing_for = now - beat.failing_since if beat.failing_since is not None else None
    common = dict(last_tick_at=beat.last_tick_at, failing_since=beat.failing_since, failing_for=failing_for,
                  last_error=_one_line(beat.last_error) if error else None,
                  waiting_signals=beat.waiting_signals or 0, stuck_trades=beat.stuck_trades or 0)
    if age > stale_after:
        line = f"worker heartbeat stale: last successful tick {seconds_ago(age)} (limit {stale_after:g} s)"
        return Health(State.STALE, line + error, **common)  # type: ignore[arg-type]
    where = f"last tick {seconds_ago(age)} (pid {beat.pid} on {beat.hostname})"
    if failing_for is not None:
        health_ = Health(State.EXCHANGE_FAILING, "", **common)  # type: ignore[arg-type]
        since = seconds_ago(failing_for.total_seconds()).removesuffix(" ago")
        waiting = health_.waiting()
        line = f"worker running, exchange failing for {since}: {where}" + (f"; {waiting}" if waiting else "")
        return Health(State.EXCHANGE_FAILING, line + error, **common)  # type: ignore[arg-type]
    return Health(State.HEALTHY, f"worker healthy: {where}{error}", **common)  # type: ignore[arg-type]


def _unresolved_error(beat: WorkerHeartbeat, now: datetime) -> str:
    """"; last error 20 s ago: …" when the last error is newer than the last full success."""
    if not (beat.last_error and beat.last_error_at):
        return ""
    if beat.last_success_at is not None and beat.last_error_at <= beat.last_success_at:
        return ""
    return f"; last error {seconds_ago((now - beat.last_error_at).total_seconds())}: {_one_line(beat.last_error)}"


def _one_line(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- reading and writing the row ---------------------------------------------------------


def read(*, session: Session) -> WorkerHeartbeat | None:
    """The row as stored, or None before the first worker start (never writes: read-only safe)."""
    return session.get(WorkerHeartbeat, 1)


def record_start(*, session: Session, now: datetime, pid: int, hostname: str) -> None:
    """Who runs, since when; also the first tick (the write proves the database accepts writes)."""
    row = single_row(WorkerHeartbeat, session=session)
    row.started_at, row.last_tick_at, row.pid, row.hostname = now, now, pid, hostname


def record_tick(*, session: Session, now: datetime, behind_seconds: float | None = None,
                monitor_errors: list[str] | None = None, stuck_trades: int | None = None) -> None:
    """A successful tick. With a monitor pass's outcome: the trades it could not update and its
    errors (none = the exchange served every trade: `last_success_at`)."""
    row = single_row(WorkerHeartbeat, session=session)
    row.last_tick_at = now
    if stuck_trades is None:
        return
    row.behind_seconds = behind_seconds
    row.stuck_trades = stuck_trades
    if monitor_errors:
        row.last_error, row.last_error_at = "; ".join(monitor_errors)[:MAX_ERROR_LENGTH], now
    elif not row.waiting_signals:
        row.last_success_at = now
    _streak(row, now)


def record_intake(*, session: Session, now: datetime, waiting_signals: int, error: str | None) -> None:
    """What the intake could not decide because the exchange did not answer a symbol check."""
    row = single_row(WorkerHeartbeat, session=session)
    row.waiting_signals = waiting_signals
    if error:
        row.last_error, row.last_error_at = f"intake: {error}"[:MAX_ERROR_LENGTH], now
    _streak(row, now)


def record_failure(*, session: Session, now: datetime, error: str) -> None:
    """A job that raised: its error is kept and `last_tick_at` stays (so it goes stale)."""
    row = single_row(WorkerHeartbeat, session=session)
    row.last_error, row.last_error_at = error[:MAX_ERROR_LENGTH], now


def record_feed(*, session: Session, now: datetime, error: str | None, received: int = 0) -> None:
    """One poll of the signal feed: when, its error (None = it answered), signals taken in."""
    row = single_row(WorkerHeartbeat, session=session)
    row.feed_last_poll_at, row.feed_last_error = now, error
    row.feed_received += received


def _streak(row: WorkerHeartbeat, now: datetime) -> None:
    """`failing_since`: set at the first failure of a streak, kept through it, cleared once
    nothing waits for the exchange any more."""
    if row.waiting_signals or row.stuck_trades:
        if row.failing_since is None:
            row.failing_since = now
    elif row.failing_since is not None:
        row.failing_since = None
        row.last_success_at = now  # the last error is behind us
