"""Appending to the ledger: every state change is one hash-chained entry (shared/ledger.py).

`record` is called in the same transaction as the change it records, so a change never
commits without its entry. Appends are serialised whatever the number of writers (workers,
the site's owner actions, CLI commands): every write transaction holds the database's write
lock from its start (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock taken at BEGIN,
see shared.database), and the head is read under it. Either way the lock lasts until commit, so two entries
can never claim the same seq and the chain cannot fork.
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from shared.database import WRITE_LOCK_KEY
from shared.ledger import GENESIS_PREV, Entry, canonical, make_entry
from shared.models import Event

_HEAD = "signalproof.ledger_head"  # session.info key: (transaction, seq, hash) of our last append


def record(session: Session, *, kind: str, message: str, at: datetime, actor: str = "worker",
           signal_pk: int | None = None, trade_id: int | None = None, data: dict[str, Any] | None = None) -> Entry:
    """Append one entry. Its data is `data` plus who did it, a readable message, and the ids."""
    body: dict[str, Any] = {**(data or {}), "actor": actor, "message": message}
    if trade_id is not None:
        body["trade_id"] = trade_id
    if signal_pk is not None:
        body["signal_pk"] = signal_pk
    seq, prev = _head(session)
    entry = make_entry(seq=seq + 1, time=at, kind=kind, data=body, prev=prev)
    session.execute(sa.insert(Event.__table__).values(  # type: ignore[attr-defined]
        id=entry.seq, at=at, kind=kind, actor=actor, signal_pk=signal_pk, trade_id=trade_id, message=message,
        data=canonical(entry.data).decode(), prev=entry.prev, hash=entry.hash))
    session.info[_HEAD] = (session.get_transaction(), entry.seq, entry.hash)
    return entry


def _head(session: Session) -> tuple[int, str]:
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
