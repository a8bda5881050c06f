"""A Binance look-alike on a real local HTTP port, serving the recorded candles, with faults.

The exchange client is tested against this over real sockets (fakes over mocks): the same
base URL answers spot (`/api/v3/*`) and USDⓈ-M futures (`/fapi/v1/*`) public market data in
Binance's own JSON shapes, and can be told to fail the next requests, or a seeded random
share of them, in the ways the real exchange does.

    with FakeExchange(candles_dir()) as exchange:
        exchange.faults = ["503", "timeout"]
        client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=0.3)
"""

import functools
import json
import os
import random
import re
import socket
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared.candles import INTERVALS, Candle
from shared.models import Market

CANDLES_ENV = "SIGNALPROOF_TEST_CANDLES"
# DESIGN.md: the candles live beside the project, in ../shared/data/candles.
DEFAULT_CANDLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "candles"

# Every way the fake can fail a data request. "timeout" answers only after `timeout_seconds`;
# "disconnect" closes the connection without a word.
FAULTS = ("500", "503", "429", "418", "timeout", "garbage", "truncated", "wrong_shape", "disconnect")

PREFIXES: dict[str, Market] = {"/api/v3/": Market.SPOT, "/fapi/v1/": Market.FUTURES}
DATA_ENDPOINTS = frozenset({"klines", "ticker/price", "exchangeInfo"})
KLINE_LIMITS: dict[Market, int] = {Market.SPOT: 1000, Market.FUTURES: 1500}
DEFAULT_KLINE_LIMIT = 500
# Binance spot writes every decimal with 8 places ("0.00005400"); futures use the contract's
# own precision, which the recorded numbers already carry.
DECIMAL_PLACES: dict[Market, int | None] = {Market.SPOT: 8, Market.FUTURES: None}
FILE_NAME = re.compile(r"^(spot|futures)-([A-Z0-9]+)-(\w+)\.json$")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)

Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]  # open ms, o, h, l, c, volume


def candles_dir() -> Path:
    """Where the recorded candles are: $SIGNALPROOF_TEST_CANDLES, else ../shared/data/candles."""
    return Path(os.environ.get(CANDLES_ENV) or DEFAULT_CANDLES_DIR)


@functools.cache
def read_rows(path: Path) -> tuple[Row, ...]:
    """One recorded file, numbers exact (cached: the files are read-only and large)."""
    with path.open() as file:
        raw = json.load(file, parse_float=Decimal)
    return tuple((int(r[0]), *(Decimal(str(v)) for v in r[1:6])) for r in raw)  # type: ignore[misc]


def series_files(directory: Path) -> dict[tuple[Market, str, str], Path]:
    """`spot-ETHBTC-1m.json` -> {(Market.SPOT, "ETHBTC", "1m"): path}; other files are ignored."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        if match := FILE_NAME.match(path.name):
            market, symbol, interval = match.groups()
            found[(Market(market.upper()), symbol, interval)] = path
    return found


def row_candle(row: Row) -> Candle:
    return Candle(open_time=from_ms(row[0]), open=row[1], high=row[2], low=row[3], close=row[4])


def read_candles(market: Market, symbol: str, interval: str, directory: Path | None = None) -> list[Candle]:
    """The recorded candles of one series, as the client should return them."""
    path = (directory or candles_dir()) / f"{Market(market).value.lower()}-{symbol}-{interval}.json"
    return list(_file_candles(path))


@functools.cache
def _file_candles(path: Path) -> tuple[Candle, ...]:
    return tuple(row_candle(row) for row in read_rows(path))


def from_ms(millis: int) -> datetime:
    return EPOCH + millis * ONE_MS


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_MS


def interval_ms(interval: str) -> int:
    return int(INTERVALS[interval].total_seconds() * 1000)


def aggregate(rows: Iterable[Row], bucket_ms: int) -> tuple[Row, ...]:
    """Coarser candles from finer ones, buckets aligned to epoch multiples like Binance's."""
    buckets: list[Row] = []
    for open_ms, open_, high, low, close, volume in rows:
        start = open_ms - open_ms % bucket_ms
        if buckets and buckets[-1][0] == start:
            first = buckets[-1]
            buckets[-1] = (start, first[1], max(first[2], high), min(first[3], low), close, first[5] + volume)
        else:
            buckets.append((start, open_, high, low, close, volume))
    return tuple(buckets)


def format_decimal(value: Decimal, places: int | None) -> str:
    if places is not None and -value.as_tuple().exponent <= places:  # type: ignore[operator]
        return f"{value:.{places}f}"
    return format(value, "f")


def kline_json(row: Row, length_ms: int, market: Market) -> list[Any]:
    """Binance's 12-field kline. The recordings have no quote volume, trade count or taker
    volumes, so those are zero (our client reads only the first five fields)."""
    places = DECIMAL_PLACES[market]
    zero = format_decimal(Decimal(0), places)
    prices = [format_decimal(value, places) for value in row[1:6]]
    return [row[0], *prices, row[0] + length_ms - 1, zero, 0, zero, zero, "0"]


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # JSON-able, or bytes sent as they are
    headers: Mapping[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


def error(code: int, msg: str, status: int = 400) -> Reply:
    return Reply(status, {"code": code, "msg": msg})


INVALID_SYMBOL = error(-1121, "Invalid symbol.")
NOT_FOUND = Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", {"Content-Type": "text/html"})


class BadParameter(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body)
        self.reply = reply


def int_param(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        raise BadParameter(error(-1100, f"Illegal characters found in parameter '{name}'.")) from None


def required(params: Mapping[str, str], name: str) -> str:
    if not params.get(name):
        raise BadParameter(error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
    return params[name]


class FakeExchange:
    """Serves every `<market>-<SYMBOL>-<interval>.json` in `candles_dir` as Binance would."""

    def __init__(self, candles_dir: Path, *, seed: int = 0) -> None:
        # (market, symbol) -> (native interval, rows); other intervals are aggregated from it.
        self.series: dict[tuple[Market, str], tuple[str, tuple[Row, ...]]] = {
            (market, symbol): (interval, read_rows(path))
            for (market, symbol, interval), path in series_files(candles_dir).items()
        }
        self.fault_rate = 0.0
        self.faults: list[str] = []
        self.random_faults: tuple[str, ...] = FAULTS  # what fault_rate draws from
        self.timeout_seconds = 2.0
        self.latency_seconds = 0.0  # added to every data answer: widens windows in kill tests
        self.retry_after: str | None = "1"  # the Retry-After header of 429/418; None = omitted
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._served: dict[tuple[Market, str, str], tuple[tuple[Row, ...], list[int]]] = {}
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ---

    def start(self) -> "FakeExchange":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True  # a handler held in a "timeout" fault must not block stop()
        server.exchange = self  # type: ignore[attr-defined]
        server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "FakeExchange":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeExchange is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- test controls ---

    def add_candles(self, market: Market, symbol: str, interval: str, candles: Iterable[Candle]) -> None:
        """Serve (or replace) a series built in a test instead of read from a file."""
        rows = tuple((to_ms(c.open_time), c.open, c.high, c.low, c.close, Decimal(0)) for c in candles)
        with self._lock:
            self.series[(Market(market), symbol)] = (interval, rows)
            self._served = {key: value for key, value in self._served.items() if key[:2] != (Market(market), symbol)}

    def requests_to(self, endpoint: str) -> list[tuple[str, dict[str, str]]]:
        """The recorded requests whose path ends with `endpoint` (e.g. "klines")."""
        return [(path, params) for path, params in self.requests if path.endswith("/" + endpoint)]

    def last_price(self, market: Market, symbol: str) -> Decimal:
        return self.series[(Market(market), symbol)][1][-1][4]

    # --- answering (called from the server's threads) ---

    def record(self, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((path, params))

    def next_fault(self) -> str | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(self.random_faults)
        return None

    def wait_out(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def answer(self, market: Market, endpoint: str, params: Mapping[str, str]) -> Reply:
        if self.latency_seconds and endpoint in ("klines", "ticker/price", "exchangeInfo"):
            self.wait_out(self.latency_seconds)
        try:
            if endpoint == "klines":
                return self._klines(market, params)
            if endpoint == "ticker/price":
                return self._ticker(market, params)
            if endpoint == "exchangeInfo":
                return self._exchange_info(market, params)
        except BadParameter as bad:
            return bad.reply
        if endpoint == "ping":
            return Reply(200, {})
        if endpoint == "time":
            return Reply(200, {"serverTime": int(time.time() * 1000)})
        return NOT_FOUND

    def _klines(self, market: Market, params: Mapping[str, str]) -> Reply:
        symbol, interval = required(params, "symbol"), required(params, "interval")
        if (market, symbol) not in self.series:
            return INVALID_SYMBOL
        start, end, limit = int_param(params, "startTime"), int_param(params, "endTime"), int_param(params, "limit")
        served = self._candles(market, symbol, interval)
        if served is None:
            return error(-1120, "Invalid interval.")
        rows, open_times = served
        limit = min(DEFAULT_KLINE_LIMIT if limit is None else max(limit, 1), KLINE_LIMITS[market])
        first = 0 if start is None else bisect_left(open_times, start)
        last = len(rows) if end is None else bisect_right(open_times, end)
        # Binance: from startTime forwards; without it, the latest rows up to endTime.
        chosen = rows[first:last][:limit] if start is not None else rows[first:last][-limit:]
        length = interval_ms(interval)
        return Reply(200, [kline_json(row, length, market) for row in chosen])

    def _candles(self, market: Market, symbol: str, interval: str) -> tuple[tuple[Row, ...], list[int]] | None:
        """The rows at `interval`: the file's own, or aggregated from it; None if impossible."""
        native, rows = self.series[(market, symbol)]
        if interval not in INTERVALS or interval_ms(interval) % interval_ms(native):
            return None
        with self._lock:
            if (market, symbol, interval) not in self._served:
                served = rows if interval == native else aggregate(rows, interval_ms(interval))
                self._served[(market, symbol, interval)] = (served, [row[0] for row in served])
            return self._served[(market, symbol, interval)]

    def _symbols(self, market: Market) -> list[str]:
        return sorted(symbol for m, symbol in self.series if m is market)

    def _ticker(self, market: Market, params: Mapping[str, str]) -> Reply:
        def entry(symbol: str) -> dict[str, Any]:
            price = {"symbol": symbol, "price": format_decimal(self.last_price(market, symbol), DECIMAL_PLACES[market])}
            return price | {"time": int(time.time() * 1000)} if market is Market.FUTURES else price

        if "symbol" in params:
            return Reply(200, entry(params["symbol"])) if params["symbol"] in self._symbols(market) else INVALID_SYMBOL
        if "symbols" in params and market is Market.SPOT:
            try:
                wanted = json.loads(params["symbols"])
            except ValueError:
                wanted = None
            if not isinstance(wanted, list) or not wanted or not all(isinstance(s, str) for s in wanted):
                return error(-1100, "Illegal characters found in parameter 'symbols'.")
            # Like Binance: one unknown symbol fails the whole batch.
            if any(symbol not in self._symbols(market) for symbol in wanted):
                return INVALID_SYMBOL
            return Reply(200, [entry(symbol) for symbol in wanted])
        return Reply(200, [entry(symbol) for symbol in self._symbols(market)])

    def _exchange_info(self, market: Market, params: Mapping[str, str]) -> Reply:
        symbols = self._symbols(market)
        if "symbol" in params:
            if params["symbol"] not in symbols:
                return INVALID_SYMBOL
            symbols = [params["symbol"]]
        listed = [{"symbol": symbol, "status": "TRADING"} for symbol in symbols]
        return Reply(200, {"timezone": "UTC", "serverTime": int(time.time() * 1000), "symbols": listed})


def faulty(reply: Reply, fault: str, retry_after: str | None) -> Reply:
    """What the client sees instead of `reply` under a fault that still answers."""
    if fault in ("429", "418"):
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return Reply(int(fault), {"code": -1003, "msg": "Too many requests; IP banned until later."}, headers)
    if fault in ("500", "503"):
        return Reply(int(fault), b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"})
    if fault == "garbage":
        return Reply(200, b"<html>upstream connect error or disconnect/reset</html>", {"Content-Type": "text/html"})
    if fault == "truncated":
        content = reply.content()
        return Reply(200, content[: len(content) // 2] or b"[")
    if fault == "wrong_shape":
        return Reply(200, {"foo": 1})
    raise ValueError(f"unknown fault {fault!r} (one of {', '.join(FAULTS)})")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind requests.Session
    timeout = 5  # idle keep-alive connections end, so their threads do too

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle plus delayed ACK add
        # ~40 ms to every reused connection.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        exchange: FakeExchange = self.server.exchange  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        params = {name: values[-1] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        exchange.record(url.path, params)
        market, endpoint = route(url.path)
        reply = NOT_FOUND if market is None else exchange.answer(market, endpoint, params)
        fault = exchange.next_fault() if endpoint in DATA_ENDPOINTS else None
        if fault == "disconnect":
            self.close_connection = True
            return
        if fault == "timeout":
            exchange.wait_out(exchange.timeout_seconds)  # the client has given up by now
        elif fault is not None:
            reply = faulty(reply, fault, exchange.retry_after)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        content = reply.content()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json;charset=UTF-8", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `exchange.requests`; a line per request on stderr would be noise


def route(path: str) -> tuple[Market | None, str]:
    """"/api/v3/klines" -> (SPOT, "klines"); (None, "") outside both APIs."""
    for prefix, market in PREFIXES.items():
        if path.startswith(prefix):
            return market, path[len(prefix):]
    return None, ""
