"""The trade monitor: feed closed candles to every PENDING/OPEN trade and record what happens.

Requests grow with symbols, not trades: all active trades of one (market, symbol, interval)
share one klines request when caught up, and page through history only when behind. Each
trade resumes after its own last checked candle, so an exit touched while the worker was down
is still found at the right candle. Writes are guarded (`WHERE version = old`): two workers,
or a worker killed and restarted, never record a trade twice or lose one.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from threading import Event as StopFlag

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shared import events
from shared.candles import Candle, interval_length
from shared.columns import UtcDateTime
from shared.database import transaction
from shared.exits import TradeState, advance
from shared.models import ACTIVE_STATUSES, LatestPrice, Market, Trade, TradeStatus
from shared.trades import state_of, terms_of
from worker.market_data import ExchangeError, MarketData, UnknownSymbol

log = logging.getLogger(__name__)

GroupKey = tuple[str, str, str]  # (market, symbol, candle interval)


@dataclass
class MonitorReport:
    requests: int = 0
    changed: int = 0
    failed: list[str] = field(default_factory=list)  # groups the exchange could not serve
    behind_seconds: float | None = None


def _next_candle_time(trade: Trade, interval: timedelta) -> datetime:
    if trade.last_candle_time is not None:
        return trade.last_candle_time + interval
    return trade.signal_time


def monitor_trades(engine: Engine, market_data: MarketData, *, now: datetime, stop: StopFlag | None = None) -> MonitorReport:
    """One pass over all active trades, as far as closed candles allow."""
    report = MonitorReport()
    with transaction(engine) as session:
        active = list(session.exec(select(Trade).where(Trade.status.in_(ACTIVE_STATUSES))))
    groups: dict[GroupKey, list[Trade]] = defaultdict(list)
    for trade in active:
        groups[(trade.market, trade.symbol, trade.candle_interval)].append(trade)
    for key, trades in sorted(groups.items()):
        if stop is not None and stop.is_set():
            break
        try:
            _resolve_group(engine, market_data, key, trades, now=now, report=report, stop=stop)
        except (ExchangeError, UnknownSymbol) as exc:
            log.warning("%s %s: %s (trades unchanged, will retry)", key[0], key[1], exc)
            report.failed.append(f"{key[0]} {key[1]}: {exc}")
    report.behind_seconds = behind_seconds(engine, now=now)
    return report


def _resolve_group(engine: Engine, market_data: MarketData, key: GroupKey, trades: list[Trade], *, now: datetime,
                   report: MonitorReport, stop: StopFlag | None) -> None:
    market, symbol, interval_name = key
    interval = interval_length(interval_name)
    states = {t.id: (terms_of(t), state_of(t), t) for t in trades}
    start = min(_next_candle_time(t, interval) for t in trades)
    while states:
        candles = market_data.klines(Market(market), symbol, interval_name, start=start, now=now)
        report.requests += 1
        # More closed candles may follow the last one returned, whatever size of page the server
        # chose to send; only an empty page or the newest closed candle means "caught up".
        more = bool(candles) and candles[-1].open_time + 2 * interval <= now
        # Every closed candle opening at or before this instant has now been seen.
        complete_until = candles[-1].open_time if more else now - interval
        updates: list[tuple[Trade, TradeState, TradeState]] = []
        for trade_id, (terms, before, trade) in list(states.items()):
            after = advance(terms, before, candles, complete_until=complete_until)
            if after != before:
                updates.append((trade, before, after))
            if after.status.is_active:
                states[trade_id] = (terms, after, trade)
            else:
                del states[trade_id]
        report.changed += _write(engine, updates, now=now, latest=candles[-1] if candles else None, market=market,
                                 symbol=symbol)
        if not more or (stop is not None and stop.is_set()):
            return
        start = candles[-1].open_time + interval


def _write(engine: Engine, updates: list[tuple[Trade, TradeState, TradeState]], *, now: datetime,
           latest: Candle | None, market: str, symbol: str) -> int:
    """One transaction per page: progress and decisions of every trade of the group."""
    changed = 0
    with transaction(engine) as session:
        for trade, before, after in updates:
            if after.status is before.status:
                _save_progress(session, trade, after)
            elif _save_decision(session, trade, before, after, now=now):
                changed += 1
        if latest is not None:
            _store_price(session, market, symbol, latest.close, latest.open_time, now=now)
    return changed


def _guard(trade: Trade) -> sa.ColumnElement[bool]:
    return sa.and_(Trade.id == trade.id, Trade.status == trade.status, Trade.version == trade.version)


def _save_progress(session: Session, trade: Trade, after: TradeState) -> None:
    session.execute(sa.update(Trade).where(_guard(trade)).values(last_candle_time=after.last_candle_time))


def _save_decision(session: Session, trade: Trade, before: TradeState, after: TradeState, *, now: datetime) -> bool:
    result = session.execute(sa.update(Trade).where(_guard(trade)).values(
        status=after.status.value, reason=after.reason, entry_time=after.entry_time, entry_price=after.entry_price,
        exit_time=after.exit_time, exit_price=after.exit_price, fees_usd=after.fees_usd, pnl_usd=after.pnl_usd,
        pnl_pct=after.pnl_pct, ambiguous=after.ambiguous, last_candle_time=after.last_candle_time,
        updated_at=now, version=trade.version + 1,
    ))
    if result.rowcount != 1:
        return False  # another worker recorded this change first
    trade.status, trade.version = after.status.value, trade.version + 1
    events.record(session, kind=_event_kind(before, after), at=now, trade_id=trade.id,
                  message=describe(trade, after), data={"status": after.status.value, "ambiguous": after.ambiguous})
    return True


def _event_kind(before: TradeState, after: TradeState) -> str:
    if after.status is TradeStatus.CANCELLED:
        return "trade.cancelled"
    if after.status is TradeStatus.OPEN:
        return "trade.filled"
    return "trade.closed"


def describe(trade: Trade, state: TradeState) -> str:
    what = f"trade {trade.id} {trade.side} {trade.symbol}"
    if state.status is TradeStatus.OPEN:
        return f"{what} opened at {state.entry_price}"
    if state.status is TradeStatus.CANCELLED:
        return f"{what} cancelled: {state.reason}"
    flag = " (stop-loss and take-profit in one candle: stop-loss recorded)" if state.ambiguous else ""
    return f"{what} {state.status.value} at {state.exit_price}, P/L ${state.pnl_usd:.2f}{flag}"


def _store_price(session: Session, market: str, symbol: str, price: Decimal, at: datetime, *, now: datetime) -> None:
    """Keep the newest known price; a ticker price from the price job may be newer than a candle."""
    row = session.get(LatestPrice, (market, symbol))
    if row is None:
        session.add(LatestPrice(market=market, symbol=symbol, price=price, updated_at=at))
    elif row.updated_at < at:
        row.price, row.updated_at = price, at


def store_prices(engine: Engine, market_data: MarketData, *, now: datetime) -> int:
    """One batched ticker request per market for the symbols of active trades."""
    with transaction(engine) as session:
        pairs = set(session.exec(select(Trade.market, Trade.symbol).where(Trade.status.in_(ACTIVE_STATUSES))))
    stored = 0
    for market in sorted({m for m, _ in pairs}):
        prices = market_data.latest_prices(Market(market), sorted(s for m, s in pairs if m == market))
        with transaction(engine) as session:
            for symbol, price in prices.items():
                _store_price(session, market, symbol, price, now, now=now)
                stored += 1
    return stored


def behind_seconds(engine: Engine, *, now: datetime) -> float | None:
    """How far behind real time the oldest unresolved trade is (None when nothing is open)."""
    oldest_candle = sa.func.min(sa.func.coalesce(Trade.last_candle_time, Trade.signal_time), type_=UtcDateTime())
    with transaction(engine) as session:
        oldest = session.exec(select(oldest_candle).where(Trade.status.in_(ACTIVE_STATUSES))).one()
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())
