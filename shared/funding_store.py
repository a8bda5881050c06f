"""The funding store: each futures contract's funding history, once per (symbol, funding time).

The worker (worker/funding.py) writes what the exchange published; the funding rule
(shared/funding.py) and `verify --replay` read it. Writing an event again changes nothing:
the first stored version stands, so a trade's funding never moves under it.

The table is defined here rather than in shared/models.py for now (the migration is 0008);
importing this module registers it on SQLModel's metadata.
"""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from shared.columns import Money, UtcDateTime
from shared.database import insert_missing
from shared.funding import FundingEvent


class FundingRate(SQLModel, table=True):
    """One funding event of a USDⓈ-M contract as Binance published it."""

    __tablename__ = "funding_rate"

    symbol: str = Field(primary_key=True)
    funding_time: datetime = Field(sa_type=UtcDateTime, primary_key=True)  # type: ignore[call-overload]
    rate: Decimal = Field(sa_type=Money)  # type: ignore[call-overload]
    # Binance's oldest events have no mark price ("" in its answer): stored as NULL.
    mark_price: Decimal | None = Field(default=None, sa_type=Money, nullable=True)  # type: ignore[call-overload]


def store_events(symbol: str, events: Iterable[FundingEvent], *, session: Session) -> int:
    """Insert the events not stored yet (INSERT … ON CONFLICT DO NOTHING on both dialects);
    how many were given (already stored ones included)."""
    rows = [{"symbol": symbol, "funding_time": e.time, "rate": e.rate, "mark_price": e.mark_price} for e in events]
    insert_missing(FundingRate.__table__, rows, session=session)  # type: ignore[arg-type]
    return len(rows)


def events(symbol: str, since: datetime, until: datetime, *, session: Session) -> list[FundingEvent]:
    """The stored events of `symbol` with since < time ≤ until (the funding rule's window), oldest first."""
    rows = session.exec(
        select(FundingRate)
        .where(FundingRate.symbol == symbol, FundingRate.funding_time > since, FundingRate.funding_time <= until)
        .order_by(FundingRate.funding_time)  # type: ignore[arg-type]
    )
    return [FundingEvent(r.funding_time, r.rate, r.mark_price) for r in rows]


def stored_ranges(symbols: Iterable[str], *, session: Session) -> dict[str, tuple[datetime, datetime]]:
    """The oldest and newest stored funding time of each symbol that has any."""
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    time = FundingRate.funding_time
    # min()/max() keep the column's type, so times come back aware on both dialects.
    query = (sa.select(FundingRate.symbol, sa.func.min(time), sa.func.max(time))  # type: ignore[call-overload]
             .where(FundingRate.symbol.in_(wanted))  # type: ignore[attr-defined]
             .group_by(FundingRate.symbol))
    return {symbol: (oldest, newest) for symbol, oldest, newest in session.execute(query)}
