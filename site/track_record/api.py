"""The site's HTTP routes beside the Streamlit app (served by site/server.py).

`GET /api/v1/trades.csv` (and `/api/v1/signals.csv`, the signal log as `signalproof signals export`
writes it) streams the trade history in the export schema of `signalproof trades
export`, filtered like the Trades page. It is written chunk by chunk from a read-only
connection as the visitor reads it, so memory stays flat whatever the number of trades; a
bounded number of downloads run at once (each holds a database connection), the others are
asked to retry. Bad parameters get a 400 with a JSON `{"error": …}`, and no failure shows a
traceback: the visitor gets a 500 with a JSON error, the details go to the log.
"""

import csv
import io
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared.models import Market, Side, TradeStatus
from shared.trades import SIGNAL_COLUMNS, TRADE_COLUMNS, OpenFunding, export_signals, trade_export_row, write_csv
from track_record import deployment
from track_record.record import HistoryFilter, filtered_trades
from track_record.signal_log import ORIGINS, STATUSES, SignalFilter

log = logging.getLogger("signalproof.site.api")

TRADES_CSV = "/api/v1/trades.csv"
SIGNALS_CSV = "/api/v1/signals.csv"
# Rows read from the database at a time and written per piece sent to the visitor. Small on
# purpose: memory per download is about this many rows (measured: 4 parallel downloads of 200k
# trades added 240 MiB with batches of 5000, 44 MiB with 1000).
ROWS_PER_CHUNK = 500
MAX_DOWNLOADS = 4  # at once; each holds a database connection while it streams
MAX_VALUES = 50  # per repeated parameter
MAX_SYMBOL_CHARS = 30
MAX_SOURCE_CHARS = 200
HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
_downloads = threading.BoundedSemaphore(MAX_DOWNLOADS)


class BadRequest(ValueError):
    """A query parameter the route cannot take; its message is shown to the caller."""


def _choices(values: list[str], name: str, allowed: set[str]) -> tuple[str, ...]:
    for value in values:
        if value not in allowed:
            raise BadRequest(f"{name}: {value[:40]!r} is not one of {', '.join(sorted(allowed))}")
    return tuple(values)


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:  # fromisoformat also takes "20240101" and week dates
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a date YYYY-MM-DD, got {value[:40]!r}") from None


def history_filter(params: list[tuple[str, str]]) -> HistoryFilter:
    """The Trades page's filters from query parameters (`symbol`, `side`, `market`, `status` may
    repeat; `since`/`until` are UTC dates, both inclusive; `live_only` is true or false)."""
    values: dict[str, list[str]] = {}
    for key, value in params:
        values.setdefault(key, []).append(value)
    unknown = set(values) - {"symbol", "side", "market", "status", "since", "until", "live_only"}
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0][:40]!r}")
    for key, given in values.items():
        if len(given) > MAX_VALUES:
            raise BadRequest(f"{key}: at most {MAX_VALUES} values")
        if key in ("since", "until", "live_only") and len(given) > 1:
            raise BadRequest(f"{key}: give it once")
    symbols = values.get("symbol", [])
    for symbol in symbols:
        if not symbol or len(symbol) > MAX_SYMBOL_CHARS or not symbol.isascii() or not symbol.isalnum():
            raise BadRequest(f"symbol: {symbol[:40]!r} is not a symbol (letters and digits, e.g. BTCUSDT)")
    since = _day(values.get("since", [None])[0], "since")
    until = _day(values.get("until", [None])[0], "until")
    if since and until and until < since:
        raise BadRequest("until: before since")
    live = values.get("live_only", ["false"])[0]
    if live not in ("true", "false"):
        raise BadRequest("live_only: expected true or false")
    return HistoryFilter(
        symbols=tuple(symbols),
        sides=_choices(values.get("side", []), "side", {s.value for s in Side}),
        markets=_choices(values.get("market", []), "market", {m.value for m in Market}),
        statuses=_choices(values.get("status", []), "status", {s.value for s in TradeStatus}),
        since=datetime.combine(since, time(0), timezone.utc) if since else None,
        until=datetime.combine(until, time(0), timezone.utc) + timedelta(days=1) if until else None,
        live_only=live == "true",
    )


def download_url(flt: HistoryFilter) -> str:
    """The route's address with these filters: what the Trades page links to."""
    params = [("symbol", s) for s in flt.symbols] + [("side", s) for s in flt.sides]
    params += [("market", m) for m in flt.markets] + [("status", s) for s in flt.statuses]
    if flt.since is not None:
        params.append(("since", flt.since.date().isoformat()))
    if flt.until is not None:
        params.append(("until", (flt.until - timedelta(days=1)).date().isoformat()))
    if flt.live_only:
        params.append(("live_only", "true"))
    return TRADES_CSV + (f"?{urlencode(params)}" if params else "")


def _grouped(params: list[tuple[str, str]], allowed: set[str], once: set[str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in params:
        values.setdefault(key, []).append(value)
    unknown = set(values) - allowed
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0][:40]!r}")
    for key, given in values.items():
        if len(given) > MAX_VALUES:
            raise BadRequest(f"{key}: at most {MAX_VALUES} values")
        if key in once and len(given) > 1:
            raise BadRequest(f"{key}: give it once")
    return values


def signal_filter(params: list[tuple[str, str]]) -> SignalFilter:
    """The signal log's filters from query parameters (`status`, `symbol`, `source`, `origin` may
    repeat; `since`/`until` are UTC dates of the signal's time, both inclusive)."""
    values = _grouped(params, {"status", "symbol", "source", "origin", "since", "until"}, {"since", "until"})
    for symbol in values.get("symbol", []):
        if not symbol or len(symbol) > MAX_SYMBOL_CHARS:
            raise BadRequest(f"symbol: {symbol[:40]!r} is too long")
    for source in values.get("source", []):
        if len(source) > MAX_SOURCE_CHARS:
            raise BadRequest(f"source: at most {MAX_SOURCE_CHARS} characters")
    since = _day(values.get("since", [None])[0], "since")
    until = _day(values.get("until", [None])[0], "until")
    if since and until and until < since:
        raise BadRequest("until: before since")
    return SignalFilter(
        statuses=_choices(values.get("status", []), "status", set(STATUSES)),
        symbols=tuple(values.get("symbol", [])), sources=tuple(values.get("source", [])),
        origins=_choices(values.get("origin", []), "origin", set(ORIGINS)), first_day=since, last_day=until)


def signals_download_url(flt: SignalFilter) -> str:
    """The signal log's download with these filters (no filter: the whole `signals export`)."""
    params = [("status", s) for s in flt.statuses] + [("symbol", s) for s in flt.symbols]
    params += [("source", s) for s in flt.sources] + [("origin", o) for o in flt.origins]
    if flt.first_day is not None:
        params.append(("since", flt.first_day.isoformat()))
    if flt.last_day is not None:
        params.append(("until", flt.last_day.isoformat()))
    return SIGNALS_CSV + (f"?{urlencode(params)}" if params else "")


@lru_cache(maxsize=4)
def read_only_engine(url: str) -> Engine:
    """Read-only, like every public page's: this route can never write."""
    from shared.database import make_engine

    return make_engine(url, read_only=True)


def csv_chunks(engine: Engine, flt: HistoryFilter, rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[str]:
    """The export CSV (header first, as `trades export` writes it) in pieces of `rows_per_chunk`
    rows, read from the database (`yield_per`) one piece at a time."""
    buffer = io.StringIO()
    write_csv(buffer, TRADE_COLUMNS, [])
    writer = csv.writer(buffer, lineterminator="\n")  # the dialect of `write_csv`
    with Session(engine) as session:
        funding = OpenFunding(session=session, now=datetime.now(timezone.utc))
        for n, trade in enumerate(filtered_trades(flt, chunk=rows_per_chunk, session=session), start=1):
            writer.writerow(trade_export_row(trade, funding))
            if n % rows_per_chunk == 0:
                yield _drain(buffer)
    yield _drain(buffer)


def signal_csv_chunks(engine: Engine, flt: SignalFilter, rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[str]:
    """`signalproof signals export` for these filters, in pieces (as `csv_chunks`)."""
    buffer = io.StringIO()
    write_csv(buffer, SIGNAL_COLUMNS, [])
    writer = csv.writer(buffer, lineterminator="\n")
    with Session(engine) as session:
        rows = export_signals(session=session, chunk=rows_per_chunk, where=flt.conditions())
        for n, row in enumerate(rows, start=1):
            writer.writerow(row)
            if n % rows_per_chunk == 0:
                yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=HEADERS)


async def trades_csv(request: Request) -> Response:
    return await _download(request, "trades", history_filter, csv_chunks, "the trade history")


async def signals_csv(request: Request) -> Response:
    return await _download(request, "signals", signal_filter, signal_csv_chunks, "the signal log")


async def _download(request: Request, name: str, read_filter: Any, chunker: Any, what: str) -> Response:
    try:
        flt = read_filter(list(request.query_params.multi_items()))
    except BadRequest as bad:
        return _error(400, str(bad))
    except Exception as exc:  # whatever a query string does, never a traceback
        log.error("%s.csv: unreadable parameters: %s", name, type(exc).__name__)
        return _error(400, "unreadable query parameters")
    if not _downloads.acquire(blocking=False):
        return _error(503, "too many downloads at once: try again in a minute")
    try:
        chunks = chunker(read_only_engine(deployment.config().site_read_url), flt)
        # The first piece is read here, so a database that cannot be read is a clean 500, not a
        # response that breaks off after its headers.
        first = await run_in_threadpool(next, chunks)
    except Exception as exc:  # one line in the log (no traceback there either), nothing for the visitor
        _downloads.release()
        log.error("%s.csv: the database cannot be read: %s: %s", name, type(exc).__name__, str(exc).splitlines()[0])
        return _error(500, f"{what} cannot be read right now")
    return StreamingResponse(_released(first, chunks), media_type="text/csv; charset=utf-8", headers={
        **HEADERS, "Content-Disposition": f'attachment; filename="signalproof-{name}.csv"'})


async def _released(first: str, chunks: Iterator[str]) -> AsyncIterator[str]:
    """The pieces, then the download's slot is given back (also when the visitor goes away)."""
    try:
        yield first
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
    except Exception as exc:
        log.error("trades.csv broke off: %s: %s", type(exc).__name__, str(exc).splitlines()[0])  # the headers are sent: the visitor sees a cut file
    finally:
        try:
            chunks.close()  # not awaited: a cancelled download must still give its connection back
        finally:
            _downloads.release()

