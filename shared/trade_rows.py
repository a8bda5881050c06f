"""The `trade` row: what it means (terms and state of the trade rules), how it is created, and
how it changes — guarded updates, each with its ledger entries and its count in the summary tables.

The one module that maps between a `Trade` row and `shared.exits`' values. The worker (intake
and monitor) and the owner (close or cancel on the settings page) create and change trades only
through here. Every change is `UPDATE … WHERE id = … AND status = … AND version = …`, so two
writers never both record a change: the second one's update matches no row. Every change appends
its ledger entries in the same transaction, with the export schema's column names as keys
(docs/ledger.md), so a verifier can rebuild every trade from the ledger alone. The one write that
is not a change, the last candle checked (`save_progress`), is batched and only moves forward.
"""

import json
from decimal import Decimal
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from shared import events, summaries
from shared.exits import CANDLE, Fill, TradeState, TradeTerms, open_trade
from shared.kinds import ACTIVE_STATUSES, TradeStatus
from shared.models import Market, Trade, TradeFill
from shared.signals import ValidSignal
from shared.targets import SINGLE, Portion, StopRule

# The terms a trade keeps for life, as recorded in its `trade.opened` entry.
TERM_COLUMNS = (
    "trade_id", "signal_pk", "source", "signal_id", "origin", "symbol", "market", "side", "leverage", "stake_usd",
    "signal_time", "signal_entry", "take_profit", "stop_loss", "fee_rate", "entry_mode", "slippage_bps",
    "maintenance_margin_rate", "pending_expiry_hours", "max_trade_hours", "candle_interval", "status",
)
# ... and, for a trade whose position is split over several targets, these too.
SPLIT_COLUMNS = ("tp_split", "stop_after_tp", "targets", "shares")
FILL_COLUMNS = ("time", "kind", "price", "share", "fees_usd", "pnl_usd")


def _listed(text: str | None) -> list[Decimal]:
    return [Decimal(part) for part in text.split(";")] if text else []


def split_of(tp_split: str, stop_after_tp: str, targets: list[Decimal], shares: list[Decimal]) -> dict[str, Any]:
    """The `split` and `stop_after_tp` of TradeTerms from what a trade stores."""
    if tp_split == SINGLE or not targets:
        return {}
    return {"split": tuple(Portion(t, s) for t, s in zip(targets, shares)), "stop_after_tp": StopRule(stop_after_tp)}


def terms_of(trade: Trade) -> TradeTerms:
    return TradeTerms(
        side=trade.side, leverage=trade.leverage, stake_usd=trade.stake_usd, fee_rate=trade.fee_rate,
        entry_mode=trade.entry_mode, slippage_bps=trade.slippage_bps,
        maintenance_margin_rate=trade.maintenance_margin_rate, pending_expiry_hours=trade.pending_expiry_hours,
        max_trade_hours=trade.max_trade_hours, signal_time=trade.signal_time, signal_entry=trade.signal_entry,
        take_profit=trade.take_profit, stop_loss=trade.stop_loss,
        **split_of(trade.tp_split, trade.stop_after_tp, _listed(trade.targets), _listed(trade.shares)),
        funding=bool(trade.futures_funding),
    )


def state_of(trade: Trade, fills: Sequence[Fill] = ()) -> TradeState:
    return TradeState(
        status=TradeStatus(trade.status), entry_time=trade.entry_time, entry_price=trade.entry_price,
        exit_time=trade.exit_time, exit_price=trade.exit_price, fees_usd=trade.fees_usd, pnl_usd=trade.pnl_usd,
        pnl_pct=trade.pnl_pct, reason=trade.reason, ambiguous=trade.ambiguous, last_candle_time=trade.last_candle_time,
        fills=tuple(fills), resolution=trade.resolution or CANDLE, funding_usd=trade.funding_usd or Decimal(0),
    )


def fills_of(trade_ids: Sequence[int], *, session: Session) -> dict[int, tuple[Fill, ...]]:
    """The stored fills of these trades, in order."""
    if not trade_ids:
        return {}
    table = TradeFill.__table__  # type: ignore[attr-defined]
    found: dict[int, list[Fill]] = {}
    for row in session.execute(sa.select(table).where(one_of(table.c.trade_id, trade_ids, session=session))
                               .order_by(table.c.trade_id, table.c.id)):
        found.setdefault(row.trade_id, []).append(Fill(*(getattr(row, c) for c in FILL_COLUMNS)))
    return {trade_id: tuple(fills) for trade_id, fills in found.items()}


def new_trade(signal_pk: int, signal: ValidSignal, terms: TradeTerms, *, candle_interval: str,
              now: datetime, split_name: str = SINGLE) -> Trade:
    """The row of an accepted signal's trade, in the state the rules open it in (`split_name`:
    the `tp_split` setting that gave `terms.split`)."""
    state = open_trade(terms)
    return Trade(
        signal_pk=signal_pk, source=signal.source, signal_id=signal.signal_id, origin=signal.origin,
        symbol=signal.symbol, market=signal.market, side=signal.side, leverage=signal.leverage,
        signal_time=signal.time, signal_entry=signal.entry, take_profit=terms.take_profit,
        stop_loss=terms.stop_loss, stake_usd=terms.stake_usd, fee_rate=terms.fee_rate,
        entry_mode=terms.entry_mode, slippage_bps=terms.slippage_bps,
        maintenance_margin_rate=terms.maintenance_margin_rate, pending_expiry_hours=terms.pending_expiry_hours,
        max_trade_hours=terms.max_trade_hours, candle_interval=candle_interval,
        tp_split=split_name, stop_after_tp=terms.stop_after_tp.value, futures_funding=terms.funding,
        targets=";".join(format(p.target, "f") for p in terms.split) or None,
        shares=";".join(format(p.share, "f") for p in terms.split) or None,
        status=state.status, entry_time=state.entry_time, entry_price=state.entry_price,
        created_at=now, updated_at=now,
    )


def record_opened(trade: Trade, *, session: Session, now: datetime) -> None:
    """Store a new trade and its `trade.opened` entry (and `trade.filled` when it is entered at
    once, in `signal` entry mode), in the caller's transaction."""
    session.add(trade)
    session.flush()  # the id
    summaries.note_trade(trade.id, session=session)
    data = {name: getattr(trade, "id" if name == "trade_id" else name) for name in TERM_COLUMNS}
    if trade.market == Market.FUTURES:
        data["futures_funding"] = trade.futures_funding
    if trade.tp_split != SINGLE:
        data.update(tp_split=trade.tp_split, stop_after_tp=trade.stop_after_tp, targets=_listed(trade.targets),
                    shares=_listed(trade.shares))
    events.record(kind="trade.opened", at=now, signal_pk=trade.signal_pk, trade_id=trade.id,
                  message=f"signal {trade.source}/{trade.signal_id}: {trade.side} {trade.symbol} {trade.entry_mode} "
                          f"entry, ${trade.stake_usd}", data=data, session=session)
    if trade.status is TradeStatus.OPEN:
        state = state_of(trade)
        events.record(kind="trade.filled", at=now, trade_id=trade.id, message=describe(trade, state),
                      data=state_data(state), session=session)


def state_data(state: TradeState) -> dict[str, Any]:
    """A trade's state as a ledger entry's data (export column names; empty values left out)."""
    values = {"status": state.status, "reason": state.reason, "entry_time": state.entry_time,
              "entry_price": state.entry_price, "exit_time": state.exit_time, "exit_price": state.exit_price,
              "fees_usd": state.fees_usd, "pnl_usd": state.pnl_usd, "pnl_pct": state.pnl_pct}
    data = {key: value for key, value in values.items() if value is not None}
    if state.status.is_closed or state.status is TradeStatus.CANCELLED:
        data["ambiguous"] = state.ambiguous
    if state.status.is_closed:
        data["targets_hit"] = state.targets_hit
        if state.resolution != CANDLE:  # a candle that reached both the adverse level and a target
            data["resolution"] = state.resolution
        if state.tape is not None:
            data["tape"] = state.tape.ledger_data()
        if state.funding or state.funding_usd:
            data["funding_usd"] = state.funding_usd
            data["funding"] = [payment.ledger_data() for payment in state.funding]
    return data


def fill_data(fill: Fill, targets_hit: int) -> dict[str, Any]:
    """One fill as a `trade.partial` entry's data (the columns of `trades fills`)."""
    return {**{name: getattr(fill, name) for name in FILL_COLUMNS}, "targets_hit": targets_hit}


def _guard(trade: Trade) -> sa.ColumnElement[bool]:
    return sa.and_(Trade.id == trade.id, Trade.status == trade.status, Trade.version == trade.version)


def save_progress(trade_ids: Sequence[int], last_candle_time: datetime, *, session: Session) -> None:
    """Remember the last candle checked by these trades, in one statement (no decision: status
    and version stay). Progress only ever moves forward, and only on an active trade: a trade
    another writer has decided, or checked further, is left as it is."""
    trade = Trade.__table__.c  # type: ignore[attr-defined]
    session.execute(sa.update(Trade.__table__).where(  # type: ignore[attr-defined]
        one_of(trade.id, trade_ids, session=session), trade.status.in_(ACTIVE_STATUSES),
        sa.or_(trade.last_candle_time.is_(None), trade.last_candle_time < last_candle_time),
    ).values(last_candle_time=last_candle_time))


def one_of(column: sa.ColumnElement[int], values: Sequence[int], *, session: Session) -> sa.ColumnElement[bool]:
    """`column IN (values)` with the values as one bound parameter however many they are (an
    array on PostgreSQL, a JSON list on SQLite), so the statement stays one cached statement."""
    if session.get_bind().dialect.name == "postgresql":  # an array literal, '{1,2,3}': one string to send
        listed = sa.bindparam("ids", "{" + ",".join(map(str, values)) + "}", type_=sa.String)
        return column == sa.any_(sa.cast(listed, postgresql.ARRAY(sa.Integer)))
    listed = sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam("ids", json.dumps(list(values)))))
    return column.in_(listed)


def save_decision(trade: Trade, before: TradeState, after: TradeState, *, session: Session, now: datetime,
                  actor: str = "worker") -> bool:
    """Write a change of status and its entries; False if another writer changed the trade first."""
    version = trade.version  # read first: the update below may refresh `trade` when it is in this session
    result = session.execute(sa.update(Trade).where(_guard(trade)).values(
        status=after.status, reason=after.reason, entry_time=after.entry_time, entry_price=after.entry_price,
        exit_time=after.exit_time, exit_price=after.exit_price, fees_usd=after.fees_usd, pnl_usd=after.pnl_usd,
        pnl_pct=after.pnl_pct, ambiguous=after.ambiguous, last_candle_time=after.last_candle_time,
        targets_hit=after.targets_hit, resolution=after.resolution, funding_usd=after.funding_usd,
        updated_at=now, version=version + 1,
    ))
    if result.rowcount != 1:
        return False
    trade.status, trade.version = after.status, version + 1
    new_fills = after.fills[len(before.fills):]
    if new_fills:
        session.execute(sa.insert(TradeFill.__table__),  # type: ignore[attr-defined]
                        [{"trade_id": trade.id, **{c: getattr(f, c) for c in FILL_COLUMNS}} for f in new_fills])
    for kind, state in _steps(before, after, split=trade.tp_split != SINGLE):
        data = fill_data(state, _hit(after, state)) if isinstance(state, Fill) else state_data(state)
        message = describe_fill(trade, state) if isinstance(state, Fill) else describe(trade, state)
        events.record(kind=kind, at=now, actor=actor, trade_id=trade.id, message=message, data=data, session=session)
    if not after.status.is_active:
        summaries.count_end(trade, status=after.status, pnl=after.pnl_usd, entry_time=after.entry_time,
                            exit_time=after.exit_time, ambiguous=after.ambiguous, session=session)
    return True


def _hit(after: TradeState, fill: Fill) -> int:
    """Targets hit once `fill` is in (fills come in order)."""
    done = after.fills[:after.fills.index(fill) + 1]
    return sum(1 for f in done if f.target is not None)


def _steps(before: TradeState, after: TradeState, *, split: bool = False) -> list[tuple[str, Any]]:
    """Every step of the change, in order. One `advance` may take a trade from PENDING straight
    to CLOSED (entered and exited within the same candles): the fill is an entry of its own,
    recorded before the close, so every trade that ever had an entry has its `trade.filled`. A
    trade split over several targets records each exit of a part (`trade.partial`) before its
    close; with one target, the close says it all."""
    steps: list[tuple[str, Any]] = []
    if before.entry_time is None and after.entry_time is not None:
        filled = replace(after, status=TradeStatus.OPEN, reason=None, exit_time=None, exit_price=None,
                         fees_usd=None, pnl_usd=None, pnl_pct=None, ambiguous=False, fills=())
        steps.append(("trade.filled", filled))
    if split:
        steps += [("trade.partial", fill) for fill in after.fills[len(before.fills):]]
    if after.status is TradeStatus.CANCELLED:
        steps.append(("trade.cancelled", after))
    elif after.status.is_closed:
        steps.append(("trade.closed", after))
    return steps


def describe_fill(trade: Trade, fill: Fill) -> str:
    what = f"trade {trade.id} {trade.side} {trade.symbol}"
    part = f"{fill.share * 100:.4g} %"
    if fill.target is not None:
        return f"{what}: target {fill.target} reached, {part} out at {fill.price}, P/L ${fill.pnl_usd:.2f}"
    return f"{what}: the rest ({part}) out at {fill.price} ({fill.kind}), P/L ${fill.pnl_usd:.2f}"


def describe(trade: Trade, state: TradeState) -> str:
    what = f"trade {trade.id} {trade.side} {trade.symbol}"
    if state.status is TradeStatus.OPEN:
        return f"{what} opened at {state.entry_price}"
    if state.status is TradeStatus.CANCELLED:
        return f"{what} cancelled: {state.reason}"
    flag = " (stop-loss and take-profit in one candle: stop-loss recorded)" if state.ambiguous else ""
    return f"{what} {state.status} at {state.exit_price}, P/L ${state.pnl_usd:.2f}{flag}"
