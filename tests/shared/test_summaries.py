"""The summary tables, kept close by close, equal the summaries rebuilt from the trades and
give exactly the metrics shared.metrics computes from the raw trades (SQLite and PostgreSQL)."""

import random
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, delete, select

from shared import metrics, queries, summaries
from shared.database import transaction
from shared.exits import TradeState
from shared.kinds import TradeStatus
from shared.models import DaySummary, DistributionBin, Event, Signal, SummaryState, Trade, TradeBreakdown
from shared.trade_rows import save_decision, state_of

T0 = datetime(2024, 3, 1, 22, 0, tzinfo=timezone.utc)
ENDINGS = [TradeStatus.CLOSED_TP, TradeStatus.CLOSED_SL, TradeStatus.CLOSED_EXPIRED, TradeStatus.LIQUIDATED,
           TradeStatus.CLOSED_MANUAL, TradeStatus.CANCELLED]


def open_trades(engine: Engine, count: int, rng: random.Random) -> list[int]:
    ids = []
    with transaction(engine) as session:
        for n in range(count):
            signal_time = T0 + timedelta(hours=rng.randrange(0, 96))
            origin = rng.choice(["live", "live", "backfill"])
            signal = Signal(source="bot", signal_id=f"s{n}-{rng.random()}", time=signal_time, received_at=signal_time,
                            symbol=rng.choice(["BTCUSDT", "ETHBTC", "ADABTC"]), side=rng.choice(["LONG", "SHORT"]),
                            take_profit="2", stop_loss=D(1), status="ACCEPTED", origin=origin)
            session.add(signal)
            session.flush()
            trade = Trade(signal_pk=signal.id, source="bot", signal_id=signal.signal_id, origin=origin,
                          symbol=signal.symbol, market="SPOT", side=signal.side, leverage=1, signal_time=signal_time,
                          signal_entry=D("1.5"), take_profit=D(2), stop_loss=D(1), stake_usd=D(100), fee_rate=D(0),
                          entry_mode="signal", slippage_bps=D(0), maintenance_margin_rate=D(0),
                          pending_expiry_hours=D(24), max_trade_hours=D(0), candle_interval="1m",
                          status="OPEN", entry_time=signal_time, entry_price=D("1.5"), created_at=signal_time,
                          updated_at=signal_time)
            session.add(trade)
            session.flush()
            summaries.note_trade(trade.id, session=session)  # as trade_rows.record_opened does
            ids.append(trade.id)
    return ids


def ending(trade: Trade, rng: random.Random) -> TradeState:
    status = rng.choice(ENDINGS)
    state = state_of(trade)
    if status is TradeStatus.CANCELLED:
        return replace(state, status=status, reason="test")
    # Round P/L values make ties (equal falls, breakevens) common; 34-digit ones show any rounding.
    pnl = rng.choice([D(rng.randrange(-20, 21)), D(rng.randrange(-10000, 10000)) / 100,
                      D("-1.666666666666666666666666666666667"), D("0.3333333333333333333333333333333333")])
    # Exits land on the same minute now and then (ties broken by trade id), across UTC midnights.
    exit_time = trade.entry_time + timedelta(minutes=rng.choice([0, 1, 30, 60 * 7, 60 * 30, rng.randrange(3000)]))
    return replace(state, status=status, exit_time=exit_time, exit_price=D("1.6"), fees_usd=D(0), pnl_usd=pnl,
                   pnl_pct=pnl / 100, ambiguous=status is TradeStatus.CLOSED_SL and rng.random() < 0.3)


def close_in_batches(engine: Engine, ids: list[int], rng: random.Random) -> None:
    """Close in random order (late closes land in older days), several per transaction."""
    order = ids[:]
    rng.shuffle(order)
    while order:
        batch = order[:rng.randint(1, 8)]
        order = order[len(batch):]
        with transaction(engine) as session:
            for trade_id in batch:
                trade = session.get(Trade, trade_id)
                if rng.random() < 0.15:
                    continue  # stays open
                assert save_decision(trade, state_of(trade), ending(trade, rng), now=T0, session=session)


def stored(session: Session) -> dict[str, Any]:
    return {"days": sorted(_values(r) for r in session.exec(select(DaySummary)).all()),
            "breakdown": sorted(_values(r) for r in session.exec(select(TradeBreakdown)).all()),
            "bins": sorted(_values(r) for r in session.exec(select(DistributionBin)).all())}


def computed(session: Session) -> dict[str, Any]:
    rebuilt = summaries.compute(session=session)
    return {"days": sorted(_values(r) for r in rebuilt.day_rows),
            "breakdown": sorted(_values(r) for r in rebuilt.breakdown),
            "bins": sorted(_values(r) for r in rebuilt.bins)}


def _values(row: Any) -> tuple[Any, ...]:
    return tuple((name, str(value)) for name, value in sorted(row.model_dump().items()))


def raw_stats(session: Session, live: bool) -> metrics.Stats:
    closed = queries.closed_trades(session=session, live=live).trades
    trades = session.exec(queries.live_only(select(Trade), live)).all()
    counts = metrics.Counts(
        open_trades=sum(t.status == TradeStatus.OPEN for t in trades),
        pending_trades=sum(t.status == TradeStatus.PENDING for t in trades),
        cancelled_trades=sum(t.status == TradeStatus.CANCELLED for t in trades),
        ambiguous_trades=sum(t.ambiguous for t in trades))
    return metrics.compute_stats(closed, starting_balance=D(1000), counts=counts, min_trades_for_ratios=3)


def check_everything_agrees(engine: Engine) -> None:
    with transaction(engine) as session:
        assert summaries.is_current(session=session)
        assert stored(session) == computed(session)
        tables = summaries.load(session=session)
        for live in (False, True):
            by_summaries = tables.stats(starting_balance=D(1000), live=live, min_trades_for_ratios=3,
                                        active=queries.active_counts(session=session, live=live))
            assert asdict(by_summaries) == asdict(raw_stats(session, live))
            closed = queries.closed_trades(session=session, live=live).trades
            for since in (T0 + timedelta(hours=30, minutes=7), T0 - timedelta(days=2), T0 + timedelta(days=9)):
                assert summaries.pnl_since(since, tables.days(live=live), session=session, live=live) == \
                    metrics.period_pnl(closed, since)
            days = tables.days(live=live)
            assert days.stretch.streaks() == metrics.streaks(closed)
            if closed:
                assert metrics.returns_by_month(days.pnl_by_day, days.first_entry_day, D(1000)) == \
                    metrics.monthly_returns(closed, D(1000))
            assert sum(tables.histogram("hours", live=live).values()) == len(closed)


def test_kept_close_by_close_equals_rebuilt_and_the_raw_metrics(engine: Engine) -> None:
    rng = random.Random(7)
    ids = open_trades(engine, 120, rng)
    close_in_batches(engine, ids, rng)
    check_everything_agrees(engine)
    with transaction(engine) as session:
        before = stored(session)
        assert summaries.rebuild(session=session) == sum(
            1 for t in session.exec(select(Trade)).all() if not TradeStatus(t.status).is_active)
    with transaction(engine) as session:
        assert stored(session) == before


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 40))
def test_random_histories(engine: Engine, seed: int, count: int) -> None:
    with transaction(engine) as session:  # each example starts from an empty record
        for table in (DaySummary, TradeBreakdown, DistributionBin, SummaryState, Trade, Signal):
            session.execute(delete(table))
    rng = random.Random(seed)
    close_in_batches(engine, open_trades(engine, count, rng), rng)
    check_everything_agrees(engine)


def test_a_rolled_back_close_counts_nothing(engine: Engine) -> None:
    rng = random.Random(3)
    [trade_id] = open_trades(engine, 1, rng)
    try:
        with transaction(engine) as session:
            trade = session.get(Trade, trade_id)
            after = replace(ending(trade, rng), status=TradeStatus.CLOSED_TP, pnl_usd=D(5))
            assert save_decision(trade, state_of(trade), after, now=T0, session=session)
            raise RuntimeError("the transaction fails after the close")
    except RuntimeError:
        pass
    with transaction(engine) as session:
        assert stored(session) == {"days": [], "breakdown": [], "bins": []}
        assert session.exec(select(Event).where(Event.kind == "trade.closed")).first() is None


def test_trades_written_behind_the_workers_back_are_noticed(engine: Engine) -> None:
    rng = random.Random(5)
    close_in_batches(engine, open_trades(engine, 30, rng), rng)
    check_everything_agrees(engine)
    with transaction(engine) as session:  # a closed trade inserted by hand (a restored backup, a script)
        trade = session.exec(select(Trade).where(Trade.pnl_usd.is_not(None))).first()
        signal = Signal(source="bot", signal_id="by-hand", symbol=trade.symbol, side=trade.side, status="ACCEPTED")
        session.add(signal)
        session.flush()
        session.add(Trade(**{**trade.model_dump(), "id": None, "signal_pk": signal.id, "signal_id": "by-hand",
                             "pnl_usd": D("123.45")}))
    with transaction(engine) as session:
        assert not summaries.is_current(session=session)
        fallback = summaries.load(session=session)  # computed from the trades meanwhile
        assert sorted(_values(r) for r in fallback.breakdown) == computed(session)["breakdown"]
        assert fallback.days().tally.trades == len(queries.closed_trades(session=session).trades)
        summaries.rebuild(session=session)
    check_everything_agrees(engine)
