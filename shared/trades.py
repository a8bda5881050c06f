"""The export formats of trades and signals (CLI and site share them).

Functions take a keyword-only `session`; the caller owns the transaction.
"""

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import IO, Any

import sqlalchemy as sa
from sqlmodel import Session, select

from shared.columns import UtcDateTime
from shared.ledger import decimal_text
from shared.models import Signal, Trade, TradeFill

TRADE_COLUMNS = (
    "trade_id", "source", "signal_id", "origin", "symbol", "market", "side", "leverage", "stake_usd", "status",
    "reason", "signal_time", "entry_time", "entry_price", "take_profit", "stop_loss", "exit_time", "exit_price",
    "fees_usd", "pnl_usd", "pnl_pct", "ambiguous", "targets_hit", "funding_usd",
)
FILL_EXPORT_COLUMNS = ("trade_id", "time", "kind", "price", "share", "fees_usd", "pnl_usd")
SIGNAL_COLUMNS = ("source", "id", "time", "received_at", "status", "reason", "origin", "symbol", "side", "market")
# The columns that hold text (what a bot, a feed or a file wrote, or our own enum values). Decided
# per column, never from the value: a price of -12.5 in `pnl_usd` is a number and stays as it is.
TRADE_TEXT_COLUMNS = frozenset({"source", "signal_id", "origin", "symbol", "market", "side", "status", "reason"})
SIGNAL_TEXT_COLUMNS = frozenset({"source", "id", "status", "reason", "origin", "symbol", "side", "market"})
# What makes a spreadsheet read a cell as a formula (OWASP "CSV injection"), with the full-width
# forms some spreadsheets fold into them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def write_csv(handle: IO[str], header: Sequence[str], rows: Iterable[list[str]]) -> None:
    """The export CSV format, one place for the CLI and the site's download."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def iso_utc(moment: datetime | None) -> str:
    """ISO 8601 UTC with `Z`: seconds, or milliseconds/microseconds only when present."""
    if moment is None:
        return ""
    moment = moment.astimezone(timezone.utc)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def plain_decimal(value: Decimal | None) -> str:
    """A decimal as plain text without exponent or trailing zeros ("0.00005123", "100")."""
    return "" if value is None else decimal_text(value)  # every digit the value has, as the ledger


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    return str(value)


def text_cell(value: Any) -> str:
    """A text cell that a spreadsheet shows as text: one starting like a formula (after any
    leading spaces, which some spreadsheets trim) gets a leading `'` (OWASP)."""
    text = _cell(value)
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text


def _row(values: dict[str, Any], columns: Sequence[str], text_columns: frozenset[str]) -> list[str]:
    return [text_cell(values[c]) if c in text_columns else _cell(values[c]) for c in columns]


def trade_export_row(trade: Trade, funding: "OpenFunding | None" = None) -> list[str]:
    values = {"trade_id": trade.id, **{c: getattr(trade, c) for c in TRADE_COLUMNS if c != "trade_id"}}
    if funding is not None:
        values["funding_usd"] = funding.so_far(trade)
    return _row(values, TRADE_COLUMNS, TRADE_TEXT_COLUMNS)


class OpenFunding:
    """An open futures trade's `funding_usd`: the funding paid or received so far, from the stored
    history (a mark to market, like its unrealized P/L; a closed trade's is the one it closed with)."""

    def __init__(self, *, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        self.events: dict[str, list[Any]] = {}

    def so_far(self, trade: Trade) -> Decimal:
        if trade.status != "OPEN" or not trade.futures_funding or trade.entry_time is None:
            return trade.funding_usd
        from shared import funding, funding_store
        from shared.exits import funding_payments
        from shared.trade_rows import fills_of, state_of, terms_of

        if trade.symbol not in self.events:  # the symbol's whole stored history, once per export
            self.events[trade.symbol] = funding_store.events(trade.symbol, datetime.min.replace(tzinfo=timezone.utc),
                                                             self.now, session=self.session)
        fills = fills_of([trade.id], session=self.session).get(trade.id, ()) if trade.targets_hit else ()
        paid = funding_payments(terms_of(trade), state_of(trade, fills), self.events[trade.symbol], self.now)
        return funding.total(paid)


def export_trades(*, session: Session, chunk: int = 5000, now: datetime | None = None) -> Iterator[list[str]]:
    """Every trade in the export schema, by id, streamed (fine for a million rows)."""
    funding = OpenFunding(session=session, now=now or datetime.now(timezone.utc))
    statement = select(Trade).order_by(Trade.id).execution_options(yield_per=chunk)
    for trade in session.exec(statement):
        yield trade_export_row(trade, funding)


def export_fills(*, session: Session, chunk: int = 5000) -> Iterator[list[str]]:
    """Every fill (each exit of a part of a position), by trade and in order, streamed."""
    table = TradeFill.__table__  # type: ignore[attr-defined]
    statement = sa.select(*(table.c[c] for c in FILL_EXPORT_COLUMNS)).order_by(table.c.trade_id, table.c.id)
    for row in session.connection().execute(statement.execution_options(yield_per=chunk)):
        yield [_cell(value) for value in row]


def export_signals(*, session: Session, chunk: int = 5000,
                   where: Sequence[sa.ColumnElement[bool]] = ()) -> Iterator[list[str]]:
    """Every signal (or those matching `where`: the site's filtered download) and what became of it, by id, streamed. A time a bot wrote by hand that no
    datetime can hold (PostgreSQL's 'infinity', before the worker rejects the row) is exported
    empty rather than failing the whole export (SQLite's unreadable values already read as empty)."""
    table = Signal.__table__  # type: ignore[attr-defined]
    postgres = session.get_bind().dialect.name == "postgresql"
    columns = []
    for name in SIGNAL_COLUMNS:
        column = table.c["signal_id" if name == "id" else name]
        if postgres and isinstance(column.type, UtcDateTime):
            column = sa.type_coerce(sa.case((sa.func.isfinite(column), column), else_=sa.null()), column.type)
        columns.append(column.label(name))
    statement = sa.select(*columns).where(*where).order_by(table.c.id).execution_options(yield_per=chunk)
    for row in session.connection().execute(statement):
        yield _row(dict(row._mapping), SIGNAL_COLUMNS, SIGNAL_TEXT_COLUMNS)
