"""The optional HTTP signal feed (`signal_feed_url`): a JSON array or JSON lines of signals.

The feed is somebody else's server, so nothing it does may hold up or exhaust the worker:

- one overall deadline for the whole poll (connect, headers, body, redirects), not only a
  timeout per read: a body dripping one byte every few seconds never trips a per-read timeout.
  A guard thread shuts the socket down at the deadline, or as soon as the worker is stopping;
- a cap on the *decompressed* size, enforced while reading (a 1 MiB gzip body can expand to
  gigabytes): the decompressor is asked for at most what is still allowed;
- redirects only within the same host (and never from https down to http), a few at most;
- the URL's path and query may carry a token: only scheme and host are ever logged or stored.

The standard library's `http.client` is used rather than `requests` because the guard needs the
socket before the response headers are read (a server may also drip its headers).
"""

import http.client
import logging
import socket
import ssl
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from urllib.parse import urljoin, urlsplit

import requests.certs
from sqlalchemy.engine import Engine

from shared import heartbeat
from shared.clock import monotonic
from shared.database import transaction
from shared.signal_files import parse_feed_body
from shared.signals import shown
from worker.intake import IntakeReport, store_rows

log = logging.getLogger(__name__)
MAX_FEED_BYTES = 10 * 1024 * 1024  # after decompression
FEED_DEADLINE_SECONDS = 30.0  # the whole poll, redirects included
MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


class FeedError(Exception):
    """Why a poll failed, in words that never contain the URL's path or query."""


@dataclass(frozen=True)
class Fetched:
    body: str
    decompressed_bytes: int  # what was read after decompression (bounded by the cap + one chunk)


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: all of it that may be shown (the rest may hold a token)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or '?'}{port}"
    except ValueError:
        return "(an unreadable URL)"


def poll_feed(engine: Engine, url: str, *, now: datetime, timeout: float, deadline: float = FEED_DEADLINE_SECONDS,
              max_bytes: int = MAX_FEED_BYTES, stop: threading.Event | None = None) -> IntakeReport | None:
    """Fetch the feed once and store what it lists; its status goes to the heartbeat row."""
    error: str | None = None
    report: IntakeReport | None = None
    try:
        body = fetch(url, timeout=timeout, deadline=deadline, max_bytes=max_bytes, stop=stop).body
        body = body.removeprefix("\ufeff").strip()
        if body and body[0] not in "[{":  # an error or login page, not a feed: nothing to store
            raise FeedError(f"not JSON (starts with {shown(body[:20])})")
        rows = parse_feed_body(body)
        with transaction(engine) as session:
            report = store_rows(rows, default_source="feed", received_at=now, actor="feed", session=session)
        if report.accepted or report.rejected:
            log.info("feed: %s", report.summary())
    except FeedError as exc:
        error = f"{exc}"[:500]
        log.warning("feed %s: %s", origin(url), error)
    with transaction(engine) as session:
        heartbeat.record_feed(now=now, error=error, received=report.accepted if report is not None else 0, session=session)
    return report


def fetch(url: str, *, timeout: float, deadline: float, max_bytes: int,
          stop: threading.Event | None = None) -> Fetched:
    """GET the feed within `deadline` seconds overall; FeedError on anything but a usable 200."""
    first = urlsplit(url)
    ends_at = monotonic() + deadline
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, fetched = _get(url, timeout=timeout, ends_at=ends_at, max_bytes=max_bytes, stop=stop)
        if status not in REDIRECTS:
            if status != 200:
                raise FeedError(f"HTTP {status}")
            assert fetched is not None
            return fetched
        target = urljoin(url, headers.get("Location") or "")
        parts = urlsplit(target)
        if parts.hostname != first.hostname or parts.scheme not in ("http", "https") or (
                first.scheme == "https" and parts.scheme != "https"):
            raise FeedError(f"HTTP {status}: redirect to {origin(target)} refused (only the feed's own host is followed)")
        url = target
    raise FeedError(f"more than {MAX_REDIRECTS} redirects")


def _get(url: str, *, timeout: float, ends_at: float, max_bytes: int,
         stop: threading.Event | None) -> tuple[int, Message, Fetched | None]:
    """One request; the body is read only for a 200."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FeedError(f"not an http(s) URL ({origin(url)})")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    remaining = ends_at - monotonic()
    if remaining <= 0:
        raise FeedError("gave up: the feed took longer than the deadline")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=requests.certs.where())
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=min(timeout, remaining),
                                                 context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=min(timeout, remaining))
    done = threading.Event()
    cut = threading.Event()
    try:
        try:
            connection.connect()
            guard = threading.Thread(target=_guard, args=(connection.sock, ends_at, stop, done, cut), daemon=True,
                                     name="feed-deadline")
            guard.start()
            connection.request("GET", path, headers={"Accept-Encoding": "gzip, deflate", "Accept": "application/json",
                                                     "User-Agent": "signalproof-feed"})
            response = connection.getresponse()
            if response.status != 200:
                return response.status, response.headers, None
            return 200, response.headers, _read_body(response, ends_at=ends_at, max_bytes=max_bytes, cut=cut)
        except FeedError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if cut.is_set():
                raise FeedError("stopped: the worker is stopping" if stop is not None and stop.is_set()
                                else "gave up: the feed took longer than the deadline") from None
            if isinstance(exc, (TimeoutError, socket.timeout)):
                raise FeedError(f"ReadTimeout: no data from {origin(url)} for {timeout:g} s") from None
            if isinstance(exc, ConnectionRefusedError) or isinstance(exc, socket.gaierror):
                raise FeedError(f"ConnectionError: cannot connect to {origin(url)}: {exc.strerror or exc}") from None
            # http.client's messages quote the server's bytes, never our request line.
            raise FeedError(f"{type(exc).__name__}: {str(exc)[:200] or 'connection failed'}") from None
    finally:
        done.set()
        connection.close()


def _guard(sock: socket.socket | None, ends_at: float, stop: threading.Event | None, done: threading.Event,
           cut: threading.Event) -> None:
    """Shut the socket down at the deadline or when the worker stops: that wakes a blocked read."""
    while not done.wait(min(0.2, max(0.0, ends_at - monotonic()))):
        if monotonic() >= ends_at or (stop is not None and stop.is_set()):
            cut.set()
            try:
                # The plain socket's shutdown, also for TLS: it acts on the file descriptor and
                # does not touch the SSL object the reading thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # type: ignore[arg-type]
            except OSError:
                pass
            return


def _decoder(encoding: str) -> "zlib._Decompress | None":
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib-wrapped; the header is detected
    raise FeedError(f"unsupported Content-Encoding {shown(encoding)}")


def _read_body(response: http.client.HTTPResponse, *, ends_at: float, max_bytes: int,
               cut: threading.Event) -> Fetched:
    """Read and decompress chunk by chunk, stopping as soon as the cap or the deadline is passed."""
    decoder = _decoder(response.headers.get("Content-Encoding", ""))
    too_big = FeedError(f"body larger than {max_bytes} bytes")
    length = response.headers.get("Content-Length")
    if decoder is None and length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_big
    parts: list[bytes] = []
    size = 0
    while True:
        if monotonic() >= ends_at:
            cut.set()
            raise ConnectionAbortedError("past the deadline")
        chunk = response.read1(CHUNK_BYTES)
        if cut.is_set():  # the guard shut the socket: what was read is not the whole body
            raise ConnectionAbortedError("cut short")
        if not chunk:
            break
        if decoder is not None:
            try:
                # At most what is still allowed, plus one byte to know it went over.
                chunk = decoder.decompress(chunk, max_bytes - size + 1)
            except zlib.error as exc:
                raise FeedError(f"corrupt compressed body: {exc}") from None
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        parts.append(chunk)
    data = b"".join(parts)
    charset = response.headers.get_content_charset() or "utf-8"
    try:
        return Fetched(data.decode(charset, errors="replace"), size)
    except LookupError:
        return Fetched(data.decode("utf-8", errors="replace"), size)
