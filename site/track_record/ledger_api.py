"""The public read-only API beside the site (the README's "Public API"), besides
`/api/v1/trades.csv` (track_record/api.py):

    GET /api/v1/head      {"seq", "hash", "time", "verified", "verified_through", "problem"}
    GET /api/v1/ledger    ?after=SEQ&limit=N: entries with seq > SEQ as JSON lines, N ≤ 10,000
    GET /api/v1/summary   the `signalproof stats --json` object
    GET /api/v1/open      open and pending trades, marked to the latest stored price
    GET /badge.svg        total P/L, win rate, closed trades and the ledger state

All read through the read-only engine, answer `Access-Control-Allow-Origin: *`, and carry an
`ETag` keyed on the data version (the head seq, plus the settings version, the prices or the
self-check's state where the answer depends on them): `If-None-Match` gets a 304, and
`Cache-Control: public, max-age=5` lets a proxy absorb bursts. Bad parameters get a 400 with a
JSON `{"error": …}`; any other failure a 500 without details (the log has one line).
"""

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.ledger import GENESIS_PREV, format_time
from shared.queries import headline_stats
from track_record import deployment, record, self_check
from track_record.api import BadRequest, read_only_engine

log = logging.getLogger("signalproof.site.api")

HEAD = "/api/v1/head"
LEDGER = "/api/v1/ledger"
SUMMARY = "/api/v1/summary"
OPEN = "/api/v1/open"
BADGE = "/badge.svg"
CHECKPOINTS = "/api/v1/checkpoints"

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
MAX_SEQ_DIGITS = 15  # far beyond any ledger, and below 2**53: no huge numbers reach the database
CACHE = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=5"}
_DIGITS = re.compile(r"[0-9]+")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status,
                        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})


def ledger_page(params: list[tuple[str, str]]) -> tuple[int, int]:
    """(after, limit) from the query string: plain non-negative integers, each at most once."""
    values: dict[str, str] = {}
    for key, value in params:
        if key not in ("after", "limit"):
            raise BadRequest(f"unknown parameter {key[:40]!r} (use after and limit)")
        if key in values:
            raise BadRequest(f"{key}: give it once")
        values[key] = value

    def integer(name: str, default: int) -> int:
        text = values.get(name)
        if text is None:
            return default
        if not _DIGITS.fullmatch(text) or len(text) > MAX_SEQ_DIGITS:
            raise BadRequest(f"{name}: expected a whole number of at most {MAX_SEQ_DIGITS} digits, got {text[:40]!r}")
        return int(text)

    after, limit = integer("after", 0), integer("limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit: between 1 and {MAX_LIMIT:,}, got {limit}")
    return after, limit


def ledger_lines(engine: Engine, after: int, limit: int) -> bytes:
    """The entries' published bytes (`Entry.line()`), one per line, in seq order."""
    statement = (sa.select(*self_check.ENTRY_COLUMNS).where(self_check.ENTRY_COLUMNS[0] > after)
                 .order_by(self_check.ENTRY_COLUMNS[0]).limit(limit))
    with engine.connect() as connection:
        return b"".join(published_line(row) + b"\n" for row in connection.execute(statement))


class _NotSimple(Exception):
    pass


def _float(_: str) -> float:
    raise _NotSimple


def _int(text: str) -> int:
    if len(text) > 15:  # JCS numbers are doubles: a larger integer needs the reference implementation
        raise _NotSimple
    return int(text)


def published_line(row: "sa.Row[tuple[object, ...]]") -> bytes:
    """`Entry.line()` of a stored row, about four times faster for what the worker writes.

    The entry's canonical (RFC 8785) bytes are assembled around its data's canonical bytes. For
    ASCII text without escapes, floats or integers beyond 2**53, JCS is `json.dumps` with sorted
    keys and no spaces (shared.ledger.canonical's own fast path): anything else, e.g. a row edited
    by hand, takes the general path through `shared.ledger`, so the bytes are the same either way
    (tests/site/test_ledger_api.py compares them).
    """
    seq, at, kind, data, prev, hash_ = row
    time = format_time(at) if at is not None else ""
    text = data or "{}"
    if (isinstance(text, str) and text.isascii() and "\\u" not in text and kind.isascii() and prev.isascii()
            and hash_.isascii() and "\\" not in kind + prev + hash_ + time):
        try:
            parsed = json.loads(text, parse_float=_float, parse_int=_int, parse_constant=_float)
        except (_NotSimple, ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            body = json.dumps(parsed, separators=(",", ":"), sort_keys=True)
            return (f'{{"data":{body},"hash":{json.dumps(hash_)},"kind":{json.dumps(kind)},'
                    f'"prev":{json.dumps(prev)},"seq":{int(seq)},"time":"{time}"}}').encode()
    return self_check.row_entry(row).line()


def _etag(*parts: object) -> str:
    return '"' + "-".join(str(part) for part in parts).replace('"', "") + '"'


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    if not given:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in given.split(",")]
    return "*" in tags or etag in tags


def _answer(request: Request, etag: str, make: Callable[[], Response]) -> Response:
    if _not_modified(request, etag):
        return Response(status_code=304, headers={**CACHE, "ETag": etag})
    response = make()
    response.headers.update({**CACHE, "ETag": etag})
    return response


def _engine_now() -> Engine:
    return read_only_engine(deployment.config().site_read_url)


async def _guarded(name: str, work: Callable[[], Response]) -> Response:
    """Run a route's blocking work in a thread: a 500 without details when anything fails."""
    try:
        return await run_in_threadpool(work)
    except Exception as exc:
        log.error("%s: %s: %s", name, type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])
        return _error(500, "the ledger cannot be read right now")


def head_state() -> self_check.State:
    return self_check.for_url(deployment.config().site_read_url).state()


def head_json(state: self_check.State) -> dict[str, Any]:
    head = state.head
    return {"seq": head.seq if head else 0, "hash": head.hash if head else GENESIS_PREV, "time": head.time if head else None,
            "verified": state.verified, "verified_through": state.verified_through,
            "problem": str(state.problem) if state.problem else
            ("the site is still verifying its chain" if state.checking else None)}


def _state_tag(state: self_check.State) -> tuple[object, ...]:
    return (state.head.seq if state.head else 0, state.verified_through,
            state.problem.seq if state.problem else "ok", "c" if state.checking else "d")


async def head(request: Request) -> Response:
    def work() -> Response:
        state = head_state()
        return _answer(request, _etag("h", *_state_tag(state)), lambda: JSONResponse(head_json(state)))

    return await _guarded("head", work)


async def ledger(request: Request) -> Response:
    try:
        after, limit = ledger_page(list(request.query_params.multi_items()))
    except BadRequest as bad:
        return _error(400, str(bad))
    except Exception as exc:  # whatever a query string does, never a traceback
        log.error("ledger: unreadable parameters: %s", type(exc).__name__)
        return _error(400, "unreadable query parameters")

    def work() -> Response:
        engine = _engine_now()
        with engine.connect() as connection:
            top = self_check.read_head(connection)
        return _answer(request, _etag("l", top.seq if top else 0, top.hash[:16] if top else ""),
                       lambda: Response(ledger_lines(engine, after, limit), media_type="application/x-ndjson"))

    return await _guarded("ledger", work)


def _version(*, session: Session) -> tuple[int, str]:
    seq, settings_at = record.data_version(session=session)
    return seq, re.sub(r"[^0-9]", "", settings_at)


async def summary(request: Request) -> Response:
    def work() -> Response:
        with Session(_engine_now()) as session:
            tag = _etag("s", *_version(session=session))
            if _not_modified(request, tag):
                return _answer(request, tag, Response)
            stats = headline_stats(session=session).to_json_dict()
        return _answer(request, tag, lambda: JSONResponse(stats))

    return await _guarded("summary", work)


async def open_trades(request: Request) -> Response:
    def work() -> Response:
        with Session(_engine_now()) as session:
            tag = _etag("o", *_version(session=session), re.sub(r"[^0-9]", "", record.prices_version(session=session)))
            if _not_modified(request, tag):
                return _answer(request, tag, Response)
            trades = record.open_trades(session=session)
        return _answer(request, tag, lambda: JSONResponse(trades))

    return await _guarded("open", work)


# --- the badge -----------------------------------------------------------------------------

GREEN, ORANGE, RED, GREY = "#2e7d32", "#e65100", "#c62828", "#555"
BADGE_TITLE_CHARS = 40


def _text_width(text: str) -> int:
    """Roughly Verdana 11px: enough for a badge (shields.io measures; an estimate will do)."""
    return int(sum(4 if ch in " .,:;|!il1'" else 9 if ch.isupper() or ch in "mw%$" else 7 for ch in text)) + 10


def badge_svg(title: str, stats: dict[str, Any], state: self_check.State) -> str:
    """A shields-style badge: "<title> | +$12.34 · 56% win · 40 closed · ledger ✓"."""
    total, closed, win_rate = stats.get("total_pnl_usd") or 0, stats.get("closed_trades") or 0, stats.get("win_rate")
    pnl = f"{'+' if total > 0 else '-' if total < 0 else ''}${abs(total):,.2f}"
    win = f"{win_rate * 100:.0f}% win" if win_rate is not None else "no closed trades"
    if state.problem is not None:
        ledger, colour = f"ledger broken at #{state.problem.seq} ✗", RED
    elif state.verified:
        ledger, colour = "ledger verified ✓", GREEN if total >= 0 else ORANGE
    else:
        ledger, colour = "ledger checking…", GREY
    label = title[:BADGE_TITLE_CHARS] or "signalproof"
    message = f"{pnl} · {win} · {closed:,} closed · {ledger}"
    left, right = _text_width(label), _text_width(message)
    width = left + right
    lab, msg = escape(label), escape(message)
    aria = escape(f"{label}: {message}", {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{aria}">'
        f"<title>{lab}: {msg}</title>"
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        f'<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="{GREY}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2:.1f}" y="14">{lab}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{msg}</text></g></svg>'
    )


async def badge(request: Request) -> Response:
    def work() -> Response:
        state = head_state()
        with Session(_engine_now()) as session:
            tag = _etag("b", *_version(session=session), *_state_tag(state))
            if _not_modified(request, tag):
                return _answer(request, tag, Response)
            stats = headline_stats(session=session).to_json_dict()
            from shared import settings as runtime

            title = runtime.current(session=session).site_title
        return _answer(request, tag, lambda: Response(badge_svg(title, stats, state), media_type="image/svg+xml"))

    return await _guarded("badge", work)


async def checkpoints(request: Request) -> Response:
    """Every checkpoint of the head, oldest first, with its signature when signed."""
    def work() -> Response:
        with Session(_engine_now()) as session:
            points = record.checkpoints(session=session)
        last = points[-1] if points else {}
        tag = _etag("k", len(points), last.get("seq", 0), str(last.get("anchor", ""))[:40])
        return _answer(request, tag, lambda: JSONResponse(points))

    return await _guarded("checkpoints", work)


ROUTES = ((HEAD, head), (LEDGER, ledger), (SUMMARY, summary), (OPEN, open_trades), (BADGE, badge),
          (CHECKPOINTS, checkpoints))
