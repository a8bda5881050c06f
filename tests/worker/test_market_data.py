"""The Binance client, over real HTTP against the local fake exchange serving recorded candles.

Sleeps and the monotonic clock are injected (`FakeClock`), so backoff and rate-limit pauses
are asserted exactly and cost no wall time; only the "timeout" fault waits (0.3 s).
"""

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_exchange import FAULTS, FakeExchange, candles_dir, read_candles
from fakes import InMemoryMarket
from shared.candles import Candle
from shared.kinds import Market
from worker.market_data import (
    BinanceClient,
    ExchangeError,
    ExchangeUnreachable,
    MalformedBody,
    MarketData,
    UnknownSymbol,
    decode_json,
    parse_klines,
    retry_after_seconds,
)

SPOT, FUTURES = Market.SPOT, Market.FUTURES
UTC = timezone.utc
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)  # every recorded candle is closed by then
MINUTE = timedelta(minutes=1)
CLIENT_TIMEOUT = 0.3


@dataclass
class FakeClock:
    """Monotonic time that moves only when slept; each sleep remembers how many requests the
    exchange had received when it began (to prove nothing was sent during a pause)."""

    exchange: FakeExchange
    now: float = 1000.0
    sleeps: list[tuple[float, int]] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append((seconds, len(self.exchange.requests)))
        self.now += seconds

    @property
    def slept(self) -> list[float]:
        return [seconds for seconds, _ in self.sleeps]


def make_client(exchange: FakeExchange, clock: FakeClock, **over: Any) -> BinanceClient:
    options: dict[str, Any] = {
        "spot_url": exchange.url,
        "futures_url": exchange.url,
        "timeout": CLIENT_TIMEOUT,
        "sleep": clock.sleep,
        "monotonic": clock.monotonic,
    }
    return BinanceClient(**(options | over))


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    with FakeExchange(candles_dir()) as exchange:
        exchange.timeout_seconds = 1.0
        yield exchange


@pytest.fixture
def clock(exchange: FakeExchange) -> FakeClock:
    return FakeClock(exchange)


@pytest.fixture
def client(exchange: FakeExchange, clock: FakeClock) -> BinanceClient:
    return make_client(exchange, clock)


def recorded(market: Market, symbol: str, interval: str) -> list[Candle]:
    return read_candles(market, symbol, interval)


# --- candles: parsing, paging, closed-only, intervals -------------------------------------


def test_adabtc_prices_arrive_exactly(client: BinanceClient) -> None:
    candles = client.klines(SPOT, "ADABTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE, limit=2)

    # The first row of spot-ADABTC-1m.json, sent by the exchange as "0.00005352" etc.
    assert candles[0] == Candle(
        open_time=datetime(2018, 1, 20, 4, 55, tzinfo=UTC),
        open=Decimal("0.00005352"),
        high=Decimal("0.000054"),
        low=Decimal("0.00005348"),
        close=Decimal("0.000054"),
    )
    assert str(candles[1].low) == "0.00005337"
    assert all(isinstance(c.open, Decimal) and c.open_time.tzinfo is not None for c in candles)


def test_a_whole_page_equals_the_recording(client: BinanceClient) -> None:
    expected = recorded(SPOT, "ADABTC", "1m")
    assert client.klines(SPOT, "ADABTC", "1m", expected[0].open_time, FAR_FUTURE) == expected[:1000]


@pytest.mark.parametrize(("market", "symbol", "interval", "page"), [
    (SPOT, "ETHBTC", "1m", 1000),
    (FUTURES, "XRPUSDT", "5m", 1500),
])
def test_default_limit_is_the_markets_largest_page(
    client: BinanceClient, exchange: FakeExchange, market: Market, symbol: str, interval: str, page: int
) -> None:
    expected = recorded(market, symbol, interval)

    candles = client.klines(market, symbol, interval, expected[0].open_time, FAR_FUTURE)

    assert client.page_limit(market) == page
    assert candles == expected[:page]
    path, params = exchange.requests[-1]
    assert path == {SPOT: "/api/v3/klines", FUTURES: "/fapi/v1/klines"}[market]
    assert params == {"symbol": symbol, "interval": interval, "startTime": str(
        int(expected[0].open_time.timestamp()) * 1000), "limit": str(page)}


def test_futures_candles_are_the_recorded_5m_ones(client: BinanceClient) -> None:
    candles = client.klines(FUTURES, "XRPUSDT", "5m", datetime(2021, 11, 15, tzinfo=UTC), FAR_FUTURE, limit=2)
    assert candles == [
        Candle(datetime(2021, 11, 15, 0, 0, tzinfo=UTC), Decimal("1.1893"), Decimal("1.1954"), Decimal("1.1891"), Decimal("1.1941")),
        Candle(datetime(2021, 11, 15, 0, 5, tzinfo=UTC), Decimal("1.1941"), Decimal("1.1993"), Decimal("1.1934"), Decimal("1.1972")),
    ]


def test_paging_from_the_last_candle_walks_the_series_without_gaps_or_overlaps(client: BinanceClient) -> None:
    expected = recorded(SPOT, "XRPETH", "1m")  # 2469 rows with 1091 missing minutes
    walked: list[Candle] = []
    start = expected[0].open_time
    while page := client.klines(SPOT, "XRPETH", "1m", start, FAR_FUTURE):
        walked += page
        start = page[-1].open_time + MINUTE

    assert walked == expected
    assert client.requests_made == 4  # 1000 + 1000 + 469 + the empty answer that says "caught up"


def test_start_between_candle_opens_begins_at_the_next_candle(client: BinanceClient) -> None:
    expected = recorded(SPOT, "ETHBTC", "1m")
    start = expected[10].open_time + timedelta(seconds=30)
    assert client.klines(SPOT, "ETHBTC", "1m", start, FAR_FUTURE, limit=3) == expected[11:14]


def test_start_inside_an_exchange_gap_begins_after_the_gap(client: BinanceClient) -> None:
    expected = recorded(SPOT, "XRPETH", "1m")
    before_gap = next(i for i, (a, b) in enumerate(itertools.pairwise(expected)) if b.open_time - a.open_time > MINUTE)
    start = expected[before_gap].open_time + MINUTE
    assert client.klines(SPOT, "XRPETH", "1m", start, FAR_FUTURE, limit=1) == [expected[before_gap + 1]]


@pytest.mark.parametrize(("now_after_open", "closed"), [
    (timedelta(seconds=30), 50),  # candle 50 is still forming: dropped
    (timedelta(seconds=59, microseconds=999_999), 50),
    (MINUTE, 51),  # candle 50 closed exactly now
])
def test_only_closed_candles_are_returned(client: BinanceClient, now_after_open: timedelta, closed: int) -> None:
    expected = recorded(SPOT, "LTCBTC", "1m")
    now = expected[50].open_time + now_after_open
    assert client.klines(SPOT, "LTCBTC", "1m", expected[0].open_time, now, limit=200) == expected[:closed]


def test_nothing_closed_since_start_is_an_empty_list(client: BinanceClient) -> None:
    last = recorded(FUTURES, "XRPUSDT", "5m")[-1]
    assert client.klines(FUTURES, "XRPUSDT", "5m", last.open_time + timedelta(minutes=5), FAR_FUTURE) == []
    assert client.klines(FUTURES, "XRPUSDT", "5m", last.open_time, last.open_time + timedelta(minutes=4)) == []


def buckets(candles: list[Candle], minutes: int) -> list[Candle]:
    """Coarser candles computed here independently of the fake: open first, high max, low min,
    close last, grouped by epoch-aligned bucket."""
    size = timedelta(minutes=minutes)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    grouped = itertools.groupby(candles, key=lambda c: epoch + (c.open_time - epoch) // size * size)
    return [
        Candle(start, group[0].open, max(c.high for c in group), min(c.low for c in group), group[-1].close)
        for start, group in ((start, list(group)) for start, group in grouped)
    ]


@pytest.mark.parametrize(("market", "symbol", "native", "interval", "minutes"), [
    (SPOT, "ETHBTC", "1m", "5m", 5),
    (SPOT, "XRPETH", "1m", "15m", 15),
    (FUTURES, "XRPUSDT", "5m", "15m", 15),
])
def test_coarser_intervals_aggregate_the_recorded_candles(
    client: BinanceClient, market: Market, symbol: str, native: str, interval: str, minutes: int
) -> None:
    rows = recorded(market, symbol, native)
    start = rows[0].open_time
    expected = [c for c in buckets(rows, minutes) if c.open_time >= start][:300]

    assert client.klines(market, symbol, interval, start, FAR_FUTURE, limit=300) == expected


def test_an_interval_the_exchange_cannot_serve_is_an_error_without_retry(client: BinanceClient) -> None:
    with pytest.raises(ExchangeError, match="-1120"):
        client.klines(FUTURES, "XRPUSDT", "3m", datetime(2021, 11, 15, tzinfo=UTC), FAR_FUTURE)
    assert client.requests_made == 1


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_limit_beyond_the_page_is_refused_before_any_request(client: BinanceClient, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE, limit=limit)
    assert client.requests_made == 0


def test_naive_times_are_refused(client: BinanceClient) -> None:
    with pytest.raises(ValueError, match="naive"):
        client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20), FAR_FUTURE)
    assert client.requests_made == 0


# --- faults, retries, rate limits ---------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried_and_changes_nothing(
    client: BinanceClient, exchange: FakeExchange, clock: FakeClock, fault: str
) -> None:
    expected = recorded(SPOT, "ADABTC", "1m")[:100]
    exchange.faults = [fault]

    assert client.klines(SPOT, "ADABTC", "1m", expected[0].open_time, FAR_FUTURE, limit=100) == expected

    assert len(exchange.requests) == 2 and client.requests_made == 2
    # A rate limit waits out Retry-After (1 s from the fake); anything else backs off 0.5 s.
    assert clock.slept == ([1.0] if fault in ("429", "418") else [0.5])


def test_backoff_doubles_and_is_capped(exchange: FakeExchange, clock: FakeClock) -> None:
    client = make_client(exchange, clock, backoff_base=3.0)
    exchange.faults = ["500"] * 4
    client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE, limit=1)
    assert clock.slept == [3.0, 6.0, 10.0, 10.0]


def test_spent_retries_raise_a_readable_exchange_error(exchange: FakeExchange, clock: FakeClock) -> None:
    client = make_client(exchange, clock, retries=2)
    exchange.faults = ["503"] * 3

    with pytest.raises(ExchangeError) as raised:
        client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE)

    message = str(raised.value)
    assert exchange.url.removeprefix("http://") + "/api/v3/klines" in message
    assert "3 attempts" in message and "HTTP 503" in message
    assert len(exchange.requests) == 3


def test_a_body_that_stays_malformed_is_an_exchange_error(exchange: FakeExchange, clock: FakeClock) -> None:
    client = make_client(exchange, clock, retries=1)
    exchange.faults = ["wrong_shape", "wrong_shape"]
    with pytest.raises(ExchangeError, match="malformed body"):
        client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE)


def test_a_host_that_refuses_connections_fails_at_once_naming_it(exchange: FakeExchange, clock: FakeClock) -> None:
    """Not retried with backoff: the same answer would come back; the next tick tries again."""
    url = exchange.url
    exchange.stop()  # nothing listens on that port any more
    client = BinanceClient(spot_url=url, futures_url=url, retries=5, sleep=clock.sleep, monotonic=clock.monotonic)
    host = url.removeprefix("http://").rstrip("/")
    with pytest.raises(ExchangeUnreachable, match=f"^{host} refuses connections$"):
        client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE)
    assert (client.requests_made, clock.sleeps) == (1, [])
    assert issubclass(ExchangeUnreachable, ExchangeError)  # callers that wait out outages still do


def test_a_host_that_does_not_resolve_fails_at_once_naming_it(clock: FakeClock) -> None:
    url = "http://exchange.does-not-exist.invalid"  # .invalid never resolves (RFC 2606)
    client = BinanceClient(spot_url=url, futures_url=url, retries=5, sleep=clock.sleep, monotonic=clock.monotonic)
    with pytest.raises(ExchangeUnreachable, match="^exchange.does-not-exist.invalid does not resolve"):
        client.symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)
    assert (client.requests_made, clock.sleeps) == (1, [])


def test_the_proxy_the_environment_names_is_used_unless_no_proxy_says_otherwise(
    exchange: FakeExchange, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is read as `requests` read it: here the fake exchange plays the proxy (it
    answers the absolute-form request a client sends a proxy), for a host that does not exist."""
    monkeypatch.setenv("HTTP_PROXY", exchange.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = "http://exchange.does-not-exist.invalid"
    client = BinanceClient(spot_url=url, futures_url=url, retries=0, sleep=clock.sleep, monotonic=clock.monotonic)
    assert client.symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)
    assert exchange.requests_to("klines")[-1][1]["symbol"] == "ETHBTC"
    monkeypatch.setenv("NO_PROXY", "does-not-exist.invalid")
    direct = BinanceClient(spot_url=url, futures_url=url, retries=0, sleep=clock.sleep, monotonic=clock.monotonic)
    with pytest.raises(ExchangeUnreachable, match="does not resolve"):
        direct.symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)


def test_kept_alive_connections_are_reused_and_replaced_once_the_server_closes_them(
    client: BinanceClient, exchange: FakeExchange
) -> None:
    connections = client.connections[SPOT]
    client.symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)
    (kept,) = connections.idle
    client.symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)
    assert connections.idle == [kept]  # the same connection again
    assert kept.sock is not None
    kept.sock.shutdown(socket.SHUT_RD)  # as if the server had closed it while idle: readable at EOF
    client.symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)
    assert connections.idle and connections.idle[0] is not kept
    assert client.requests_made == 3  # no failed attempt on the way


@pytest.mark.parametrize("status", ["429", "418"])
def test_a_rate_limit_pauses_the_host_for_later_calls_too(
    exchange: FakeExchange, clock: FakeClock, status: str
) -> None:
    client = make_client(exchange, clock, retries=0)
    exchange.retry_after = "10"
    exchange.faults = [status]
    with pytest.raises(ExchangeError, match=f"HTTP {status}"):
        client.latest_prices(SPOT, ["ETHBTC"])
    assert clock.sleeps == []  # no retries left: the pause is left for whoever calls next

    clock.now += 4  # some other work happened meanwhile
    prices = client.latest_prices(FUTURES, ["XRPUSDT"])  # same host (the fake serves both)

    assert prices == {"XRPUSDT": Decimal("1.0713")}
    assert clock.sleeps == [(6.0, 1)]  # slept the rest of the pause, with no request sent in it
    assert len(exchange.requests) == 2


def test_retry_after_is_capped(exchange: FakeExchange, clock: FakeClock) -> None:
    client = make_client(exchange, clock, retry_after_cap=5.0)
    exchange.retry_after = "120"
    exchange.faults = ["429"]
    client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE, limit=1)
    assert clock.sleeps == [(5.0, 1)]


@pytest.mark.parametrize(("header", "seconds"), [(None, 1.0), ("soon", 1.0), ("7", 7.0), ("-3", 1.0)])
def test_retry_after_header_is_read_in_seconds(
    exchange: FakeExchange, clock: FakeClock, header: str | None, seconds: float
) -> None:
    client = make_client(exchange, clock)
    exchange.retry_after = header
    exchange.faults = ["418"]
    client.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE, limit=1)
    assert clock.slept == [seconds]
    assert retry_after_seconds(header) == seconds


def test_a_pause_holds_only_its_own_host(exchange: FakeExchange, clock: FakeClock) -> None:
    with FakeExchange(candles_dir()) as futures_exchange:
        client = make_client(exchange, clock, futures_url=futures_exchange.url, retries=0)
        exchange.faults = ["429"]
        with pytest.raises(ExchangeError):
            client.latest_prices(SPOT, ["ETHBTC"])

        assert client.latest_prices(FUTURES, ["XRPUSDT"]) == {"XRPUSDT": Decimal("1.0713")}
        assert clock.sleeps == []


# --- unknown symbols ----------------------------------------------------------------------


def test_an_unknown_symbol_is_said_at_once(client: BinanceClient, exchange: FakeExchange) -> None:
    with pytest.raises(UnknownSymbol, match="NOPEBTC"):
        client.klines(SPOT, "NOPEBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE)
    assert len(exchange.requests) == 1  # no retry: asking again will not list it


@pytest.mark.parametrize(("market", "symbol", "listed"), [
    (SPOT, "ETHBTC", True),
    (FUTURES, "XRPUSDT", True),
    (SPOT, "XRPUSDT", False),  # listed on futures only, in the fake
    (FUTURES, "NOPEUSDT", False),
])
def test_symbol_exists(client: BinanceClient, market: Market, symbol: str, listed: bool) -> None:
    assert client.symbol_exists(market, symbol, "1m" if market is SPOT else "5m", FAR_FUTURE) is listed
    assert client.requests_made == 1


def test_symbol_exists_retries_transient_faults_and_raises_when_they_persist(
    exchange: FakeExchange, clock: FakeClock
) -> None:
    exchange.faults = ["503"]
    assert make_client(exchange, clock).symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE) is True

    exchange.faults = ["timeout", "500"]
    with pytest.raises(ExchangeError):
        make_client(exchange, clock, retries=1).symbol_exists(SPOT, "ETHBTC", "1m", FAR_FUTURE)


# --- latest prices ------------------------------------------------------------------------


def test_spot_prices_are_one_batched_request(client: BinanceClient, exchange: FakeExchange) -> None:
    prices = client.latest_prices(SPOT, {"LTCBTC", "ETHBTC", "ADABTC"})

    assert prices == {
        "ETHBTC": recorded(SPOT, "ETHBTC", "1m")[-1].close,
        "LTCBTC": recorded(SPOT, "LTCBTC", "1m")[-1].close,
        "ADABTC": Decimal("0.00005144"),
    }
    assert exchange.requests == [("/api/v3/ticker/price", {"symbols": '["ADABTC","ETHBTC","LTCBTC"]'})]


def test_futures_prices_are_one_request_for_all_then_filtered(client: BinanceClient, exchange: FakeExchange) -> None:
    assert client.latest_prices(FUTURES, ["XRPUSDT", "NOPEUSDT"]) == {"XRPUSDT": Decimal("1.0713")}
    assert exchange.requests == [("/fapi/v1/ticker/price", {})]


def test_an_unknown_spot_symbol_does_not_cost_the_others_their_price(
    client: BinanceClient, exchange: FakeExchange
) -> None:
    # Binance refuses the whole batch for one unknown symbol; the client then asks singly.
    assert client.latest_prices(SPOT, ["ETHBTC", "NOPEBTC"]) == {"ETHBTC": Decimal("0.10441057")}
    assert [params["symbols"] for _, params in exchange.requests] == ['["ETHBTC","NOPEBTC"]', '["ETHBTC"]', '["NOPEBTC"]']


def test_no_symbols_no_request(client: BinanceClient) -> None:
    assert client.latest_prices(SPOT, []) == {}
    assert client.requests_made == 0


@pytest.mark.parametrize("fault", ["truncated", "garbage", "503", "429", "disconnect"])
def test_prices_survive_faults(client: BinanceClient, exchange: FakeExchange, fault: str) -> None:
    exchange.faults = [fault]
    assert client.latest_prices(SPOT, ["ETHBTC"]) == {"ETHBTC": Decimal("0.10441057")}


# --- a random fault schedule never changes what the client returns -------------------------


@pytest.fixture(scope="module")
def shared_exchange() -> Iterator[FakeExchange]:
    with FakeExchange(candles_dir()) as exchange:
        exchange.timeout_seconds = 1.0
        yield exchange


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=st.lists(st.sampled_from(FAULTS), max_size=4), market=st.sampled_from([SPOT, FUTURES]))
def test_a_fault_schedule_never_changes_the_candles(
    shared_exchange: FakeExchange, schedule: list[str], market: Market
) -> None:
    symbol, interval = {SPOT: ("ADABTC", "1m"), FUTURES: ("XRPUSDT", "5m")}[market]
    expected = recorded(market, symbol, interval)[:50]
    shared_exchange.faults = list(schedule)
    client = make_client(shared_exchange, FakeClock(shared_exchange))

    assert client.klines(market, symbol, interval, expected[0].open_time, FAR_FUTURE, limit=50) == expected
    assert client.requests_made == len(schedule) + 1
    assert shared_exchange.faults == []


@pytest.mark.parametrize("seed", range(3))
def test_a_seeded_random_fault_rate_never_changes_a_full_walk(seed: int) -> None:
    expected = recorded(SPOT, "XRPETH", "1m")
    with FakeExchange(candles_dir(), seed=seed) as exchange:
        exchange.fault_rate = 0.5
        exchange.timeout_seconds = 1.0
        client = make_client(exchange, FakeClock(exchange), retries=10)
        walked: list[Candle] = []
        start = expected[0].open_time
        while page := client.klines(SPOT, "XRPETH", "1m", start, FAR_FUTURE):
            walked += page
            start = page[-1].open_time + MINUTE
        faulted = client.requests_made - 4
    assert walked == expected
    assert faulted > 0  # the schedule really did inject faults


# --- strict body validation (pure) --------------------------------------------------------

GOOD_ROW = [1516424100000, "0.00005352", "0.000054", "0.00005348", "0.000054", "100380.6"]


@pytest.mark.parametrize("body", [
    {"foo": 1},
    "[]",
    [["1516424100000", "1", "1", "1", "1"]],  # open time as a string
    [[True, "1", "1", "1", "1"]],
    [[1516424100000, "1", "1", "1"]],  # four fields
    [GOOD_ROW[:1] + ["NaN", "1", "1", "1"]],
    [GOOD_ROW[:1] + ["Infinity", "1", "1", "1"]],
    [GOOD_ROW[:1] + ["0", "1", "0", "1"]],
    [GOOD_ROW[:1] + ["-1", "1", "1", "1"]],
    [GOOD_ROW[:1] + ["abc", "1", "1", "1"]],
    [GOOD_ROW[:1] + [None, "1", "1", "1"]],
    [GOOD_ROW[:1] + ["1", "1", "2", "1"]],  # high < low
    [GOOD_ROW[:1] + ["3", "2", "1", "1.5"]],  # opens above its high
    [GOOD_ROW, GOOD_ROW],  # not ascending
    ["abc"],
])
def test_malformed_kline_bodies_are_refused(body: object) -> None:
    with pytest.raises(MalformedBody):
        parse_klines(body)


def test_numbers_are_accepted_as_exact_decimals() -> None:
    body = decode_json(b"[[1516424100000, 5.352e-05, 0.000054, 5.348e-05, 5.4e-05, 1]]")
    [candle] = parse_klines(body)
    assert (candle.open, candle.close) == (Decimal("0.00005352"), Decimal("0.000054"))


@pytest.mark.parametrize("content", [b"", b"<html>", b"[[1, NaN]]", b"\xff\xfe"])
def test_undecodable_bodies_are_malformed(content: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode_json(content)


# --- the in-memory fake keeps the same contract as the client ----------------------------


@pytest.fixture(params=["http", "memory"])
def market_data(request: pytest.FixtureRequest, exchange: FakeExchange, clock: FakeClock) -> MarketData:
    if request.param == "memory":
        return InMemoryMarket.from_candle_dir(candles_dir())
    return make_client(exchange, clock)


@pytest.mark.parametrize(("market", "symbol", "interval", "limit"), [
    (SPOT, "ADABTC", "1m", 7), (SPOT, "ETHBTC", "5m", 20), (FUTURES, "XRPUSDT", "5m", 3), (FUTURES, "XRPUSDT", "1h", 4),
])
def test_fake_and_client_agree(market_data: MarketData, market: Market, symbol: str, interval: str, limit: int) -> None:
    rows = recorded(market, symbol, "1m" if market is SPOT else "5m")
    start, now = rows[100].open_time + timedelta(seconds=1), rows[400].open_time
    minutes = {"1m": 1, "5m": 5, "1h": 60}[interval]
    expected = [c for c in buckets(rows, minutes) if c.open_time >= start and c.open_time + timedelta(minutes=minutes) <= now]

    assert market_data.klines(market, symbol, interval, start, now, limit) == expected[:limit]
    assert market_data.klines(market, symbol, interval, start, start) == []
    assert market_data.symbol_exists(market, symbol, interval, now) is True
    assert market_data.symbol_exists(market, "NOPE" + symbol, interval, now) is False
    assert market_data.latest_prices(market, [symbol, "NOPE" + symbol]) == {symbol: rows[-1].close}
    with pytest.raises(UnknownSymbol):
        market_data.klines(market, "NOPE" + symbol, interval, start, now)


def test_the_in_memory_fake_can_fail_chosen_symbols() -> None:
    market = InMemoryMarket.from_candle_dir(candles_dir())
    market.failing = {"LTCBTC"}
    with pytest.raises(ExchangeError):
        market.klines(SPOT, "LTCBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE)
    with pytest.raises(ExchangeError):
        market.latest_prices(SPOT, ["ETHBTC", "LTCBTC"])
    assert market.klines(SPOT, "ETHBTC", "1m", datetime(2018, 1, 20, tzinfo=UTC), FAR_FUTURE, limit=1)
    assert market.requests_made == 3
