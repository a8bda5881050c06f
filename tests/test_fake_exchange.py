"""The fake exchange itself: it must look like Binance on the wire, or the client tests prove
nothing. Plain `requests` here, no client code."""

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests

from demo.exchange import SimulatedExchange
from demo.market import RandomWalkMarket
from demo.tape import DEFAULT_TRADES_PER_CANDLE, HIGH_FIRST, LOW_FIRST, candle_prices
from fake_exchange import FakeExchange, candles_dir, read_candles
from hypothesis import given
from hypothesis import strategies as st

from shared.candles import Candle
from shared.kinds import Market

ETHBTC_FIRST_MS = 1516423980000  # 2018-01-20 04:53 UTC


@pytest.fixture(scope="module")
def exchange() -> Iterator[FakeExchange]:
    with FakeExchange(candles_dir()) as exchange:
        yield exchange


@pytest.fixture(autouse=True)
def calm(exchange: FakeExchange) -> None:
    exchange.faults, exchange.fault_rate, exchange.retry_after = [], 0.0, "1"
    exchange.trades_per_candle, exchange.tape_order, exchange.tape_orders = DEFAULT_TRADES_PER_CANDLE, None, {}
    exchange.tape_faults, exchange.bad_tape, exchange.funding_faults = [], None, []


def get(exchange: FakeExchange, path: str, **params: object) -> requests.Response:
    return requests.get(exchange.url + path, params=params, timeout=5)


def test_a_kline_has_binances_twelve_fields_with_prices_as_strings(exchange: FakeExchange) -> None:
    [row] = get(exchange, "/api/v3/klines", symbol="ADABTC", interval="1m", startTime=0, limit=1).json()
    assert row == [
        1516424100000, "0.00005352", "0.00005400", "0.00005348", "0.00005400", "100380.64502838",
        1516424159999, "0.00000000", 0, "0.00000000", "0.00000000", "0",
    ]


def test_futures_prices_keep_the_contracts_precision(exchange: FakeExchange) -> None:
    [row] = get(exchange, "/fapi/v1/klines", symbol="XRPUSDT", interval="5m", startTime=0, limit=1).json()
    assert row[:7] == [1636934400000, "1.1893", "1.1954", "1.1891", "1.1941", "9289043.5", 1636934699999]


@pytest.mark.parametrize(("params", "first", "count"), [
    ({}, -500, 500),  # no startTime: the latest 500
    ({"startTime": 0}, 0, 500),
    ({"startTime": ETHBTC_FIRST_MS + 1}, 1, 500),  # from the next candle on
    ({"startTime": 0, "limit": 5000}, 0, 1000),  # spot pages stop at 1000
    ({"startTime": 0, "endTime": ETHBTC_FIRST_MS + 120_000}, 0, 3),  # endTime is inclusive
    ({"endTime": ETHBTC_FIRST_MS + 120_000, "limit": 2}, 1, 2),  # the last 2 up to endTime
])
def test_klines_window(exchange: FakeExchange, params: dict[str, int], first: int, count: int) -> None:
    rows = get(exchange, "/api/v3/klines", symbol="ETHBTC", interval="1m", **params).json()
    recorded = read_candles(Market.SPOT, "ETHBTC", "1m")
    assert len(rows) == count
    assert rows[0][0] == int(recorded[first].open_time.timestamp() * 1000)


def test_futures_pages_stop_at_1500(exchange: FakeExchange) -> None:
    assert len(get(exchange, "/fapi/v1/klines", symbol="XRPUSDT", interval="5m", startTime=0, limit=5000).json()) == 1500


def test_aggregated_candles_are_aligned_and_close_at_the_interval_end(exchange: FakeExchange) -> None:
    rows = get(exchange, "/api/v3/klines", symbol="ETHBTC", interval="1h", startTime=0, limit=2).json()
    assert [row[0] % 3_600_000 for row in rows] == [0, 0]
    assert rows[1][6] == rows[1][0] + 3_600_000 - 1


@pytest.mark.parametrize(("path", "params", "status", "code"), [
    ("/api/v3/klines", {"symbol": "NOPEBTC", "interval": "1m"}, 400, -1121),
    ("/api/v3/klines", {"symbol": "ETHBTC", "interval": "7m"}, 400, -1120),
    ("/fapi/v1/klines", {"symbol": "XRPUSDT", "interval": "1m"}, 400, -1120),  # finer than recorded
    ("/api/v3/klines", {"interval": "1m"}, 400, -1102),
    ("/api/v3/klines", {"symbol": "ETHBTC", "interval": "1m", "startTime": "soon"}, 400, -1100),
    ("/api/v3/ticker/price", {"symbols": '["ETHBTC","NOPEBTC"]'}, 400, -1121),
    ("/api/v3/ticker/price", {"symbols": "ETHBTC"}, 400, -1100),
    ("/fapi/v1/exchangeInfo", {"symbol": "NOPEUSDT"}, 400, -1121),
])
def test_errors_look_like_binances(
    exchange: FakeExchange, path: str, params: dict[str, str], status: int, code: int
) -> None:
    response = get(exchange, path, **params)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_unknown_paths_are_404(exchange: FakeExchange) -> None:
    assert get(exchange, "/api/v3/depth", symbol="ETHBTC").status_code == 404
    assert get(exchange, "/sapi/v1/klines").status_code == 404


def test_tickers(exchange: FakeExchange) -> None:
    assert get(exchange, "/api/v3/ticker/price", symbol="ADABTC").json() == {"symbol": "ADABTC", "price": "0.00005144"}
    both = get(exchange, "/api/v3/ticker/price", symbols='["LTCBTC","ETHBTC"]').json()
    assert both == [{"symbol": "LTCBTC", "price": "0.01614500"}, {"symbol": "ETHBTC", "price": "0.10441057"}]
    spot = {entry["symbol"] for entry in get(exchange, "/api/v3/ticker/price").json()}
    assert spot == {"ADABTC", "ETHBTC", "LTCBTC", "XRPETH"}
    [futures] = get(exchange, "/fapi/v1/ticker/price").json()
    assert (futures["symbol"], futures["price"], type(futures["time"])) == ("XRPUSDT", "1.0713", int)


def test_exchange_info_and_liveness(exchange: FakeExchange) -> None:
    info = get(exchange, "/fapi/v1/exchangeInfo").json()
    assert info["symbols"] == [{"symbol": "XRPUSDT", "status": "TRADING"}]
    assert get(exchange, "/api/v3/ping").json() == {}
    assert isinstance(get(exchange, "/fapi/v1/time").json()["serverTime"], int)


def test_faults_are_served_in_order_and_only_on_data_endpoints(exchange: FakeExchange) -> None:
    exchange.faults = ["503", "429", "wrong_shape", "truncated", "garbage"]
    assert get(exchange, "/api/v3/ping").status_code == 200
    assert get(exchange, "/api/v3/exchangeInfo").status_code == 503
    limited = get(exchange, "/api/v3/exchangeInfo")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert get(exchange, "/api/v3/exchangeInfo").json() == {"foo": 1}
    for _ in range(2):
        with pytest.raises(json.JSONDecodeError):
            json.loads(get(exchange, "/api/v3/ticker/price").content)
    assert get(exchange, "/api/v3/exchangeInfo").status_code == 200


def test_disconnect_and_timeout_faults(exchange: FakeExchange) -> None:
    exchange.faults, exchange.timeout_seconds = ["disconnect", "timeout"], 1.0
    with pytest.raises(requests.ConnectionError):
        get(exchange, "/api/v3/exchangeInfo")
    with pytest.raises(requests.Timeout):
        requests.get(exchange.url + "/api/v3/exchangeInfo", timeout=0.2)


def test_a_seed_makes_the_random_faults_repeatable() -> None:
    def statuses(seed: int) -> list[int]:
        with FakeExchange(candles_dir(), seed=seed) as exchange:
            exchange.fault_rate, exchange.random_faults = 0.5, ("500", "418", "wrong_shape")
            return [get(exchange, "/api/v3/exchangeInfo").status_code for _ in range(20)]

    assert statuses(7) == statuses(7)
    assert 200 in statuses(7) and set(statuses(7)) & {500, 418}
    assert statuses(7) != statuses(8)


def test_requests_are_recorded_with_their_parameters(exchange: FakeExchange) -> None:
    exchange.requests.clear()
    get(exchange, "/api/v3/ticker/price", symbols='["ETHBTC"]')
    get(exchange, "/fapi/v1/klines", symbol="XRPUSDT", interval="5m")
    assert exchange.requests == [
        ("/api/v3/ticker/price", {"symbols": '["ETHBTC"]'}),
        ("/fapi/v1/klines", {"symbol": "XRPUSDT", "interval": "5m"}),
    ]
    assert exchange.requests_to("klines") == exchange.requests[1:]


def test_a_test_can_serve_candles_of_its_own(exchange: FakeExchange) -> None:
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    candle = Candle(start, Decimal("0.00000001"), Decimal("0.00000003"), Decimal("0.00000001"), Decimal("0.00000002"))
    exchange.add_candles(Market.SPOT, "TESTBTC", "1m", [candle])
    [row] = get(exchange, "/api/v3/klines", symbol="TESTBTC", interval="1m", startTime=0).json()
    assert row[:5] == [int(start.timestamp() * 1000), "0.00000001", "0.00000003", "0.00000001", "0.00000002"]
    assert get(exchange, "/api/v3/ticker/price", symbol="TESTBTC").json()["price"] == "0.00000002"


# --- the trade tape and the funding history ---------------------------------------------------


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize("path, symbol, interval", [("/api/v3/aggTrades", "ETHBTC", "1m"),
                                                    ("/fapi/v1/aggTrades", "XRPUSDT", "5m")])
def test_a_candles_trades_agree_with_it(exchange: FakeExchange, path: str, symbol: str, interval: str) -> None:
    market = Market.SPOT if path.startswith("/api") else Market.FUTURES
    candles = read_candles(market, symbol, interval)
    for candle in candles[200:230]:
        length = 60_000 if interval == "1m" else 300_000
        trades = get(exchange, path, symbol=symbol, startTime=ms(candle.open_time),
                     endTime=ms(candle.open_time) + length - 1).json()
        prices = [Decimal(t["p"]) for t in trades]
        assert (prices[0], prices[-1], max(prices), min(prices)) == (candle.open, candle.close, candle.high,
                                                                      candle.low)
        assert [t["a"] for t in trades] == list(range(trades[0]["a"], trades[0]["a"] + 8))
        assert all(ms(candle.open_time) <= t["T"] < ms(candle.open_time) + length for t in trades)
        assert set(trades[0]) == ({"a", "p", "q", "f", "l", "T", "m", "M"} if market is Market.SPOT
                                  else {"a", "p", "q", "f", "l", "T", "m"})
        # The walk's turning points (trades 8 // 3 and 2 * 8 // 3): a rising candle dips first.
        rising = candle.close >= candle.open
        assert (prices[2], prices[5]) == ((candle.low, candle.high) if rising else (candle.high, candle.low))


def test_ids_run_on_from_candle_to_candle_and_from_id_pages(exchange: FakeExchange) -> None:
    first = get(exchange, "/api/v3/aggTrades", symbol="ETHBTC", startTime=ETHBTC_FIRST_MS, limit=20).json()
    assert [t["a"] for t in first] == list(range(20)) and first[8]["T"] == ETHBTC_FIRST_MS + 60_000
    by_id = get(exchange, "/api/v3/aggTrades", symbol="ETHBTC", fromId=13, limit=3).json()
    assert by_id == first[13:16]
    assert len(get(exchange, "/api/v3/aggTrades", symbol="ETHBTC").json()) == 500  # Binance's default page


def test_a_test_can_force_the_order_inside_a_candle(exchange: FakeExchange) -> None:
    candle = next(c for c in read_candles(Market.SPOT, "ETHBTC", "1m") if c.close > c.open > c.low and c.high > c.close)
    params = {"symbol": "ETHBTC", "startTime": ms(candle.open_time), "endTime": ms(candle.open_time) + 59_999}
    for order, low_first in ((None, True), (HIGH_FIRST, False), (LOW_FIRST, True)):
        exchange.tape_orders = {} if order is None else {ms(candle.open_time): order}
        prices = [Decimal(t["p"]) for t in get(exchange, "/api/v3/aggTrades", **params).json()]
        assert (prices.index(candle.low) < prices.index(candle.high)) is low_first


def test_spoilt_tapes(exchange: FakeExchange) -> None:
    params = {"symbol": "ETHBTC", "startTime": ETHBTC_FIRST_MS, "endTime": ETHBTC_FIRST_MS + 59_999}
    good = get(exchange, "/api/v3/aggTrades", **params).json()
    exchange.tape_faults = ["empty", "truncated", "out_of_order", "outside"]
    assert get(exchange, "/api/v3/aggTrades", **params).json() == []
    assert [t["a"] for t in get(exchange, "/api/v3/aggTrades", **params).json()] == [0, 1, 2, 3, 5, 6, 7]
    assert [t["a"] for t in get(exchange, "/api/v3/aggTrades", **params).json()][:3] == [1, 0, 2]
    outside = get(exchange, "/api/v3/aggTrades", **params).json()
    assert max(Decimal(t["p"]) for t in outside) > max(Decimal(t["p"]) for t in good)
    assert get(exchange, "/api/v3/aggTrades", **params).json() == good  # spoilt once each
    exchange.bad_tape = "empty"
    assert get(exchange, "/api/v3/aggTrades", **params).json() == get(exchange, "/api/v3/aggTrades", **params).json() == []


@pytest.mark.parametrize("params, code", [
    ({"symbol": "ETHBTC", "startTime": 0, "endTime": 3_600_000}, -1127),  # an hour or more
    ({"symbol": "NOPEBTC"}, -1121),
    ({}, -1102),
    ({"symbol": "ETHBTC", "fromId": "x"}, -1100),
])
def test_agg_trades_errors_look_like_binances(exchange: FakeExchange, params: dict[str, object], code: int) -> None:
    response = get(exchange, "/api/v3/aggTrades", **params)
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_funding_every_8_hours_at_the_close_of_the_candle_ending_then(exchange: FakeExchange) -> None:
    events = get(exchange, "/fapi/v1/fundingRate", symbol="XRPUSDT", startTime=0, limit=1000).json()
    assert len(events) == 20 and set(events[0]) == {"symbol", "fundingTime", "fundingRate", "markPrice"}
    closes = {ms(c.open_time) + 300_000: c.close for c in read_candles(Market.FUTURES, "XRPUSDT", "5m")}
    for event in events:
        assert event["fundingTime"] % (8 * 3_600_000) == 0
        assert Decimal(event["markPrice"]) == closes[event["fundingTime"]]
        assert Decimal("-0.001") < Decimal(event["fundingRate"]) < Decimal("0.001")
    assert [e["fundingTime"] for e in events] == list(range(events[0]["fundingTime"], events[-1]["fundingTime"] + 1,
                                                            8 * 3_600_000))
    two = get(exchange, "/fapi/v1/fundingRate", symbol="XRPUSDT", startTime=events[3]["fundingTime"] + 1,
              endTime=events[5]["fundingTime"]).json()
    assert two == events[4:6]  # both bounds inclusive
    assert get(exchange, "/fapi/v1/fundingRate", symbol="XRPUSDT", limit=3).json() == events[-3:]  # the latest
    assert get(exchange, "/api/v3/fundingRate", symbol="ETHBTC").status_code == 404  # spot has none


def test_funding_faults_and_the_usual_faults(exchange: FakeExchange) -> None:
    exchange.funding_faults = ["missing_field", "no_mark_price"]
    assert all("fundingRate" not in e for e in get(exchange, "/fapi/v1/fundingRate", symbol="XRPUSDT").json())
    assert {e["markPrice"] for e in get(exchange, "/fapi/v1/fundingRate", symbol="XRPUSDT").json()} == {""}
    exchange.faults = ["503", "429"]
    assert get(exchange, "/fapi/v1/fundingRate", symbol="XRPUSDT").status_code == 503
    assert get(exchange, "/fapi/v1/aggTrades", symbol="XRPUSDT").status_code == 429


def test_the_demo_market_has_a_tape_and_funding_too() -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    source = RandomWalkMarket(seed=3, start=start)
    with SimulatedExchange(source, clock=lambda: datetime(2024, 5, 2, 12, tzinfo=timezone.utc)) as demo:
        [kline] = requests.get(demo.url + "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                                                      "startTime": ms(start), "limit": 1}).json()
        trades = requests.get(demo.url + "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "startTime": kline[0],
                                                                        "endTime": kline[0] + 59_999}).json()
        prices = [t["p"] for t in trades]
        assert (prices[0], prices[-1], max(map(Decimal, prices)), min(map(Decimal, prices))) == (
            kline[1], kline[4], Decimal(kline[2]), Decimal(kline[3]))
        funding = requests.get(demo.url + "/fapi/v1/fundingRate", params={"symbol": "BTCUSDT",
                                                                          "startTime": ms(start)}).json()
        assert [e["fundingTime"] for e in funding] == [ms(start) + h * 3_600_000 for h in (4, 12, 20)]
        # No funding, no trades for a candle that has not closed by the exchange's clock.
        late = requests.get(demo.url + "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": 1440 * 8}).json()
        assert late == []


candle_prices_in = st.tuples(*[st.integers(1, 10_000)] * 4).map(sorted)


@given(candle_prices_in, st.booleans(), st.integers(4, 60), st.sampled_from([LOW_FIRST, HIGH_FIRST]))
def test_a_made_up_tape_spans_its_candle(levels: list[int], up: bool, count: int, order: str) -> None:
    low, a, b, high = (Decimal(v) / 100 for v in levels)
    open_, close = (a, b) if up else (b, a)
    prices = candle_prices((0, open_, high, low, close, Decimal(0)), count, order)
    assert len(prices) == count and (prices[0], prices[-1]) == (open_, close)
    assert (min(prices), max(prices)) == (low, high)
    first, second = (low, high) if order == LOW_FIRST else (high, low)
    assert (prices[count // 3], prices[2 * count // 3]) == (first, second)
