"""Signal intake: store incoming rows (import file, HTTP feed), then turn NEW signals into trades.

Every way in goes through `shared.signals.validate`. Nothing is dropped silently: an invalid
row is stored as REJECTED with its reason, a filtered one as SKIPPED, and a repeated
(source, id) is counted as a duplicate while the first version stands.
"""

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlmodel import Session, select

from shared import events, settings as runtime
from shared.database import insert_missing, transaction
from shared.exits import TradeTerms, open_trade
from shared.models import (
    ACTIVE_STATUSES, EntryMode, Market, RuntimeSettings, Signal, SignalStatus, Trade, TradeStatus,
)
from shared.signals import RawRow, Rejection, ValidSignal, row_to_raw, to_row_values, validate
from worker.market_data import ExchangeError, MarketData

log = logging.getLogger(__name__)
INSERT_BATCH = 500
# The columns a bot fills when it inserts a signal itself (DESIGN.md "Signals", way 3).
BOT_COLUMNS = ("time", "symbol", "side", "market", "entry", "take_profit", "stop_loss", "leverage", "confidence", "note")


@dataclass
class IntakeReport:
    accepted: int = 0
    rejected: int = 0
    duplicate: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def summary(self) -> str:
        return f"accepted {self.accepted}, rejected {self.rejected}, duplicate {self.duplicate}"


def _unidentified_id(text: str) -> str:
    """A stable id for a row whose own id is unusable, so it is still recorded (once)."""
    return "unidentified-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _storable(text: str) -> str:
    """PostgreSQL cannot store NUL in text: keep it visible as U+FFFD instead."""
    return text.replace("\x00", "\ufffd")


def _row_values(row: RawRow, *, default_source: str, received_at: datetime) -> tuple[dict[str, Any], str | None]:
    """The `signal` row to insert for one raw record, and the rejection reason if it is invalid."""
    raw_json = _storable(row.text) if row.fields is None else json.dumps(row.fields, default=str)
    if row.fields is None:
        reason = row.error or "unreadable row"
        return {"source": default_source, "signal_id": _unidentified_id(row.text), "status": SignalStatus.REJECTED,
                "reason": reason, "raw": raw_json}, reason
    result = validate(row.fields, received_at=received_at, default_source=default_source)
    if isinstance(result, Rejection):
        # Keep what the row said (as text, cut short) so the record shows it, not blanks.
        said = {key: _storable(str(row.fields[key]))[:40] for key in ("symbol", "side", "market")
                if row.fields.get(key) is not None}
        return {**said, "source": result.source or default_source,
                "signal_id": result.signal_id or _unidentified_id(row.text),
                "status": SignalStatus.REJECTED, "reason": result.reason, "raw": raw_json}, result.reason
    return {**to_row_values(result), "status": SignalStatus.NEW, "raw": raw_json}, None


def store_rows(session: Session, rows: Sequence[RawRow], *, default_source: str, received_at: datetime,
               actor: str) -> IntakeReport:
    """Validate and insert rows; (source, id) already present → duplicate, first version stands."""
    report = IntakeReport()
    prepared: dict[tuple[str, str], tuple[RawRow, dict[str, Any], str | None]] = {}
    for row in rows:
        values, reason = _row_values(row, default_source=default_source, received_at=received_at)
        key = (values["source"], values["signal_id"])
        if key in prepared:
            report.duplicate += 1  # repeated inside the same file: the first line stands
            continue
        prepared[key] = (row, {**values, "received_at": received_at, "processed_at": received_at if reason else None}, reason)
    items = list(prepared.items())
    for start in range(0, len(items), INSERT_BATCH):
        batch = items[start:start + INSERT_BATCH]
        inserted = _insert_new(session, [values for _, (_, values, _) in batch])
        for key, (row, values, reason) in batch:
            if key not in inserted:
                report.duplicate += 1
            elif reason is None:
                report.accepted += 1
            else:
                report.rejected += 1
                report.rejections.append((row.line, reason))
                events.record(session, kind="signal.rejected", actor=actor, at=received_at,
                              message=f"signal {key[0]}/{key[1]} rejected: {reason}", data={"reason": reason})
    if report.accepted:
        events.record(session, kind="signal.received", actor=actor, at=received_at,
                      message=f"{report.accepted} signal(s) received", data={"count": report.accepted})
    return report


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert what is new; returns the (source, id) keys that were new."""
    table = Signal.__table__
    return set(insert_missing(session, table, rows, returning=(table.c.source, table.c.signal_id)))  # type: ignore[arg-type]


# --- NEW signals → trades --------------------------------------------------------------


def _skip_reason(signal: ValidSignal, settings: RuntimeSettings, open_keys: list[tuple[str, str]]) -> str | None:
    """The runtime-settings filter a valid signal fails, if any (DESIGN.md: status SKIPPED)."""
    if settings.paused:
        return "paused"
    if signal.market.value not in settings.markets.split(","):
        return f"market {signal.market.value} is not traded (markets = {settings.markets})"
    allow = runtime.symbol_list(settings.symbols_allow)
    if allow and signal.symbol not in allow:
        return f"symbol {signal.symbol} is not in symbols_allow"
    if signal.symbol in runtime.symbol_list(settings.symbols_deny):
        return f"symbol {signal.symbol} is in symbols_deny"
    if signal.confidence is not None and signal.confidence < settings.min_confidence:
        return f"confidence {signal.confidence} is below min_confidence {settings.min_confidence}"
    if settings.max_open_trades and len(open_keys) >= settings.max_open_trades:
        return f"max_open_trades ({settings.max_open_trades}) reached"
    if settings.one_per_symbol_side and (signal.symbol, signal.side.value) in open_keys:
        return f"a {signal.side.value} {signal.symbol} trade is already open (one_per_symbol_side)"
    return None


def _terms(signal: ValidSignal, settings: RuntimeSettings) -> TradeTerms:
    return TradeTerms(
        side=signal.side, leverage=signal.leverage, stake_usd=settings.stake_usd,
        fee_rate=settings.fee_rate_futures if signal.market is Market.FUTURES else settings.fee_rate_spot,
        entry_mode=EntryMode(settings.entry_mode), slippage_bps=settings.slippage_bps,
        maintenance_margin_rate=settings.maintenance_margin_rate,
        pending_expiry_hours=settings.pending_expiry_hours, max_trade_hours=settings.max_trade_hours,
        signal_time=signal.time, signal_entry=signal.entry,
        take_profit=signal.take_profit_for(settings.take_profit_target), stop_loss=signal.stop_loss,
    )


def _new_trade(row: sa.Row[Any], signal: ValidSignal, settings: RuntimeSettings, now: datetime) -> Trade:
    terms = _terms(signal, settings)
    state = open_trade(terms)
    return Trade(
        signal_pk=row.id, source=signal.source, signal_id=signal.signal_id, origin=signal.origin.value,
        symbol=signal.symbol, market=signal.market.value, side=signal.side.value, leverage=signal.leverage,
        signal_time=signal.time, signal_entry=signal.entry, take_profit=terms.take_profit,
        stop_loss=terms.stop_loss, stake_usd=terms.stake_usd, fee_rate=terms.fee_rate,
        entry_mode=terms.entry_mode.value, slippage_bps=terms.slippage_bps,
        maintenance_margin_rate=terms.maintenance_margin_rate, pending_expiry_hours=terms.pending_expiry_hours,
        max_trade_hours=terms.max_trade_hours, candle_interval=settings.candle_interval,
        status=state.status.value, entry_time=state.entry_time, entry_price=state.entry_price,
        created_at=now, updated_at=now,
    )


def _claim(session: Session, row: sa.Row[Any], status: SignalStatus, reason: str | None, now: datetime,
           normalised: ValidSignal | None) -> bool:
    """Move a signal out of NEW, guarded so that two workers never both act on it."""
    values: dict[str, Any] = {"status": status.value, "reason": reason, "processed_at": now}
    if row.raw is None:  # a row a bot inserted by hand: keep what it wrote before rewriting it
        values["raw"] = json.dumps({name: getattr(row, name) for name in BOT_COLUMNS}, default=str)
        values.update(_unreadable(row, session.get_bind().dialect, now))
    if normalised is not None:  # rows a bot inserted by hand get their normalised values
        values.update({k: v for k, v in to_row_values(normalised).items() if k not in ("source", "signal_id")})
    result = session.execute(sa.update(Signal).where(Signal.id == row.id, Signal.status == SignalStatus.NEW.value)
                             .values(**values))
    return result.rowcount == 1


def _new_rows(session: Session, after_id: int, batch: int) -> list[sa.Row[Any]]:
    """NEW signals with the bot's columns as stored, not through their column types: SQLite keeps
    any value in any column, and one its type cannot load ('garbage' in `time`) must end as a
    REJECTED row, not as an error on every tick."""
    table = Signal.__table__
    as_stored = [sa.type_coerce(table.c[name], sa.String()).label(name) for name in (*BOT_COLUMNS, "received_at")]
    return list(session.execute(
        sa.select(table.c.id, table.c.source, table.c.signal_id, table.c.raw, *as_stored)
        .where(table.c.status == SignalStatus.NEW.value, table.c.id > after_id).order_by(table.c.id).limit(batch)))


def _received_at(stored: object, now: datetime) -> datetime:
    """When a row arrived (its server default; text on SQLite); `now` if that cannot be read."""
    if isinstance(stored, str):
        try:
            stored = datetime.fromisoformat(stored)
        except ValueError:
            return now
    if not isinstance(stored, datetime):
        return now
    return stored if stored.tzinfo is not None else stored.replace(tzinfo=timezone.utc)


def _unreadable(row: sa.Row[Any], dialect: Dialect, now: datetime) -> dict[str, Any]:
    """Stored values their own column type cannot load back, cleared so the row stays readable
    (by the export and the site); the bot's values are kept in `raw`. Only SQLite takes such
    values: PostgreSQL refuses them at the bot's INSERT."""
    cleared: dict[str, Any] = {}
    if dialect.name != "sqlite":
        return cleared
    for name in (*BOT_COLUMNS, "received_at"):
        load = Signal.__table__.c[name].type.dialect_impl(dialect).result_processor(dialect, None)
        try:
            if load is not None:
                load(getattr(row, name))
        except Exception:  # noqa: BLE001 - whatever the type's own loader raises, it cannot read this
            cleared[name] = now if name == "received_at" else None
    return cleared


def process_new_signals(engine: Engine, market_data: MarketData, *, now: datetime, known_symbols: dict[tuple[str, str], bool],
                        batch: int = 1000, errors: list[ExchangeError] | None = None) -> tuple[int, int]:
    """Decide every NEW signal: REJECTED, SKIPPED or a new trade. Returns (decided, left NEW).

    Network calls (is the symbol listed?) happen before the write transaction, never inside it.
    Signals whose symbol could not be checked (exchange down) stay NEW for the next tick; the
    exchange's errors are appended to `errors` (for the heartbeat).
    """
    decided = left = 0
    last_id = 0
    unreachable: dict[str, ExchangeError] = {}  # markets whose API failed during this call
    while True:
        with transaction(engine) as session:
            interval = runtime.load(session).candle_interval
            rows = _new_rows(session, last_id, batch)
        if not rows:
            if errors is not None:
                errors.extend(unreachable.values())
            return decided, left
        last_id = rows[-1].id or last_id
        checked = [(row, validate(row_to_raw(row), received_at=_received_at(row.received_at, now),
                                  default_source=row.source)) for row in rows]
        checked.sort(key=lambda pair: (pair[1].time, pair[0].id) if isinstance(pair[1], ValidSignal) else (now, pair[0].id))
        _check_symbols([s for _, s in checked if isinstance(s, ValidSignal)], market_data, interval, now, known_symbols,
                       unreachable)
        with transaction(engine) as session:
            settings = runtime.load(session)
            open_keys = [(t.symbol, t.side) for t in session.exec(select(Trade).where(Trade.status.in_(ACTIVE_STATUSES)))]
            for row, result in checked:
                outcome = _decide(session, row, result, settings, open_keys, known_symbols, now)
                if outcome is None:
                    left += 1
                else:
                    decided += outcome


def _check_symbols(signals: Iterable[ValidSignal], market_data: MarketData, interval: str, now: datetime,
                   known: dict[tuple[str, str], bool], unreachable: dict[str, ExchangeError]) -> None:
    """Ask the exchange about symbols not seen before. Once a market's API has failed (after the
    client's own retries), its other symbols wait for the next tick instead of each retrying
    again: an outage must not stretch one tick over many minutes."""
    for key in sorted({(s.market.value, s.symbol) for s in signals} - set(known)):
        if key[0] in unreachable:
            continue
        try:
            known[key] = market_data.symbol_exists(Market(key[0]), key[1], interval, now)
        except ExchangeError as exc:
            log.warning("cannot check symbol %s %s yet: %s", key[0], key[1], exc)
            unreachable[key[0]] = exc


def _decide(session: Session, row: sa.Row[Any], result: ValidSignal | Rejection, settings: RuntimeSettings,
            open_keys: list[tuple[str, str]], known: dict[tuple[str, str], bool], now: datetime) -> int | None:
    """1 when the signal was decided here, 0 when another worker got there first, None to retry later."""
    ref = f"signal {row.source}/{row.signal_id}"
    if isinstance(result, Rejection):
        status, reason, signal = SignalStatus.REJECTED, result.reason, None
    else:
        signal = result
        status, reason = SignalStatus.REJECTED, None
        listed = known.get((signal.market.value, signal.symbol))
        if settings.entry_mode != EntryMode.MARKET.value and signal.entry is None:
            reason = f"entry mode {settings.entry_mode} needs an entry price and the signal has none"
        elif listed is None:
            return None  # the exchange could not say yet
        elif not listed:
            reason = f"unknown symbol {signal.symbol} on {signal.market.value}"
        elif (skip := _skip_reason(signal, settings, open_keys)) is not None:
            status, reason = SignalStatus.SKIPPED, skip
        else:
            status = SignalStatus.ACCEPTED
    if not _claim(session, row, status, reason, now, signal):
        return 0
    if status is SignalStatus.ACCEPTED:
        assert signal is not None
        trade = _new_trade(row, signal, settings, now)
        session.add(trade)
        session.flush()
        open_keys.append((trade.symbol, trade.side))
        events.record(session, kind="trade.opened" if trade.status == TradeStatus.OPEN else "trade.pending", at=now,
                      signal_pk=row.id, trade_id=trade.id,
                      message=f"{ref}: {trade.side} {trade.symbol} {trade.entry_mode} entry, ${trade.stake_usd}")
    else:
        events.record(session, kind=f"signal.{status.value.lower()}", at=now, signal_pk=row.id,
                      message=f"{ref} {status.value.lower()}: {reason}", data={"reason": reason})
    return 1
