"""The public signal log: every signal and what became of it, filtered and paged in SQL.

The columns are those of `signalproof signals export` (shared/trades.py SIGNAL_COLUMNS), plus
the trade an accepted signal became. Its download is that export, for the same filter
(track_record/api.py streams it). Plain functions over a session; `loaders` caches them.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from shared.models import Origin, Signal, SignalStatus, Trade

# The export's statuses, as words (ACCEPTED = became a trade, NEW = not looked at yet).
STATUS_WORDS = {"NEW": "New", "ACCEPTED": "Accepted", "REJECTED": "Rejected", "SKIPPED": "Skipped"}
MAX_CHOICES = 500  # symbols and sources offered in the filters (the most frequent ones)


@dataclass(frozen=True)
class SignalFilter:
    """Which signals to list; empty tuples mean "any". Dates are UTC days of the signal's own
    time, both inclusive."""

    statuses: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    first_day: date | None = None
    last_day: date | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        table = Signal.__table__.c  # type: ignore[attr-defined]
        found: list[sa.ColumnElement[bool]] = []
        if self.statuses:
            found.append(table.status.in_(self.statuses))
        if self.symbols:
            found.append(table.symbol.in_(self.symbols))
        if self.sources:
            found.append(table.source.in_(self.sources))
        if self.origins:
            found.append(table.origin.in_(self.origins))
        if self.first_day is not None:
            found.append(table.time >= datetime.combine(self.first_day, time(), timezone.utc))
        if self.last_day is not None:
            found.append(table.time < datetime.combine(self.last_day + timedelta(days=1), time(), timezone.utc))
        return found

    @property
    def empty(self) -> bool:
        return self == SignalFilter()


def signal_page(flt: SignalFilter, *, session: Session, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of signals, newest first (by id, the order they were stored), with the trade an
    accepted one became, and the number of matching signals."""
    table = Signal.__table__.c  # type: ignore[attr-defined]
    where = flt.conditions()
    total = session.exec(select(sa.func.count()).select_from(Signal).where(*where)).one()
    statement = (sa.select(table.id.label("pk"), table.source, table.signal_id.label("id"), table.time,
                           table.received_at, table.status, table.reason, table.origin, table.symbol, table.side,
                           table.market, Trade.__table__.c.id.label("trade_id"))  # type: ignore[attr-defined]
                 .select_from(Signal.__table__.outerjoin(Trade.__table__,  # type: ignore[attr-defined]
                                                         Trade.__table__.c.signal_pk == table.id))  # type: ignore[attr-defined]
                 .where(*where).order_by(table.id.desc()).offset(page * size).limit(size))
    rows = []
    for row in session.connection().execute(statement):
        values = dict(row._mapping)
        for name in ("time", "received_at"):  # a time no datetime can hold reads as empty, as in the export
            if not isinstance(values[name], datetime):
                values[name] = None
        rows.append(values)
    return rows, int(total)


def choices(*, session: Session) -> dict[str, list[str]]:
    """Symbols and sources for the filters, the most frequent first (at most MAX_CHOICES)."""
    found = {}
    for name, column in (("symbols", Signal.symbol), ("sources", Signal.source)):
        rows = session.exec(select(column, sa.func.count()).where(column.is_not(None)).group_by(column)
                            .order_by(sa.func.count().desc(), column).limit(MAX_CHOICES)).all()
        found[name] = sorted(str(value) for value, _ in rows)
    return found


STATUSES = tuple(status.value for status in SignalStatus)
ORIGINS = tuple(origin.value for origin in Origin)
