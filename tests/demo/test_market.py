"""The demo's random walk: deterministic per seed, sane candles, growing with the clock — and
served by the simulated exchange so that the real exchange client reads it like Binance."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest

from demo.exchange import SimulatedExchange, to_ms
from demo.market import ASSETS, DAY_MINUTES, EPOCH, MINUTE_MS, Asset, RandomWalkMarket
from shared.kinds import Market
from worker.market_data import BinanceClient

START = datetime(2024, 5, 1, 12, 0, 30, tzinfo=timezone.utc)  # floored to 12:00 by the market
ONE_DAY_MS = DAY_MINUTES * MINUTE_MS


def market(seed: int = 1) -> RandomWalkMarket:
    return RandomWalkMarket(seed=seed, start=START)


def at(minutes: float) -> int:
    """The clock, `minutes` after the first candle opened."""
    return market().start_ms + int(minutes * MINUTE_MS)


def test_the_walk_starts_at_the_minute_and_at_the_epoch_each_asset_is_at_its_price() -> None:
    assert market().start == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    walk = RandomWalkMarket(seed=1, start=EPOCH)
    for asset in ASSETS:
        assert walk.visible(asset.symbol, walk.start_ms)[0][1] == Decimal(asset.price)


@pytest.mark.parametrize("later", [timedelta(minutes=1), timedelta(hours=5, minutes=17, seconds=3),
                                   timedelta(days=2, hours=23, minutes=59)])
def test_the_same_seed_gives_the_same_candle_for_the_same_minute_whenever_the_demo_starts(later: timedelta) -> None:
    """`signalproof demo --seed N` started now or later: the candles they share are identical."""
    first, second = market(seed=9), RandomWalkMarket(seed=9, start=START + later)
    now = to_ms(START + timedelta(days=4, seconds=31))
    for asset in ASSETS:
        earlier, later_rows = first.visible(asset.symbol, now), second.visible(asset.symbol, now)
        assert later_rows[0][0] == second.start_ms and len(later_rows) < len(earlier)
        assert earlier[-len(later_rows):] == later_rows
        moment = to_ms(START + timedelta(days=3, hours=2))
        assert first.price_at(asset.symbol, moment) == second.price_at(asset.symbol, moment)


def test_prices_stay_near_the_assets_level_for_years() -> None:
    walk = RandomWalkMarket(seed=2, start=EPOCH + timedelta(days=6 * 365))
    for asset in ASSETS:
        price = walk.price_at(asset.symbol, walk.start_ms)
        assert Decimal(asset.price) / 10 < price < Decimal(asset.price) * 10, (asset.symbol, price)


@pytest.mark.parametrize("symbol", [asset.symbol for asset in ASSETS])
def test_a_seed_and_a_start_fix_the_candles_whatever_the_order_of_asking(symbol: str) -> None:
    directly = market().visible(symbol, at(2 * DAY_MINUTES + 7))
    stepwise = market()
    for other in reversed(ASSETS):  # other assets first, and the same one bit by bit
        stepwise.visible(other.symbol, at(30))
    stepwise.visible(symbol, at(DAY_MINUTES + 1))
    assert stepwise.visible(symbol, at(2 * DAY_MINUTES + 7)) == directly
    assert market(seed=2).visible(symbol, at(2 * DAY_MINUTES + 7)) != directly


@pytest.mark.parametrize("asset", ASSETS, ids=lambda asset: asset.symbol)
def test_every_candle_is_consistent_continuous_and_on_the_tick(asset: Asset) -> None:
    symbol, tick = asset.symbol, Decimal(asset.tick)
    rows = market().visible(symbol, at(3 * DAY_MINUTES))[:-1]  # closed candles only
    assert len(rows) == 3 * DAY_MINUTES
    for previous, row in zip(rows, rows[1:]):
        assert row[0] - previous[0] == MINUTE_MS
        assert row[1] == previous[4]  # each candle opens where the last one closed
    for open_ms, open_, high, low, close, volume in rows:
        assert 0 < low <= min(open_, close) <= max(open_, close) <= high
        assert all(price % tick == 0 for price in (open_, high, low, close))
        assert volume >= 0


@pytest.mark.parametrize("asset", ASSETS, ids=lambda asset: asset.symbol)
def test_volatility_is_roughly_the_assets(asset: Asset) -> None:
    walk = market(seed=3)
    symbol = asset.symbol
    closes = np.array([float(row[4]) for row in walk.visible(symbol, at(20 * DAY_MINUTES))[:-1]])
    hourly = np.diff(np.log(closes[::60]))
    daily = hourly.std() * np.sqrt(24)
    assert 0.6 < daily / asset.daily_volatility < 1.5


def test_it_grows_with_the_clock_and_the_forming_candle_has_only_its_open() -> None:
    walk = market()
    before = walk.visible("BTCUSDT", at(100.5))
    later = walk.visible("BTCUSDT", at(105.5))
    assert (len(before), len(later)) == (101, 106)
    assert later[:100] == before[:100]  # the past never changes
    open_ms, open_, high, low, close, volume = later[-1]
    assert open_ms == at(105) and open_ == high == low == close and volume == 0
    assert later[100][2] >= later[100][1]  # the once-forming candle has its full range now
    assert walk.visible("BTCUSDT", walk.start_ms - 1) == []


def test_a_coarser_interval_is_aggregated_and_follows_the_clock() -> None:
    walk = market()
    hours = walk.rows(Market.SPOT, "ETHUSDT", "1h", at(3 * 60 + 1))
    assert hours is not None and [row[0] % 3_600_000 for row in hours] == [0] * 4
    minutes = walk.visible("ETHUSDT", at(60))[:60]
    assert hours[0][1:5] == (minutes[0][1], max(r[2] for r in minutes), min(r[3] for r in minutes), minutes[-1][4])
    assert len(walk.rows(Market.SPOT, "ETHUSDT", "1h", at(4 * 60 + 1)) or []) == 5
    assert walk.rows(Market.SPOT, "ETHUSDT", "7m", at(60)) is None


def test_futures_list_only_the_perpetuals() -> None:
    walk = market()
    assert walk.symbols(Market.SPOT) == {asset.symbol for asset in ASSETS}
    assert walk.symbols(Market.FUTURES) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def test_the_exchange_client_reads_the_walk_like_binance() -> None:
    walk = market()
    now = walk.start + timedelta(minutes=2500, seconds=20)
    with SimulatedExchange(walk, clock=lambda: now) as exchange:
        client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=5, retries=0)
        first_page = client.klines(Market.SPOT, "SOLUSDT", "1m", start=walk.start, now=now)
        last_page = client.klines(Market.FUTURES, "SOLUSDT", "1m", start=now - timedelta(minutes=10), now=now)
        prices = client.latest_prices(Market.SPOT, ["BTCUSDT", "XRPUSDT"])
        assert client.symbol_exists(Market.FUTURES, "BTCUSDT", "1m", now)
        assert not client.symbol_exists(Market.FUTURES, "BNBUSDT", "1m", now)
    closed = walk.visible("SOLUSDT", to_ms(now))[:-1]
    assert len(first_page) == 1000  # a full page: the client pages on
    assert [(to_ms(c.open_time), c.open, c.high, c.low, c.close) for c in first_page] == [r[:5] for r in closed[:1000]]
    assert last_page[-1].open_time == now.replace(second=0) - timedelta(minutes=1)  # not the forming one
    assert prices == {symbol: walk.visible(symbol, to_ms(now))[-1][4] for symbol in ("BTCUSDT", "XRPUSDT")}
