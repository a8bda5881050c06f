"""The owner's actions: pause or resume auto-trading, close an open trade, cancel a pending one.

They are recorded like everything else: trades change only through the guarded updates of
`shared.trade_rows`, settings only through `shared.settings.change`, and every action is an
event by the actor "owner", which the public Methodology page lists and the equity curve marks.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, select

from shared import queries, settings as runtime
from shared.candles import interval_length
from shared.trade_rows import describe, fills_of, save_decision, state_of, terms_of
from shared.exits import ManualActionRefused, close_manually
from shared.models import LatestPrice, Trade, TradeStatus

OWNER = "owner"


# One kind of refusal, whether the rules (shared.exits) or this module say no.
ActionRefused = ManualActionRefused

# A close at market needs a market: the price the worker stored must be this fresh.
MAX_PRICE_AGE = timedelta(minutes=10)
# … and the trade must have been checked against the candles up to about then, or a stop-loss
# or take-profit in a candle the worker has not looked at yet would be overruled.
MAX_UNCHECKED = 2


def set_paused(paused: bool, *, session: Session, now: datetime) -> list[tuple[str, str, str]]:
    """The kill switch: while paused the worker skips new signals ("paused"); open trades run on."""
    return runtime.change({"paused": "true" if paused else "false"}, actor=OWNER, now=now, session=session)


def active_trades(*, session: Session) -> list[tuple[Trade, LatestPrice | None]]:
    """PENDING and OPEN trades, newest first, each with the latest price the worker stored."""
    trades = queries.active_trades(session=session, newest_first=True)
    prices = {(p.market, p.symbol): p for p in session.exec(select(LatestPrice))}
    return [(trade, prices.get((trade.market, trade.symbol))) for trade in trades]


def close_trade(trade_id: int, *, session: Session, now: datetime, confirmed_price: Decimal | None = None) -> str:
    """Close an OPEN trade at market: the latest stored price (the one the owner confirmed, if
    given), with slippage, fees and P/L as usual (`CLOSED_MANUAL`)."""
    trade = _active(trade_id, TradeStatus.OPEN, session=session)
    latest = _checked_price(trade, now=now, required=True, session=session)
    assert latest is not None
    if confirmed_price is not None and latest.price != confirmed_price:
        raise ActionRefused(f"the latest price of {trade.symbol} moved from {confirmed_price} to {latest.price} "
                            "since you confirmed: confirm again")
    if trade.entry_time is not None and latest.updated_at < trade.entry_time:
        raise ActionRefused(f"the latest stored price of {trade.symbol} predates the entry: wait for the next one")
    return _decide(trade, price=latest.price, at=latest.updated_at, now=now, session=session)


def cancel_trade(trade_id: int, *, session: Session, now: datetime) -> str:
    """Cancel a PENDING limit entry that the price has not reached: it never becomes a position."""
    trade = _active(trade_id, TradeStatus.PENDING, session=session)
    latest = _checked_price(trade, now=now, required=False, session=session)
    return _decide(trade, price=latest.price if latest else None, at=now, now=now, session=session)


def _active(trade_id: int, expected: TradeStatus, *, session: Session) -> Trade:
    trade = session.get(Trade, trade_id)
    if trade is None:
        raise ActionRefused(f"there is no trade {trade_id}")
    if trade.status != expected:
        # The worker may have filled, closed or cancelled it since the page was drawn.
        raise ActionRefused(f"trade {trade_id} is {trade.status} now, not {expected}: nothing was changed")
    return trade


def _checked_price(trade: Trade, *, session: Session, now: datetime, required: bool) -> LatestPrice | None:
    """The latest stored price, once the worker has checked the trade's candles up to about then."""
    latest = session.get(LatestPrice, (trade.market, trade.symbol))
    if latest is None and required:
        raise ActionRefused(f"no price for {trade.symbol} has been stored yet: wait for the worker's next price update")
    if latest is not None and now - latest.updated_at > MAX_PRICE_AGE:
        raise ActionRefused(f"the latest stored price of {trade.symbol} is from {latest.updated_at:%Y-%m-%d %H:%M} "
                            "UTC, too old to act on: is the worker running?")
    checked = trade.last_candle_time or trade.signal_time
    reference = latest.updated_at if latest is not None else now
    if reference - checked > MAX_UNCHECKED * interval_length(trade.candle_interval) + MAX_PRICE_AGE / 5:
        raise ActionRefused(f"the worker has checked trade {trade.id} only up to the candle of "
                            f"{checked:%Y-%m-%d %H:%M} UTC: wait for its next pass, which may decide it by the rules")
    return latest


def _decide(trade: Trade, *, session: Session, price: Decimal | None, at: datetime, now: datetime) -> str:
    before = state_of(trade, fills_of([trade.id], session=session).get(trade.id, ()))
    after = close_manually(terms_of(trade), before, price=price, now=at)
    if not save_decision(trade, before, after, now=now, actor=OWNER, session=session):
        raise ActionRefused(f"trade {trade.id} was just updated by the worker: look again before acting")
    return describe(trade, after)
