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

from shared.database import WRITE_LOCK_KEY
from shared.ledger import GENESIS_PREV, Entry, canonical, make_entry
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


def record_many(changes: list[Change], *, session: Session) -> list[Entry]:
    """Append several entries in one statement (an import of thousands of signals)."""
    if not changes:
        return []
    seq, prev = _head(session=session)
    entries, rows = [], []
    for change in changes:
        body: dict[str, Any] = {**change.data, "actor": change.actor, "message": change.message}
        if change.trade_id is not None:
            body["trade_id"] = change.trade_id
        if change.signal_pk is not None:
            body["signal_pk"] = change.signal_pk
        seq += 1
        entry = make_entry(seq=seq, time=change.at, kind=change.kind, data=body, prev=prev)
        prev = entry.hash
        entries.append(entry)
        rows.append({"id": entry.seq, "at": change.at, "kind": change.kind, "actor": change.actor,
                     "signal_pk": change.signal_pk, "trade_id": change.trade_id, "message": change.message,
                     "data": canonical(entry.data).decode(), "prev": entry.prev, "hash": entry.hash})
    session.execute(sa.insert(Event.__table__), rows)  # type: ignore[attr-defined]
    session.info[_HEAD] = (session.get_transaction(), entries[-1].seq, entries[-1].hash)
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
