"""The owner's gate in front of the settings page.

- Fail closed: without `SIGNALPROOF_OWNER_PASSWORD_HASH` (or with something that is not an
  argon2 hash) nobody logs in.
- argon2 verification, slowed down after failures. Per client address (the connection's own,
  or the one a trusted proxy names: see proxies.py; an IPv6 client counts by its /64): past
  `FREE_FAILURES` wrong passwords in a row, each further try must wait twice as long as the
  last (2 s, 4 s … up to `MAX_WAIT_SECONDS`). For the whole site: the same past
  `SITE_FREE_FAILURES`, up to `SITE_MAX_WAIT_SECONDS`, so a guesser spread over many addresses
  is slowed too. A try during a wait is refused without checking the password. Failures are
  forgotten after `FORGET_AFTER` without one.
- The owner can always get in: the site-wide wait does not apply to an address without recent
  failures (its password is checked; argon2 keeps each check slow), so a sustained attack from
  elsewhere cannot lock the owner out. On the server, `signalproof owner unlock` clears every
  wait at once.
- The counts live in the database (`login_throttle`), so restarting the site resets nothing.
  Updating them is the only write a visitor who is not logged in can cause, and the table is
  bounded: forgotten rows are deleted, and past `MAX_CLIENT_ROWS` clients the oldest go.
- A session ends on logout or after `idle` without any action. The session keeps only the
  time the logged-in owner last acted: never the password or the hash.
"""

import ipaddress
import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, delete, select

from shared.database import insert_missing, transaction
from shared.models import LoginThrottle

log = logging.getLogger("signalproof.site.auth")

FREE_FAILURES = 3
MAX_WAIT_SECONDS = 300.0
SITE = "*"  # the throttle row for all clients together
SITE_FREE_FAILURES = 20
SITE_MAX_WAIT_SECONDS = 60.0
FORGET_AFTER = timedelta(hours=1)
MAX_CLIENT_ROWS = 1000  # client rows kept in `login_throttle`; the oldest failures go first
MAX_PASSWORD_CHARS = 256  # argon2 hashes whatever it gets; a megabyte would hold the lock
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


def wait_seconds(failures: int, last_failure_at: datetime | None, now: datetime, *, free: int = FREE_FAILURES,
                 cap: float = MAX_WAIT_SECONDS) -> float:
    """How long until the next try is allowed: 0 for the first `free` failures, then 2, 4, 8 … s."""
    if failures < free or last_failure_at is None or now - last_failure_at > FORGET_AFTER:
        return 0.0
    wait = min(2.0 ** (failures - free + 1), cap)
    return max(0.0, wait - (now - last_failure_at).total_seconds())


class Outcome(Enum):
    OPENED = "opened"
    WRONG = "wrong"  # checked and refused
    THROTTLED = "throttled"  # refused without checking: too soon after the last failures


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    wait_seconds: float = 0.0  # until the next try is allowed


def _wait(client: LoginThrottle, site: LoginThrottle, now: datetime) -> float:
    return max(wait_seconds(client.failures, client.last_failure_at, now),
               wait_seconds(site.failures, site.last_failure_at, now, free=SITE_FREE_FAILURES,
                            cap=SITE_MAX_WAIT_SECONDS))


def throttle_key(address: str | None) -> str:
    """The row an address counts in: the address, an IPv6 one by its /64 (one customer's
    network: a guesser gets billions of addresses in it), "local" for none (localhost)."""
    if not address:
        return "local"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:1.2.3.4 is 1.2.3.4
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _forgotten(row: LoginThrottle, now: datetime) -> bool:
    return row.failures == 0 or row.last_failure_at is None or now - row.last_failure_at > FORGET_AFTER


def _prune(now: datetime, *, session: Session) -> None:
    """Keep the table small whatever a guesser does: rows whose failures are forgotten go, and
    beyond `MAX_CLIENT_ROWS - 1` (room for this try's) the oldest failures go."""
    clients = LoginThrottle.client != SITE  # type: ignore[arg-type]
    session.exec(delete(LoginThrottle).where(clients).where(  # type: ignore[call-overload]
        (LoginThrottle.last_failure_at == None) | (LoginThrottle.last_failure_at < now - FORGET_AFTER)))  # type: ignore[operator]  # noqa: E711
    oldest = (select(LoginThrottle.client).where(clients)
              .order_by(LoginThrottle.last_failure_at.desc(), LoginThrottle.client)  # type: ignore[union-attr]
              .offset(MAX_CLIENT_ROWS - 1))
    session.exec(delete(LoginThrottle).where(LoginThrottle.client.in_(oldest)))  # type: ignore[attr-defined,call-overload]


def _rows(client: str, *, session: Session) -> tuple[LoginThrottle, LoginThrottle]:
    """The client's row and the site's, created if missing, locked until the transaction ends."""
    insert_missing(LoginThrottle.__table__, [{"client": client, "failures": 0},  # type: ignore[attr-defined]
                                                      {"client": SITE, "failures": 0}], session=session)
    query = select(LoginThrottle).where(LoginThrottle.client.in_([client, SITE]))  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":  # (SQLite: the write transaction already locks)
        query = query.with_for_update()
    rows = session.exec(query).all()
    by_client = {row.client: row for row in rows}
    return by_client[client], by_client[SITE]


def try_login(engine: Engine, password_hash: str, password: str, *, client: str | None, now: datetime) -> Attempt:
    """Check one password from `client` (an address; None: unknown or local). The rows stay
    locked meanwhile, so parallel guesses queue up."""
    client = throttle_key(client)
    with transaction(engine) as session:
        _prune(now, session=session)
        mine, site = _rows(client, session=session)
        # An address without recent failures is not held up by the site-wide wait: that is
        # how the owner gets in during an attack from elsewhere.
        waiting = (wait_seconds(mine.failures, mine.last_failure_at, now) if _forgotten(mine, now)
                   else _wait(mine, site, now))
        if waiting > 0:
            return Attempt(Outcome.THROTTLED, waiting)
        try:
            if len(password) > MAX_PASSWORD_CHARS:
                raise VerificationError("too long")
            PasswordHasher().verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            for row in (mine, site):
                forgotten = row.last_failure_at is not None and now - row.last_failure_at > FORGET_AFTER
                row.failures = 1 if forgotten else row.failures + 1
                row.last_failure_at = now
            log.warning("owner login failed (%d in a row from this client, %d on the site)", mine.failures,
                        site.failures)
            return Attempt(Outcome.WRONG, _wait(mine, site, now))
        if mine.failures or site.failures:
            log.info("owner logged in after %d failed attempt(s) on the site", site.failures)
        for row in (mine, site):
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
