"""The fake exchange itself: it must look like Binance on the wire, or the client tests prove
nothing. Plain `requests` here, no client code."""

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests

from fake_exchange import FakeExchange, candles_dir, read_candles
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
