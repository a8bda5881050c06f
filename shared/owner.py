"""The owner's actions: pause or resume auto-trading, close an open trade, cancel a pending one.

They are recorded like everything else: trades change only through the guarded updates of
`shared.decisions`, settings only through `shared.settings.change`, and every action is an
event by the actor "owner", which the public Methodology page lists and the equity curve marks.
"""

from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, select

from shared import settings as runtime
from shared.decisions import describe, save_decision
from shared.exits import close_manually
from shared.models import ACTIVE_STATUSES, LatestPrice, Trade, TradeStatus
from shared.trades import state_of, terms_of

OWNER = "owner"


class ActionRefused(ValueError):
    """An owner action that cannot be done as asked; the message says why."""


def set_paused(session: Session, paused: bool, *, now: datetime) -> list[tuple[str, str, str]]:
    """The kill switch: while paused the worker skips new signals ("paused"); open trades run on."""
    return runtime.change(session, {"paused": "true" if paused else "false"}, actor=OWNER, now=now)


def active_trades(*, session: Session) -> list[tuple[Trade, LatestPrice | None]]:
    """PENDING and OPEN trades, newest first, each with the latest price the worker stored."""
    trades = session.exec(select(Trade).where(Trade.status.in_(ACTIVE_STATUSES)).order_by(Trade.id.desc())).all()
    return [(trade, session.get(LatestPrice, (trade.market, trade.symbol))) for trade in trades]


def close_trade(session: Session, trade_id: int, *, now: datetime) -> str:
    """Close an OPEN trade at the latest stored price (`CLOSED_MANUAL`, fees and P/L as usual)."""
    trade = _active(session, trade_id, TradeStatus.OPEN)
    latest = session.get(LatestPrice, (trade.market, trade.symbol))
    if latest is None:
        raise ActionRefused(f"no price for {trade.symbol} has been stored yet: wait for the worker's next price update")
    return _decide(session, trade, price=latest.price, now=now)


def cancel_trade(session: Session, trade_id: int, *, now: datetime) -> str:
    """Cancel a PENDING trade (a limit entry not filled yet): it never becomes a position."""
    return _decide(session, _active(session, trade_id, TradeStatus.PENDING), price=None, now=now)


def _active(session: Session, trade_id: int, expected: TradeStatus) -> Trade:
    trade = session.get(Trade, trade_id)
    if trade is None:
        raise ActionRefused(f"there is no trade {trade_id}")
    if trade.status != expected.value:
        # The worker may have filled, closed or cancelled it since the page was drawn.
        raise ActionRefused(f"trade {trade_id} is {trade.status} now, not {expected.value}: nothing was changed")
    return trade


def _decide(session: Session, trade: Trade, *, price: Decimal | None, now: datetime) -> str:
    before = state_of(trade)
    after = close_manually(terms_of(trade), before, price=price, now=now)
    if not save_decision(session, trade, before, after, now=now, actor=OWNER):
        raise ActionRefused(f"trade {trade.id} was just updated by the worker: look again before acting")
    return describe(trade, after)
