"""A hostile signal feed, over real HTTP from a local server that misbehaves on purpose:
a body dripping byte by byte, headers dripping line by line, a gzip bomb, a huge body, a
redirect to another host. Each poll returns within its deadline, reads a bounded number of
bytes, records the error, and never writes the URL's token to a log or the database; and a
worker stuck in such a poll stops promptly on SIGTERM without holding up the monitor."""

import gzip
import json
import logging
import signal
import socketserver
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from conftest import Cli
from shared.database import make_engine, transaction
from shared.models import WorkerHeartbeat
from worker.feed import CHUNK_BYTES, MAX_FEED_BYTES, FeedError, fetch, poll_feed

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
TOKEN = "s3cr3t-T0KEN"
DEADLINE = 1.5
TIMEOUT = 1.0  # per read: longer than every drip interval below, so only the deadline can stop them


def _gzip_bomb(expanded: int) -> bytes:
    """`expanded` zero bytes, gzip-compressed incrementally (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    return b"".join([*(packer.compress(block) for _ in range(expanded // len(block))), packer.flush()])


BOMB = _gzip_bomb(256 * 1024 * 1024)
SIGNAL = {"id": "f1", "time": "2024-05-01T11:59:00Z", "symbol": "ETHBTC", "side": "LONG", "take_profit": 0.095,
          "stop_loss": 0.085}


class HostileFeed:
    """A raw HTTP/1.1 server: each path names a misbehaviour. Requests are recorded."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.stopping = threading.Event()
        feed = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode("latin-1").strip()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                path = request_line.split(" ")[1] if " " in request_line else "/"
                feed.requests.append(path)
                try:
                    feed.respond(path.split("?")[0], self.wfile)
                except OSError:  # the client hung up: what a guarded client does
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.allow_reuse_address = True
        self.server.server_bind()
        self.server.server_activate()
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}?token={TOKEN}"

    def respond(self, path: str, out: object) -> None:
        write: Callable[[bytes], object] = out.write  # type: ignore[attr-defined]

        def head(status: str, *headers: str) -> None:
            write((f"HTTP/1.1 {status}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode())

        if path == "/drip":  # a valid-looking body, one byte every 0.3 s, forever
            head("200 OK", "Content-Type: application/json", "Content-Length: 100000")
            while not self.stopping.wait(0.3):
                write(b" ")
        elif path == "/slow-headers":  # headers that never end
            write(b"HTTP/1.1 200 OK\r\n")
            while not self.stopping.wait(0.3):
                write(b"X-Wait: 1\r\n")
        elif path == "/bomb":
            head("200 OK", "Content-Type: application/json", "Content-Encoding: gzip", f"Content-Length: {len(BOMB)}")
            write(BOMB)
        elif path == "/huge":  # no Content-Length, just bytes until the client gives up
            head("200 OK", "Content-Type: application/json", "Connection: close")
            block = b" " * CHUNK_BYTES
            for _ in range(2 * MAX_FEED_BYTES // len(block)):
                write(block)
        elif path == "/elsewhere":  # the same server under another host name
            head("302 Found", f"Location: http://localhost:{self.port}/ok?token={TOKEN}", "Content-Length: 0")
        elif path == "/moved":  # the same host: followed
            head("301 Moved Permanently", f"Location: /gzip-ok?token={TOKEN}", "Content-Length: 0")
        elif path == "/loop":
            head("302 Found", f"Location: /loop?token={TOKEN}", "Content-Length: 0")
        elif path == "/gzip-ok":
            body = gzip.compress(json.dumps([SIGNAL]).encode())
            head("200 OK", "Content-Type: application/json", "Content-Encoding: gzip", f"Content-Length: {len(body)}")
            write(body)
        else:
            body = json.dumps([SIGNAL]).encode()
            head("200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}")
            write(body)


@pytest.fixture
def hostile() -> Iterator[HostileFeed]:
    feed = HostileFeed()
    feed.thread.start()
    yield feed
    feed.stopping.set()
    feed.server.shutdown()
    feed.server.server_close()


def last_error(engine: Engine) -> str | None:
    with transaction(engine) as session:
        beat = session.get(WorkerHeartbeat, 1)
        assert beat is not None
        return beat.feed_last_error


def everything_stored(engine: Engine) -> str:
    """Every text the database holds, to look for the token in."""
    with engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
        return "\n".join(str(row) for table in tables
                         for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')))


@pytest.mark.parametrize(("path", "error"), [
    ("/drip", "gave up: the feed took longer than the deadline"),
    ("/slow-headers", "gave up: the feed took longer than the deadline"),
    ("/bomb", f"body larger than {MAX_FEED_BYTES} bytes"),
    ("/huge", f"body larger than {MAX_FEED_BYTES} bytes"),
    ("/elsewhere", "HTTP 302: redirect to http://localhost:"),
    ("/loop", "more than 3 redirects"),
])
def test_a_hostile_feed_is_cut_short_and_recorded_without_its_token(
        engine: Engine, hostile: HostileFeed, caplog: pytest.LogCaptureFixture, path: str, error: str) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    assert poll_feed(engine, hostile.url(path), now=NOW, timeout=TIMEOUT, deadline=DEADLINE) is None
    assert time.monotonic() - started < DEADLINE + 1.0
    recorded = last_error(engine)
    assert recorded is not None and recorded.startswith(error), recorded
    assert TOKEN not in caplog.text and TOKEN not in everything_stored(engine)
    assert f"http://127.0.0.1:{hostile.port}" in caplog.text  # scheme and host are what the log names
    if path == "/elsewhere":
        assert hostile.requests == [f"/elsewhere?token={TOKEN}"]  # the other host never got the token


def test_a_redirect_within_the_same_host_is_followed_and_gzip_is_read(engine: Engine, hostile: HostileFeed) -> None:
    report = poll_feed(engine, hostile.url("/moved"), now=NOW, timeout=TIMEOUT, deadline=DEADLINE)
    assert report is not None and report.summary() == "accepted 1, rejected 0, duplicate 0"
    assert last_error(engine) is None


def test_a_gzip_bomb_is_never_expanded_beyond_the_cap(hostile: HostileFeed) -> None:
    """256 MiB of zeros in 256 KiB of gzip: what is read stays within the cap plus one byte,
    and the memory the poll allocates stays a small multiple of the cap."""
    cap = 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(FeedError, match="body larger than"):
            fetch(hostile.url("/bomb"), timeout=TIMEOUT, deadline=5, max_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * cap, peak
    small = fetch(hostile.url("/gzip-ok"), timeout=TIMEOUT, deadline=5, max_bytes=cap)
    assert json.loads(small.body) == [SIGNAL] and small.decompressed_bytes == len(json.dumps([SIGNAL]))


def test_a_poll_stops_as_soon_as_the_worker_stops(hostile: HostileFeed) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(FeedError, match="the worker is stopping"):
        fetch(hostile.url("/drip"), timeout=TIMEOUT, deadline=60, max_bytes=MAX_FEED_BYTES, stop=stop)
    assert time.monotonic() - started < 2


def test_sigterm_during_a_stuck_feed_poll_stops_the_worker_and_the_monitor_keeps_ticking(
        cli: Cli, database_url: str, hostile: HostileFeed) -> None:
    cli("settings", "set", "signal_feed_url", hostile.url("/drip"))
    cli.env["SIGNALPROOF_MONITOR_INTERVAL_SECONDS"] = "1"
    worker = cli.popen("worker")
    try:
        engine = make_engine(database_url)
        try:
            deadline = time.monotonic() + 30
            while not any(p.startswith("/drip") for p in hostile.requests):
                assert time.monotonic() < deadline and worker.poll() is None, "the worker never polled the feed"
                time.sleep(0.1)
            query = sa.text("SELECT last_tick_at FROM worker_heartbeat WHERE id = 1")
            with engine.connect() as connection:  # the feed is stuck now: the monitor must go on
                first = connection.execute(query).scalar()
            time.sleep(3)
            with engine.connect() as connection:
                assert connection.execute(query).scalar() != first, "the monitor waited for the feed"
        finally:
            engine.dispose()
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = worker.communicate(timeout=10)
        assert time.monotonic() - started < 5, output
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, output
    assert TOKEN not in output and "Traceback" not in output
