"""Appending to the ledger: every state change is one hash-chained entry (shared/ledger.py).

`record` is called in the same transaction as the change it records, so a change never
commits without its entry. Appends are serialised whatever the number of writers (workers,
the site's owner actions, CLI commands): every write transaction holds the database's write
lock from its start (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock taken at BEGIN,
see shared.database), and the head is read under it. Either way the lock lasts until commit, so two entries
can never claim the same seq and the chain cannot fork.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from shared.database import WRITE_LOCK_KEY, copy_rows, insert_rows
from shared.ledger import GENESIS_PREV, Entry, make_entry_and_data
from shared.models import Event

_HEAD = "signalproof.ledger_head"  # session.info key: (transaction, seq, hash) of our last append


@dataclass(frozen=True)
class Change:
    """One state change to record: its kind, a readable message, who did it, its data."""

    kind: str
    message: str
    at: datetime
    actor: str = "worker"
    signal_pk: int | None = None
    trade_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def record(*, session: Session, kind: str, message: str, at: datetime, actor: str = "worker",
           signal_pk: int | None = None, trade_id: int | None = None, data: dict[str, Any] | None = None) -> Entry:
    """Append one entry. Its data is `data` plus who did it, a readable message, and the ids."""
    return record_many([Change(kind, message, at, actor, signal_pk, trade_id, data or {})], session=session)[0]


_COLUMNS = ("id", "at", "kind", "actor", "signal_pk", "trade_id", "message", "data", "prev", "hash")
COPY_FROM_ENTRIES = 100  # PostgreSQL: from this many entries a COPY beats an INSERT (an import's batch)


def record_many(changes: list[Change], *, session: Session) -> list[Entry]:
    """Append several entries at once (an import of thousands of signals)."""
    if not changes:
        return []
    appender = Appender(session=session)
    for change in changes:
        appender.add(change)
    return appender.write()


class Appender:
    """`record_many` in steps: each entry chained as soon as it is added, all written together
    by `write`. An import chains a signal's entry while the signal rows before it are still
    streaming to the server (shared.database.copy_rows), and writes the seq down beside it.
    Nothing else may append in the transaction between its creation and `write` (checked)."""

    def __init__(self, *, session: Session) -> None:
        self.session = session
        self.seq, self.prev = self.start = _head(session=session)
        self.entries: list[Entry] = []
        self.rows: list[tuple[Any, ...]] = []

    def add(self, change: Change) -> Entry:
        body: dict[str, Any] = {**change.data, "actor": change.actor, "message": change.message}
        if change.trade_id is not None:
            body["trade_id"] = change.trade_id
        if change.signal_pk is not None:
            body["signal_pk"] = change.signal_pk
        entry, data = make_entry_and_data(seq=self.seq + 1, time=change.at, kind=change.kind, data=body, prev=self.prev)
        self.seq, self.prev = entry.seq, entry.hash
        self.entries.append(entry)
        self.rows.append((entry.seq, change.at, change.kind, change.actor, change.signal_pk, change.trade_id,
                          change.message, data.decode(), entry.prev, entry.hash))
        return entry

    def write(self) -> list[Entry]:
        """Insert the entries added (PostgreSQL: by COPY when there are many); returns them."""
        if not self.rows:
            return []
        cached = self.session.info.get(_HEAD)
        if cached is not None and cached[0] is self.session.get_transaction() and cached[1:] != self.start:
            raise RuntimeError("the ledger moved while entries were being chained: the chain would fork")
        table = Event.__table__  # type: ignore[attr-defined]
        if len(self.rows) >= COPY_FROM_ENTRIES and self.session.get_bind().dialect.name == "postgresql":
            copy_rows(table, _COLUMNS, self.rows, session=self.session)
        else:
            insert_rows(table, _COLUMNS, self.rows, session=self.session)
        self.session.info[_HEAD] = (self.session.get_transaction(), self.seq, self.prev)
        entries, self.entries, self.rows, self.start = self.entries, [], [], (self.seq, self.prev)
        return entries


def _head(*, session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest entry, read once per transaction under the append lock."""
    transaction = session.get_transaction()
    cached = session.info.get(_HEAD)
    if cached is not None and cached[0] is transaction:
        return cached[1], cached[2]
    if session.get_bind().dialect.name == "postgresql":  # (already held on our engines: re-entrant)
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
    head = session.execute(sa.select(Event.id, Event.hash).order_by(Event.id.desc()).limit(1)).first()
    return (0, GENESIS_PREV) if head is None else (int(head[0]), str(head[1]))


def stored_entry(row: Event) -> Entry:
    """The ledger entry a row holds (its hash is the stored one: check it with Entry.hash_ok)."""
    import json

    from shared.ledger import format_time

    assert row.id is not None
    return Entry(seq=row.id, time=format_time(row.at), kind=row.kind, data=json.loads(row.data or "{}"),
                 prev=row.prev, hash=row.hash)
