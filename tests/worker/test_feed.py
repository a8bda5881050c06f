"""The optional HTTP signal feed, polled over real HTTP from a local server (stdlib http.server
on a free port): what it stores, what it writes to the heartbeat row, and that a failing feed
changes no signal."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from shared.database import transaction
from shared.models import Signal, WorkerHeartbeat
from worker.feed import poll_feed
from worker.intake import IntakeReport

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
TIMEOUT = 0.3


@dataclass
class Response:
    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    delay: float = 0.0


class FeedServer:
    """Serves whatever `Response` the test put at a path; counts the requests."""

    def __init__(self) -> None:
        self.responses: dict[str, Response] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                response = server.responses.get(self.path, Response(404, "not found", "text/plain"))
                time.sleep(response.delay)
                body = response.body.encode()
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, **response: object) -> str:
        self.responses[path] = Response(**response)  # type: ignore[arg-type]
        return self.url(path)


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def make_signal(**over: object) -> dict[str, object]:
    signal: dict[str, object] = dict(id="f1", time="2024-05-01T11:59:00Z", symbol="ETHBTC", side="LONG",
                                     take_profit=[0.095, 0.1], stop_loss=0.085)
    return signal | over


def poll(engine: Engine, url: str, now: datetime = NOW, **options: object) -> IntakeReport | None:
    return poll_feed(engine, url, now=now, timeout=TIMEOUT, **options)  # type: ignore[arg-type]


def summary(report: IntakeReport | None) -> str:
    assert report is not None, "the poll failed"
    return report.summary()


def heartbeat(engine: Engine) -> tuple[datetime | None, str | None, int]:
    with transaction(engine) as session:
        beat = session.get(WorkerHeartbeat, 1)
        assert beat is not None
        return beat.feed_last_poll_at, beat.feed_last_error, beat.feed_received


def stored(engine: Engine) -> list[tuple[str, str, str, str, str | None]]:
    with transaction(engine) as session:
        return [(s.source, s.signal_id, s.symbol or "", s.status, s.reason)
                for s in session.exec(select(Signal).order_by(Signal.id))]


def test_a_json_array_is_stored_with_source_feed(engine: Engine, feed: FeedServer) -> None:
    body = json.dumps([make_signal(), make_signal(id="f2", symbol="ada/btc", source="botA"),
                       make_signal(id="bad", side="sideways")])
    assert summary(poll(engine, feed.serve("/signals.json", body=body))) == "accepted 2, rejected 1, duplicate 0"
    assert stored(engine) == [
        ("feed", "f1", "ETHBTC", "NEW", None),
        ("botA", "f2", "ADABTC", "NEW", None),
        ("feed", "bad", "ETHBTC", "REJECTED", "side must be LONG, SHORT, BUY or SELL (got 'sideways')"),
    ]
    with transaction(engine) as session:
        first = session.exec(select(Signal).where(Signal.signal_id == "f1")).one()
    assert first.take_profit == "0.095;0.1" and json.loads(first.raw or "")["id"] == "f1"
    assert heartbeat(engine) == (NOW, None, 2)


def test_json_lines_are_stored_and_a_second_poll_adds_only_what_is_new(
        engine: Engine, feed: FeedServer) -> None:
    lines = [json.dumps(make_signal(id=f"f{n}")) for n in (1, 2)]
    url = feed.serve("/feed", body="\n".join(lines) + "\n", content_type="application/x-ndjson")
    assert summary(poll(engine, url)) == "accepted 2, rejected 0, duplicate 0"
    feed.serve("/feed", body="\n".join([*lines, json.dumps(make_signal(id="f3", time=1714564740000))]))
    assert summary(poll(engine, url, LATER)) == "accepted 1, rejected 0, duplicate 2"
    assert [key for _, key, *_ in stored(engine)] == ["f1", "f2", "f3"]
    assert heartbeat(engine) == (LATER, None, 3)  # received counts every signal accepted so far
    assert len(feed.requests) == 2


def test_an_empty_feed_is_not_an_error(engine: Engine, feed: FeedServer) -> None:
    assert summary(poll(engine, feed.serve("/empty", body="[]"))) == "accepted 0, rejected 0, duplicate 0"
    assert summary(poll(engine, feed.serve("/blank", body=""), LATER)) == "accepted 0, rejected 0, duplicate 0"
    assert stored(engine) == []
    assert heartbeat(engine) == (LATER, None, 0)


HTML_ERROR = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

# (response, what the heartbeat's last error starts with)
FAILURES = [
    pytest.param(dict(status=500, body='{"error": "internal"}'), "HTTP 500", id="500"),
    pytest.param(dict(status=502, body=HTML_ERROR, content_type="text/html"), "HTTP 502",
                 id="HTML error page with its status"),
    pytest.param(dict(status=200, body=HTML_ERROR, content_type="text/html"), "not JSON",
                 id="HTML error page served as 200"),
    pytest.param(dict(status=200, body="Service temporarily unavailable", content_type="text/plain"),
                 "not JSON", id="plain text served as 200"),
    pytest.param(dict(status=404, body="not found"), "HTTP 404", id="404"),
    pytest.param(dict(delay=TIMEOUT * 3, body="[]"), "ReadTimeout", id="too slow"),
]


@pytest.mark.parametrize(("response", "error"), FAILURES)
def test_a_failing_feed_changes_no_signal_and_is_recorded(engine: Engine, feed: FeedServer,
                                                         response: dict[str, object], error: str) -> None:
    url = feed.serve("/feed", body=json.dumps([make_signal()]))
    poll(engine, url)
    before = stored(engine)

    feed.serve("/feed", **response)
    assert poll(engine, url, LATER) is None
    assert stored(engine) == before
    last_poll, last_error, received = heartbeat(engine)
    assert (last_poll, received) == (LATER, 1)
    assert last_error is not None and last_error.startswith(error) and len(last_error) <= 500
    assert "<" not in last_error  # the site shows it: no raw HTML from somebody else's page

    feed.serve("/feed", body=json.dumps([make_signal(), make_signal(id="f2")]))
    later = LATER + timedelta(minutes=1)
    poll(engine, url, later)
    assert heartbeat(engine) == (later, None, 2)  # a good poll clears the error


def test_an_unreachable_feed_is_recorded(engine: Engine) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert poll(engine, f"http://127.0.0.1:{port}/feed") is None
    last_poll, last_error, received = heartbeat(engine)
    assert (last_poll, received, stored(engine)) == (NOW, 0, [])
    assert last_error is not None and last_error.startswith("ConnectionError")
