"""The trade monitor: feed closed candles to every PENDING/OPEN trade and record what happens.

Requests grow with symbols, not trades: all active trades of one (market, symbol, interval)
share one klines request when caught up, and page through history only when behind. Each
trade resumes after its own last checked candle, so an exit touched while the worker was down
is still found at the right candle. Writes are guarded (`WHERE version = old`): two workers,
or a worker killed and restarted, never record a trade twice or lose one.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from threading import Event as StopFlag

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared import queries
from shared.candles import Candle, interval_length
from shared.database import transaction
from shared.exits import TradeState, advance
from shared.models import LatestPrice, Market, Trade
from shared.trade_rows import save_decision, save_progress, state_of, terms_of
from worker.market_data import ExchangeError, ExchangeUnreachable, MarketData, UnknownSymbol

log = logging.getLogger(__name__)

GroupKey = tuple[str, str, str]  # (market, symbol, candle interval)


@dataclass
class MonitorReport:
    requests: int = 0
    changed: int = 0
    failed: list[str] = field(default_factory=list)  # groups the exchange could not serve
    stuck: int = 0  # active trades in those groups: not updated by this pass
    unreachable: bool = False  # a host did not resolve or refused connections (retrying soon won't help)
    behind_seconds: float | None = None


def _next_candle_time(trade: Trade, interval: timedelta) -> datetime:
    if trade.last_candle_time is not None:
        return trade.last_candle_time + interval
    return trade.signal_time


def monitor_trades(engine: Engine, market_data: MarketData, *, now: datetime, stop: StopFlag | None = None,
                   progress: Callable[[], None] | None = None) -> MonitorReport:
    """One pass over all active trades, as far as closed candles allow.

    `progress` is called after each (market, symbol) group, served or refused by the exchange:
    a long pass through an exchange outage is still a worker at work (the systemd watchdog).
    """
    report = MonitorReport()
    with transaction(engine) as session:
        active = queries.active_trades(session=session)
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
            report.stuck += len(trades)
            report.unreachable = report.unreachable or isinstance(exc, ExchangeUnreachable)
        if progress is not None:
            progress()
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
                save_progress(trade, after, session=session)
            elif save_decision(trade, before, after, now=now, session=session):
                changed += 1
        if latest is not None:
            _store_price(market, symbol, latest.close, latest.open_time, now=now, session=session)
    return changed


def _store_price(market: str, symbol: str, price: Decimal, at: datetime, *, session: Session, now: datetime) -> None:
    """Keep the newest known price; a ticker price from the price job may be newer than a candle."""
    row = session.get(LatestPrice, (market, symbol))
    if row is None:
        session.add(LatestPrice(market=market, symbol=symbol, price=price, updated_at=at))
    elif row.updated_at < at:
        row.price, row.updated_at = price, at


def store_prices(engine: Engine, market_data: MarketData, *, now: datetime) -> int:
    """One batched ticker request per market for the symbols of active trades."""
    with transaction(engine) as session:
        pairs = queries.active_markets(session=session)
    stored = 0
    for market in sorted({m for m, _ in pairs}):
        prices = market_data.latest_prices(Market(market), sorted(s for m, s in pairs if m == market))
        with transaction(engine) as session:
            for symbol, price in prices.items():
                _store_price(market, symbol, price, now, now=now, session=session)
                stored += 1
    return stored


def behind_seconds(engine: Engine, *, now: datetime) -> float | None:
    """How far behind real time the oldest unresolved trade is (None when nothing is open)."""
    with transaction(engine) as session:
        oldest = queries.oldest_unresolved(session=session)
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())
