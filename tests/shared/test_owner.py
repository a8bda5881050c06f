"""The owner's actions on trades (`shared.owner`), on SQLite and PostgreSQL: close at the latest
stored price, cancel a pending entry, and refuse clearly whatever cannot be done."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shared import owner
from shared.database import transaction
from shared.money import settle
from shared.models import Event, LatestPrice, Signal, Trade, TradeStatus

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def add_trade(engine: Engine, status: TradeStatus, **over: Any) -> int:
    """A SHORT futures trade at 5x, opened an hour before NOW (or pending at its limit)."""
    with transaction(engine) as session:
        signal = Signal(source="bot", signal_id=f"s-{status}", time=NOW - timedelta(hours=1), received_at=NOW,
                        symbol="ETHUSDT", side="SHORT", market="FUTURES", take_profit="2900", stop_loss=D(3100),
                        leverage=5, status="ACCEPTED", origin="live")
        session.add(signal)
        session.flush()
        opened = status is TradeStatus.OPEN
        trade = Trade(signal_pk=signal.id, source="bot", signal_id=signal.signal_id, origin="live", symbol="ETHUSDT",
                      market="FUTURES", side="SHORT", leverage=5, signal_time=signal.time, signal_entry=D(3000),
                      take_profit=D(2900), stop_loss=D(3100), stake_usd=D(250), fee_rate=D("0.0005"),
                      entry_mode="market" if opened else "limit", slippage_bps=D(0),
                      maintenance_margin_rate=D("0.004"), pending_expiry_hours=D(24), max_trade_hours=D(0),
                      candle_interval="1m", status=status.value, entry_time=signal.time if opened else None,
                      entry_price=D(3000) if opened else None, created_at=NOW, updated_at=NOW,
                      last_candle_time=over.pop("last_candle_time", NOW - timedelta(minutes=1)), **over)
        session.add(trade)
        session.flush()
        assert trade.id is not None
        return trade.id


def set_price(engine: Engine, price: str, at: datetime = NOW) -> None:
    with transaction(engine) as session:
        session.merge(LatestPrice(market="FUTURES", symbol="ETHUSDT", price=D(price), updated_at=at))


def owner_events(engine: Engine) -> list[tuple[str, str, int | None]]:
    with Session(engine) as session:
        return [(e.kind, e.actor, e.trade_id) for e in session.exec(select(Event).where(Event.actor == "owner"))]


def test_close_records_the_latest_price_with_fees_and_leverage(engine: Engine) -> None:
    trade_id = add_trade(engine, TradeStatus.OPEN)
    set_price(engine, "2950")
    with transaction(engine) as session:
        message = owner.close_trade(trade_id, now=NOW, session=session)
    money = settle(side_sign=-1, stake=D(250), leverage=5, fee_rate=D("0.0005"), entry=D(3000), exit=D(2950))
    # (no slippage in these trades' terms; shared/test_exits.py checks it is applied)
    with Session(engine) as session:
        trade = session.get(Trade, trade_id)
    assert trade is not None
    assert (trade.status, trade.exit_price, trade.exit_time, trade.pnl_usd, trade.fees_usd, trade.version) == (
        "CLOSED_MANUAL", D(2950), NOW, money.pnl_usd, money.fees_usd, 1)
    assert money.pnl_usd > 0  # a short that fell: the sign is right
    assert message == f"trade {trade_id} SHORT ETHUSDT CLOSED_MANUAL at 2950, P/L ${money.pnl_usd:.2f}"
    assert owner_events(engine) == [("trade.closed", "owner", trade_id)]


def test_cancel_a_pending_entry(engine: Engine) -> None:
    trade_id = add_trade(engine, TradeStatus.PENDING)
    with transaction(engine) as session:
        owner.cancel_trade(trade_id, now=NOW, session=session)
    with Session(engine) as session:
        trade = session.get(Trade, trade_id)
    assert trade is not None and (trade.status, trade.reason, trade.pnl_usd) == ("CANCELLED", "cancelled by the owner", None)
    assert owner_events(engine) == [("trade.cancelled", "owner", trade_id)]


@pytest.mark.parametrize(("status", "action", "price", "refusal"), [
    (TradeStatus.OPEN, "close", None, "no price for ETHUSDT has been stored yet"),
    (TradeStatus.OPEN, "cancel", "2950", "is OPEN now, not PENDING: nothing was changed"),
    (TradeStatus.PENDING, "close", "2950", "is PENDING now, not OPEN: nothing was changed"),
    (TradeStatus.CLOSED_TP, "close", "2950", "is CLOSED_TP now, not OPEN: nothing was changed"),
    (TradeStatus.CANCELLED, "cancel", None, "is CANCELLED now, not PENDING: nothing was changed"),
])
def test_what_cannot_be_done_is_refused_and_changes_nothing(engine: Engine, status: TradeStatus, action: str,
                                                            price: str | None, refusal: str) -> None:
    trade_id = add_trade(engine, status)
    if price:
        set_price(engine, price)
    act = owner.close_trade if action == "close" else owner.cancel_trade
    with pytest.raises(owner.ActionRefused, match=refusal), transaction(engine) as session:
        act(trade_id, session=session, now=NOW)
    with Session(engine) as session:
        assert session.get(Trade, trade_id).status == status.value  # type: ignore[union-attr]
    assert owner_events(engine) == []


@pytest.mark.parametrize(("price", "price_at", "checked_until", "confirmed", "refusal"), [
    ("2950", NOW - timedelta(minutes=11), None, None, "too old to act on: is the worker running"),
    ("2950", NOW, NOW - timedelta(minutes=10), None, "has checked trade .* only up to the candle of"),
    ("2950", NOW, None, "2940", "moved from 2940 to 2950 since you confirmed"),
    ("3100", NOW, None, None, "at or beyond the stop-loss or liquidation level"),
    ("2899", NOW, None, None, "has reached the take-profit"),
])
def test_a_close_the_rules_or_the_market_do_not_allow_is_refused(engine: Engine, price: str, price_at: datetime,
                                                                  checked_until: datetime | None,
                                                                  confirmed: str | None, refusal: str) -> None:
    over = {"last_candle_time": checked_until} if checked_until else {}
    trade_id = add_trade(engine, TradeStatus.OPEN, **over)
    set_price(engine, price, at=price_at)
    with pytest.raises(owner.ActionRefused, match=refusal), transaction(engine) as session:
        owner.close_trade(trade_id, now=NOW, confirmed_price=D(confirmed) if confirmed else None, session=session)
    with Session(engine) as session:
        assert session.get(Trade, trade_id).status == "OPEN"  # type: ignore[union-attr]


def test_a_limit_entry_the_price_has_reached_cannot_be_cancelled(engine: Engine) -> None:
    trade_id = add_trade(engine, TradeStatus.PENDING)  # a SHORT limit at 3000
    set_price(engine, "3001")
    with pytest.raises(owner.ActionRefused, match="has reached the limit entry"), transaction(engine) as session:
        owner.cancel_trade(trade_id, now=NOW, session=session)


def test_an_unknown_trade_is_refused(engine: Engine) -> None:
    with pytest.raises(owner.ActionRefused, match="there is no trade 999"), transaction(engine) as session:
        owner.close_trade(999, now=NOW, session=session)


def test_a_worker_decision_in_between_wins(engine: Engine) -> None:
    """The owner's session read the trade; the worker then closed it: the owner's write matches no row."""
    trade_id = add_trade(engine, TradeStatus.OPEN)
    set_price(engine, "2950")
    with pytest.raises(owner.ActionRefused, match="was just updated by the worker"), transaction(engine) as session:
        seen = session.get(Trade, trade_id)  # the owner's session has read the trade (version 0) …
        assert seen is not None and seen.version == 0
        # … then the worker's guarded update lands (written here on the same connection: SQLite
        # has one writer at a time, and the point is only that the stored version moved on).
        session.execute(Trade.__table__.update().where(Trade.id == trade_id).values(version=1))  # type: ignore[attr-defined]
        owner.close_trade(trade_id, now=NOW, session=session)
    with Session(engine) as session:
        assert session.get(Trade, trade_id).status == "OPEN"  # type: ignore[union-attr]


def test_pause_and_resume_are_logged_settings_changes(engine: Engine) -> None:
    with transaction(engine) as session:
        assert owner.set_paused(True, now=NOW, session=session) == [("paused", "false", "true")]
    with transaction(engine) as session:
        assert owner.set_paused(True, now=NOW, session=session) == []  # already paused: nothing logged
        assert owner.set_paused(False, now=NOW, session=session) == [("paused", "true", "false")]
    assert owner_events(engine) == [("settings.changed", "owner", None)] * 2
