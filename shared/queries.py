"""Reading trades: the queries the CLI, the worker and the site share.

One definition of "active" (PENDING or OPEN), "closed" (CLOSED_* and LIQUIDATED) and "live only"
(signals received within 10 minutes of their time), and one way to load the closed trades for
the metrics, so `signalproof stats` and the site's cards cannot disagree. Functions take a
keyword-only `session`; the caller owns the transaction.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, select

from shared import metrics, settings as runtime, summaries
from shared.columns import UtcDateTime, plain_on_postgres
from shared.kinds import ACTIVE_STATUSES, CLOSED_STATUSES, Origin, Side, TradeStatus
from shared.models import Trade

Statement = TypeVar("Statement", bound=Any)


def is_active() -> sa.ColumnElement[bool]:
    """PENDING or OPEN: the trades the worker still follows."""
    return Trade.status.in_(ACTIVE_STATUSES)  # type: ignore[attr-defined]


def is_closed() -> sa.ColumnElement[bool]:
    """CLOSED_* and LIQUIDATED: the trades the metrics count."""
    return Trade.status.in_(CLOSED_STATUSES)  # type: ignore[attr-defined]


def live_only(statement: Statement, live: bool = True) -> Statement:
    """Restrict a trade query to live signals (no backfill) when `live` is set."""
    return statement.where(Trade.origin == Origin.LIVE) if live else statement


def active_trades(*, session: Session, newest_first: bool = False) -> list[Trade]:
    order = Trade.id.desc() if newest_first else Trade.id  # type: ignore[union-attr]
    return list(session.exec(select(Trade).where(is_active()).order_by(order)))


def active_markets(*, session: Session) -> set[tuple[str, str]]:
    """(market, symbol) of every active trade."""
    return set(session.exec(select(Trade.market, Trade.symbol).where(is_active())))


def open_keys(*, session: Session) -> list[tuple[str, Side]]:
    """(symbol, side) of every active trade: what `max_open_trades`/`one_per_symbol_side` count."""
    return [(symbol, side) for symbol, side in session.exec(select(Trade.symbol, Trade.side).where(is_active()))]


def oldest_unresolved(*, session: Session) -> datetime | None:
    """The oldest candle an active trade still waits for (its last checked one, or its signal time)."""
    oldest = sa.func.min(sa.func.coalesce(Trade.last_candle_time, Trade.signal_time), type_=UtcDateTime())
    return session.exec(select(oldest).where(is_active())).one()


@dataclass(frozen=True)
class ClosedTrades:
    """The closed trades, reduced to what the metrics need, in equity-curve order."""

    trades: metrics.OrderedTrades
    symbols: list[str]  # per trade, in the same order
    sides: list[str]


def closed_trades(*, session: Session, live: bool = False) -> ClosedTrades:
    """The one way the CLI and the site load closed trades for the metrics."""
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    columns = plain_on_postgres([trade.id, trade.symbol, trade.side, trade.entry_time, trade.exit_time,
                                 trade.pnl_usd], session.get_bind().dialect.name)
    statement = sa.select(*columns).where(trade.status.in_(CLOSED_STATUSES)).order_by(trade.exit_time, trade.id)
    if live:
        statement = statement.where(trade.origin == Origin.LIVE)
    rows: Sequence[Any] = session.connection().execute(statement).all()  # Core rows: no ORM bookkeeping
    # The database already sorted them; order_closed keeps the metrics' own tie rule authoritative.
    ordered = metrics.order_closed(metrics.ClosedTrade(i, entry or exit_, exit_, pnl)
                                   for i, _, _, entry, exit_, pnl in rows)
    by_id = {row[0]: row for row in rows}
    return ClosedTrades(ordered, [by_id[t.trade_id][1] for t in ordered], [by_id[t.trade_id][2] for t in ordered])


def status_counts(*, session: Session, live: bool = False) -> dict[str, int]:
    statement = live_only(select(Trade.status, sa.func.count()).group_by(Trade.status), live)
    return {str(status): count for status, count in session.exec(statement).all()}


def trade_counts(*, session: Session, live: bool = False) -> metrics.Counts:
    by_status = status_counts(session=session, live=live)
    ambiguous = session.exec(live_only(select(sa.func.count()).select_from(Trade).where(Trade.ambiguous), live)).one()
    return metrics.Counts(
        open_trades=by_status.get(TradeStatus.OPEN, 0), pending_trades=by_status.get(TradeStatus.PENDING, 0),
        cancelled_trades=by_status.get(TradeStatus.CANCELLED, 0), ambiguous_trades=ambiguous,
    )


def active_counts(*, session: Session, live: bool = False) -> dict[str, int]:
    """Trades per active status (PENDING, OPEN): few rows, found through the status index."""
    statement = live_only(select(Trade.status, sa.func.count()).where(is_active()).group_by(Trade.status), live)
    return {str(status): count for status, count in session.exec(statement).all()}


def headline_stats(*, session: Session, live: bool = False) -> metrics.Stats:
    """The numbers of `signalproof stats` (and the site's headline cards), from the summary tables."""
    starting = runtime.current(session=session).starting_balance_usd
    return summaries.load(session=session, with_bins=False).stats(starting_balance=starting, live=live,
                                                 active=active_counts(session=session, live=live))
