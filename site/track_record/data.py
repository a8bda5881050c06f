"""What the public pages show, computed from the database in one pass per data version.

Plain functions over a session (no Streamlit here; `loaders` caches them). Every metric comes
from `shared.metrics`, the same functions `signalproof stats` uses, so the page and the CLI
agree. The results are small: charts get a downsampled curve, distributions a sample; the
trade history is paged in SQL (`trade_page`), never loaded whole.
"""

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, select

from shared import metrics, settings as runtime
from shared.exits import unrealized_pnl
from shared.models import (
    ACTIVE_STATUSES, CLOSED_STATUSES, Event, LatestPrice, Origin, Signal, Trade, TradeStatus, WorkerHeartbeat,
)
from shared.trades import state_of, status_counts, terms_of, trade_counts

SAMPLE_SIZE = 20_000  # distributions are drawn from at most this many trades
CURVE_POINTS = 2_000


@dataclass(frozen=True)
class Snapshot:
    """Everything the Overview, Analytics and Methodology pages read (one data version)."""

    title: str
    description: str
    settings: dict[str, str]
    starting_balance: float
    stats: dict[str, Any]  # exactly `signalproof stats --json`
    curve: pd.DataFrame  # time, equity, drawdown_usd, drawdown_pct, trade_id (downsampled)
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
    distribution: pd.DataFrame  # pnl_usd, duration_hours (a sample)
    sample_of: int
    streaks: tuple[int, int]
    first_trade: datetime | None = None
    notes: list[str] = field(default_factory=list)


def data_version(session: Session) -> tuple[int, str]:
    """Changes whenever anything the pages show changes: every state change appends an event."""
    last_event = session.exec(select(sa.func.max(Event.id))).one() or 0
    settings_at = runtime.current(session).updated_at
    return last_event, settings_at.isoformat() if settings_at else ""


def heartbeat(session: Session) -> WorkerHeartbeat | None:
    return session.get(WorkerHeartbeat, 1)


def _closed_frame(session: Session, *, live_only: bool) -> pd.DataFrame:
    columns = (Trade.id, Trade.symbol, Trade.side, Trade.market, Trade.status, Trade.origin, Trade.entry_time,
               Trade.exit_time, Trade.pnl_usd, Trade.pnl_pct, Trade.ambiguous)
    statement = select(*columns).where(Trade.status.in_(CLOSED_STATUSES))
    if live_only:
        statement = statement.where(Trade.origin == Origin.LIVE.value)
    rows = session.exec(statement).all()
    frame = pd.DataFrame(rows, columns=["trade_id", "symbol", "side", "market", "status", "origin", "entry_time",
                                        "exit_time", "pnl", "pnl_pct", "ambiguous"])
    frame["entry_time"] = frame["entry_time"].fillna(frame["exit_time"])
    return frame


def _as_closed_trades(frame: pd.DataFrame) -> list[metrics.ClosedTrade]:
    return [metrics.ClosedTrade(int(i), entry, exit_, pnl)
            for i, entry, exit_, pnl in zip(frame["trade_id"], frame["entry_time"], frame["exit_time"], frame["pnl"])]


def _curve_frame(points: list[metrics.EquityPoint]) -> pd.DataFrame:
    frame = pd.DataFrame({
        "time": pd.to_datetime([p.time for p in points], utc=True),
        "equity": [float(p.equity) for p in points],
        "drawdown_usd": [float(p.drawdown_usd) for p in points],
        "drawdown_pct": [float(p.drawdown_pct) for p in points],
        "trade_id": pd.array([p.trade_id for p in points], dtype="Int64"),
    })
    return _downsample(frame)


def _downsample(curve: pd.DataFrame) -> pd.DataFrame:
    if len(curve) <= CURVE_POINTS:
        return curve
    from track_record.charts import downsample

    return downsample(curve, CURVE_POINTS)


def _group_stats(frame: pd.DataFrame, by: str, starting_balance: Decimal) -> pd.DataFrame:
    rows = []
    for key, group in frame.groupby(by, sort=True):
        stats = metrics.compute_stats(_as_closed_trades(group), starting_balance=starting_balance,
                                      min_trades_for_ratios=10**12)
        rows.append({by: key, "trades": stats.closed_trades, "wins": stats.wins, "losses": stats.losses,
                     "win_rate": _float(stats.win_rate), "pnl_usd": float(stats.total_pnl_usd),
                     "profit_factor": _float(stats.profit_factor), "expectancy_usd": _float(stats.expectancy_usd)})
    return pd.DataFrame(rows, columns=[by, "trades", "wins", "losses", "win_rate", "pnl_usd", "profit_factor",
                                       "expectancy_usd"])


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def open_positions(session: Session, now: datetime, *, live_only: bool = False) -> pd.DataFrame:
    """PENDING and OPEN trades, marked to the latest price the worker stored."""
    statement = (select(Trade, LatestPrice.price).join(
        LatestPrice, sa.and_(LatestPrice.market == Trade.market, LatestPrice.symbol == Trade.symbol), isouter=True)
        .where(Trade.status.in_(ACTIVE_STATUSES)).order_by(Trade.id))
    if live_only:
        statement = statement.where(Trade.origin == Origin.LIVE.value)
    rows = []
    for trade, price in session.exec(statement).all():
        unrealized = unrealized_pnl(terms_of(trade), state_of(trade), price) if price is not None else None
        entry = trade.entry_price or trade.signal_entry
        rows.append({
            "trade_id": trade.id, "symbol": trade.symbol, "side": trade.side, "market": trade.market,
            "status": trade.status, "origin": trade.origin, "leverage": trade.leverage,
            "entry_time": trade.entry_time, "entry_price": _float(trade.entry_price),
            "take_profit": float(trade.take_profit), "stop_loss": float(trade.stop_loss),
            "price": _float(price),
            "to_tp_pct": float((trade.take_profit - price) / price) if price else None,
            "to_sl_pct": float((trade.stop_loss - price) / price) if price else None,
            "unrealized_usd": _float(unrealized), "stake_usd": float(trade.stake_usd),
            "age_hours": (now - (trade.entry_time or trade.signal_time)).total_seconds() / 3600,
            "limit_price": _float(trade.signal_entry) if entry is not None and trade.status == TradeStatus.PENDING else None,
        })
    return pd.DataFrame(rows)


def _settings_changes(session: Session) -> pd.DataFrame:
    events = session.exec(select(Event.at, Event.actor, Event.message).where(Event.kind == "settings.changed")
                          .order_by(Event.id.desc()).limit(500)).all()
    return pd.DataFrame(events, columns=["time", "actor", "label"])


def build_snapshot(session: Session, *, now: datetime, live_only: bool = False) -> Snapshot:
    settings = runtime.current(session)
    starting = settings.starting_balance_usd
    closed = _closed_frame(session, live_only=live_only)
    closed_trades = _as_closed_trades(closed)
    counts = trade_counts(session=session, live_only=live_only)
    stats = metrics.compute_stats(closed_trades, starting_balance=starting, counts=counts)
    curve = _curve_frame(metrics.equity_curve(closed_trades, starting))

    live_start = session.exec(select(sa.func.min(Trade.signal_time)).where(Trade.origin == Origin.LIVE.value)).one()
    live_start = pd.Timestamp(live_start).tz_convert("UTC").to_pydatetime() if live_start is not None else None
    periods = {"7 days": now - timedelta(days=7), "30 days": now - timedelta(days=30)}
    period_pnl = {name: float(metrics.period_pnl(closed_trades, since)) for name, since in periods.items()}
    period_pnl["all time"] = float(stats.total_pnl_usd)

    recent = closed.sort_values(["exit_time", "trade_id"], ascending=False).head(10)
    signals_by_status = dict(session.exec(select(Signal.status, sa.func.count()).group_by(Signal.status)).all())
    all_status = status_counts(session=session, live_only=live_only)
    reasons = pd.DataFrame(sorted(all_status.items()), columns=["status", "trades"])

    sample = closed if len(closed) <= SAMPLE_SIZE else closed.iloc[sorted(random.Random(0).sample(range(len(closed)), SAMPLE_SIZE))]
    distribution = pd.DataFrame({
        "pnl_usd": sample["pnl"].astype(float),
        "duration_hours": (pd.to_datetime(sample["exit_time"], utc=True) - pd.to_datetime(sample["entry_time"], utc=True))
        .dt.total_seconds() / 3600,
    })
    monthly = pd.DataFrame([(y, m, float(p), _float(r)) for y, m, p, r in metrics.monthly_returns(closed_trades, starting)],
                           columns=["year", "month", "pnl_usd", "return_pct"])
    return Snapshot(
        title=settings.site_title, description=settings.site_description, settings={k: runtime.public_value(k, v) for k, v in runtime.as_dict(settings).items()},
        starting_balance=float(starting), stats=stats.to_json_dict(), curve=curve,
        last_equity=float(starting + stats.total_pnl_usd),
        live_start=live_start, period_pnl=period_pnl,
        recent=recent.rename(columns={"pnl": "pnl_usd"}).assign(pnl_usd=lambda f: f["pnl_usd"].astype(float),
                                                               pnl_pct=lambda f: f["pnl_pct"].astype(float)),
        signal_counts={"received": sum(signals_by_status.values()), **{k.lower(): v for k, v in signals_by_status.items()}},
        settings_changes=_settings_changes(session),
        per_symbol=_group_stats(closed, "symbol", starting), by_side=_group_stats(closed, "side", starting),
        exit_reasons=reasons, monthly=monthly, distribution=distribution, sample_of=len(closed),
        streaks=metrics.streaks(closed_trades),
        first_trade=closed["entry_time"].min() if len(closed) else None,
    )


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
    if flt.live_only:
        statement = statement.where(Trade.origin == Origin.LIVE.value)
    return statement


def trade_page(session: Session, flt: HistoryFilter, *, order: str, page: int, size: int) -> tuple[list[Trade], int]:
    """One page of the history and the number of matching trades."""
    total = session.exec(_filtered(select(sa.func.count()).select_from(Trade), flt)).one()
    statement = _filtered(select(Trade), flt).order_by(*HISTORY_ORDER[order]).offset(page * size).limit(size)
    return list(session.exec(statement).all()), total


def filtered_trades(session: Session, flt: HistoryFilter, chunk: int = 5000) -> Any:
    """Every matching trade by id, streamed (for the CSV download)."""
    return session.exec(_filtered(select(Trade), flt).order_by(Trade.id).execution_options(yield_per=chunk))


def symbols(session: Session) -> list[str]:
    return list(session.exec(select(Trade.symbol).distinct().order_by(Trade.symbol)).all())
