"""Signal intake: store incoming rows (import file, HTTP feed), then turn NEW signals into trades.

Every way in goes through `shared.signals.validate`. Nothing is dropped silently: an invalid
row is stored as REJECTED with its reason, a filtered one as SKIPPED, and a repeated
(source, id) is counted as a duplicate while the first version stands.
"""

import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlmodel import Session

from shared import events, queries, settings as runtime
from shared.admission import OpenKey, Verdict, admit
from shared.columns import UtcDateTime
from shared.database import copy_rows, insert_rows, transaction
from shared.exits import TradeTerms
from shared.models import Market, RuntimeSettings, Signal, SignalStatus
from shared.signal_files import RawRow
from shared.signals import Rejection, ValidSignal, ledger_data, row_to_raw, shown, to_row_values, validate
from shared.trade_rows import new_trade, record_opened
from worker.market_data import ExchangeError, MarketData

log = logging.getLogger(__name__)
INSERT_BATCH = 500  # prepared rows whose columns are decided together (see `_write_new`)
# The columns a bot fills when it inserts a signal itself (docs/signals.md, way 3).
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


_RAW_JSON = json.JSONEncoder(default=str)  # json.dumps(fields, default=str), without a new encoder per row


def _row_values(row: RawRow, *, default_source: str,
                received_at: datetime) -> tuple[dict[str, Any], ValidSignal | None, str | None]:
    """The `signal` row to insert for one raw record, the valid signal (if it is one) and the
    rejection reason (if it is not)."""
    raw_json = _storable(row.text) if row.fields is None else _RAW_JSON.encode(row.fields)
    if row.fields is None:
        reason = row.error or "unreadable row"
        return {"source": default_source, "signal_id": _unidentified_id(row.text), "status": SignalStatus.REJECTED,
                "reason": reason, "raw": raw_json}, None, reason
    result = validate(row.fields, received_at=received_at, default_source=default_source)
    if isinstance(result, Rejection):
        # Keep what the row said (as text, cut short) so the record shows it, not blanks.
        said = {key: _storable(str(row.fields[key]))[:40] for key in ("symbol", "side", "market")
                if row.fields.get(key) is not None}
        return {**said, "source": result.source or default_source,
                "signal_id": result.signal_id or _unidentified_id(row.text),
                "status": SignalStatus.REJECTED, "reason": result.reason, "raw": raw_json}, None, result.reason
    return {**to_row_values(result), "status": SignalStatus.NEW, "raw": raw_json}, result, None


RAW_IN_LEDGER_CHARS = 500  # a rejected row's text in its ledger entry: enough to see what was sent


def received(signal: ValidSignal, signal_pk: int, *, received_at: datetime, actor: str) -> events.Change:
    """The `signal.received` entry: the whole normalised signal, before any candle is looked at."""
    return events.Change("signal.received", f"signal {signal.source}/{signal.signal_id} received", received_at,
                         actor, signal_pk=signal_pk, data=ledger_data(signal, received_at=received_at))


def rejected(source: str, signal_id: str, signal_pk: int, reason: str, raw: str | None, *, received_at: datetime,
             at: datetime, actor: str) -> events.Change:
    return events.Change("signal.rejected", f"signal {source}/{signal_id} rejected: {reason}", at, actor,
                         signal_pk=signal_pk,
                         data={"source": source, "signal_id": signal_id, "status": SignalStatus.REJECTED,
                               "reason": reason, "received_at": received_at,
                               "raw": (raw or "")[:RAW_IN_LEDGER_CHARS]})


def store_rows(rows: Sequence[RawRow], *, session: Session, default_source: str, received_at: datetime,
               actor: str) -> IntakeReport:
    """Validate and insert rows; (source, id) already present → duplicate, first version stands.

    Each new row gets its ledger entry here, in this transaction: `signal.received` with the
    whole normalised signal (its seq kept in `signal.received_seq`), or `signal.rejected`.

    The table is locked against other writers first (`_lock_and_find`), so which rows are new
    and their ids are known before anything is written: each row is written once, complete
    with its entry's seq, in one bulk statement (`_write_new`)."""
    report = IntakeReport()
    prepared: dict[tuple[str, str], tuple[RawRow, dict[str, Any], ValidSignal | None, str | None]] = {}
    for row in rows:
        values, signal, reason = _row_values(row, default_source=default_source, received_at=received_at)
        key = (values["source"], values["signal_id"])
        if key in prepared:
            report.duplicate += 1  # repeated inside the same file: the first line stands
            continue
        prepared[key] = (row, {**values, "received_at": received_at, "processed_at": received_at if reason else None},
                         signal, reason)
    stored = _lock_and_find(list(prepared), session=session)
    ids = iter(_new_ids(len(prepared) - len(stored), session=session))
    new: list[tuple[int, events.Change, dict[str, Any]]] = []  # (position among the prepared rows, …)
    for position, (key, (row, values, signal, reason)) in enumerate(prepared.items()):
        if key in stored:
            report.duplicate += 1
            continue
        pk = next(ids)
        if signal is not None:
            report.accepted += 1
            change = received(signal, pk, received_at=received_at, actor=actor)
        else:
            assert reason is not None
            report.rejected += 1
            report.rejections.append((row.line, reason))
            change = rejected(key[0], key[1], pk, reason, values.get("raw"), received_at=received_at, at=received_at,
                              actor=actor)
        new.append((position, change, {**values, "id": pk}))
    if not new:
        return report
    ledger = events.Appender(session=session)

    def with_entries() -> Iterator[tuple[int, dict[str, Any]]]:
        # Each row's entry is chained as the row is written: on PostgreSQL while the rows
        # before it are being stored by the server.
        for position, change, values in new:
            entry = ledger.add(change)
            yield position, {**values, "received_seq": entry.seq if change.kind == "signal.received" else None}

    _write_new(with_entries(), [values for _, values, _, _ in prepared.values()], session=session)
    ledger.write()
    return report


def _lock_and_find(keys: list[tuple[str, str]], *, session: Session) -> set[tuple[str, str]]:
    """Of these (source, id) keys, those already stored, with the signal table locked against
    other writers until commit, so the answer stays true while the new rows are written.

    SQLite: every write transaction holds the database's write lock from its start (BEGIN
    IMMEDIATE). PostgreSQL: our writers are serialised by the advisory lock, but a bot may
    insert rows directly; EXCLUSIVE mode makes such an insert wait for our commit (readers,
    the site, never wait)."""
    if not keys:
        return set()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE signal IN EXCLUSIVE MODE")
        found = session.execute(sa.text(
            "SELECT signal.source, signal.signal_id FROM unnest(CAST(:sources AS text[]), CAST(:ids AS text[]))"
            " AS given(source, signal_id) JOIN signal ON signal.source = given.source"
            " AND signal.signal_id = given.signal_id"),
            {"sources": [source for source, _ in keys], "ids": [signal_id for _, signal_id in keys]})
        return {(source, signal_id) for source, signal_id in found}
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(keys), SQLITE_KEYS_PER_QUERY):
        part = keys[start:start + SQLITE_KEYS_PER_QUERY]
        found = connection.exec_driver_sql(
            f"SELECT signal.source, signal.signal_id FROM (VALUES {', '.join(['(?, ?)'] * len(part))}) AS given"
            " JOIN signal ON signal.source = given.column1 AND signal.signal_id = given.column2",
            tuple(item for key in part for item in key))
        stored.update((source, signal_id) for source, signal_id in found)
    return stored


SQLITE_KEYS_PER_QUERY = 5000  # two parameters each, well under SQLite's limit of 32,766


def _new_ids(count: int, *, session: Session) -> list[int]:
    """Ids for `count` new signal rows, in order: those the database would give them itself
    (PostgreSQL: the next ones of the column's sequence; SQLite: one above the highest)."""
    if count == 0:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One block of the sequence: under our lock (`_lock_and_find`) no other insert into
        # `signal` can draw from it meanwhile. Cheaper than `count` nextval calls.
        last = connection.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('signal', 'id'),"
            " nextval(pg_get_serial_sequence('signal', 'id')) + %(more)s)", {"more": count - 1}).scalar_one()
    else:
        last = (connection.exec_driver_sql("SELECT max(id) FROM signal").scalar() or 0) + count
    return list(range(last - count + 1, last + 1))


def _write_new(new_rows: Iterable[tuple[int, dict[str, Any]]], prepared: list[dict[str, Any]], *,
               session: Session) -> None:
    """Write the new rows (ids and seqs given) in bulk: COPY on PostgreSQL, one prepared INSERT
    executed for all on SQLite.

    Each row is written with the columns any row of its group of INSERT_BATCH prepared rows
    has (a column none of them has keeps its server default), as rows always were: so a
    rejected row gets exactly the values it got before (`market` NULL beside valid rows,
    'SPOT' in a group of rejected rows only)."""
    table = Signal.__table__
    columns = [("id", *sorted({key for row in prepared[start:start + INSERT_BATCH] for key in row}), "received_seq")
               for start in range(0, len(prepared), INSERT_BATCH)]
    write = copy_rows if session.get_bind().dialect.name == "postgresql" else insert_rows
    for names, group in itertools.groupby(new_rows, key=lambda item: columns[item[0] // INSERT_BATCH]):
        write(table, names, ([values.get(name) for name in names] for _, values in group), session=session)  # type: ignore[arg-type]


# --- NEW signals → trades --------------------------------------------------------------

VERDICT_STATUS = {Verdict.ACCEPT: SignalStatus.ACCEPTED, Verdict.SKIP: SignalStatus.SKIPPED,
                  Verdict.REJECT: SignalStatus.REJECTED}


def _claim(row: sa.Row[Any], status: SignalStatus, reason: str | None, now: datetime,
           normalised: ValidSignal | None, *, session: Session) -> bool:
    """Move a signal out of NEW, guarded so that two workers never both act on it."""
    values: dict[str, Any] = {"status": status.value, "reason": reason, "processed_at": now}
    if row.raw is None:  # a row a bot inserted by hand: keep what it wrote before rewriting it
        values["raw"] = json.dumps({name: getattr(row, name) for name in BOT_COLUMNS}, default=str)
        values.update(_unreadable(row, session.get_bind().dialect, now))
    if normalised is not None:  # rows a bot inserted by hand get their normalised values
        values.update({k: v for k, v in to_row_values(normalised).items() if k not in ("source", "signal_id")})
    # Guarded by the status as read (a bot may have written 'new'): the row is still untouched.
    result = session.execute(sa.update(Signal).where(Signal.id == row.id, Signal.status == row.status)
                             .values(**values))
    return result.rowcount == 1


# Every spelling of NEW a bot may write by hand ('new', 'New', …): a plain IN list, so the
# status index still serves the query that runs every few seconds.
NEW_SPELLINGS = tuple(sorted({"".join(letters) for letters in itertools.product(*zip("NEW", "new"))}))


def _new_rows(after_id: int, batch: int, *, session: Session) -> list[sa.Row[Any]]:
    """NEW signals with the bot's columns as stored, not through their column types: a value the
    type cannot load ('garbage' in `time` on SQLite, 'infinity' on PostgreSQL) must end as a
    REJECTED row, not as an error on every tick."""
    table = Signal.__table__
    postgres = session.get_bind().dialect.name == "postgresql"
    as_stored = [_as_text(table.c[name], postgres).label(name) for name in (*BOT_COLUMNS, "received_at")]
    return list(session.execute(
        sa.select(table.c.id, table.c.source, table.c.signal_id, table.c.raw, table.c.status, table.c.received_seq,
                  *as_stored)
        .where(table.c.status.in_(NEW_SPELLINGS), table.c.id > after_id).order_by(table.c.id).limit(batch)))


def _as_text(column: sa.Column[Any], postgres: bool) -> sa.ColumnElement[Any]:
    """A column read past its type. SQLite hands back what is stored. PostgreSQL's timestamps
    may be ±infinity, which no Python datetime holds: finite ones come as ISO 8601 UTC text
    (whatever the server's DateStyle), the others as 'infinity' / '-infinity'."""
    if not (postgres and isinstance(column.type, UtcDateTime)):
        return sa.type_coerce(column, sa.String())
    iso = sa.func.to_char(sa.func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    return sa.case((sa.func.isfinite(column), iso), else_=sa.cast(column, sa.Text))


def _received_at(stored: object, now: datetime) -> datetime | None:
    """When a row arrived (its server default; text as read by `_new_rows`); None if unreadable."""
    if isinstance(stored, str):
        try:
            stored = datetime.fromisoformat(stored)
        except ValueError:
            return None
    if not isinstance(stored, datetime):
        return None
    return stored if stored.tzinfo is not None else stored.replace(tzinfo=timezone.utc)


def _checked(row: sa.Row[Any], now: datetime) -> ValidSignal | Rejection:
    """Validate a stored NEW row; one whose own arrival time is unreadable is rejected too."""
    received_at = _received_at(row.received_at, now)
    if received_at is None:
        return Rejection(source=row.source, signal_id=row.signal_id,
                         reason=f"received_at is not a usable time (got {shown(row.received_at)})")
    return validate(row_to_raw(row), received_at=received_at, default_source=row.source)


def _unreadable(row: sa.Row[Any], dialect: Dialect, now: datetime) -> dict[str, Any]:
    """Stored values their own column type cannot load back, cleared so the row stays readable
    (by the export and the site); the bot's values are kept in `raw`. SQLite takes any value;
    PostgreSQL takes ±infinity in a timestamp."""
    cleared: dict[str, Any] = {}
    for name in (*BOT_COLUMNS, "received_at"):
        value = getattr(row, name)
        if dialect.name != "sqlite":
            unreadable = isinstance(value, str) and value.lstrip("+-").lower() == "infinity"
        else:
            load = Signal.__table__.c[name].type.dialect_impl(dialect).result_processor(dialect, None)
            try:
                unreadable = False
                if load is not None:
                    load(value)
            except Exception:  # noqa: BLE001 - whatever the type's own loader raises, it cannot read this
                unreadable = True
        if unreadable:
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
            interval = runtime.load(session=session).candle_interval
            rows = _new_rows(last_id, batch, session=session)
        if not rows:
            if errors is not None:
                errors.extend(unreachable.values())
            return decided, left
        last_id = rows[-1].id or last_id
        checked = [(row, _checked(row, now)) for row in rows]
        checked.sort(key=lambda pair: (pair[1].time, pair[0].id) if isinstance(pair[1], ValidSignal) else (now, pair[0].id))
        _check_symbols([s for _, s in checked if isinstance(s, ValidSignal)], market_data, interval, now, known_symbols,
                       unreachable)
        with transaction(engine) as session:
            settings = runtime.load(session=session)
            open_keys: list[OpenKey] = queries.open_keys(session=session)
            for row, result in checked:
                outcome = _decide(row, result, settings, open_keys, known_symbols, now, session=session)
                if outcome is None:
                    left += 1
                else:
                    decided += outcome


def _check_symbols(signals: Iterable[ValidSignal], market_data: MarketData, interval: str, now: datetime,
                   known: dict[tuple[str, str], bool], unreachable: dict[str, ExchangeError]) -> None:
    """Ask the exchange about symbols not seen before. Once a market's API has failed (after the
    client's own retries), its other symbols wait for the next tick instead of each retrying
    again: an outage must not stretch one tick over many minutes."""
    for key in sorted({(str(s.market), s.symbol) for s in signals} - set(known)):
        if key[0] in unreachable:
            continue
        try:
            known[key] = market_data.symbol_exists(Market(key[0]), key[1], interval, now)
        except ExchangeError as exc:
            log.warning("cannot check symbol %s %s yet: %s", key[0], key[1], exc)
            unreachable[key[0]] = exc


def _decide(row: sa.Row[Any], result: ValidSignal | Rejection, settings: RuntimeSettings,
            open_keys: list[OpenKey], known: dict[tuple[str, str], bool], now: datetime, *, session: Session) -> int | None:
    """1 when the signal was decided here, 0 when another worker got there first, None to retry later.

    What becomes of the signal is `shared.admission.admit`'s decision; this only claims the row
    and writes it down."""
    ref = f"signal {row.source}/{row.signal_id}"
    signal: ValidSignal | None = None
    terms: TradeTerms | None = None
    if isinstance(result, Rejection):
        status, reason = SignalStatus.REJECTED, result.reason
    else:
        signal = result
        decision = admit(signal, settings, open_trades=open_keys, listed=known.get((str(signal.market), signal.symbol)))
        if decision.verdict is Verdict.WAIT:
            return None  # the exchange could not say yet
        status = VERDICT_STATUS[decision.verdict]
        reason, terms = decision.reason, decision.terms
    if not _claim(row, status, reason, now, signal, session=session):
        return 0
    received_at = _received_at(row.received_at, now) or now
    if row.received_seq is None and signal is not None:
        # A row a bot inserted by hand: its `signal.received` is written now, at intake, before
        # any candle is looked at for it (imported and polled rows got theirs when stored).
        entry = events.record_many([received(signal, row.id, received_at=received_at, actor="worker")], session=session)[0]
        session.execute(sa.update(Signal).where(Signal.id == row.id).values(received_seq=entry.seq))
    if status is SignalStatus.ACCEPTED:
        assert signal is not None and terms is not None
        trade = new_trade(row.id, signal, terms, candle_interval=settings.candle_interval, now=now,
                          split_name=settings.tp_split)
        record_opened(trade, now=now, session=session)
        open_keys.append((trade.symbol, trade.side))
    elif status is SignalStatus.REJECTED:
        raw = row.raw if row.raw is not None else json.dumps({n: getattr(row, n) for n in BOT_COLUMNS}, default=str)
        events.record_many([rejected(row.source, row.signal_id, row.id, reason or "", raw,
                                              received_at=received_at, at=now, actor="worker")], session=session)
    else:
        events.record(kind="signal.skipped", at=now, signal_pk=row.id, message=f"{ref} skipped: {reason}",
                      data={"source": row.source, "signal_id": row.signal_id, "status": status, "reason": reason}, session=session)
    return 1
