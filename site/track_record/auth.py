"""The owner's gate in front of the settings page.

- Fail closed: without `SIGNALPROOF_OWNER_PASSWORD_HASH` (or with something that is not an
  argon2 hash) nobody logs in.
- argon2 verification, slowed down after failures: past `FREE_FAILURES` wrong passwords in a
  row, each further try must wait twice as long as the last (capped at `MAX_WAIT_SECONDS`).
  The count lives in the database (`login_throttle`), so restarting the site resets nothing.
  It is one count for the whole site, not per address: a guesser with many addresses is
  slowed down just the same, and the owner can still log in as soon as the wait is over.
  Updating that count is the only write a visitor who is not logged in can cause.
- A session ends on logout or after `idle_minutes` without any action. The session keeps
  only the fact that the owner logged in and when they were last active: never the password
  or the hash.
"""

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from shared.database import single_row, transaction
from shared.models import LoginThrottle

log = logging.getLogger("signalproof.site.auth")

FREE_FAILURES = 3
MAX_WAIT_SECONDS = 300
SESSION_KEY = "owner_active_at"  # the one session entry: when the logged-in owner last acted


def hash_problem(password_hash: str | None) -> str | None:
    """Why the configured hash cannot open the page, or None when it can."""
    if not password_hash:
        return "no owner password is set"
    try:
        extract_parameters(password_hash)
    except InvalidHashError:
        return "SIGNALPROOF_OWNER_PASSWORD_HASH is not an argon2 hash"
    return None


def wait_seconds(failures: int, last_failure_at: datetime | None, now: datetime) -> float:
    """How long until the next try is allowed: 0 for the first few failures, then 2, 4, 8 … s."""
    if failures < FREE_FAILURES or last_failure_at is None:
        return 0.0
    wait = min(2.0 ** (failures - FREE_FAILURES + 1), MAX_WAIT_SECONDS)
    return max(0.0, wait - (now - last_failure_at).total_seconds())


class Outcome(Enum):
    OPENED = "opened"
    WRONG = "wrong"  # checked and refused
    THROTTLED = "throttled"  # refused without checking: too soon after the last failures


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    wait_seconds: float = 0.0  # until the next try is allowed


def try_login(engine: Engine, password_hash: str, password: str, *, now: datetime) -> Attempt:
    """Check one password. The throttle row stays locked meanwhile, so parallel guesses queue up."""
    with transaction(engine) as session:
        row = single_row(session, LoginThrottle)
        session.refresh(row, with_for_update=session.get_bind().dialect.name == "postgresql")
        waiting = wait_seconds(row.failures, row.last_failure_at, now)
        if waiting > 0:
            return Attempt(Outcome.THROTTLED, waiting)
        try:
            PasswordHasher().verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            row.failures += 1
            row.last_failure_at = now
            log.warning("owner login failed (%d in a row)", row.failures)
            return Attempt(Outcome.WRONG, wait_seconds(row.failures, now, now))
        if row.failures:
            log.info("owner logged in after %d failed attempt(s)", row.failures)
        row.failures, row.last_failure_at = 0, None
        return Attempt(Outcome.OPENED)


def login(state: MutableMapping[str, Any], *, now: datetime) -> None:
    state[SESSION_KEY] = now


def logout(state: MutableMapping[str, Any]) -> None:
    state.pop(SESSION_KEY, None)


def session_status(state: MutableMapping[str, Any], *, now: datetime, idle: timedelta) -> str:
    """"active" (and the activity time is refreshed), "expired" (now logged out) or "none"."""
    last = state.get(SESSION_KEY)
    if not isinstance(last, datetime):
        return "none"
    if now - last > idle:
        logout(state)
        return "expired"
    state[SESSION_KEY] = now
    return "active"
