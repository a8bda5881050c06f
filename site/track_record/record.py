"""What the public pages show, computed from the database in one pass per data version.

Plain functions over a session (no Streamlit here; `loaders` caches them). Every number comes
from the summary tables the worker keeps (shared/summaries.py) and the metrics of
`shared.metrics`, exactly as `signalproof stats` computes them, so the page and the CLI agree
and a page reads a few thousand rows whatever the number of trades. The trade history is paged
in SQL (`trade_page`), never loaded whole.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, localcontext
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, select

from shared import candle_store, metrics, queries, settings as runtime, summaries
from shared.columns import plain_on_postgres
from shared import funding_store
from shared.clock import utcnow
from shared.candles import INTERVALS
from shared.exits import (
    Fill as ExitFill, TradeState, TradeTerms, funding_payments, liquidation_price, next_targets, stop_in_force,
    unrealized_pnl,
)
from shared.funding import FundingEvent
from shared.money import EXACT_CONTEXT, exact_sum
from shared.owner import OWNER
from shared.models import (
    CLOSED_STATUSES, Event, LatestPrice, Origin, Signal, SignalStatus, StoredCandle, Trade, TradeFill, TradeStatus,
    WorkerHeartbeat,
)
from shared.rollup import Tally
from shared.targets import SINGLE
from shared.trade_rows import fills_of, state_of, terms_of

CURVE_POINTS = 2_000  # up to this many closed trades the curve has a point per exit, then per day


@dataclass(frozen=True)
class Snapshot:
    """Everything the Overview, Analytics and Methodology pages read (one data version)."""

    title: str
    description: str
    settings: dict[str, str]
    starting_balance: float
    stats: dict[str, Any]  # exactly `signalproof stats --json`
    curve: pd.DataFrame  # time, equity, drawdown_usd, drawdown_pct, trade_id (see `_curve`)
    daily_curve: bool  # the curve has a day's high, low and close per day, not a point per exit
    last_equity: float
    live_start: datetime | None
    period_pnl: dict[str, float]  # "7 days", "30 days", "all time"
    recent: pd.DataFrame
    signal_counts: dict[str, int]
    settings_changes: pd.DataFrame  # time, actor, label
    per_symbol: pd.DataFrame
    by_side: pd.DataFrame
    exit_reasons: pd.DataFrame
    monthly: pd.DataFrame
    pnl_bins: pd.DataFrame  # pnl_usd (a bin's middle), trades: every closed trade, binned by $0.10
    duration_bins: pd.DataFrame  # duration_hours (a bin's middle on a log scale), trades
    streaks: tuple[int, int]
    # The period shown (None: open-ended) and what it starts from: the starting balance plus
    # everything realized before it.
    since: datetime | None = None
    until: datetime | None = None
    start_equity: float = 0.0
    honest: "Honest | None" = None
    daily_pnl: pd.DataFrame | None = None  # day, pnl_usd: every UTC day of the period with an exit
    benchmark: pd.DataFrame | None = None  # time, return (BTCUSDT buy-and-hold from the period's start)
    record_return: pd.DataFrame | None = None  # time, return (the realized equity, as the benchmark)
    distributions_all_time: bool = False  # the histograms are of the whole record, whatever the period
    # Several targets (docs/trade-rules.md): whether any trade of the record was split over more
    # than one target (the tables then show "targets hit"), and the period's hit rate per target.
    split_trades: bool = False
    target_hits: pd.DataFrame | None = None  # target, trades, reached, reached_lost (`target_hit_rates`)


@dataclass(frozen=True)
class Honest:
    """What the observed numbers do and do not say (shared.metrics; docs/metrics.md)."""

    win_rate: float | None
    interval: tuple[float, float] | None  # 95 % Wilson interval of the win rate
    breakeven_win_rate: float | None
    payoff_ratio: float | None
    days: float  # the record's length: first entry to last exit (or now, with trades open)
    first_entry: datetime | None
    end: datetime | None
    cagr: float | None
    calmar: float | None
    trades_per_day: float | None
    benchmark: list[tuple[datetime, float]]  # BTCUSDT buy-and-hold over the same days (`_benchmark`)

    @property
    def benchmark_return(self) -> float | None:
        return self.benchmark[-1][1] if len(self.benchmark) >= 2 else None


def data_version(*, session: Session) -> tuple[int, str]:
    """Changes whenever anything the pages show changes: every state change appends an event."""
    last_event = session.exec(select(sa.func.max(Event.id))).one() or 0
    settings_at = runtime.current(session=session).updated_at
    return last_event, settings_at.isoformat() if settings_at else ""


def heartbeat(*, session: Session) -> WorkerHeartbeat | None:
    return session.get(WorkerHeartbeat, 1)


def _curve_frame(times: list[datetime], trade_ids: list[int | None], equity: list[Decimal]) -> pd.DataFrame:
    values = np.array(equity, dtype=float)
    peak = np.maximum.accumulate(values) if len(values) else values
    drawdown = peak - values
    frame = pd.DataFrame({
        "time": pd.to_datetime(pd.Series(times, dtype=object), utc=True),
        "equity": values,
        "drawdown_usd": drawdown,
        # as metrics.EquityPoint: no fraction of a peak that is not positive
        "drawdown_pct": np.divide(drawdown, peak, out=np.zeros_like(drawdown), where=peak > 0),
        "trade_id": pd.array(trade_ids, dtype="Int64"),
    })
    if len(frame) <= CURVE_POINTS:
        return frame
    from track_record.charts import downsample

    return downsample(frame, CURVE_POINTS)


def _curve(daily: summaries.Days, starting: Decimal, *, session: Session, live_only: bool,
           since: datetime | None = None, until: datetime | None = None) -> tuple[pd.DataFrame, bool]:
    """The realized equity curve: a point per exit for a short record (read from the trades);
    for a long one, per day its high and low (at their times) and its close, from the summaries,
    so the chart keeps every day's extremes without reading a million trades. For a period,
    the trades that exited in it, from the equity at its start."""
    if daily.tally.trades <= CURVE_POINTS:
        trades = (queries.closed_trades(session=session, live=live_only).trades if since is None and until is None
                  else _closed_between(since, until, session=session, live_only=live_only))
        columns = metrics.equity_columns(trades, starting)
        if since is not None and columns.time and columns.time[0] < since:
            columns.time[0] = since  # the period's curve starts with the period
        return _curve_frame(columns.time, columns.trade_id, columns.equity), False
    first = min(_aware(row.first_entry) for row in daily.rows)
    times: list[datetime] = [max(first, since) if since is not None else first]
    equity: list[Decimal] = [starting]
    start = starting
    for row in daily.rows:
        with localcontext(EXACT_CONTEXT):
            points = sorted((at, start + offset) for at, offset in ((row.high_time, row.high), (row.low_time, row.low))
                            if at is not None)
            points.append((row.last_exit, start + row.pnl))
            start += row.pnl
        for at, value in points:
            times.append(at)
            equity.append(value)
    return _curve_frame(times, [None] * len(times), equity), True


def _closed_between(since: datetime | None, until: datetime | None, *, session: Session,
                    live_only: bool) -> metrics.OrderedTrades:
    """The closed trades that exited in [since, until), through the exit-time index."""
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    columns = plain_on_postgres([trade.id, trade.entry_time, trade.exit_time, trade.pnl_usd],
                                session.get_bind().dialect.name)
    statement = sa.select(*columns).where(trade.status.in_(CLOSED_STATUSES)).order_by(trade.exit_time, trade.id)
    if since is not None:
        statement = statement.where(trade.exit_time >= since)
    if until is not None:
        statement = statement.where(trade.exit_time < until)
    if live_only:
        statement = statement.where(trade.origin == Origin.LIVE)
    return metrics.order_closed(metrics.ClosedTrade(i, _aware(entry or exit_), _aware(exit_), pnl)
                                for i, entry, exit_, pnl in session.connection().execute(statement).all())


def _group_stats(ended: list[Any], by: str) -> pd.DataFrame:
    groups: dict[str, summaries.Tally] = {}
    for row in ended:
        if row.status in CLOSED_STATUSES:
            groups[getattr(row, by)] = groups.get(getattr(row, by), Tally()) + summaries.tally_of(row)
    rows = []
    for key, tally in sorted(groups.items()):
        summary = tally.summary()
        rows.append({by: key, "trades": summary.closed_trades, "wins": summary.wins, "losses": summary.losses,
                     "win_rate": _float(summary.win_rate), "pnl_usd": float(summary.total_pnl_usd),
                     "profit_factor": _float(summary.profit_factor),
                     "expectancy_usd": _float(summary.expectancy_usd)})
    return pd.DataFrame(rows, columns=[by, "trades", "wins", "losses", "win_rate", "pnl_usd", "profit_factor",
                                       "expectancy_usd"])


def _recent(*, session: Session, live_only: bool, limit: int = 10, since: datetime | None = None,
            until: datetime | None = None) -> pd.DataFrame:
    statement = (select(Trade.id, Trade.symbol, Trade.side, Trade.status, Trade.origin, Trade.entry_time,
                        Trade.exit_time, Trade.pnl_usd, Trade.pnl_pct, Trade.ambiguous, Trade.targets_hit,
                        Trade.tp_split, Trade.shares).where(queries.is_closed()))
    if since is not None:
        statement = statement.where(Trade.exit_time >= since)
    if until is not None:
        statement = statement.where(Trade.exit_time < until)
    statement = queries.live_only(statement.order_by(Trade.exit_time.desc(), Trade.id.desc()).limit(limit), live_only)
    rows = session.exec(statement).all()
    frame = pd.DataFrame([row[:10] for row in rows],
                         columns=["trade_id", "symbol", "side", "status", "origin", "entry_time", "exit_time",
                                  "pnl_usd", "pnl_pct", "ambiguous"])
    frame["targets_hit"] = [targets_label(hit, split, shares, status)
                            for (*_, hit, split, shares), status in zip(rows, frame["status"])]
    return frame.astype({"pnl_usd": float, "pnl_pct": float})


# --- several targets: targets hit per trade, hit rates per target -----------------------------


def portions_of(tp_split: str | None, shares: str | None) -> int:
    """How many parts a trade's position was split into: 1 with `single`, else its shares."""
    if not tp_split or tp_split == SINGLE or not shares:
        return 1
    return shares.count(";") + 1


def targets_label(targets_hit: int | None, tp_split: str | None, shares: str | None, status: Any) -> str | None:
    """"2/3": targets reached / parts of the position; None for a trade never entered."""
    if str(status) == TradeStatus.CANCELLED:
        return None
    return f"{targets_hit or 0}/{portions_of(tp_split, shares)}"


def _portions_column(trade: Any) -> Any:
    """`portions_of` in SQL: 1 with `single` (or no shares), else the shares' ";" count + 1."""
    semicolons = sa.func.length(trade.shares) - sa.func.length(sa.func.replace(trade.shares, ";", ""))
    return sa.case((sa.and_(trade.tp_split != SINGLE, trade.shares.is_not(None)), semicolons + 1), else_=1)


def has_split_trades(*, session: Session) -> bool:
    """Whether any trade of the record has a position split over more than one target."""
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    found = sa.exists().where(trade.tp_split != SINGLE, trade.shares.like("%;%"))
    return bool(session.connection().execute(sa.select(found)).scalar())


def target_hit_rates(*, session: Session, live_only: bool = False, since: datetime | None = None,
                     until: datetime | None = None) -> pd.DataFrame:
    """Per target number k: the closed trades of [since, until) (by exit time) whose position had
    at least k parts, how many of them reached target k (a `tpK` fill), and how many of those
    still lost overall. Two GROUP BYs; one row per target up to the most parts any trade had."""
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    fill = TradeFill.__table__.c  # type: ignore[attr-defined]

    def scoped(statement: Any) -> Any:
        statement = _within(statement.where(trade.status.in_(CLOSED_STATUSES)), trade.exit_time, since, until)
        return statement.where(trade.origin == Origin.LIVE) if live_only else statement

    parts = _portions_column(trade)
    each = scoped(sa.select(parts.label("parts"))).subquery()
    by_parts = dict(session.connection().execute(sa.select(each.c.parts, sa.func.count()).group_by(each.c.parts)).all())
    reached = scoped(sa.select(fill.kind, sa.func.count(sa.distinct(fill.trade_id)),
                               sa.func.count(sa.distinct(sa.case((trade.pnl_usd < 0, fill.trade_id)))))
                     .select_from(sa.join(Trade.__table__, TradeFill.__table__, fill.trade_id == trade.id))  # type: ignore[attr-defined]
                     .where(fill.kind.like("tp%")).group_by(fill.kind))
    hits: dict[int, tuple[int, int]] = {}
    for kind, count, lost in session.connection().execute(reached).all():
        if str(kind)[2:].isdigit():
            hits[int(str(kind)[2:])] = (int(count), int(lost))
    most = max((int(k) for k in by_parts), default=0)
    rows = []
    for k in range(1, most + 1):
        trades = sum(int(n) for p, n in by_parts.items() if int(p) >= k)
        done, lost = hits.get(k, (0, 0))
        rows.append({"target": k, "trades": trades, "reached": done, "reached_lost": lost,
                     "rate": done / trades if trades else None})
    return pd.DataFrame(rows, columns=["target", "trades", "reached", "reached_lost", "rate"])


def _distributions(tables: summaries.Summaries, breakeven: int, live_only: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Histogram bins as (value, trades) frames: a bin's middle stands for its trades."""
    pnl = tables.histogram("pnl", live=live_only)
    pnl_rows = [((b + 0.5) / summaries.PNL_BINS_PER_DOLLAR, n) for b, n in pnl.items()]
    if breakeven:
        pnl_rows.append((0.0, breakeven))
    hours = tables.histogram("hours", live=live_only)
    hour_rows = [(10 ** ((b + 0.5) / summaries.HOUR_BINS_PER_DECADE), n) for b, n in hours.items()]
    return (pd.DataFrame(pnl_rows, columns=["pnl_usd", "trades"]),
            pd.DataFrame(hour_rows, columns=["duration_hours", "trades"]))


def _signal_counts(tables: summaries.Summaries, *, session: Session) -> dict[str, int]:
    """Signals per status without counting a million rows: every accepted signal has exactly
    one trade (counted by the summaries, plus the active ones); the others are few and found
    through the status index."""
    others = session.exec(select(Signal.status, sa.func.count())
                          .where(Signal.status.in_([SignalStatus.NEW, SignalStatus.REJECTED, SignalStatus.SKIPPED]))
                          .group_by(Signal.status)).all()
    trades = sum(row.trades for row in tables.breakdown) + sum(queries.active_counts(session=session).values())
    return {SignalStatus.ACCEPTED.value: trades, **{str(status): count for status, count in others}}


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)

def _funding_events(found: Sequence[Any], now: datetime, *, session: Session) -> dict[str, list[FundingEvent]]:
    """The stored funding events of the futures symbols of these open trades that pay funding."""
    since: dict[str, datetime] = {}
    for trade, _ in found:
        if trade.futures_funding and trade.entry_time is not None:
            since[trade.symbol] = min(since.get(trade.symbol, trade.entry_time), trade.entry_time)
    return {symbol: funding_store.events(symbol, start, now, session=session) for symbol, start in since.items()}


def _marked(terms: TradeTerms, state: TradeState, price: Decimal | None, events: Sequence[FundingEvent],
            now: datetime) -> Decimal | None:
    """Unrealized P/L at `price`, with the funding paid or received so far (futures)."""
    if price is None:
        return None
    unrealized = unrealized_pnl(terms, state, price)
    if unrealized is None or not terms.funding or not events:
        return unrealized
    with localcontext(EXACT_CONTEXT):
        return unrealized + exact_sum(p.amount_usd for p in funding_payments(terms, state, events, now))


def same_candle_counts(*, session: Session) -> dict[str, int]:
    """Closed trades whose deciding candle reached both the adverse level and a target: settled
    by the exchange's trades (`trades`) or with the stop-loss assumed (`assumed`)."""
    rows = session.execute(sa.select(Trade.resolution, sa.func.count()).where(  # type: ignore[call-overload]
        Trade.resolution.in_(("trades", "assumed"))).group_by(Trade.resolution))  # type: ignore[attr-defined]
    return {"trades": 0, "assumed": 0, **{str(how): int(count) for how, count in rows}}


def _levels_now(terms: TradeTerms, state: TradeState) -> tuple[Decimal, Decimal]:
    """The next target and the stop in force of an active trade (its own, while pending)."""
    target = next_targets(terms, state)[0].target if next_targets(terms, state) else terms.take_profit
    return target, stop_in_force(terms, state) if state.entry_price is not None else terms.stop_loss


def open_positions(now: datetime, *, session: Session, live_only: bool = False) -> pd.DataFrame:
    """PENDING and OPEN trades, marked to the latest price the worker stored."""
    statement = (select(Trade, LatestPrice.price).join(
        LatestPrice, sa.and_(LatestPrice.market == Trade.market, LatestPrice.symbol == Trade.symbol), isouter=True)
        .where(queries.is_active()).order_by(Trade.id))
    statement = queries.live_only(statement, live_only)
    rows = []
    found = session.exec(statement).all()
    fills = fills_of([trade.id for trade, _ in found if trade.targets_hit], session=session)
    funding = _funding_events(found, now, session=session)
    for trade, price in found:
        terms, state = terms_of(trade), state_of(trade, fills.get(trade.id, ()))
        unrealized = _marked(terms, state, price, funding.get(trade.symbol, ()), now)
        entry = trade.entry_price or trade.signal_entry
        target, stop = _levels_now(terms, state)
        rows.append({
            "trade_id": trade.id, "symbol": trade.symbol, "side": trade.side, "market": trade.market,
            "status": trade.status, "origin": trade.origin, "leverage": trade.leverage,
            "entry_time": trade.entry_time, "entry_price": _float(trade.entry_price),
            "take_profit": float(target), "stop_loss": float(stop),
            "targets_hit": f"{state.targets_hit}/{len(terms.portions)}",
            "price": _float(price),
            "to_tp_pct": float((target - price) / price) if price else None,
            "to_sl_pct": float((stop - price) / price) if price else None,
            "unrealized_usd": _float(unrealized), "stake_usd": float(trade.stake_usd),
            "age_hours": (now - (trade.entry_time or trade.signal_time)).total_seconds() / 3600,
            "limit_price": _float(trade.signal_entry) if entry is not None and trade.status == TradeStatus.PENDING else None,
        })
    frame = pd.DataFrame(rows)
    numeric = ["entry_price", "take_profit", "stop_loss", "price", "to_tp_pct", "to_sl_pct", "unrealized_usd",
               "limit_price"]
    if len(frame):  # None → NaN: an empty cell on the page, not the word "None"
        frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    return frame


def public_changes(*, session: Session, limit: int = 500) -> pd.DataFrame:
    """The public log of changes, newest first: every settings change (from the settings page
    or the CLI) and every owner action (pause/resume, manual close or cancel)."""
    changes = sa.or_(Event.kind == "settings.changed", Event.actor == OWNER)
    events = session.exec(select(Event.at, Event.actor, Event.message).where(changes)
                          .order_by(Event.id.desc()).limit(limit)).all()
    return pd.DataFrame(events, columns=["time", "actor", "label"])


def build_snapshot(*, session: Session, now: datetime, live_only: bool = False, since: datetime | None = None,
                   until: datetime | None = None) -> Snapshot:
    """The pages' numbers for trades that exited in [since, until) (None: open-ended), from the
    summary day rows inside that period; the period's equity starts from the equity at its start."""
    settings = runtime.current(session=session)
    tables = summaries.load(session=session)
    whole = tables.days(live=live_only)
    active = queries.active_counts(session=session, live=live_only)
    ranged = since is not None or until is not None
    daily, before = _days_between(whole, since, until)
    with localcontext(EXACT_CONTEXT):
        starting = settings.starting_balance_usd + before
    ended = _ended_between(since, until, session=session, live_only=live_only) if ranged else tables.ended(live=live_only)
    stats = _period_stats(daily, starting, active, ended, since)
    curve, daily_curve = _curve(daily, starting, session=session, live_only=live_only, since=since, until=until)

    live_start = session.exec(select(sa.func.min(Trade.signal_time)).where(Trade.origin == Origin.LIVE)).one()
    live_start = pd.Timestamp(live_start).tz_convert("UTC").to_pydatetime() if live_start is not None else None
    periods = {"7 days": now - timedelta(days=7), "30 days": now - timedelta(days=30)}
    period_pnl = {name: float(summaries.pnl_since(since, daily, session=session, live=live_only))
                  for name, since in periods.items()}
    period_pnl["all time"] = float(whole.tally.summary().total_pnl_usd)
    signals_by_status = (_signal_counts(tables, session=session) if not ranged and not live_only
                         else _signal_counts_between(since, until, session=session, live_only=live_only))
    outcomes: dict[str, int] = dict(active)
    for row in ended:
        outcomes[row.status] = outcomes.get(row.status, 0) + row.trades
    first_day: date | None = _first_day(daily, since)
    monthly = pd.DataFrame([(y, m, float(p), _float(r)) for y, m, p, r in
                            (metrics.returns_by_month(daily.pnl_by_day, first_day, starting) if first_day else [])],
                           columns=["year", "month", "pnl_usd", "return_pct"])
    pnl_bins, duration_bins = _distributions(tables, stats.breakeven, live_only)
    honest = _honest(stats, daily, starting, active, since=since, until=until, now=now, session=session)
    record_return = curve[["time", "equity"]].assign(
        **{"return": (curve["equity"] / float(starting) - 1) if starting > 0 else np.nan})[["time", "return"]]
    benchmark_end = honest.benchmark[-1][0] if honest.benchmark else None
    if benchmark_end is not None and len(record_return) and benchmark_end > record_return["time"].iloc[-1]:
        # Open trades keep the record running after its last exit: its realized line runs on,
        # flat, to where the benchmark's line ends, so both cover the same days.
        last = pd.DataFrame({"time": [pd.Timestamp(benchmark_end)], "return": [record_return["return"].iloc[-1]]})
        record_return = pd.concat([record_return, last], ignore_index=True)
    benchmark = pd.DataFrame(honest.benchmark, columns=["time", "return"])
    return Snapshot(
        title=settings.site_title, description=settings.site_description,
        settings={k: runtime.public_value(k, v) for k, v in runtime.as_dict(settings).items()},
        starting_balance=float(settings.starting_balance_usd), stats=stats.to_json_dict(), curve=curve,
        daily_curve=daily_curve, last_equity=float(starting + stats.total_pnl_usd), live_start=live_start,
        period_pnl=period_pnl, recent=_recent(live_only=live_only, session=session, since=since, until=until),
        signal_counts={"received": sum(signals_by_status.values()),
                       **{k.lower(): v for k, v in signals_by_status.items()}},
        settings_changes=public_changes(session=session),
        per_symbol=_group_stats(ended, "symbol"), by_side=_group_stats(ended, "side"),
        exit_reasons=pd.DataFrame(sorted(outcomes.items()), columns=["status", "trades"]), monthly=monthly,
        pnl_bins=pnl_bins, duration_bins=duration_bins, streaks=daily.stretch.streaks(),
        since=since, until=until, start_equity=float(starting), honest=honest,
        daily_pnl=pd.DataFrame([(pd.Timestamp(day), float(pnl)) for day, pnl in daily.pnl_by_day.items()],
                               columns=["day", "pnl_usd"]),
        benchmark=benchmark, record_return=record_return, distributions_all_time=ranged,
        split_trades=has_split_trades(session=session),
        target_hits=target_hit_rates(session=session, live_only=live_only, since=since, until=until),
    )


# --- a period of the record: day rows inside it, breakdowns by SQL GROUP BY -------------------


def _days_between(whole: summaries.Days, since: datetime | None,
                  until: datetime | None) -> tuple[summaries.Days, Decimal]:
    """The day rows of [since, until) (whole UTC days) and the P/L realized before `since`."""
    if since is None and until is None:
        return whole, Decimal(0)
    first = since.date() if since is not None else date.min
    last = until.date() if until is not None else date.max
    inside = [row for row in whole.rows if first <= row.day < last]
    before = exact_sum(row.pnl for row in whole.rows if row.day < first)
    return summaries.Days(inside), before


def _first_day(daily: summaries.Days, since: datetime | None) -> date | None:
    first = daily.first_entry_day
    if first is None or since is None:
        return first
    return max(first, since.date())


def _period_stats(daily: summaries.Days, starting: Decimal, active: dict[str, int], ended: list[Any],
                  since: datetime | None) -> metrics.Stats:
    """`Summaries.stats` for a period: its day rows, from the equity at its start."""
    tally = daily.tally
    counts = metrics.Counts(
        open_trades=active.get(TradeStatus.OPEN, 0), pending_trades=active.get(TradeStatus.PENDING, 0),
        cancelled_trades=sum(r.trades for r in ended if r.status == TradeStatus.CANCELLED),
        ambiguous_trades=tally.ambiguous)
    first_day = _first_day(daily, since)
    enough = tally.trades > 0 and tally.trades >= metrics.MIN_TRADES_FOR_RATIOS
    returns = (metrics.returns_by_day(daily.pnl_by_day, first_day, starting)
               if enough and first_day is not None else None)
    return metrics.stats_of(tally.summary(), daily.stretch.drawdown(starting), returns, counts)


@dataclass(frozen=True)
class _Ended:
    """A breakdown row for a period (the shape of TradeBreakdown)."""

    origin: str
    symbol: str
    side: str
    status: str
    trades: int
    wins: int
    losses: int
    pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    best: Decimal | None
    worst: Decimal | None
    ambiguous: int


def _ended_between(since: datetime | None, until: datetime | None, *, session: Session,
                   live_only: bool) -> list[_Ended]:
    """Per origin, symbol, side and status, the tally of trades closed in [since, until) (by exit
    time, through its index) and of cancelled ones (by signal time): one GROUP BY each."""
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    pnl = trade.pnl_usd
    zero = sa.literal(0)
    keys = [trade.origin, trade.symbol, trade.side, trade.status]
    closed = (sa.select(*keys, sa.func.count(), sa.func.sum(sa.case((pnl > 0, 1), else_=0)),
                        sa.func.sum(sa.case((pnl < 0, 1), else_=0)), sa.func.sum(pnl),
                        sa.func.sum(sa.case((pnl > 0, pnl), else_=zero)), sa.func.sum(sa.case((pnl < 0, pnl), else_=zero)),
                        sa.func.max(pnl), sa.func.min(pnl), sa.func.sum(sa.case((trade.ambiguous, 1), else_=0)))
              .where(trade.status.in_(CLOSED_STATUSES)).group_by(*keys))
    cancelled = sa.select(*keys, sa.func.count()).where(trade.status == TradeStatus.CANCELLED).group_by(*keys)
    closed, cancelled = _within(closed, trade.exit_time, since, until), _within(cancelled, trade.signal_time, since, until)
    if live_only:
        closed, cancelled = closed.where(trade.origin == Origin.LIVE), cancelled.where(trade.origin == Origin.LIVE)
    rows = [_Ended(str(o), s, str(d), str(status), int(n), int(w or 0), int(lo or 0), _dec(p), _dec(gp), _dec(gl),
                   None if b is None else _dec(b), None if wo is None else _dec(wo), int(a or 0))
            for o, s, d, status, n, w, lo, p, gp, gl, b, wo, a in session.connection().execute(closed).all()]
    rows += [_Ended(str(o), s, str(d), str(status), int(n), 0, 0, Decimal(0), Decimal(0), Decimal(0), None, None, 0)
             for o, s, d, status, n in session.connection().execute(cancelled).all()]
    return rows


def _within(statement: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        statement = statement.where(column >= since)
    if until is not None:
        statement = statement.where(column < until)
    return statement


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _signal_counts_between(since: datetime | None, until: datetime | None, *, session: Session,
                           live_only: bool) -> dict[str, int]:
    """Signals per status whose own time is in [since, until) (live ones only, if asked)."""
    statement = select(Signal.status, sa.func.count()).group_by(Signal.status)
    if since is not None:
        statement = statement.where(Signal.time >= since)
    if until is not None:
        statement = statement.where(Signal.time < until)
    if live_only:
        statement = statement.where(Signal.origin == Origin.LIVE)
    counts = {str(status): int(count) for status, count in session.exec(statement).all()}
    return {status.value: counts.get(status.value, 0) for status in SignalStatus if counts.get(status.value)}


def _honest(stats: metrics.Stats, daily: summaries.Days, starting: Decimal, active: dict[str, int], *,
            since: datetime | None, until: datetime | None, now: datetime, session: Session) -> Honest:
    """The break-even win rate beside the observed one, CAGR, Calmar, the benchmark's period."""
    first_entry = min((row.first_entry for row in daily.rows), default=None)
    if first_entry is not None:
        first_entry = _aware(first_entry)
        if since is not None:
            first_entry = max(first_entry, since)
    end = max((_aware(row.last_exit) for row in daily.rows), default=None)
    if end is not None and sum(active.values()) and (until is None or until > now):
        end = now  # trades are still open: the record runs on
    days = metrics.record_days(first_entry, end) if first_entry is not None and end is not None else 0.0
    benchmark = _benchmark(first_entry, end, session=session)
    growth = metrics.cagr(starting, stats.total_pnl_usd, days) if stats.closed_trades else None
    return Honest(
        win_rate=_float(stats.win_rate), interval=metrics.wilson_interval(stats.wins, stats.closed_trades),
        breakeven_win_rate=metrics.breakeven_win_rate(stats.avg_win_usd, stats.avg_loss_usd),
        payoff_ratio=metrics.payoff_ratio(stats.avg_win_usd, stats.avg_loss_usd), days=days,
        first_entry=first_entry, end=end, cagr=growth, calmar=metrics.calmar(growth, stats.max_drawdown_pct),
        trades_per_day=metrics.trades_per_day(stats.closed_trades, days) if stats.closed_trades else None,
        benchmark=benchmark,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


BENCHMARK_CANDLE = timedelta(days=1)


def _benchmark(first_entry: datetime | None, end: datetime | None, *,
               session: Session) -> list[tuple[datetime, float]]:
    """BTCUSDT bought at the daily close at or before the record's first entry (the close of
    the day before it, at midnight UTC) and held to the last daily close at or before its end;
    a point at each close time (a candle's open time + 1 day)."""
    if first_entry is None or end is None:
        return []
    first_day = datetime.combine(first_entry.date(), time(), tzinfo=timezone.utc)
    closes = candle_store.benchmark_closes(first_day - BENCHMARK_CANDLE, end - BENCHMARK_CANDLE, session=session)
    return metrics.buy_and_hold([(_aware(at) + BENCHMARK_CANDLE, close) for at, close in closes])


# --- the trade history, paged and filtered in SQL ----------------------------------------

HISTORY_ORDER = {
    "newest first": (Trade.id.desc(),),
    "oldest first": (Trade.id.asc(),),
    "best P/L": (Trade.pnl_usd.desc().nulls_last(), Trade.id.desc()),
    "worst P/L": (Trade.pnl_usd.asc().nulls_last(), Trade.id.desc()),
}


@dataclass(frozen=True)
class HistoryFilter:
    symbols: tuple[str, ...] = ()
    sides: tuple[str, ...] = ()
    markets: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    live_only: bool = False


def _filtered(statement: Any, flt: HistoryFilter) -> Any:
    if flt.symbols:
        statement = statement.where(Trade.symbol.in_(flt.symbols))
    if flt.sides:
        statement = statement.where(Trade.side.in_(flt.sides))
    if flt.markets:
        statement = statement.where(Trade.market.in_(flt.markets))
    if flt.statuses:
        statement = statement.where(Trade.status.in_(flt.statuses))
    if flt.since is not None:
        statement = statement.where(Trade.signal_time >= flt.since)
    if flt.until is not None:
        statement = statement.where(Trade.signal_time < flt.until)
    return queries.live_only(statement, flt.live_only)


def trade_page(flt: HistoryFilter, *, session: Session, order: str, page: int,
               size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the history (each trade's fields plus `ledger_seq`, the seq of its signal's
    `signal.received` entry) and the number of matching trades."""
    total = session.exec(_filtered(select(sa.func.count()).select_from(Trade), flt)).one()
    statement = (_filtered(select(Trade, Signal.received_seq), flt)
                 .join(Signal, Signal.id == Trade.signal_pk, isouter=True)
                 .order_by(*HISTORY_ORDER[order]).offset(page * size).limit(size))
    return [{**trade.model_dump(), "ledger_seq": seq} for trade, seq in session.exec(statement).all()], total


def filtered_trades(flt: HistoryFilter, chunk: int = 5000, *, session: Session) -> Any:
    """Every matching trade by id, streamed (for the CSV download)."""
    return session.exec(_filtered(select(Trade), flt).order_by(Trade.id).execution_options(yield_per=chunk))


def symbols(*, session: Session) -> list[str]:
    return list(session.exec(select(Trade.symbol).distinct().order_by(Trade.symbol)).all())


# --- the public API's open trades and the Verify page's receipt delays ---------------------


def _text(value: Any) -> str | None:
    """An API value: decimals as plain strings, times in the ledger's format."""
    if value is None:
        return None
    from shared.ledger import to_data

    return to_data(value)  # type: ignore[no-any-return]


def open_trades(*, session: Session) -> list[dict[str, Any]]:
    """PENDING and OPEN trades for `/api/v1/open`, marked to the latest stored price (decimals as
    strings, so nothing is rounded; times `YYYY-MM-DDTHH:MM:SS.ffffffZ`)."""
    statement = (select(Trade, LatestPrice.price, LatestPrice.updated_at).join(
        LatestPrice, sa.and_(LatestPrice.market == Trade.market, LatestPrice.symbol == Trade.symbol), isouter=True)
        .where(queries.is_active()).order_by(Trade.id))
    rows = []
    found = session.exec(statement).all()
    fills = fills_of([trade.id for trade, _, _ in found if trade.targets_hit], session=session)
    now = utcnow()
    funding = _funding_events([(trade, price) for trade, price, _ in found], now, session=session)
    for trade, price, price_time in found:
        terms, state = terms_of(trade), state_of(trade, fills.get(trade.id, ()))
        unrealized = _marked(terms, state, price, funding.get(trade.symbol, ()), now)
        rows.append({
            "trade_id": trade.id, "source": trade.source, "signal_id": trade.signal_id, "origin": _text(trade.origin),
            "symbol": trade.symbol, "side": _text(trade.side), "market": _text(trade.market),
            "status": _text(trade.status), "leverage": trade.leverage, "stake_usd": _text(trade.stake_usd),
            "signal_time": _text(trade.signal_time), "entry_time": _text(trade.entry_time),
            "entry_price": _text(trade.entry_price), "take_profit": _text(trade.take_profit),
            "stop_loss": _text(trade.stop_loss), "targets_hit": state.targets_hit, "targets": len(terms.portions),
            "signal_entry": _text(trade.signal_entry) if trade.status == TradeStatus.PENDING else None,
            "price": _text(price), "price_time": _text(price_time),
            "unrealized_pnl_usd": _text(unrealized),
        })
    return rows


def prices_version(*, session: Session) -> str:
    """Changes when the worker stores a new price (open trades move without new entries)."""
    latest = session.exec(select(sa.func.max(LatestPrice.updated_at))).one()
    return latest.isoformat() if latest is not None else ""


@dataclass(frozen=True)
class ReceiptDelay:
    """Seconds from a signal's own time to its `signal.received` entry, for live or backfill."""

    origin: str
    signals: int
    median: float | None
    p95: float | None
    max: float | None


def receipt_delays(*, session: Session) -> list[ReceiptDelay]:
    """How late signals reached the ledger, per origin: nearest-rank median and 95th percentile
    and the maximum, computed in SQL (an ordered read per percentile, nothing loaded whole)."""
    events_table, signals_table = Event.__table__, Signal.__table__  # type: ignore[attr-defined]
    received, signal = events_table.c, signals_table.c
    if session.get_bind().dialect.name == "postgresql":
        delay = sa.extract("epoch", received.at - signal.time)
    else:  # SQLite stores both as "YYYY-MM-DD HH:MM:SS.ffffff" text
        delay = (sa.func.julianday(received.at) - sa.func.julianday(signal.time)) * 86400.0
    joined = signals_table.join(events_table, received.id == signal.received_seq)
    result = []
    for origin in (Origin.LIVE, Origin.BACKFILL):
        where = sa.and_(signal.origin == origin, signal.received_seq.is_not(None))
        count, longest = session.execute(sa.select(sa.func.count(), sa.func.max(delay)).select_from(joined)
                                         .where(where)).one()

        def rank(q: float) -> float | None:
            if not count:
                return None
            k = max(0, -(-int(q * 1000) * count // 1000) - 1)  # nearest rank: ceil(q·n) - 1
            value = session.execute(sa.select(delay).select_from(joined).where(where)
                                    .order_by(delay).offset(k).limit(1)).scalar()
            return None if value is None else float(value)

        result.append(ReceiptDelay(origin.value, int(count), rank(0.5), rank(0.95),
                                   None if longest is None else float(longest)))
    return result


# --- checkpoints of the ledger's head -------------------------------------------------------


def checkpoints(*, session: Session, newest: int | None = None) -> list[dict[str, Any]]:
    """The worker's checkpoints, oldest first (or the `newest` N), as published: seq, hash, time,
    the signature and the key that made it when signed, and what the anchor made of it."""
    from shared.ledger import format_time
    from shared.models import Checkpoint

    statement = select(Checkpoint).order_by(Checkpoint.seq.desc() if newest else Checkpoint.seq, Checkpoint.id)
    if newest:
        statement = statement.limit(newest)
    rows = list(session.exec(statement))
    if newest:
        rows.reverse()
    published = []
    for row in rows:
        point: dict[str, Any] = {"seq": row.seq, "hash": row.hash, "time": format_time(row.time)}
        if row.signature:
            point |= {"signature": row.signature, "public_key": row.public_key}
        if row.anchor_status:
            point["anchor"] = {"status": row.anchor_status, "detail": row.anchor_detail}
        published.append(point)
    return published


# --- one trade's page (app_pages/trade.py) -----------------------------------------------------


SAME_CANDLE = ("both the stop-loss and the take-profit were inside this candle, and the exchange's trades inside "
               "it could not be had: the order is unknown, so the stop-loss was recorded")
TAPE_SETTLED = ("Same candle, settled by the trade tape: this candle reached both the stop-loss and a take-profit, so "
                "the exchange's own trades inside it were read; the first at or beyond either level decided. The "
                "deciding trades are in the ledger's trade.closed entry.")


@dataclass(frozen=True)
class Fill:
    """One fill of a trade: its entry, or (a part of) its exit. `share` is the fraction of the
    position; `pnl_usd` is the fill's own P/L (None for an entry)."""

    time: datetime | None
    kind: str
    price: Decimal | None
    share: Decimal
    fees_usd: Decimal | None
    pnl_usd: Decimal | None


@dataclass(frozen=True)
class TradeDetail:
    """Everything the trade page shows of one trade (one data version)."""

    trade: dict[str, Any]  # the row's columns
    signal: dict[str, Any] | None  # the signal as received, with its ledger seq (`received_seq`)
    fills: list[Fill]
    levels: list[tuple[str, Decimal]]  # (name, price) drawn as horizontal levels
    deciding_time: datetime | None  # open time of the candle that decided the trade
    deciding_candle: Any  # that candle in the trade's own interval, when stored (shared.candles.Candle)
    decision: list[str]  # how it was decided, in words
    chart: Any  # trade_chart.Series: the candles drawn and which interval they are
    latest_price: Decimal | None
    latest_price_time: datetime | None
    unrealized_usd: Decimal | None  # an open trade marked to the latest price, fees on both sides


def _entry_fee(trade: Trade) -> Decimal | None:
    if trade.entry_price is None:
        return None
    with localcontext(EXACT_CONTEXT):
        return trade.fee_rate * trade.stake_usd * trade.leverage


STATUS_WORDS = {
    TradeStatus.PENDING: "pending (waiting for its entry)", TradeStatus.OPEN: "open",
    TradeStatus.CLOSED_TP: "closed at the take-profit", TradeStatus.CLOSED_SL: "closed at the stop-loss",
    TradeStatus.CLOSED_EXPIRED: "closed at expiry", TradeStatus.CLOSED_MANUAL: "closed by the owner",
    TradeStatus.LIQUIDATED: "liquidated", TradeStatus.CANCELLED: "cancelled (never entered)",
}


FILL_WORDS = {"sl": "stop-loss", "liquidated": "liquidation", "expired": "expiry", "manual": "owner's close"}


def trade_fills(trade: Trade, exits: Sequence[Any] = ()) -> list[Fill]:
    """The entry, then every exit of a part of the position (`shared.exits.Fill`, from the fill
    table): a target reached, or the rest closed. An exit's fee is its part of the exit fee; the
    entry's the whole entry fee."""
    fills = []
    entry_fee = _entry_fee(trade)
    if trade.entry_price is not None:
        fills.append(Fill(trade.entry_time, "entry", trade.entry_price, Decimal(1), entry_fee, None))
    if not exits and trade.exit_price is not None:  # written before fills were stored: its one exit
        kind = {TradeStatus.CLOSED_TP: "tp1", TradeStatus.CLOSED_SL: "sl", TradeStatus.LIQUIDATED: "liquidated",
                TradeStatus.CLOSED_EXPIRED: "expired"}.get(TradeStatus(trade.status), "manual")
        exits = [ExitFill(trade.exit_time, kind, trade.exit_price, Decimal(1), trade.fees_usd or Decimal(0),
                          trade.pnl_usd or Decimal(0))]
    for done in exits:
        if done.kind.startswith("tp"):
            kind = "take-profit" if done.share == 1 else f"target {done.kind[2:]}"
        else:
            kind = FILL_WORDS.get(done.kind, done.kind)
        with localcontext(EXACT_CONTEXT):
            exit_fee = done.fees_usd - done.share * entry_fee if entry_fee is not None else None
        fills.append(Fill(done.time, kind, done.price, done.share, exit_fee, done.pnl_usd))
    return fills


def deciding_time(trade: Trade) -> datetime | None:
    """The open time of the candle that decided the trade: the exit candle, or for a market entry
    cancelled at its start candle (or a limit cancelled by the first candle after its deadline)
    the candle it was cancelled at. None while active, and for the owner's own actions."""
    status = TradeStatus(trade.status)
    if status is TradeStatus.CLOSED_MANUAL or (status is TradeStatus.CANCELLED and trade.reason == "cancelled by the owner"):
        return None
    if status.is_closed:
        return trade.exit_time
    if status is TradeStatus.CANCELLED:
        return trade.entry_time or trade.last_candle_time
    return None


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _price(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")


def how_decided(trade: Trade, candle: Any, liquidation: Decimal | None) -> list[str]:
    """The rule that decided the trade and the candle it was decided on, in words (docs/trade-rules.md).
    `candle` is the deciding candle in the trade's own interval when stored (its prices are quoted)."""
    status, long = TradeStatus(trade.status), trade.side == "LONG"
    interval = trade.candle_interval
    at = deciding_time(trade)
    name = f"the {interval} candle opening {_when(at)}"
    prices = (f" (open {_price(candle.open)}, high {_price(candle.high)}, low {_price(candle.low)}, "
              f"close {_price(candle.close)})") if candle is not None else ""
    tape = [TAPE_SETTLED] if trade.resolution == "trades" else []
    if status is TradeStatus.CLOSED_TP:
        touch = "high" if long else "low"
        if trade.targets_hit > 1:
            return [f"Take-profit: {name}{prices} filled the last of its {trade.targets_hit} targets; each part of "
                    "the position closed at exactly its target (see the fills)."] + tape
        return [f"Take-profit: {name}{prices} was the first whose {touch} reached the take-profit "
                f"{_price(trade.take_profit)}; the trade closed at exactly that price."] + tape
    if status in (TradeStatus.CLOSED_SL, TradeStatus.LIQUIDATED):
        touch = "low" if long else "high"
        if status is TradeStatus.LIQUIDATED:
            words = [f"Liquidation: {name}{prices} was the first whose {touch} reached the adverse level (the "
                     f"stop-loss {_price(trade.stop_loss)} or the liquidation price {_price(liquidation)}, whichever is "
                     "nearer the entry), and its fill was at or beyond the liquidation price.",
                     "A liquidated trade loses its whole stake and the entry fee."]
        else:
            words = [f"Stop-loss: {name}{prices} was the first whose {touch} reached the stop-loss "
                     f"{_price(trade.stop_loss)}" + (f" (nearer the entry than the liquidation price "
                                                     f"{_price(liquidation)})" if liquidation is not None else "") + "."]
        if status is not TradeStatus.LIQUIDATED:
            words.append(f"It filled at {_price(trade.exit_price)}: the stop-loss, or the candle's open when the candle "
                         "opened through it, worsened by the slippage.")
        if trade.ambiguous:
            words.append(f"Same candle: {SAME_CANDLE}" + (" (here its fill was at or beyond the liquidation price)."
                                                          if status is TradeStatus.LIQUIDATED else "."))
        return words + tape
    if status is TradeStatus.CLOSED_EXPIRED:
        return [f"Expiry: {name}{prices} was the first opening at or after the entry time + "
                f"{_price(trade.max_trade_hours)} h; the trade closed at its open, {_price(trade.exit_price)} "
                "after slippage."]
    if status is TradeStatus.CLOSED_MANUAL:
        return [f"Closed by the owner at {_when(trade.exit_time)}, at the latest price the worker had stored "
                f"({_price(trade.exit_price)})."]
    if status is TradeStatus.CANCELLED:
        if trade.reason == "entry beyond stop-loss/take-profit":
            return [f"Cancelled at its start candle: {name}{prices} opened at or beyond the stop-loss or the "
                    "take-profit, so the trade was never entered."]
        if trade.reason == "entry not reached":
            return [f"Cancelled: the limit price {_price(trade.signal_entry)} was not reached within "
                    f"{_price(trade.pending_expiry_hours)} h of the signal"
                    + (f"; {name} was the first after that deadline." if at is not None else ".")]
        return [f"Cancelled: {trade.reason or 'no reason recorded'}."]
    checked = f" Checked up to the candle opening {_when(trade.last_candle_time)}." if trade.last_candle_time else ""
    if status is TradeStatus.OPEN:
        return [f"Open since {_when(trade.entry_time)}; not decided yet.{checked}"]
    if trade.entry_mode == "limit":
        return [f"Waiting for the limit price {_price(trade.signal_entry)} until "
                f"{_when(trade.signal_time + timedelta(hours=float(trade.pending_expiry_hours)))}.{checked}"]
    return [f"Waiting for its start candle, the first opening at or after {_when(trade.signal_time)}.{checked}"]


def trade_detail(trade_id: int, *, session: Session, now: datetime) -> TradeDetail | None:
    """One trade with its signal, fills, levels, how it was decided and the stored candles of its
    life (`shared.candle_store`); None when there is no such trade."""
    from track_record import trade_chart

    trade = session.get(Trade, trade_id)
    if trade is None:
        return None
    signal = session.get(Signal, trade.signal_pk)
    signal_fields = None if signal is None else {
        "received_seq": signal.received_seq, "source": signal.source, "id": signal.signal_id, "time": signal.time,
        "received_at": signal.received_at, "origin": signal.origin, "symbol": signal.symbol, "side": signal.side,
        "market": signal.market, "entry": signal.entry, "take_profit": signal.take_profit,
        "stop_loss": signal.stop_loss, "leverage": signal.leverage, "confidence": signal.confidence,
        "note": signal.note,
    }
    latest = session.get(LatestPrice, (str(trade.market), trade.symbol))
    status = TradeStatus(trade.status)
    entry = trade.entry_price
    liquidation = liquidation_price(terms_of(trade), entry) if entry is not None else None
    levels: list[tuple[str, Decimal]] = []
    if entry is not None:
        levels.append(("entry", entry))
    elif trade.signal_entry is not None:
        levels.append(("limit entry", trade.signal_entry))
    terms = terms_of(trade)
    exits = fills_of([trade.id], session=session).get(trade.id, ())
    if len(terms.portions) > 1:
        levels += [(f"target {number}", portion.target) for number, portion in enumerate(terms.portions, start=1)]
    else:
        levels.append(("take-profit", trade.take_profit))
    levels.append(("stop-loss", trade.stop_loss))
    if entry is not None:
        moved = stop_in_force(terms, state_of(trade, exits))
        if moved != trade.stop_loss:
            levels.append(("moved stop", moved))
    if liquidation is not None:
        levels.append(("liquidation", liquidation))
    if status.is_active and latest is not None:
        levels.append(("latest price", latest.price))

    # The stretch of time drawn: the signal to the end of the trade (now, while it is active).
    start = trade.signal_time
    end = trade.exit_time or trade.last_candle_time or trade.entry_time or trade.signal_time
    if status.is_active:
        end = max(end, min(now, latest.updated_at if latest is not None else now))
    market, symbol = str(trade.market), trade.symbol
    own = trade.candle_interval
    # Per interval, so that each count is a range of the primary key (market, symbol, interval, open time).
    own_length = INTERVALS.get(own, timedelta(minutes=1))
    counts = {interval: session.exec(select(sa.func.count()).select_from(StoredCandle).where(
        StoredCandle.market == market, StoredCandle.symbol == symbol, StoredCandle.interval == interval,
        StoredCandle.open_time >= start, StoredCandle.open_time <= end)).one()
        for interval, length in INTERVALS.items() if length >= own_length}
    chosen = trade_chart.choose_interval(own, counts, start, end)
    candles: list[Any] = []
    if chosen is not None:
        pad = trade_chart.padding(start, end, chosen)
        candles = candle_store.candles(market, symbol, chosen, start - pad, end + pad, session=session)
    series = trade_chart.series(candles, chosen, own, start, end)
    at = deciding_time(trade)
    deciding = None
    if at is not None:
        found = candle_store.candles(market, symbol, own, at, at, session=session)
        deciding = found[0] if found else None
    return TradeDetail(
        trade=trade.model_dump(), signal=signal_fields, fills=trade_fills(trade, exits), levels=levels, deciding_time=at,
        deciding_candle=deciding, decision=how_decided(trade, deciding, liquidation), chart=series,
        latest_price=latest.price if latest is not None else None,
        latest_price_time=latest.updated_at if latest is not None else None,
        unrealized_usd=_marked(terms, state_of(trade, exits), latest.price,
                               _funding_events([(trade, None)], now, session=session).get(trade.symbol, ()), now)
        if status is TradeStatus.OPEN and latest is not None else None,
    )
