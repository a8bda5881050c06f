"""A Binance look-alike on a real local HTTP port, with the faults the real exchange has.

The same base URL answers spot (`/api/v3/*`) and USDⓈ-M futures (`/fapi/v1/*`) public market
data in Binance's own JSON shapes: klines (windows, pages, coarser intervals aggregated from
the source's own), tickers, exchangeInfo, Binance's error bodies. It can be told to fail the
next requests, or a seeded random share of them, in the ways the real exchange does.

Where the candles come from is a `CandleSource`, not this module's business: the tests serve
recorded candle files (tests/fake_exchange.py), `signalproof demo` a seeded random walk that
grows with the clock (demo/market.py). This module only serves them.

    with SimulatedExchange(source) as exchange:
        exchange.faults = ["503", "timeout"]
        client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=0.3)
"""

import json
import random
import socket
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from demo.tape import (DEFAULT_TRADES_PER_CANDLE, FUNDING_FAULTS, candle_trades, funding_events,
                       natural_order, spoil)
from shared.candles import INTERVALS
from shared.clock import Clock, from_ms, to_ms, utcnow  # noqa: F401  (from_ms/to_ms: also used by importers)
from shared.kinds import Market

# Every way the exchange can fail a data request. "timeout" answers only after
# `timeout_seconds`; "disconnect" closes the connection without a word.
FAULTS = ("500", "503", "429", "418", "timeout", "garbage", "truncated", "wrong_shape", "disconnect")

PREFIXES: dict[str, Market] = {"/api/v3/": Market.SPOT, "/fapi/v1/": Market.FUTURES}
DATA_ENDPOINTS = frozenset({"klines", "ticker/price", "exchangeInfo", "aggTrades", "fundingRate"})
KLINE_LIMITS: dict[Market, int] = {Market.SPOT: 1000, Market.FUTURES: 1500}
DEFAULT_KLINE_LIMIT = 500
# aggTrades: "Default 500; max 1000", and a startTime..endTime window under an hour.
# fundingRate: "Default 100; max 1000".
TRADES_LIMIT, DEFAULT_TRADES_LIMIT, MAX_TRADES_WINDOW_MS = 1000, 500, 3_600_000
FUNDING_LIMIT, DEFAULT_FUNDING_LIMIT = 1000, 100
# Binance spot writes every decimal with 8 places ("0.00005400"); futures use the contract's
# own precision, which the source's numbers already carry.
DECIMAL_PLACES: dict[Market, int | None] = {Market.SPOT: 8, Market.FUTURES: None}


Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]  # open ms, o, h, l, c, volume


class CandleSource(Protocol):
    """Where a simulated exchange's candles come from. `now_ms` is the exchange's clock."""

    def symbols(self, market: Market) -> Collection[str]:
        """The listed symbols; any other is answered "Invalid symbol."."""
        ...

    def rows(self, market: Market, symbol: str, interval: str, now_ms: int) -> Sequence[Row] | None:
        """Every candle of a listed symbol at `interval` that exists at `now_ms` (the forming one
        included, as Binance serves it), ascending; None if that interval cannot be served."""
        ...

    def last_price(self, market: Market, symbol: str, now_ms: int) -> Decimal:
        """The ticker price of a listed symbol."""
        ...

    def native_interval(self, market: Market, symbol: str) -> str:
        """The interval the source's own candles have (others are aggregated from them): the
        trade tape and the funding history are made from these."""
        ...


def interval_ms(interval: str) -> int:
    return int(INTERVALS[interval].total_seconds() * 1000)


def can_aggregate(interval: str, native: str) -> bool:
    """Binance-like coarser candles can be built from `native` ones (5m from 1m, not 7m or 1m from 5m)."""
    return interval in INTERVALS and interval_ms(interval) % interval_ms(native) == 0


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
    """Binance's 12-field kline. Quote volume, trade count and taker volumes are not simulated,
    so they are zero (our client reads only the first five fields)."""
    places = DECIMAL_PLACES[market]
    zero = format_decimal(Decimal(0), places)
    prices = [format_decimal(value, places) for value in row[1:6]]
    return [row[0], *prices, row[0] + length_ms - 1, zero, 0, zero, zero, "0"]


def window(rows: Sequence[Row], start: int | None, end: int | None, limit: int) -> Sequence[Row]:
    """Binance's klines window: from startTime forwards; without it, the latest rows up to endTime."""
    first = 0 if start is None else bisect_left(rows, start, key=lambda row: row[0])
    last = len(rows) if end is None else bisect_right(rows, end, key=lambda row: row[0])
    return rows[first:min(last, first + limit)] if start is not None else rows[max(first, last - limit):last]


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
INVALID_INTERVAL = error(-1120, "Invalid interval.")
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


class SimulatedExchange:
    """Serves a `CandleSource` as Binance would, on 127.0.0.1 and a free port."""

    def __init__(self, source: CandleSource, *, seed: int = 0, clock: Clock = utcnow) -> None:
        self.source = source
        self.clock = clock
        self.fault_rate = 0.0
        self.faults: list[str] = []
        self.random_faults: tuple[str, ...] = FAULTS  # what fault_rate draws from
        self.timeout_seconds = 2.0
        self.latency_seconds = 0.0  # added to every data answer: widens windows in kill tests
        self.retry_after: str | None = "1"  # the Retry-After header of 429/418; None = omitted
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.keep_requests = True  # a long-running demo turns the request log off
        # The trade tape (demo/tape.py): trades per candle, the order of the extremes (None: each
        # candle's own; or one of ORDERS for all; or per candle open ms), and spoilt answers:
        # `tape_faults` spoil the next aggTrades answers one each, `bad_tape` every one.
        self.trades_per_candle = DEFAULT_TRADES_PER_CANDLE
        self.tape_order: str | None = None
        self.tape_orders: dict[int, str] = {}
        self.tape_faults: list[str] = []
        self.bad_tape: str | None = None
        self.funding_faults: list[str] = []  # spoil the next fundingRate answers (demo/tape.py)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ---

    def start(self) -> "SimulatedExchange":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True  # a handler held in a "timeout" fault must not block stop()
        server.exchange = self  # type: ignore[attr-defined]
        server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="simulated-exchange")
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

    def __enter__(self) -> "SimulatedExchange":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulated exchange is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- what tests look at ---

    def requests_to(self, endpoint: str) -> list[tuple[str, dict[str, str]]]:
        """The recorded requests whose path ends with `endpoint` (e.g. "klines")."""
        return [(path, params) for path, params in self.requests if path.endswith("/" + endpoint)]

    # --- answering (called from the server's threads) ---

    def now_ms(self) -> int:
        return to_ms(self.clock())

    def record(self, path: str, params: dict[str, str]) -> None:
        if self.keep_requests:
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
        if self.latency_seconds and endpoint in DATA_ENDPOINTS:
            self.wait_out(self.latency_seconds)
        try:
            if endpoint == "klines":
                return self._klines(market, params)
            if endpoint == "ticker/price":
                return self._ticker(market, params)
            if endpoint == "exchangeInfo":
                return self._exchange_info(market, params)
            if endpoint == "aggTrades":
                return self._agg_trades(market, params)
            if endpoint == "fundingRate" and market is Market.FUTURES:
                return self._funding_rate(params)
        except BadParameter as bad:
            return bad.reply
        if endpoint == "ping":
            return Reply(200, {})
        if endpoint == "time":
            return Reply(200, {"serverTime": self.now_ms()})
        return NOT_FOUND

    def _klines(self, market: Market, params: Mapping[str, str]) -> Reply:
        symbol, interval = required(params, "symbol"), required(params, "interval")
        if symbol not in self.source.symbols(market):
            return INVALID_SYMBOL
        start, end, limit = int_param(params, "startTime"), int_param(params, "endTime"), int_param(params, "limit")
        rows = self.source.rows(market, symbol, interval, self.now_ms()) if interval in INTERVALS else None
        if rows is None:
            return INVALID_INTERVAL
        limit = min(DEFAULT_KLINE_LIMIT if limit is None else max(limit, 1), KLINE_LIMITS[market])
        length = interval_ms(interval)
        return Reply(200, [kline_json(row, length, market) for row in window(rows, start, end, limit)])

    def _ticker(self, market: Market, params: Mapping[str, str]) -> Reply:
        listed = self.source.symbols(market)
        now_ms = self.now_ms()

        def entry(symbol: str) -> dict[str, Any]:
            price = format_decimal(self.source.last_price(market, symbol, now_ms), DECIMAL_PLACES[market])
            return {"symbol": symbol, "price": price} | ({"time": now_ms} if market is Market.FUTURES else {})

        if "symbol" in params:
            return Reply(200, entry(params["symbol"])) if params["symbol"] in listed else INVALID_SYMBOL
        if "symbols" in params and market is Market.SPOT:
            try:
                wanted = json.loads(params["symbols"])
            except ValueError:
                wanted = None
            if not isinstance(wanted, list) or not wanted or not all(isinstance(s, str) for s in wanted):
                return error(-1100, "Illegal characters found in parameter 'symbols'.")
            # Like Binance: one unknown symbol fails the whole batch.
            if any(symbol not in listed for symbol in wanted):
                return INVALID_SYMBOL
            return Reply(200, [entry(symbol) for symbol in wanted])
        return Reply(200, [entry(symbol) for symbol in sorted(listed)])

    def _closed_native_rows(self, market: Market, symbol: str) -> tuple[Sequence[Row], int]:
        """The source's own candles that have closed by the exchange's clock, and their length."""
        native = self.source.native_interval(market, symbol)
        length, now_ms = interval_ms(native), self.now_ms()
        rows = self.source.rows(market, symbol, native, now_ms) or ()
        return rows[:bisect_right(rows, now_ms - length, key=lambda row: row[0])], length

    def _agg_trades(self, market: Market, params: Mapping[str, str]) -> Reply:
        symbol = required(params, "symbol")
        if symbol not in self.source.symbols(market):
            return INVALID_SYMBOL
        from_id, start, end = int_param(params, "fromId"), int_param(params, "startTime"), int_param(params, "endTime")
        limit = int_param(params, "limit")
        limit = min(DEFAULT_TRADES_LIMIT if limit is None else max(limit, 1), TRADES_LIMIT)
        if start is not None and end is not None and end - start >= MAX_TRADES_WINDOW_MS:
            return error(-1127, "More than 1 hours between startTime and endTime.")
        rows, length = self._closed_native_rows(market, symbol)
        per = self.trades_per_candle
        if from_id is not None:
            index, low, high = from_id // per, from_id, None
        elif start is not None:
            index, low, high = max(0, bisect_right(rows, start, key=lambda row: row[0]) - 1), None, end
        else:  # the most recent trades
            index, low, high = max(0, len(rows) - (limit + per - 1) // per), None, None
        recent = from_id is None and start is None
        trades: list[dict[str, Any]] = []
        while index < len(rows) and (recent or len(trades) < limit):
            row = rows[index]
            if high is not None and row[0] > high:
                break
            order = self.tape_orders.get(row[0]) or self.tape_order or natural_order(row)
            for trade in candle_trades(index, row, length, per, order, market is Market.SPOT):
                if (low is None or trade["a"] >= low) and (start is None or from_id is not None or trade["T"] >= start) \
                        and (high is None or trade["T"] <= high):
                    trades.append(trade)
            index += 1
        trades = trades[-limit:] if recent else trades[:limit]
        with self._lock:
            fault = self.tape_faults.pop(0) if self.tape_faults else self.bad_tape
        return Reply(200, spoil(trades, fault) if fault else trades)

    def _funding_rate(self, params: Mapping[str, str]) -> Reply:
        symbol = required(params, "symbol")
        if symbol not in self.source.symbols(Market.FUTURES):
            return INVALID_SYMBOL
        start, end, limit = int_param(params, "startTime"), int_param(params, "endTime"), int_param(params, "limit")
        limit = min(DEFAULT_FUNDING_LIMIT if limit is None else max(limit, 1), FUNDING_LIMIT)
        rows, length = self._closed_native_rows(Market.FUTURES, symbol)
        events = funding_events(symbol, rows, length, self.now_ms(), 0 if start is None else start,
                                self.now_ms() if end is None else end)
        # From startTime on, the first `limit`; without it, the latest `limit`.
        answer = [e for _, e in zip(range(limit), events)] if start is not None else list(events)[-limit:]
        with self._lock:
            fault = self.funding_faults.pop(0) if self.funding_faults else None
        if fault == "missing_field":
            answer = [{k: v for k, v in e.items() if k != "fundingRate"} for e in answer] or [{"symbol": symbol}]
        elif fault == "no_mark_price":
            answer = [{**e, "markPrice": ""} for e in answer]
        elif fault is not None:
            raise ValueError(f"unknown funding fault {fault!r} (one of {', '.join(FUNDING_FAULTS)})")
        return Reply(200, answer)

    def _exchange_info(self, market: Market, params: Mapping[str, str]) -> Reply:
        symbols = sorted(self.source.symbols(market))
        if "symbol" in params:
            if params["symbol"] not in symbols:
                return INVALID_SYMBOL
            symbols = [params["symbol"]]
        listed = [{"symbol": symbol, "status": "TRADING"} for symbol in symbols]
        return Reply(200, {"timezone": "UTC", "serverTime": self.now_ms(), "symbols": listed})


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
        exchange: SimulatedExchange = self.server.exchange  # type: ignore[attr-defined]
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
