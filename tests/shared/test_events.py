"""Appending to the ledger (shared/events.py), on SQLite and PostgreSQL: entries written in bulk
(COPY from 100 on PostgreSQL) store exactly the bytes and hashes of shared.ledger's rule, and
an append in steps (`Appender`) cannot fork the chain."""

import json
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared import events
from shared.database import transaction
from shared.ledger import canonical, entry_hash, make_entry
from shared.models import Event, Side

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("count", [1, 99, 100, 250])
def test_stored_entries_are_the_ledger_rule_bytes_for_bytes(engine: Engine, count: int) -> None:
    changes = [events.Change("signal.received", f"signal s/{n} received", T0, "import", signal_pk=n,
                             data={"price": D("0.00005120"), "side": Side.LONG, "note": f"é \"{n}\"\n\x01",
                                   "targets": [D("1.50"), D("2")], "at": T0})
               for n in range(count)]
    with transaction(engine) as session:
        head = session.execute(sa.select(Event.id, Event.hash).order_by(Event.id.desc()).limit(1)).one()
        returned = events.record_many(changes, session=session)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(Event.__table__).where(Event.id > head.id).order_by(Event.id)).all()
    prev = head.hash
    for change, entry, row in zip(changes, returned, rows, strict=True):
        expected = make_entry(seq=row.id, time=T0, kind=change.kind, prev=prev,
                              data={**change.data, "actor": "import", "message": change.message,
                                    "signal_pk": change.signal_pk})
        assert entry == expected and row.hash == expected.hash == entry_hash(expected.body())
        assert row.data == canonical(expected.data).decode() and json.loads(row.data) == expected.data
        assert (row.prev, row.at, row.kind, row.actor, row.signal_pk) == (prev, T0, change.kind, "import", change.signal_pk)
        prev = row.hash


def test_an_append_in_steps_refuses_to_fork_the_chain(engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="would fork"), transaction(engine) as session:
        steps = events.Appender(session=session)
        steps.add(events.Change("signal.received", "chained first", T0))
        events.record(session=session, kind="signal.received", message="appended meanwhile", at=T0)
        steps.write()
