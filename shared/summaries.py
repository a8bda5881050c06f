"""The summary tables, kept by every writer in the transaction that ends a trade.

The public pages and `signalproof stats` never read the whole trade table: they combine a few
thousand summary rows (shared/rollup.py says why that is exact):

- `summary_day`: per UTC exit day and scope ("all", "live"), the day's Tally and Stretch. A day
  is recomputed from its trades whenever a trade closes into it, so a close that arrives late
  (a backfilled signal, a worker catching up) lands in its own day, in exit order.
- `summary_breakdown`: per origin, symbol, side and status, the Tally of ended trades (closed
  ones, and cancelled ones counted only): each end is added to its row.
- `summary_bin`: per origin, closed trades per bin of P/L and of time in trade (histograms).

`trade_rows.save_decision` calls `count_end` for each trade that closes or is cancelled (and
`record_opened` calls `note_trade` for each new one); the changes are applied once, just before
that transaction commits (`_apply`), so a tick that closes ten thousand trades recomputes each
day it touched once. `rebuild` recreates everything from the trades (`signalproof db
rebuild-summaries`); `is_current` notices trades the summaries do not know of (rows written by
hand, a restored backup), and the readers then compute from the trades themselves.
"""

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from operator import attrgetter
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, delete, select

from shared.kinds import CLOSED_STATUSES, Origin, TradeStatus
from shared.models import DaySummary, DistributionBin, SummaryState, Trade, TradeBreakdown
from shared import metrics
from shared.columns import plain_on_postgres
from shared.money import EXACT_CONTEXT, exact_sum, rounded
from shared.rollup import Stretch, Tally, joined, total

log = logging.getLogger(__name__)

ALL, LIVE = "all", "live"
ENDED_STATUSES = (*CLOSED_STATUSES, TradeStatus.CANCELLED)
PNL_BINS_PER_DOLLAR = 10
HOUR_BINS_PER_DECADE = 20
SHORTEST_HOURS = 1 / 60  # a log scale has no 0: faster exits count as one minute
_PENDING = "signalproof.summaries"
_TALLY_FIELDS = ("trades", "wins", "losses", "pnl", "gross_profit", "gross_loss", "best", "worst", "ambiguous")
_STRETCH_FIELDS = ("high", "low", "low_at", "fall", "trough", "trough_at", "win_lead", "win_tail", "win_run",
                   "loss_lead", "loss_tail", "loss_run")


@dataclass
class _Changes:
    """What one transaction's trade ends add to the summaries, applied at commit."""

    breakdown: dict[tuple[str, str, str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    bins: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    days: set[date] = field(default_factory=set)
    newest_trade: int = 0


def note_trade(trade_id: int, *, session: Session) -> None:
    """A trade was created in this session's transaction (`trade_rows.record_opened`)."""
    changes: _Changes = session.info.setdefault(_PENDING, _Changes())
    changes.newest_trade = max(changes.newest_trade, trade_id)


def count_end(trade: Trade, *, status: TradeStatus, pnl: Decimal | None, entry_time: datetime | None,
              exit_time: datetime | None, ambiguous: bool, session: Session) -> None:
    """A trade just closed or was cancelled in this session's transaction: count it at commit."""
    changes: _Changes = session.info.setdefault(_PENDING, _Changes())
    key = (str(trade.origin), trade.symbol, str(trade.side), str(status))
    if status is TradeStatus.CANCELLED or pnl is None or exit_time is None:
        changes.breakdown[key] += Tally(trades=1)
        return
    changes.breakdown[key] += Tally.one(pnl, ambiguous=ambiguous)
    for measure, bin_ in _bins(pnl, entry_time or exit_time, exit_time):
        changes.bins[(str(trade.origin), measure, bin_)] += 1
    changes.days.add(_day(exit_time))


def _bins(pnl: Decimal, entry_time: datetime, exit_time: datetime) -> list[tuple[str, int]]:
    hours = max((exit_time - entry_time).total_seconds() / 3600, SHORTEST_HOURS)
    found = [("hours", math.floor(math.log10(hours) * HOUR_BINS_PER_DECADE + 1e-9))]
    if pnl != 0:  # breakevens are the Tally's; a bin [0, 0.10) holds wins only
        found.append(("pnl", math.floor(pnl * PNL_BINS_PER_DOLLAR)))
    return found


def _day(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


@event.listens_for(OrmSession, "before_commit")
def _apply(session: OrmSession) -> None:
    changes: _Changes | None = session.info.pop(_PENDING, None)
    if changes is None:
        return
    for key, tally in changes.breakdown.items():
        origin, symbol, side, status = key
        row = session.get(TradeBreakdown, key)
        if row is None:
            session.add(TradeBreakdown(origin=origin, symbol=symbol, side=side, status=status, **_tally_values(tally)))
        else:
            _assign(row, _tally_values(tally_of(row) + tally))
    for (origin, measure, bin_), count in changes.bins.items():
        bin_row = session.get(DistributionBin, (origin, measure, bin_))
        if bin_row is None:
            session.add(DistributionBin(origin=origin, measure=measure, bin=bin_, trades=count))
        else:
            bin_row.trades += count
    refresh_days(sorted(changes.days), session=session)  # type: ignore[arg-type]
    if changes.newest_trade:
        state = session.get(SummaryState, 1)
        if state is None:
            session.add(SummaryState(id=1, max_trade_id=changes.newest_trade))
        elif state.max_trade_id < changes.newest_trade:
            state.max_trade_id = changes.newest_trade
    session.flush()


@event.listens_for(OrmSession, "after_soft_rollback")
def _forget(session: OrmSession, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


def _tally_values(tally: Tally) -> dict[str, Any]:
    return {name: getattr(tally, name) for name in _TALLY_FIELDS}


# A row's columns in the order of the dataclasses' fields (attrgetter: one call per row).
_TALLY_OF = attrgetter(*(f.name for f in fields(Tally)))
_STRETCH_OF = attrgetter(*(f.name for f in fields(Stretch)))


def tally_of(row: Any) -> Tally:
    return Tally(*_TALLY_OF(row))


def _stretch_of(row: DaySummary) -> Stretch:
    return Stretch(*_STRETCH_OF(row))


def _assign(row: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(row, name, value)


# --- days: recomputed from their trades ------------------------------------------------------


def _closed_columns(session: Session) -> list[Any]:
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    return plain_on_postgres([trade.id, trade.origin, trade.symbol, trade.side, trade.status, trade.entry_time,
                              trade.exit_time, trade.pnl_usd, trade.ambiguous], session.get_bind().dialect.name)


def _closed_between(start: datetime, end: datetime, *, session: Session) -> Sequence[Any]:
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    statement = (sa.select(*_closed_columns(session))
                 .where(trade.status.in_(CLOSED_STATUSES), trade.exit_time >= start, trade.exit_time < end)
                 .order_by(trade.exit_time, trade.id))
    return session.connection().execute(statement).all()


def refresh_days(days: Iterable[date], *, session: Session) -> None:
    """Recompute the summary rows of these days from their closed trades."""
    for day in days:
        rows = _closed_between(_midnight(day), _midnight(day + timedelta(days=1)), session=session)
        _store_day(day, rows, session=session)


def _store_day(day: date, rows: Sequence[Any], *, session: Session) -> None:
    session.execute(delete(DaySummary).where(DaySummary.day == day))  # type: ignore[arg-type]
    session.add_all(_day_summaries(day, rows))


def _day_summaries(day: date, rows: Sequence[Any]) -> list[DaySummary]:
    live = [row for row in rows if row.origin == Origin.LIVE]
    return [_day_summary(scope, day, trades) for scope, trades in ((ALL, rows), (LIVE, live)) if trades]


def _day_summary(scope: str, day: date, rows: Sequence[Any]) -> DaySummary:
    """One day's trades, in exit order (exit time, then trade id)."""
    pnls = [row.pnl_usd for row in rows]
    tally = Tally.of(pnls, ambiguous=sum(1 for row in rows if row.ambiguous))
    stretch = Stretch.of(pnls)
    high_at = _first_position(pnls, stretch.high)
    return DaySummary(
        scope=scope, day=day, **_tally_values(tally), **{name: getattr(stretch, name) for name in _STRETCH_FIELDS},
        first_entry=min((row.entry_time or row.exit_time) for row in rows), last_exit=rows[-1].exit_time,
        high_time=rows[high_at - 1].exit_time if high_at else None,
        low_time=rows[stretch.low_at - 1].exit_time if stretch.low_at else None,
    )


def _first_position(pnls: Sequence[Decimal], offset: Decimal) -> int:
    """The first position (0 = the start) where the running sum equals `offset`."""
    if offset == 0:
        return 0
    running = Decimal(0)
    with localcontext(EXACT_CONTEXT):
        for position, pnl in enumerate(pnls, 1):
            running += pnl
            if running == offset:
                return position
    return 0


# --- rebuilding and checking -----------------------------------------------------------------


@dataclass(frozen=True)
class Summaries:
    """Every summary row, as read from the tables (or computed from the trades: `compute`).
    Rows read are plain rows with the models' attributes; computed ones are model objects."""

    day_rows: list[DaySummary]
    breakdown: list[TradeBreakdown]
    bins: list[DistributionBin]

    def days(self, *, live: bool = False) -> "Days":
        scope = LIVE if live else ALL
        return Days([row for row in self.day_rows if row.scope == scope])

    def ended(self, *, live: bool = False) -> list[TradeBreakdown]:
        return [row for row in self.breakdown if not live or row.origin == Origin.LIVE.value]

    def histogram(self, measure: str, *, live: bool = False) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for row in self.bins:
            if row.measure == measure and (not live or row.origin == Origin.LIVE.value):
                counts[row.bin] += row.trades
        return dict(sorted(counts.items()))

    def stats(self, *, starting_balance: Decimal, active: dict[str, int], live: bool = False,
              min_trades_for_ratios: int = metrics.MIN_TRADES_FOR_RATIOS) -> metrics.Stats:
        """The headline metrics (`signalproof stats`); `active`: trades per active status."""
        daily = self.days(live=live)
        tally = daily.tally
        counts = metrics.Counts(
            open_trades=active.get(TradeStatus.OPEN, 0), pending_trades=active.get(TradeStatus.PENDING, 0),
            cancelled_trades=sum(r.trades for r in self.ended(live=live) if r.status == TradeStatus.CANCELLED),
            ambiguous_trades=tally.ambiguous,
        )
        enough = tally.trades > 0 and tally.trades >= min_trades_for_ratios
        first_day = daily.first_entry_day
        returns = (metrics.returns_by_day(daily.pnl_by_day, first_day, starting_balance)
                   if enough and first_day is not None else None)
        return metrics.stats_of(tally.summary(), daily.stretch.drawdown(starting_balance), returns, counts)


def load(*, session: Session, with_bins: bool = True) -> Summaries:
    """The summary tables (as plain rows: no ORM objects for thousands of bins); computed from
    the trades instead when they do not match them. `with_bins=False`: no histograms needed."""
    if not is_current(session=session):
        log.warning("the summary tables do not match the trades (the worker rebuilds them when it starts; "
                    "`signalproof db rebuild-summaries` does now): computing from the trades")
        return compute(session=session)

    def rows(table: Any, *order: Any) -> list[Any]:
        columns = table.__table__.c
        return list(session.connection().execute(sa.select(*plain_on_postgres(columns, session.get_bind().dialect.name)).order_by(*order)).all())

    return Summaries(rows(DaySummary, DaySummary.day), rows(TradeBreakdown),
                     rows(DistributionBin) if with_bins else [])


def compute(*, session: Session, batch: int = 50_000) -> Summaries:
    """Every summary row from the trades (one pass in exit order), without storing them."""
    day_rows: list[DaySummary] = []
    changes = _Changes()
    pnls: dict[tuple[str, str, str, str], list[Decimal]] = defaultdict(list)
    ambiguous: dict[tuple[str, str, str, str], int] = defaultdict(int)
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    statement = (sa.select(*_closed_columns(session)).where(trade.status.in_(CLOSED_STATUSES))
                 .order_by(trade.exit_time, trade.id).execution_options(yield_per=batch))
    one_day: list[Any] = []
    for row in session.connection().execute(statement):
        if one_day and _day(one_day[0].exit_time) != _day(row.exit_time):
            day_rows.extend(_day_summaries(_day(one_day[0].exit_time), one_day))
            one_day = []
        one_day.append(row)
        key = (str(row.origin), row.symbol, str(row.side), str(row.status))
        pnls[key].append(row.pnl_usd)
        ambiguous[key] += bool(row.ambiguous)
        for measure, bin_ in _bins(row.pnl_usd, row.entry_time or row.exit_time, row.exit_time):
            changes.bins[(str(row.origin), measure, bin_)] += 1
    if one_day:
        day_rows.extend(_day_summaries(_day(one_day[0].exit_time), one_day))
    for key, values in pnls.items():
        changes.breakdown[key] = Tally.of(values, ambiguous=ambiguous[key])
    cancelled = session.exec(select(Trade.origin, Trade.symbol, Trade.side, sa.func.count())
                             .where(Trade.status == TradeStatus.CANCELLED)
                             .group_by(Trade.origin, Trade.symbol, Trade.side)).all()
    for origin, symbol, side, count in cancelled:
        changes.breakdown[(str(origin), symbol, str(side), TradeStatus.CANCELLED.value)] += Tally(trades=count)
    return Summaries(
        day_rows,
        [TradeBreakdown(origin=origin, symbol=symbol, side=side, status=status, **_tally_values(tally))
         for (origin, symbol, side, status), tally in changes.breakdown.items()],
        [DistributionBin(origin=origin, measure=measure, bin=bin_, trades=count)
         for (origin, measure, bin_), count in changes.bins.items()],
    )


def rebuild(*, session: Session) -> int:
    """Recreate every summary row from the trades; returns the number of ended trades."""
    computed = compute(session=session)
    for table in (DaySummary, TradeBreakdown, DistributionBin, SummaryState):
        session.execute(delete(table))
    session.add_all([*computed.day_rows, *computed.breakdown, *computed.bins,
                     SummaryState(id=1, max_trade_id=_newest_trade(session=session))])
    session.flush()
    return sum(row.trades for row in computed.breakdown)


def is_current(*, session: Session) -> bool:
    """Do the summaries know of every trade? (Two index lookups: the newest trade they know of
    is the newest there is. Trades are only created through `trade_rows.record_opened`; one
    written by hand, or a restored backup, makes this False.)"""
    state = session.get(SummaryState, 1)
    return (state.max_trade_id if state is not None else 0) == _newest_trade(session=session)


def _newest_trade(*, session: Session) -> int:
    return int(session.exec(select(sa.func.coalesce(sa.func.max(Trade.id), 0))).one())


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Days:
    """The day rows of one scope, in day order, and what they add up to."""

    rows: list[DaySummary]

    @cached_property
    def stretch(self) -> Stretch:
        return joined(_stretch_of(row) for row in self.rows)

    @cached_property
    def tally(self) -> Tally:
        return total(tally_of(row) for row in self.rows)

    @cached_property
    def pnl_by_day(self) -> dict[date, Decimal]:
        return {row.day: row.pnl for row in self.rows}

    @cached_property
    def first_entry_day(self) -> date | None:
        return min((_day(row.first_entry) for row in self.rows), default=None)


def pnl_since(since: datetime, daily: Days, *, session: Session, live: bool = False) -> Decimal:
    """Realized P/L of the trades that exited at or after `since`: whole days from the
    summaries, the part of `since`'s own day from the trades (an indexed range)."""
    next_midnight = _midnight(_day(since) + timedelta(days=1))
    partial = [row.pnl_usd for row in _closed_between(since, next_midnight, session=session)
               if not live or row.origin == Origin.LIVE]
    whole = [row.pnl for row in daily.rows if row.day > _day(since)]
    return rounded(exact_sum([*partial, *whole]))
