"""Recording what happens to a trade: guarded updates, each decision with its event.

The worker (candle by candle) and the owner (close or cancel on the settings page) write
trades only through here. Every write is `WHERE id = … AND status = … AND version = …`, so
two writers never both record a change: the second one's update matches no row.
"""

from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from shared import events
from shared.exits import TradeState
from shared.models import Trade, TradeStatus


def _guard(trade: Trade) -> sa.ColumnElement[bool]:
    return sa.and_(Trade.id == trade.id, Trade.status == trade.status, Trade.version == trade.version)


def save_progress(session: Session, trade: Trade, after: TradeState) -> None:
    """Remember the last candle checked (no decision: status and version stay)."""
    session.execute(sa.update(Trade).where(_guard(trade)).values(last_candle_time=after.last_candle_time))


def save_decision(session: Session, trade: Trade, before: TradeState, after: TradeState, *, now: datetime,
                  actor: str = "worker") -> bool:
    """Write a change of status and its event; False if another writer changed the trade first."""
    version = trade.version  # read first: the update below may refresh `trade` when it is in this session
    result = session.execute(sa.update(Trade).where(_guard(trade)).values(
        status=after.status.value, reason=after.reason, entry_time=after.entry_time, entry_price=after.entry_price,
        exit_time=after.exit_time, exit_price=after.exit_price, fees_usd=after.fees_usd, pnl_usd=after.pnl_usd,
        pnl_pct=after.pnl_pct, ambiguous=after.ambiguous, last_candle_time=after.last_candle_time,
        updated_at=now, version=version + 1,
    ))
    if result.rowcount != 1:
        return False
    trade.status, trade.version = after.status.value, version + 1
    for kind, state in _events(before, after):
        events.record(session, kind=kind, at=now, actor=actor, trade_id=trade.id, message=describe(trade, state),
                      data={"status": state.status.value, "ambiguous": state.ambiguous})
    return True


def _events(before: TradeState, after: TradeState) -> list[tuple[str, TradeState]]:
    """Every step of the change, in order. One `advance` may take a trade from PENDING straight
    to CLOSED (entered and exited within the same candles): the fill is an event of its own,
    recorded before the close, so every trade that ever had an entry has its `trade.filled`."""
    steps: list[tuple[str, TradeState]] = []
    if before.entry_time is None and after.entry_time is not None:
        filled = replace(after, status=TradeStatus.OPEN, reason=None, exit_time=None, exit_price=None,
                         fees_usd=None, pnl_usd=None, pnl_pct=None, ambiguous=False)
        steps.append(("trade.filled", filled))
    if after.status is TradeStatus.CANCELLED:
        steps.append(("trade.cancelled", after))
    elif after.status.is_closed:
        steps.append(("trade.closed", after))
    return steps


def describe(trade: Trade, state: TradeState) -> str:
    what = f"trade {trade.id} {trade.side} {trade.symbol}"
    if state.status is TradeStatus.OPEN:
        return f"{what} opened at {state.entry_price}"
    if state.status is TradeStatus.CANCELLED:
        return f"{what} cancelled: {state.reason}"
    flag = " (stop-loss and take-profit in one candle: stop-loss recorded)" if state.ambiguous else ""
    return f"{what} {state.status.value} at {state.exit_price}, P/L ${state.pnl_usd:.2f}{flag}"
