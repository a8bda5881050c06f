"""Reading the trade tape (`BinanceClient.agg_trades`, `TapeReader`) over real HTTP from the
fake exchange serving the recorded candles, with its trades made from them (demo/tape.py).

Sleeps are injected and recorded: backoff costs no wall time and is asserted.
"""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_exchange import FakeExchange, read_candles
from shared.candles import Candle
from shared.kinds import Market, Side
from shared.tape import decide
from worker.market_data import BadTape, BinanceClient, ExchangeError, TapeReader

SPOT, FUTURES = Market.SPOT, Market.FUTURES
MINUTE = timedelta(minutes=1)


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(exchange: FakeExchange, slept: list[float]) -> Iterator[BinanceClient]:
    client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=0.3, sleep=slept.append)
    yield client
    client.close()


def ranged_candle(rising: bool) -> Candle:
    """A recorded ETHBTC minute whose open, high, low and close all differ, rising or falling."""
    for candle in read_candles(SPOT, "ETHBTC", "1m")[100:]:
        if len({candle.open, candle.high, candle.low, candle.close}) == 4 and (candle.close > candle.open) == rising:
            return candle
    raise AssertionError("no such candle recorded")


def tape_requests(exchange: FakeExchange) -> list[dict[str, str]]:
    return [params for _, params in exchange.requests_to("aggTrades")]


def test_a_candles_tape_is_one_request_and_agrees_with_the_candle(exchange: FakeExchange,
                                                                  client: BinanceClient) -> None:
    candle = ranged_candle(rising=True)
    trades = client.agg_trades(SPOT, "ETHBTC", candle.open_time, candle.open_time + MINUTE)
    prices = [t.price for t in trades]
    assert len(trades) == exchange.trades_per_candle == 8
    assert (prices[0], prices[-1], max(prices), min(prices)) == (candle.open, candle.close, candle.high, candle.low)
    assert prices.index(candle.low) < prices.index(candle.high)  # a rising candle dips first
    assert all(candle.open_time <= t.time < candle.open_time + MINUTE for t in trades)
    start_ms = str(int(candle.open_time.timestamp() * 1000))
    assert tape_requests(exchange) == [{"symbol": "ETHBTC", "startTime": start_ms,
                                        "endTime": str(int(start_ms) + 59_999), "limit": "1000"}]


def test_more_than_a_page_is_read_by_id(exchange: FakeExchange, client: BinanceClient) -> None:
    """2,500 trades in the minute: a page by time (1,000), then by id from the last one + 1
    (1,000, then 1,000 of which the last 500 are the next minute's and are dropped)."""
    exchange.trades_per_candle = 2500
    candle = ranged_candle(rising=False)
    trades = client.agg_trades(SPOT, "ETHBTC", candle.open_time, candle.open_time + MINUTE)
    assert len(trades) == 2500
    assert [t.id for t in trades] == list(range(trades[0].id, trades[0].id + 2500))
    requests = tape_requests(exchange)
    assert [r.get("fromId") for r in requests] == [None, str(trades[0].id + 1000), str(trades[0].id + 2000)]
    assert max(t.price for t in trades) == candle.high and trades[-1].price == candle.close


def test_a_candle_longer_than_an_hour_is_asked_an_hour_at_a_time(exchange: FakeExchange,
                                                                  client: BinanceClient) -> None:
    """Binance refuses startTime..endTime windows of an hour or more; a 4 h candle's tape starts
    with its first hour (5m native candles × 8 trades = 96 trades), then continues by id."""
    first = read_candles(FUTURES, "XRPUSDT", "5m")[48]
    start = first.open_time - timedelta(minutes=first.open_time.minute, hours=first.open_time.hour % 4)
    trades = client.agg_trades(FUTURES, "XRPUSDT", start, start + timedelta(hours=4))
    assert len(trades) == 48 * 8 and trades[-1].time < start + timedelta(hours=4)
    requests = tape_requests(exchange)
    assert int(requests[0]["endTime"]) - int(requests[0]["startTime"]) == 3_600_000 - 1
    assert [r.get("fromId") for r in requests[1:]] == [str(trades[95].id + 1)]


@pytest.mark.parametrize("kind, message", [("empty", "no aggregate trades"), ("truncated", "truncated"),
                                           ("out_of_order", "out of order")])
def test_a_bad_tape_is_refused_by_the_client(exchange: FakeExchange, client: BinanceClient, kind: str,
                                             message: str) -> None:
    exchange.bad_tape = kind
    candle = ranged_candle(rising=True)
    with pytest.raises(BadTape, match=message):
        client.agg_trades(SPOT, "ETHBTC", candle.open_time, candle.open_time + MINUTE)


@pytest.mark.parametrize("kind", ["empty", "truncated", "out_of_order", "outside"])
def test_a_tape_bad_every_time_is_read_three_times_then_given_up(exchange: FakeExchange, client: BinanceClient,
                                                                 slept: list[float], kind: str) -> None:
    """Including a price outside the candle's high/low, which only the candle can tell."""
    exchange.bad_tape = kind
    candle = ranged_candle(rising=True)
    reader = TapeReader(client, "1m", sleep=slept.append)
    with pytest.raises(BadTape):
        reader.tape(SPOT, "ETHBTC", candle)
    assert len(tape_requests(exchange)) == 3 and slept == [0.5, 1.0]
    with pytest.raises(BadTape):  # the failure is remembered for the tick: no fourth read
        reader.tape(SPOT, "ETHBTC", candle)
    assert len(tape_requests(exchange)) == 3


def test_a_tape_bad_once_is_read_again(exchange: FakeExchange, client: BinanceClient, slept: list[float]) -> None:
    exchange.tape_faults = ["outside"]
    candle = ranged_candle(rising=True)
    reader = TapeReader(client, "1m", sleep=slept.append)
    trades = reader.tape(SPOT, "ETHBTC", candle)
    assert max(t.price for t in trades) == candle.high
    assert len(tape_requests(exchange)) == 2 and slept == [0.5]


def test_one_read_per_candle_however_many_trades_ask(exchange: FakeExchange, client: BinanceClient) -> None:
    reader = TapeReader(client, "1m")
    candle, other = ranged_candle(rising=True), ranged_candle(rising=False)
    for _ in range(5):
        reader.tape(SPOT, "ETHBTC", candle)
    reader.tape(SPOT, "ETHBTC", other)
    assert len(tape_requests(exchange)) == 2


def test_exchange_faults_are_retried_like_klines(exchange: FakeExchange, client: BinanceClient,
                                                 slept: list[float]) -> None:
    exchange.faults = ["503", "garbage", "truncated", "wrong_shape", "disconnect"]
    candle = ranged_candle(rising=True)
    trades = client.agg_trades(SPOT, "ETHBTC", candle.open_time, candle.open_time + MINUTE)
    assert len(trades) == 8
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_a_rate_limit_pauses_the_host(exchange: FakeExchange, client: BinanceClient, slept: list[float]) -> None:
    exchange.faults, exchange.retry_after = ["429"], "7"
    candle = ranged_candle(rising=True)
    client.agg_trades(SPOT, "ETHBTC", candle.open_time, candle.open_time + MINUTE)
    assert any(7 - 1 < s <= 7 for s in slept)  # waited out Retry-After, no extra backoff


def test_an_exchange_that_stays_down_is_an_exchange_error(exchange: FakeExchange, client: BinanceClient) -> None:
    exchange.faults = ["503"] * 6
    candle = ranged_candle(rising=True)
    reader = TapeReader(client, "1m", sleep=lambda seconds: None)
    with pytest.raises(ExchangeError, match="gave up"):
        reader.tape(SPOT, "ETHBTC", candle)


@pytest.mark.parametrize("order, targets_filled, adverse_price", [("low_first", 0, "low"),
                                                                   ("high_first", 1, "low")])
def test_the_tape_settles_an_ambiguous_candle_by_its_order(exchange: FakeExchange, client: BinanceClient,
                                                           order: str, targets_filled: int,
                                                           adverse_price: str) -> None:
    """A LONG whose stop is the candle's low and whose target its high: both in one candle.
    Low first: the stop decides before the target. High first: the target fills, then the stop."""
    candle = ranged_candle(rising=True)
    exchange.tape_orders = {int(candle.open_time.timestamp() * 1000): order}
    trades = TapeReader(client, "1m").tape(SPOT, "ETHBTC", candle)
    verdict = decide(candle, MINUTE, Side.LONG, candle.low, [candle.high], trades)
    assert len(verdict.targets) == targets_filled
    assert verdict.adverse is not None and verdict.adverse.price == getattr(candle, adverse_price)
    if targets_filled:
        assert verdict.targets[0].trade.time < verdict.adverse.time
        assert verdict.targets[0].price == candle.high == Decimal(verdict.targets[0].trade.price)


# --- the in-memory fake (tests/fakes.py) keeps the same promises ---------------------------


def test_the_in_memory_market_serves_tapes_and_funding_like_the_exchange() -> None:
    from fakes import InMemoryMarket
    from shared.funding import FundingEvent

    candle = ranged_candle(rising=True)
    market = InMemoryMarket({(SPOT, "ETHBTC", "1m"): [candle]})
    reader = TapeReader(market, "1m", sleep=lambda seconds: None)
    prices = [t.price for t in reader.tape(SPOT, "ETHBTC", candle)]
    assert (prices[0], prices[-1], min(prices), max(prices)) == (candle.open, candle.close, candle.low, candle.high)
    market.tapes[(SPOT, "ETHBTC", candle.open_time)] = None
    with pytest.raises(BadTape):
        TapeReader(market, "1m", sleep=lambda seconds: None).tape(SPOT, "ETHBTC", candle)
    event = FundingEvent(candle.open_time, Decimal("0.0001"), candle.close)
    market.funding["ETHUSDT"] = [event]
    assert market.funding_rates("ETHUSDT", candle.open_time, candle.open_time) == [event]
    assert market.funding_rates("ETHUSDT", candle.open_time + MINUTE, candle.open_time + MINUTE) == []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 14_000), per_candle=st.sampled_from([4, 999, 1000, 1001, 2000, 3001]))
def test_any_candle_at_any_size_is_read_whole(exchange: FakeExchange, client: BinanceClient, index: int,
                                              per_candle: int) -> None:
    """Whatever the page boundaries, the tape is exactly the candle's trades, in order."""
    exchange.trades_per_candle = per_candle
    candle = read_candles(SPOT, "ETHBTC", "1m")[index]
    trades = client.agg_trades(SPOT, "ETHBTC", candle.open_time, candle.open_time + MINUTE)
    assert len(trades) == per_candle
    prices = [t.price for t in trades]
    assert (prices[0], prices[-1], min(prices), max(prices)) == (candle.open, candle.close, candle.low, candle.high)
