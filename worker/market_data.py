"""Binance public market data: the one module that knows Binance's URLs and JSON shapes.

Everything above it sees `MarketData`: closed `Candle`s, latest prices, whether a symbol is
listed, the aggregate trades inside a candle (`agg_trades`, read through `TapeReader` once per
candle a tick needs) and a futures contract's funding history (`funding_rates`). Retries, backoff and rate-limit pauses live here once, in `BinanceClient._get_json`.
Requests go out through `http.client` over kept-alive connections (`Connections`): a worker
tick asks once per symbol, and `requests` (or urllib3 under it) cost more CPU per request than
everything else the tick does.
"""

import base64
import errno
import gzip
import http.client
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlencode, urlsplit

import requests.certs

from shared.candles import Candle, interval_length
from shared.clock import ONE_MS, from_ms, to_ms
from shared.funding import FundingEvent
from shared.kinds import Market
from shared.tape import AggTrade, InconsistentTape, check_tape

log = logging.getLogger(__name__)

T = TypeVar("T")


# The most rows one klines request may ask for (Binance's documented maxima).
PAGE_LIMITS: dict[Market, int] = {Market.SPOT: 1000, Market.FUTURES: 1500}
_PATHS: dict[Market, str] = {Market.SPOT: "/api/v3", Market.FUTURES: "/fapi/v1"}

# Like `requests`: compressed answers are welcome (a page of 1,000 klines shrinks ~5x).
_HEADERS = {"Accept-Encoding": "gzip", "User-Agent": "signalproof"}
INVALID_SYMBOL = -1121  # Binance error code for "Invalid symbol."
# aggTrades and fundingRate pages (Binance: "Default 500; max 1000" and "Default 100; max 1000").
TAPE_PAGE_LIMIT = 1000
FUNDING_PAGE_LIMIT = 1000
# aggTrades refuses a startTime..endTime window of an hour or more (-1127): longer candles are
# looked into an hour at a time until their first trade is found, then paged by id.
TAPE_WINDOW = timedelta(hours=1)
RATE_LIMIT_STATUSES = (429, 418)  # 418 = IP banned for ignoring 429s; both send Retry-After
MAX_BACKOFF_SECONDS = 10.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class ExchangeError(Exception):
    """A transient exchange failure that survived the retries (connection error, timeout,
    5xx, malformed body, rate-limit that outlasted the cap, other 4xx)."""


class RequestRefused(ExchangeError):
    """The exchange refused the request itself (a 4xx other than a rate limit or an unknown
    symbol), e.g. an interval it does not serve: not retried, asking again will not help."""


class ExchangeUnreachable(ExchangeError):
    """The exchange's host does not resolve or refuses connections: not retried (another
    attempt a second later would get the same answer); the next tick tries again."""


class UnknownSymbol(Exception):
    """The exchange says the symbol does not exist (Binance 400 with code -1121 'Invalid symbol.')."""


class MalformedBody(ValueError):
    """A 200 answer whose body is not what Binance documents; retried like a 5xx."""


class BadTape(ExchangeError):
    """The aggregate trades of a candle cannot be trusted: empty, out of order, truncated (a gap
    in the ids), a trade outside the window, or (`read_tape`) inconsistent with the candle. The
    caller falls back to the candle rule, flagged `assumed`; nothing is changed on such a tape."""


class MarketData(Protocol):
    def page_limit(self, market: Market) -> int:
        """The most candles one `klines` call returns (a full page means: there may be more)."""
        ...

    def klines(
        self, market: Market, symbol: str, interval: str, start: datetime, now: datetime, limit: int | None = None
    ) -> list[Candle]:
        """One request: closed candles with open_time >= start, ascending, at most `limit`."""
        ...

    def latest_prices(self, market: Market, symbols: Collection[str]) -> dict[str, Decimal]:
        """One batched request; symbols the exchange does not know are absent from the result."""
        ...

    def symbol_exists(self, market: Market, symbol: str, interval: str, now: datetime) -> bool:
        """True if listed, False if the exchange says "Invalid symbol"."""
        ...

    def agg_trades(self, market: Market, symbol: str, start: datetime, end: datetime) -> list[AggTrade]:
        """Every aggregate trade with start <= time < end (a candle: its open and its close), in
        order, checked (`BadTape` when empty, out of order, truncated or outside the window)."""
        ...

    def funding_rates(self, symbol: str, start: datetime, end: datetime) -> list[FundingEvent]:
        """Every funding event of a futures `symbol` with start <= time <= end, oldest first."""
        ...


# --- pure parsing: Binance JSON -> our values ---------------------------------------------




def parse_price(value: object) -> Decimal:
    """A Binance price: a decimal string ("0.00005352"), or a JSON number parsed as Decimal."""
    if type(value) is not str and (isinstance(value, bool) or not isinstance(value, (str, int, Decimal))):
        raise MalformedBody(f"price {value!r} is not a decimal")
    try:
        price = Decimal(value) if isinstance(value, str) else Decimal(str(value))
    except InvalidOperation:
        raise MalformedBody(f"price {value!r} is not a decimal") from None
    if not price.is_finite() or price <= 0:
        raise MalformedBody(f"price {value!r} is not a finite positive number")
    return price


def parse_kline(row: object) -> Candle:
    """One row `[openTime, "open", "high", "low", "close", ...]` (Binance sends 12 fields)."""
    if not isinstance(row, list) or len(row) < 5:
        raise MalformedBody(f"kline row {row!r} is not a list of at least 5 fields")
    open_ms = row[0]
    if isinstance(open_ms, bool) or not isinstance(open_ms, int) or open_ms < 0:
        raise MalformedBody(f"kline open time {open_ms!r} is not epoch milliseconds")
    # (Written out, not a generator: a catch-up parses a hundred thousand of these.)
    open_, high, low, close = parse_price(row[1]), parse_price(row[2]), parse_price(row[3]), parse_price(row[4])
    # The trade rules compare levels with low/high and fill at the open: a candle whose
    # open or close lies outside its own range is corrupt, never something to trade on.
    if not (low <= open_ <= high and low <= close <= high):
        raise MalformedBody(f"kline {row[:5]!r} is inconsistent (needs low <= open, close <= high)")
    return Candle(open_time=from_ms(open_ms), open=open_, high=high, low=low, close=close)


def parse_klines(body: object) -> list[Candle]:
    if not isinstance(body, list):
        raise MalformedBody(f"klines body is a {type(body).__name__}, not a list")
    candles = [parse_kline(row) for row in body]
    for earlier, later in zip(candles, candles[1:]):
        if later.open_time <= earlier.open_time:
            raise MalformedBody(f"klines not strictly ascending at {later.open_time.isoformat()}")
    return candles


def parse_prices(body: object, wanted: Collection[str]) -> dict[str, Decimal]:
    """`[{"symbol": "ETHBTC", "price": "0.1044"}, ...]` -> prices of the wanted symbols.

    Entries for symbols nobody asked for are not inspected: a futures answer lists every
    contract, and one odd entry there must not stop the prices we need.
    """
    if not isinstance(body, list):
        raise MalformedBody(f"ticker body is a {type(body).__name__}, not a list")
    prices: dict[str, Decimal] = {}
    for entry in body:
        if not isinstance(entry, dict) or not isinstance(entry.get("symbol"), str):
            raise MalformedBody(f"ticker entry {entry!r} has no symbol")
        if entry["symbol"] in wanted:
            prices[entry["symbol"]] = parse_price(entry.get("price"))
    return prices


def _ms(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedBody(f"{what} {value!r} is not epoch milliseconds")
    return value


def _quantity(value: object) -> Decimal:
    if not isinstance(value, str):
        raise MalformedBody(f"quantity {value!r} is not a decimal string")
    try:
        quantity = Decimal(value)
    except InvalidOperation:
        raise MalformedBody(f"quantity {value!r} is not a decimal") from None
    if not quantity.is_finite() or quantity < 0:
        raise MalformedBody(f"quantity {value!r} is not a finite non-negative number")
    return quantity


def parse_agg_trade(entry: object) -> AggTrade:
    """`{"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781, "T": 1498793709153,
    "m": true, ...}` (spot adds "M"; other keys are ignored)."""
    if not isinstance(entry, dict):
        raise MalformedBody(f"aggregate trade {entry!r} is not an object")
    missing = [key for key in ("a", "p", "q", "T", "m") if key not in entry]
    if missing:
        raise MalformedBody(f"aggregate trade {entry!r} lacks {', '.join(missing)}")
    if not isinstance(entry["m"], bool):
        raise MalformedBody(f"aggregate trade {entry['a']!r}: 'm' is not a boolean")
    return AggTrade(id=_ms(entry["a"], "aggregate trade id"), price=parse_price(entry["p"]),
                    quantity=_quantity(entry["q"]), time=from_ms(_ms(entry["T"], "trade time")),
                    buyer_maker=entry["m"])


def parse_agg_trades(body: object) -> list[AggTrade]:
    if not isinstance(body, list):
        raise MalformedBody(f"aggTrades body is a {type(body).__name__}, not a list")
    return [parse_agg_trade(entry) for entry in body]


def check_window(trades: list[AggTrade], start: datetime, end: datetime) -> None:
    """`BadTape` unless `trades` is a whole, ordered tape of [start, end): not empty, ids
    consecutive (Binance numbers a symbol's aggregate trades without gaps), times never going
    back, all inside the window."""
    window = f"[{start.isoformat()}, {end.isoformat()})"
    if not trades:
        raise BadTape(f"no aggregate trades in {window}")
    for earlier, later in zip(trades, trades[1:]):
        if later.id <= earlier.id or later.time < earlier.time:
            raise BadTape(f"aggregate trades out of order in {window}: {later.id} after {earlier.id}")
        if later.id != earlier.id + 1:
            raise BadTape(f"aggregate trades truncated in {window}: {earlier.id} then {later.id}")
    for trade in trades:
        if not start <= trade.time < end:
            raise BadTape(f"aggregate trade {trade.id} at {trade.time.isoformat()} is outside {window}")


def parse_funding_event(entry: object) -> FundingEvent:
    """`{"symbol": "BTCUSDT", "fundingTime": 1698768000000, "fundingRate": "0.00010000",
    "markPrice": "34287.54619963"}`.

    Every key must be there: a missing or null field is an error, never a guess. The one
    documented exception is Binance's oldest history, which has `"markPrice": ""`: that event is
    kept with no mark price (shared/funding.py says how such an event is priced).
    """
    if not isinstance(entry, dict):
        raise MalformedBody(f"funding entry {entry!r} is not an object")
    missing = [key for key in ("fundingTime", "fundingRate", "markPrice") if entry.get(key) is None]
    if missing:
        raise MalformedBody(f"funding entry {entry!r} lacks {', '.join(missing)}")
    rate_text = entry["fundingRate"]
    try:
        rate = Decimal(rate_text) if isinstance(rate_text, str) and rate_text.strip() else None
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite():
        raise MalformedBody(f"funding rate {rate_text!r} is not a decimal")
    mark = None if entry["markPrice"] == "" else parse_price(entry["markPrice"])
    return FundingEvent(time=from_ms(_ms(entry["fundingTime"], "funding time")), rate=rate, mark_price=mark)


def parse_funding(body: object) -> list[FundingEvent]:
    if not isinstance(body, list):
        raise MalformedBody(f"fundingRate body is a {type(body).__name__}, not a list")
    events = [parse_funding_event(entry) for entry in body]
    for earlier, later in zip(events, events[1:]):
        if later.time <= earlier.time:
            raise MalformedBody(f"funding events not strictly ascending at {later.time.isoformat()}")
    return events


def closed_since(candles: list[Candle], interval: timedelta, start: datetime, now: datetime) -> list[Candle]:
    """Candles opening at or after `start` that have closed by `now` (the forming one is dropped)."""
    return [c for c in candles if c.open_time >= start and c.open_time + interval <= now]


def retry_after_seconds(header: str | None) -> float:
    """Binance sends whole seconds; anything unreadable gets a short, safe default."""
    try:
        seconds = float(header) if header is not None else DEFAULT_RETRY_AFTER_SECONDS
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS
    return seconds if seconds == seconds and seconds >= 0 else DEFAULT_RETRY_AFTER_SECONDS


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-finite JSON number {name}")


def decode_json(content: bytes) -> Any:
    """JSON with every number as an exact Decimal (never a float) and NaN/Infinity refused."""
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedBody(f"body is not JSON ({error})") from None


def client_error(status: int, content: bytes, where: str, params: Mapping[str, str]) -> Exception:
    """The exception for a 4xx other than 429/418: UnknownSymbol for -1121, else RequestRefused."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if status == 400 and isinstance(body, dict) and body.get("code") == INVALID_SYMBOL:
        symbol = params.get("symbol") or params.get("symbols")
        return UnknownSymbol(f"{symbol}: invalid symbol (Binance -1121 at {where})")
    return RequestRefused(f"{where}: HTTP {status}: {_text(content)}")


def _text(content: bytes) -> str:
    return content[:200].decode("utf-8", errors="replace")


class Connections:
    """Kept-alive HTTP(S) connections to one base URL, shared by the threads of one client.

    Through the proxy the environment names for the URL (HTTPS_PROXY/HTTP_PROXY unless NO_PROXY
    says otherwise; an https URL is tunnelled with CONNECT), and TLS verified against the CA
    bundle `requests` would use (REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else certifi's). A kept
    connection the server has closed meanwhile is noticed before it is used, and replaced.
    """

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")  # a base URL may hold a path (a mirror behind a gateway)
        self.timeout = timeout
        ca_certs = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or requests.certs.where()
        self.context = ssl.create_default_context(cafile=ca_certs) if self.https else None
        proxy = urllib.request.getproxies().get(parts.scheme)
        self.proxy = urlsplit(proxy) if proxy and not urllib.request.proxy_bypass(self.host) else None
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def get(self, path: str) -> tuple[int, str | None, bytes]:
        """GET `path` (with its query): the status, the Retry-After header and the decoded body."""
        connection = self._take()
        target = self.prefix + path
        if self.proxy is not None and not self.https:  # a plain HTTP proxy takes the whole URL
            target = f"http://{self.host}:{self.port}{target}"
        try:
            connection.request("GET", target, headers=_HEADERS)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            with self.lock:
                self.idle.append(connection)
        content = _decoded(body, response.getheader("Content-Encoding"))
        return response.status, response.getheader("Retry-After"), content

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self.lock:
                connection = self.idle.pop() if self.idle else None
            if connection is None:
                return self._new()
            if not _closed_by_peer(connection):
                return connection
            connection.close()

    def _new(self) -> http.client.HTTPConnection:
        if self.proxy is None:
            if self.https:
                return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        proxy_port = self.proxy.port or 80
        if not self.https:
            return http.client.HTTPConnection(self.proxy.hostname or "", proxy_port, timeout=self.timeout)
        connection = http.client.HTTPSConnection(self.proxy.hostname or "", proxy_port, timeout=self.timeout,
                                                 context=self.context)
        headers = {}
        if self.proxy.username is not None:
            credentials = f"{unquote(self.proxy.username)}:{unquote(self.proxy.password or '')}"
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        connection.set_tunnel(self.host, self.port, headers=headers)
        return connection


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable has been closed (or spoken to) by the server."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed meanwhile, or a descriptor select cannot watch
        return True


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body as sent before compression (a body that does not decompress is malformed)."""
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as error:
        raise MalformedBody(f"{encoding} body does not decompress ({error})") from None
    raise MalformedBody(f"unexpected Content-Encoding {encoding!r}")


# --- the client ---------------------------------------------------------------------------


class BinanceClient:
    """`MarketData` over Binance's public REST API (spot and USDⓈ-M futures)."""

    def __init__(
        self,
        *,
        spot_url: str,
        futures_url: str,
        timeout: float = 10.0,
        retries: int = 5,
        retry_after_cap: float = 60.0,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_urls: dict[Market, str] = {Market.SPOT: spot_url.rstrip("/"), Market.FUTURES: futures_url.rstrip("/")}
        self.timeout = timeout
        self.retries = retries
        self.retry_after_cap = retry_after_cap
        self.backoff_base = backoff_base
        self.sleep = sleep
        self.monotonic = monotonic
        self.connections = {market: Connections(url, timeout=timeout) for market, url in self.base_urls.items()}
        self.requests_made = 0
        # host -> monotonic time before which nothing is sent there (after a 429/418).
        self.paused_until: dict[str, float] = {}
        # Scheduler jobs may share one client from several threads.
        self._lock = threading.Lock()

    def page_limit(self, market: Market) -> int:
        return PAGE_LIMITS[Market(market)]

    def close(self) -> None:
        """Release pooled connections (the worker calls it on shutdown)."""
        for connections in self.connections.values():
            connections.close()

    def klines(
        self, market: Market, symbol: str, interval: str, start: datetime, now: datetime, limit: int | None = None
    ) -> list[Candle]:
        length = interval_length(interval)
        page = self.page_limit(market) if limit is None else limit
        if not 1 <= page <= self.page_limit(market):
            raise ValueError(f"limit {limit} outside 1..{self.page_limit(market)} for {market}")
        params = {"symbol": symbol, "interval": interval, "startTime": str(to_ms(start)), "limit": str(page)}
        to_ms(now)  # refuse a naive `now` before spending a request
        candles = self._get_json(market, "klines", params, parse_klines)
        return closed_since(candles, length, start, now)[:page]

    def latest_prices(self, market: Market, symbols: Collection[str]) -> dict[str, Decimal]:
        wanted = frozenset(symbols)
        if not wanted:
            return {}
        if Market(market) is Market.FUTURES:
            # The futures ticker has no multi-symbol form: all contracts in one light request.
            return self._get_json(market, "ticker/price", {}, lambda body: parse_prices(body, wanted))
        try:
            return self._get_json(market, "ticker/price", {"symbols": _symbols_param(wanted)},
                                  lambda body: parse_prices(body, wanted))
        except UnknownSymbol:
            # Spot refuses the whole batch if one symbol is unknown (e.g. delisted); only
            # then do we ask one by one, so that the known symbols still get a price.
            return self._prices_one_by_one(market, wanted)

    def symbol_exists(self, market: Market, symbol: str, interval: str, now: datetime) -> bool:
        # A one-row klines request at the interval the trades will use: it answers -1121 for
        # unknown symbols like exchangeInfo does, at a fraction of the weight, and works on any
        # server that serves the candles we need (whatever else it serves).
        try:
            self._get_json(market, "klines", {"symbol": symbol, "interval": interval, "limit": "1"}, parse_klines)
        except UnknownSymbol:
            return False
        return True

    def agg_trades(self, market: Market, symbol: str, start: datetime, end: datetime) -> list[AggTrade]:
        """The tape of [start, end): the first page by startTime/endTime (Binance's endTime is
        inclusive: end − 1 ms), then by fromId until a trade lies past the end. Each request has
        the retries and pauses of `_get_json`; the whole tape is then checked (`BadTape`)."""
        if not start < end:
            raise ValueError(f"empty window [{start}, {end})")

        def page_from(params: dict[str, str]) -> list[AggTrade]:
            return self._get_json(market, "aggTrades", {"symbol": symbol, **params, "limit": str(TAPE_PAGE_LIMIT)},
                                  parse_agg_trades)

        trades: list[AggTrade] = []
        window_start = start
        while not trades and window_start < end:  # an hour at a time, until the first trade
            window_end = min(end, window_start + TAPE_WINDOW)
            trades = page_from({"startTime": str(to_ms(window_start)), "endTime": str(to_ms(window_end) - 1)})
            window_start = window_end
        # A full page may have more behind it, and so may a window that ended before the candle
        # did: carry on by id until a trade lies past the end (or a page comes back short: the
        # exchange has no later trade yet).
        more = len(trades) == TAPE_PAGE_LIMIT or window_start < end
        while trades and more and trades[-1].time < end:
            page = page_from({"fromId": str(trades[-1].id + 1)})
            trades.extend(page)
            more = len(page) == TAPE_PAGE_LIMIT
        # The next candle's trades, read with the last page, are not this tape's. (A trade past
        # the end in the middle of the tape leaves a gap in the ids: `check_window` says so.)
        inside = [trade for trade in trades if trade.time < end]
        check_window(inside, start, end)
        return inside

    def funding_rates(self, symbol: str, start: datetime, end: datetime) -> list[FundingEvent]:
        """`/fapi/v1/fundingRate`, paged by time: Binance answers at most `limit` events from
        startTime on (both bounds inclusive), ascending; the next page starts 1 ms after the last."""
        events: list[FundingEvent] = []
        since = start
        while since <= end:
            params = {"symbol": symbol, "startTime": str(to_ms(since)), "endTime": str(to_ms(end)),
                      "limit": str(FUNDING_PAGE_LIMIT)}
            page = self._get_json(Market.FUTURES, "fundingRate", params, parse_funding)
            if any(not start <= e.time <= end for e in page) or (events and page and page[0].time <= events[-1].time):
                raise ExchangeError(f"fundingRate for {symbol}: events outside [{start}, {end}] or repeated")
            events.extend(page)
            if len(page) < FUNDING_PAGE_LIMIT:
                return events
            since = page[-1].time + ONE_MS
        return events

    def _prices_one_by_one(self, market: Market, wanted: frozenset[str]) -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {}
        for symbol in sorted(wanted):
            try:
                prices |= self._get_json(market, "ticker/price", {"symbols": _symbols_param({symbol})},
                                         lambda b: parse_prices(b, wanted))
            except UnknownSymbol:
                continue
        return prices

    def _get_json(self, market: Market, endpoint: str, params: Mapping[str, str], parse: Callable[[Any], T]) -> T:
        """GET, decode and parse, with every retry, backoff and rate-limit pause in one place.

        Transient failures (connection, timeout, 5xx, malformed 200) back off exponentially;
        429/418 pause the whole host for Retry-After (capped) so no call hammers it meanwhile.
        """
        market = Market(market)
        path = f"{_PATHS[market]}/{endpoint}"
        parts = urlsplit(self.base_urls[market] + path)
        host, where = parts.netloc, f"{parts.netloc}{parts.path}"
        if params:
            path += "?" + urlencode(params)
        last_error = "no attempt made"
        for attempt in range(self.retries + 1):
            self._wait_for_host(host)
            with self._lock:
                self.requests_made += 1
            try:
                status, retry_after, content = self.connections[market].get(path)
            except (http.client.HTTPException, OSError, MalformedBody) as error:
                if (reason := unreachable_reason(error)) is not None:
                    raise ExchangeUnreachable(f"{host} {reason}") from None
                last_error = f"{type(error).__name__}: {error}"
            else:
                if status in RATE_LIMIT_STATUSES:
                    pause = min(retry_after_seconds(retry_after), self.retry_after_cap)
                    self._pause_host(host, pause)
                    last_error = f"HTTP {status} (rate limited; host paused {pause:g} s)"
                    log.warning("%s answered %s: pausing %s for %g s", where, status, host, pause)
                    continue  # the pause is the wait; no extra backoff on top of it
                if 400 <= status < 500:
                    raise client_error(status, content, where, params)  # our request is wrong: retrying won't help
                if status != 200:
                    last_error = f"HTTP {status}: {_text(content)}"
                else:
                    try:
                        return parse(decode_json(content))
                    except MalformedBody as error:
                        last_error = f"malformed body: {error}"
            if attempt < self.retries:
                log.info("%s failed (%s); retry %d of %d", where, last_error, attempt + 1, self.retries)
                self.sleep(min(self.backoff_base * 2**attempt, MAX_BACKOFF_SECONDS))
        raise ExchangeError(f"{where}: gave up after {self.retries + 1} attempts; last error: {last_error}")

    def _wait_for_host(self, host: str) -> None:
        # One sleep for the remaining pause (not a polling loop): correct with a real clock,
        # and it keeps an injected fake sleep from spinning forever.
        with self._lock:
            remaining = self.paused_until.get(host, 0.0) - self.monotonic()
        if remaining > 0:
            self.sleep(remaining)

    def _pause_host(self, host: str, seconds: float) -> None:
        with self._lock:
            until = self.monotonic() + seconds
            self.paused_until[host] = max(until, self.paused_until.get(host, 0.0))


class TapeReader:
    """The tapes of one monitor tick: at most one read per (market, symbol, candle), however
    many trades are undecided in that candle, and a failure is remembered as well as a tape.

    A tape is read (`agg_trades`), then checked against its candle (`shared.tape.check_tape`);
    a bad or inconsistent tape is read again up to `attempts` times in all (a just-closed
    candle's trades may still be arriving), then `BadTape`: the caller settles that candle by
    the candle rule, flagged `assumed`, and changes nothing on the strength of a bad tape.
    """

    def __init__(self, market_data: MarketData, interval: str, *, attempts: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.market_data = market_data
        self.length = interval_length(interval)
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._tapes: dict[tuple[Market, str, datetime], list[AggTrade] | ExchangeError] = {}

    @property
    def reads(self) -> int:
        """Candles whose tape was read (or tried) in this reader's life."""
        return len(self._tapes)

    def tape(self, market: Market, symbol: str, candle: Candle) -> list[AggTrade]:
        """The checked tape of `candle`, or `ExchangeError` (`BadTape` for a bad tape)."""
        key = (Market(market), symbol, candle.open_time)
        if key not in self._tapes:
            self._tapes[key] = self._read(key[0], symbol, candle)
        found = self._tapes[key]
        if isinstance(found, ExchangeError):
            raise found
        return found

    def _read(self, market: Market, symbol: str, candle: Candle) -> list[AggTrade] | ExchangeError:
        problem: ExchangeError = BadTape("no attempt made")
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
            try:
                trades = self.market_data.agg_trades(market, symbol, candle.open_time, candle.open_time + self.length)
                check_tape(candle, self.length, trades)
                return trades
            except InconsistentTape as error:
                problem = BadTape(f"{symbol} {candle.open_time.isoformat()}: {error}")
            except BadTape as error:
                problem = error
            except ExchangeError as error:  # the requests themselves failed after their retries
                return error
            log.info("tape of %s %s unusable (%s); attempt %d of %d", symbol, candle.open_time.isoformat(), problem,
                     attempt + 1, self.attempts)
        return problem


def unreachable_reason(error: BaseException) -> str | None:
    """"does not resolve" / "refuses connections" when that is what lies under a requests
    error (socket errors, or what wraps them, through args, `reason` and causes), else None."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "does not resolve (DNS lookup failed)"
        if isinstance(current, ConnectionRefusedError) or (
                isinstance(current, OSError) and current.errno == errno.ECONNREFUSED):
            return "refuses connections"
        if type(current).__name__ == "NameResolutionError":  # urllib3 2.x, around the gaierror
            return "does not resolve (DNS lookup failed)"
        pending.extend((*current.args, getattr(current, "reason", None), current.__cause__, current.__context__))
    return None


def _symbols_param(symbols: Collection[str]) -> str:
    # Binance wants a compact JSON array (no spaces); requests URL-encodes it.
    return json.dumps(sorted(symbols), separators=(",", ":"))
