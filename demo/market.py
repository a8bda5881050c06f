"""The demo's market: seeded random-walk 1m candles that grow with the wall clock.

Each asset's price is a random walk — fat-tailed minute returns, volatility that changes hour
by hour, wicks around every candle — rounded to the asset's tick. It is anchored to a fixed
epoch (`EPOCH`, midnight UTC), not to the moment the demo starts: a candle is a function of
the seed, the asset and its open time only. Every UTC day's close comes from a slow,
mean-reverting daily walk from the epoch (so prices stay near the asset's level for years),
and the day's minutes are a seeded path from the previous day's close to that close, each day
from its own generator. Two demos with the same seed, started at different times, show the
same candle for the same minute, whatever they are asked for and in whatever order.

As a `CandleSource` (demo/exchange.py) it shows only what exists at the exchange's clock:
closed candles, and the forming one flat at its open (its range is still to come; the worker
never uses a forming candle anyway). The simulated bot (demo/bot.py) may read ahead.
"""

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np

from demo.exchange import Row, aggregate, can_aggregate, from_ms, interval_ms, to_ms
from shared.kinds import Market

MINUTE_MS = 60_000
DAY_MINUTES = 1440
NATIVE_INTERVAL = "1m"
TAIL_DEGREES_OF_FREEDOM = 4  # Student-t minute returns: crypto's fat tails
HOURLY_VOLATILITY_SPREAD = 0.35  # log-normal spread of each hour's volatility around the asset's
WICK_SCALE = 0.6  # wicks reach this many minute-sigmas beyond the body, on average-ish
# The walk's fixed origin: each asset is at its `price` at this instant, whatever the seed.
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
DAY_MS = DAY_MINUTES * MINUTE_MS
# The daily closes mean-revert (AR(1) in log price): over years a seed's prices stay within
# about 10 daily sigmas of the asset's level instead of wandering off to 0 or infinity.
DAILY_PERSISTENCE = 0.995
DAILY_BLOCK = 1024  # daily shocks are drawn in blocks of days, each block from its own generator


@dataclass(frozen=True)
class Asset:
    symbol: str
    price: str  # where the walk starts
    daily_volatility: float  # standard deviation of one day's log return
    tick: str  # the price step
    futures: bool = False  # also listed as a USDⓈ-M perpetual (at the same prices)
    volume: float = 10.0  # typical base volume per minute


# Price levels and volatility of the real pairs, roughly; the walks go their own way from there.
ASSETS = (
    Asset("BTCUSDT", "65000", 0.025, "0.01", futures=True, volume=15),
    Asset("ETHUSDT", "3200", 0.032, "0.01", futures=True, volume=250),
    Asset("SOLUSDT", "150", 0.045, "0.01", futures=True, volume=4000),
    Asset("BNBUSDT", "580", 0.028, "0.01", volume=400),
    Asset("XRPUSDT", "0.5200", 0.038, "0.0001", volume=900_000),
)


@dataclass
class _Walk:
    """One asset's candles so far, from the start's UTC midnight: Decimal rows to serve, float
    arrays for the bot to read; and its daily closes (in ticks) from the epoch on."""

    asset: Asset
    position: int
    tick: Decimal
    rows: list[Row]
    highs: np.ndarray
    lows: np.ndarray
    closes: np.ndarray
    daily_log: list[float]  # log deviation from the asset's price at each epoch day's close


EPOCH_MS = to_ms(EPOCH)


class RandomWalkMarket:
    """Seeded random-walk candles for `assets`, served from `start` (floored to the minute) on;
    the prices themselves depend on the seed and the minute only (see the module docstring)."""

    def __init__(self, *, seed: int, start: datetime, assets: Sequence[Asset] = ASSETS) -> None:
        self.seed = seed
        self.start_ms = to_ms(start) // MINUTE_MS * MINUTE_MS
        if self.start_ms < EPOCH_MS:
            raise ValueError(f"the demo market starts at {EPOCH.date()}, not {start}")
        self.start = from_ms(self.start_ms)  # the first candle's open time
        self.first_day = (self.start_ms - EPOCH_MS) // DAY_MS  # generated from this day's midnight
        self._offset = (self.start_ms - EPOCH_MS) // MINUTE_MS - self.first_day * DAY_MINUTES
        self.assets = {asset.symbol: asset for asset in assets}
        self._walks = {
            asset.symbol: _Walk(asset, position, Decimal(asset.tick), [], np.empty(0), np.empty(0), np.empty(0), [])
            for position, asset in enumerate(assets)
        }
        self._lock = threading.Lock()
        self._aggregated: dict[tuple[str, str], tuple[int, tuple[Row, ...]]] = {}

    # --- the CandleSource ---

    def symbols(self, market: Market) -> Collection[str]:
        return {a.symbol for a in self.assets.values() if market is Market.SPOT or a.futures}

    def rows(self, market: Market, symbol: str, interval: str, now_ms: int) -> Sequence[Row] | None:
        if interval == NATIVE_INTERVAL:
            return self.visible(symbol, now_ms)
        if not can_aggregate(interval, NATIVE_INTERVAL):
            return None
        visible = self.visible(symbol, now_ms)
        with self._lock:  # rebuilt only when a new minute has opened
            count, rows = self._aggregated.get((symbol, interval), (-1, ()))
            if count != len(visible):
                rows = aggregate(visible, interval_ms(interval))
                self._aggregated[(symbol, interval)] = (len(visible), rows)
            return rows

    def last_price(self, market: Market, symbol: str, now_ms: int) -> Decimal:
        visible = self.visible(symbol, now_ms)
        return visible[-1][4] if visible else Decimal(self.assets[symbol].price)

    def native_interval(self, market: Market, symbol: str) -> str:
        return NATIVE_INTERVAL

    # --- reading the walk ---

    def visible(self, symbol: str, now_ms: int) -> list[Row]:
        """The candles that have opened by `now_ms`: closed ones, and the forming one flat at its open."""
        opened = (now_ms - self.start_ms) // MINUTE_MS + 1
        if opened <= 0:
            return []
        walk = self._generated(symbol, opened)
        first, last = self._offset, self._offset + opened - 1
        open_ms, open_, *_ = walk.rows[last]
        return [*walk.rows[first:last], (open_ms, open_, open_, open_, open_, Decimal(0))]

    def index_at(self, moment_ms: int) -> int:
        """The index of the first candle opening at or after `moment_ms` (the trade rules' start candle)."""
        return max(0, -((self.start_ms - moment_ms) // MINUTE_MS))

    def price_at(self, symbol: str, moment_ms: int) -> Decimal:
        """The price a bot sees at `moment_ms`: the open of the minute then forming (the last close)."""
        index = max(0, (moment_ms - self.start_ms) // MINUTE_MS)
        return self._generated(symbol, index + 1).rows[self._offset + index][1]

    def path(self, symbol: str, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Highs and lows of `count` candles from index `first`: what the bot peeks at."""
        walk = self._generated(symbol, first + count)
        first += self._offset
        return walk.highs[first:first + count], walk.lows[first:first + count]

    # --- generating, a day at a time ---

    def _generated(self, symbol: str, count: int) -> _Walk:
        """The walk of `symbol` with at least `count` candles generated from `start`."""
        walk = self._walks[symbol]
        with self._lock:
            while len(walk.rows) < self._offset + count:
                self._add_day(walk)
        return walk

    def _close_ticks(self, walk: _Walk, day: int) -> int:
        """The close of epoch day `day` (day -1: the asset's price at the epoch), in ticks."""
        if day < 0:
            return int(Decimal(walk.asset.price) / walk.tick)
        while len(walk.daily_log) <= day:
            block = len(walk.daily_log) // DAILY_BLOCK
            shocks = np.random.default_rng([self.seed, walk.position, 1_000_000_007, block]).standard_normal(DAILY_BLOCK)
            level = walk.daily_log[-1] if walk.daily_log else 0.0
            for shock in shocks.tolist():
                level = DAILY_PERSISTENCE * level + walk.asset.daily_volatility * shock
                walk.daily_log.append(level)
        price_ticks = float(Decimal(walk.asset.price) / walk.tick)
        return max(1, int(np.rint(price_ticks * np.exp(walk.daily_log[day]))))

    def _add_day(self, walk: _Walk) -> None:
        asset, day = walk.asset, self.first_day + len(walk.rows) // DAY_MINUTES
        rng = np.random.default_rng([self.seed, walk.position, day])
        minute_sigma = asset.daily_volatility / np.sqrt(DAY_MINUTES)
        hourly = rng.lognormal(0.0, HOURLY_VOLATILITY_SPREAD, DAY_MINUTES // 60).repeat(60)
        hourly /= np.exp(HOURLY_VOLATILITY_SPREAD**2)  # E[hourly²] = 1: the asset's daily volatility stays
        df = TAIL_DEGREES_OF_FREEDOM
        shocks = rng.standard_t(df, DAY_MINUTES) * np.sqrt((df - 2) / df)  # unit variance
        sigma = minute_sigma * hourly
        tick = float(walk.tick)
        open_ticks, close_ticks = self._close_ticks(walk, day - 1), self._close_ticks(walk, day)
        # The day's path, bent (a bridge) so that it ends exactly at the day's close.
        path = np.cumsum(sigma * shocks)
        path -= np.arange(1, DAY_MINUTES + 1) / DAY_MINUTES * (path[-1] - np.log(close_ticks / open_ticks))
        first_open = open_ticks * tick
        closes = first_open * np.exp(path)
        opens = np.concatenate(([first_open], closes[:-1]))
        wick = np.abs(rng.normal(0.0, WICK_SCALE, (2, DAY_MINUTES))) * sigma
        highs = np.maximum(opens, closes) * np.exp(wick[0])
        lows = np.minimum(opens, closes) * np.exp(-wick[1])
        o, h, l, c = (np.maximum(np.rint(prices / tick).astype(np.int64), 1) for prices in (opens, highs, lows, closes))
        o[0], c[-1] = open_ticks, close_ticks  # exactly the day's ends, not a float round trip
        o[1:] = c[:-1]  # each candle opens where the last one closed
        h, l = np.maximum(h, np.maximum(o, c)), np.minimum(l, np.minimum(o, c))  # low <= open, close <= high
        volumes = np.rint(asset.volume * hourly * rng.lognormal(0.0, 0.5, DAY_MINUTES) * 1000).astype(np.int64)
        first_ms = EPOCH_MS + day * DAY_MS
        unit, thousandth = walk.tick, Decimal("0.001")
        walk.rows.extend(
            (first_ms + i * MINUTE_MS, Decimal(oi) * unit, Decimal(hi) * unit, Decimal(li) * unit, Decimal(ci) * unit,
             Decimal(vi) * thousandth)
            for i, (oi, hi, li, ci, vi) in enumerate(zip(o.tolist(), h.tolist(), l.tolist(), c.tolist(),
                                                         volumes.tolist()))
        )
        walk.highs = np.concatenate((walk.highs, h * tick))
        walk.lows = np.concatenate((walk.lows, l * tick))
        walk.closes = np.concatenate((walk.closes, c * tick))
