"""The site checks its own ledger: incrementally on every data version, wholly now and then.

One `SelfCheck` per database per process (`for_url`), shared by the pages (the red banner) and
the API (`/api/v1/head`, the badge). It holds a `shared.ledger.ChainVerifier`:

* **Incrementally**, each time the head moves, it reads only the rows after the last verified
  seq (plus that one row again, to see it is still the one it verified) and feeds them to the
  verifier: a few new entries cost a few milliseconds (bench/api.py measures it).
* **Wholly**, in a background thread, on the first use in a process and then at most every
  `SIGNALPROOF_SELF_CHECK_SECONDS` (default 600): a row changed or deleted in place *behind*
  the head does not move the head, so only a walk of the whole chain sees it. Between two full
  walks such an edit is not yet shown; `signalproof verify` always walks everything.

Once a problem is found it stays (the verifier stops at the first bad seq) until a later full
walk finds the chain whole again, and no shorter than the highest seq this process has
verified (a chain cut at its end is whole, but it lost entries). Reads go through the site's read-only engine.
"""

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import rfc8785
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.clock import monotonic
from shared.ledger import ChainVerifier, Entry, Problem, canonical, format_time
from shared.models import Event

log = logging.getLogger("signalproof.site.self_check")

ROWS_PER_READ = 5_000
FIRST_WAIT_SECONDS = 5.0  # the first request of a process waits this long for the first full walk
# ...but the banner on every public page only this long: a million-trade ledger takes many
# seconds to walk, and the first visitor should not wait for it (a later run shows the banner).
BANNER_WAIT_SECONDS = 1.0

_NO_CANONICAL_FORM = re.compile(r"[0-9]{16}|NaN|Infinity|\\u[dD][89a-fA-F]")
_EVENT = Event.__table__.c  # type: ignore[attr-defined]
ENTRY_COLUMNS = (_EVENT.id, _EVENT.at, _EVENT.kind, _EVENT.data, _EVENT.prev, _EVENT.hash)


def full_check_seconds() -> float:
    """SIGNALPROOF_SELF_CHECK_SECONDS, from the site's configuration (read once per process)."""
    from track_record import deployment

    return max(0.5, deployment.config().self_check_seconds)


def row_entry(row: sa.Row[tuple[object, ...]]) -> Entry:
    """The entry a stored row holds (as shared.events.stored_entry; data that is not a JSON object
    with a canonical form → {"?": its text}, which cannot match its hash: reported, not raised)."""
    import json

    seq, at, kind, data, prev, hash_ = row
    try:
        parsed = json.loads(data or "{}")
        if _NO_CANONICAL_FORM.search(data or ""):  # rare: check the slow way only then
            canonical(parsed)  # an integer beyond 2**53, NaN, a lone surrogate: no canonical form
    except (ValueError, RecursionError, rfc8785.CanonicalizationError):
        parsed = {"?": str(data)}
    if not isinstance(parsed, dict):
        parsed = {"?": str(data)}
    return Entry(seq=int(seq), time=format_time(at) if at is not None else "", kind=str(kind), data=parsed,
                 prev=str(prev), hash=str(hash_))


def entries_after(connection: sa.Connection, after: int, limit: int | None = None) -> Iterator[Entry]:
    """Stored entries with seq > after, in seq order (a range scan of the primary key)."""
    statement = sa.select(*ENTRY_COLUMNS).where(_EVENT.id > after).order_by(_EVENT.id)
    if limit is not None:
        statement = statement.limit(limit)
    for row in connection.execute(statement):
        yield row_entry(row)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    time: str


@dataclass(frozen=True)
class State:
    """What the site says about its own chain."""

    head: Head | None  # None: the ledger is empty
    verified_through: int
    problem: Problem | None
    checking: bool  # the first full walk of this process has not finished yet

    @property
    def verified(self) -> bool:
        return self.problem is None and not self.checking and self.verified_through == (self.head.seq if self.head else 0)


def read_head(connection: sa.Connection) -> Head | None:
    row = connection.execute(sa.select(_EVENT.id, _EVENT.hash, _EVENT.at).order_by(_EVENT.id.desc()).limit(1)).first()
    if row is None:
        return None
    return Head(int(row[0]), str(row[1]), format_time(row[2]) if row[2] is not None else "")


class SelfCheck:
    """The chain's verification state for one database, thread-safe (see the module's docstring)."""

    def __init__(self, engine: Engine, *, full_every: float | None = None) -> None:
        self.engine = engine
        self.full_every = full_check_seconds() if full_every is None else full_every
        self._verifier = ChainVerifier()
        self._lock = threading.Lock()  # guards _verifier and the fields below
        self._advancing = threading.Lock()  # one incremental pass at a time
        self._full_running = False
        self._full_done = threading.Event()
        self._last_full: float | None = None
        self._highest = 0  # the highest seq this process has verified: the chain may not shrink below it

    # --- what callers use --------------------------------------------------------------------

    def state(self, first_wait: float = FIRST_WAIT_SECONDS) -> State:
        """The state at the current head: advances the verifier over new rows first. The first
        call of a process waits up to `first_wait` seconds for the first full walk."""
        with self.engine.connect() as connection:
            head = read_head(connection)
        self._maybe_start_full()
        if not self._full_done.is_set():
            self._full_done.wait(first_wait)
        if self._full_done.is_set():
            self.advance(head)
        with self._lock:
            return State(head, self._verifier.verified_through, self._verifier.problem,
                         checking=not self._full_done.is_set())

    def advance(self, head: Head | None) -> None:
        """Feed the verifier the rows after its last verified seq, up to `head`."""
        if not self._advancing.acquire(blocking=False):
            return  # another request is doing it: answer with the state as it is
        try:
            with self._lock:
                verifier = self._verifier
                through, last_hash = verifier.verified_through, verifier.head_hash
                if verifier.problem is not None:
                    return
            head_seq = head.seq if head else 0
            if head_seq == through and (head is None or head.hash == last_hash):
                return  # nothing new (the common case: one indexed read above, nothing else)
            problem = self._feed(verifier, through, last_hash)
            if problem is not None:
                log.error("ledger self-check: %s", problem)
        finally:
            self._advancing.release()

    def full_check_now(self) -> None:
        """Walk the whole chain (blocking); what the background thread runs."""
        verifier = ChainVerifier()
        with self.engine.connect() as connection:
            after = 0
            while True:
                batch = list(entries_after(connection, after, ROWS_PER_READ))
                if not batch:
                    break
                if verifier.feed(batch) is not None:
                    break
                after = batch[-1].seq
        with self._advancing, self._lock:
            if verifier.problem is None and verifier.verified_through < self._highest:
                # A shorter chain that is whole is still a rewrite: entries verified before are gone.
                verifier.problem = Problem(verifier.verified_through + 1, "entry missing (it was verified "
                                           f"before: the ledger lost entries up to seq {self._highest})")
            self._highest = max(self._highest, verifier.verified_through)
            self._verifier = verifier
            self._last_full = monotonic()
        self._full_done.set()
        if verifier.problem is not None:
            log.error("ledger self-check (full walk): %s", verifier.problem)

    # --- inside ------------------------------------------------------------------------------

    def _feed(self, verifier: ChainVerifier, through: int, last_hash: str) -> Problem | None:
        with self.engine.connect() as connection:
            if through > 0:
                # The row verified last must still be that row: a cheap look at one entry that
                # catches a deleted or rewritten tail (the head would not move otherwise).
                rows = list(entries_after(connection, through - 1, 1))
                if not rows or rows[0].seq != through:
                    problem = Problem(through, "entry missing (it was verified before: the ledger lost entries)")
                elif rows[0].hash != last_hash or not rows[0].hash_ok():
                    problem = Problem(through, "entry changed after it was verified")
                else:
                    problem = None
                if problem is not None:
                    with self._lock:
                        verifier.problem = problem
                    return problem
            after = through
            while True:
                batch = list(entries_after(connection, after, ROWS_PER_READ))
                if not batch:
                    return None
                with self._lock:
                    problem = verifier.feed(batch)
                    self._highest = max(self._highest, verifier.verified_through)
                if problem is not None:
                    return problem
                after = batch[-1].seq

    def _maybe_start_full(self) -> None:
        with self._lock:
            due = self._last_full is None or monotonic() - self._last_full >= self.full_every
            if not due or self._full_running:
                return
            self._full_running = True
        threading.Thread(target=self._full_in_background, name="ledger-self-check", daemon=True).start()

    def _full_in_background(self) -> None:
        try:
            self.full_check_now()
        except Exception as exc:  # the database went away: try again on a later request
            log.error("ledger self-check failed to read the ledger: %s: %s", type(exc).__name__,
                      str(exc).splitlines()[0] if str(exc) else "")
            with self._lock:
                self._last_full = monotonic()
        finally:
            with self._lock:
                self._full_running = False
            self._full_done.set()


_checks: dict[str, SelfCheck] = {}
_checks_lock = threading.Lock()


def for_url(url: str) -> SelfCheck:
    """The process's self-check for this database (on its read-only engine)."""
    with _checks_lock:
        check = _checks.get(url)
        if check is None:
            check = _checks[url] = SelfCheck(_read_only_engine(url))
        return check


def _read_only_engine(url: str) -> Engine:
    from shared.database import make_engine

    return make_engine(url, read_only=True)
