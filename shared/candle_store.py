"""The candle store: closed klines the worker already fetched, kept for the site.

The site never calls the exchange. To draw a trade's life on its candles, and BTCUSDT
buy-and-hold beside the equity curve, it reads candles the worker stored here.
One row per (market, symbol, interval, open time); writing the same candle again changes nothing.

What is kept (docs/deployment.md, "The candle store"):
- every closed candle the monitor fetched for trades (`store`, one bulk statement per write),
  in the trades' own interval and in the coarse one of a catch-up; no request is made for them;
- for as long as a trade's life needs them: `retain` deletes every candle that opens more than
  `MARGIN_CANDLES` candles of its own interval before the signal or after the end (exit, or the
  last candle checked) of every trade on its market and symbol; a PENDING or OPEN trade keeps
  everything from its signal on;
- BTCUSDT spot daily candles (the benchmark) for good, fetched by `benchmark_request`'s rules.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from shared.candles import INTERVALS, Candle
from shared.clock import EPOCH
from shared.columns import UtcDateTime
from shared.kinds import ACTIVE_STATUSES, Market
from shared.models import StoredCandle, Trade

BENCHMARK_SYMBOL = "BTCUSDT"
BENCHMARK_MARKET = Market.SPOT
BENCHMARK_INTERVAL = "1d"
MARGIN_CANDLES = 60  # kept before each signal and after each trade's end, in candles of their own interval
RETENTION_BATCH = 5_000  # candles looked at per DELETE

StoredRow = tuple[str, str, str, Candle]  # (market, symbol, interval, candle)

_CANDLE = StoredCandle.__table__  # type: ignore[attr-defined]
_TRADE = Trade.__table__  # type: ignore[attr-defined]


def candles(market: str, symbol: str, interval: str, since: datetime, until: datetime, *,
            session: Session) -> list[Candle]:
    """The stored candles opening in [since, until], oldest first."""
    rows = session.exec(
        select(StoredCandle)
        .where(StoredCandle.market == market, StoredCandle.symbol == symbol, StoredCandle.interval == interval,
               StoredCandle.open_time >= since, StoredCandle.open_time <= until)
        .order_by(StoredCandle.open_time)
    )
    return [Candle(r.open_time, r.open, r.high, r.low, r.close) for r in rows]


def benchmark_closes(since: datetime, until: datetime, *, session: Session) -> list[tuple[datetime, Decimal]]:
    """BTCUSDT spot daily candles opening in [since, until]: (open time, close), oldest first."""
    return [(c.open_time, c.close) for c in candles(BENCHMARK_MARKET.value, BENCHMARK_SYMBOL, BENCHMARK_INTERVAL,
                                                     since, until, session=session)]


# --- writing ------------------------------------------------------------------------------------


def store(rows: Iterable[StoredRow], *, session: Session) -> int:
    """Insert the candles not stored yet, in one statement (INSERT … ON CONFLICT DO NOTHING on
    both databases): a candle already there, or twice in `rows`, stays as it was. Returns how
    many were given."""
    params = [{"market": str(market), "symbol": symbol, "interval": interval, "open_time": c.open_time,
               "open": c.open, "high": c.high, "low": c.low, "close": c.close}
              for market, symbol, interval, c in rows]
    if not params:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # One single-row statement for many parameter sets: SQLAlchemy batches it into multi-row
    # INSERTs ("insertmanyvalues") from one compiled statement.
    session.execute(insert(_CANDLE).on_conflict_do_nothing(), params)
    return len(params)


# --- retention ----------------------------------------------------------------------------------


def margin_seconds(interval: str) -> int:
    return int(MARGIN_CANDLES * INTERVALS[interval].total_seconds()) if interval in INTERVALS else 3600


def _shifted(moment: sa.ColumnElement[datetime], seconds: sa.ColumnElement[int], dialect: str) -> sa.ColumnElement:
    """`moment` + `seconds`, in SQL, comparable with a stored open time."""
    if dialect == "postgresql":
        return moment + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS.ffffff" text (shared.columns.UtcDateTime),
    # which sorts as time; strftime's %f has milliseconds: three more digits make it the same shape.
    return sa.func.strftime("%Y-%m-%d %H:%M:%f", moment,
                            sa.cast(seconds, sa.String) + sa.literal(" seconds")).concat("000")


def retain(*, session: Session, batch: int = RETENTION_BATCH) -> int:
    """Delete the candles no trade's life (plus the margin) needs, in SQL, `batch` candles of one
    market and symbol at a time (walked in key order, so each is looked at once). Returns how many
    were deleted. The benchmark's daily candles stay."""
    dialect = session.get_bind().dialect.name
    c, t = _CANDLE.c, _TRADE.c
    margin = sa.case({name: margin_seconds(name) for name in INTERVALS}, value=c.interval, else_=3600)
    end = sa.func.coalesce(t.exit_time, t.last_candle_time, t.entry_time, t.signal_time)
    needed = sa.exists().where(
        t.market == c.market, t.symbol == c.symbol,
        c.open_time >= _shifted(t.signal_time, -margin, dialect),
        sa.or_(t.status.in_(ACTIVE_STATUSES), c.open_time <= _shifted(end, margin, dialect)))
    deleted = 0
    # Every stored candle is of a traded market and symbol (the benchmark's aside): walk those.
    pairs = sorted({(str(m), s) for m, s in session.execute(sa.select(t.market, t.symbol).distinct())})
    for market, symbol in pairs:
        here = sa.and_(c.market == market, c.symbol == symbol)
        if (market, symbol) == (BENCHMARK_MARKET.value, BENCHMARK_SYMBOL):
            here = sa.and_(here, c.interval != BENCHMARK_INTERVAL)
        after: tuple[str, datetime] | None = None
        while True:
            window = here if after is None else sa.and_(here, _key_after(c, after))
            keys = session.execute(sa.select(c.interval, c.open_time).where(window)
                                   .order_by(c.interval, c.open_time).offset(batch - 1).limit(1)).first()
            last = None if keys is None else (keys[0], keys[1])
            chunk = window if last is None else sa.and_(window, sa.not_(_key_after(c, last)))
            deleted += session.execute(sa.delete(_CANDLE).where(chunk, sa.not_(needed))).rowcount or 0
            if last is None:
                break
            after = last
    deleted += _orphans(session=session)
    return deleted


def _key_after(c: sa.ColumnCollection, key: tuple[str, datetime]) -> sa.ColumnElement[bool]:
    """(interval, open_time) > key, spelled out (row values compare the same on both databases,
    but the time must go through its column type)."""
    interval, at = key
    at_value = sa.literal(at, UtcDateTime())
    return sa.or_(c.interval > interval, sa.and_(c.interval == interval, c.open_time > at_value))


def _orphans(*, session: Session) -> int:
    """Candles of a market and symbol no trade has (and not the benchmark's days)."""
    c, t = _CANDLE.c, _TRADE.c
    traded = sa.exists().where(t.market == c.market, t.symbol == c.symbol)
    benchmark = sa.and_(c.market == BENCHMARK_MARKET.value, c.symbol == BENCHMARK_SYMBOL,
                        c.interval == BENCHMARK_INTERVAL)
    return session.execute(sa.delete(_CANDLE).where(sa.not_(traded), sa.not_(benchmark))).rowcount or 0


# --- the benchmark's daily candles ----------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkRequest:
    """The one klines request the benchmark job makes now: daily candles from `start`."""

    start: datetime


def day_of(moment: datetime) -> datetime:
    """The UTC midnight starting `moment`'s day (a daily candle's open time)."""
    return moment - (moment - EPOCH) % timedelta(days=1)


def benchmark_request(*, session: Session, now: datetime) -> BenchmarkRequest | None:
    """What to ask for: the days after the newest stored one (or from the first trade's signal
    day), when at least one of them has closed; None when nothing is missing (or no trade yet)."""
    c, t = _CANDLE.c, _TRADE.c
    newest = session.execute(sa.select(sa.func.max(c.open_time)).where(
        c.market == BENCHMARK_MARKET.value, c.symbol == BENCHMARK_SYMBOL, c.interval == BENCHMARK_INTERVAL)).scalar()
    if newest is not None:
        start = newest + timedelta(days=1)
    else:
        first = session.execute(sa.select(sa.func.min(t.signal_time))).scalar()
        if first is None:
            return None
        start = day_of(first)
    if start + timedelta(days=1) > now:
        return None  # today's candle has not closed yet
    return BenchmarkRequest(start)
