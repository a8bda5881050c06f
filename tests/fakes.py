"""In-memory fakes of the outside world for tests of the code above the exchange client.

`InMemoryMarket` is a `MarketData` over candles held in a dict: it keeps the client's
promises (closed candles only, ascending, at most `limit`, UnknownSymbol, ExchangeError)
without a socket, so worker tests stay fast and deterministic.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from demo.tape import candle_prices, natural_order
from fake_exchange import read_candles, series_files
from shared.candles import Candle, interval_length
from shared.funding import FundingEvent
from shared.kinds import Market
from shared.tape import AggTrade
from worker.market_data import PAGE_LIMITS, BadTape, ExchangeError, UnknownSymbol

SeriesKey = tuple[Market, str, str]  # (market, symbol, interval)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def coarser(candles: Iterable[Candle], interval: timedelta) -> list[Candle]:
    """Candles of `interval` built from finer ones, buckets aligned to the epoch like Binance."""
    buckets: list[Candle] = []
    for candle in candles:
        start = candle.open_time - (candle.open_time - EPOCH) % interval
        if buckets and buckets[-1].open_time == start:
            first = buckets[-1]
            candle = Candle(start, first.open, max(first.high, candle.high), min(first.low, candle.low), candle.close)
            buckets[-1] = candle
        else:
            buckets.append(Candle(start, candle.open, candle.high, candle.low, candle.close))
    return buckets


class InMemoryMarket:
    """A `MarketData` over `{(market, symbol, interval): candles}`.

    A symbol with no series is unknown. An interval with no series of its own is built from a
    finer series of the same symbol when it divides evenly (5m from 1m), as the exchange does.
    `failing` symbols raise ExchangeError, as a client does once its retries are spent.
    """

    def __init__(
        self,
        series: Mapping[SeriesKey, Sequence[Candle]],
        *,
        prices: Mapping[tuple[Market, str], Decimal] | None = None,
    ) -> None:
        self.series: dict[SeriesKey, list[Candle]] = {
            (Market(market), symbol, interval): sorted(candles, key=lambda c: c.open_time)
            for (market, symbol, interval), candles in series.items()
        }
        # Latest prices default to each series' last close; tests may set any price.
        self.prices: dict[tuple[Market, str], Decimal] = {
            (market, symbol): candles[-1].close for (market, symbol, _), candles in self.series.items() if candles
        } | dict(prices or {})
        self.failing: set[str] = set()
        self.calls: list[tuple[str, Market, str]] = []  # (method, market, symbol or "A,B")
        # The tape of a candle: what a test put in `tapes` (keyed by market, symbol and the
        # window's start), else made up from the finest series like the fake exchange makes it
        # (demo/tape.py); None there = a bad tape (BadTape). Funding: `funding[symbol]`.
        self.tapes: dict[tuple[Market, str, datetime], list[AggTrade] | None] = {}
        self.funding: dict[str, list[FundingEvent]] = {}

    @classmethod
    def from_candle_dir(cls, directory: Path) -> "InMemoryMarket":
        """Every recorded series in `directory` (see fake_exchange.candles_dir())."""
        return cls({key: read_candles(*key, directory=directory) for key in series_files(directory)})

    @property
    def requests_made(self) -> int:
        return len(self.calls)

    def page_limit(self, market: Market) -> int:
        return PAGE_LIMITS[Market(market)]

    def klines(
        self, market: Market, symbol: str, interval: str, start: datetime, now: datetime, limit: int | None = None
    ) -> list[Candle]:
        market = Market(market)
        self.calls.append(("klines", market, symbol))
        self._fail_if_asked(symbol)
        length = interval_length(interval)
        page = self.page_limit(market) if limit is None else limit
        if not 1 <= page <= self.page_limit(market):
            raise ValueError(f"limit {limit} outside 1..{self.page_limit(market)} for {market}")
        candles = self._candles(market, symbol, interval, length)
        return [c for c in candles if c.open_time >= start and c.open_time + length <= now][:page]

    def latest_prices(self, market: Market, symbols: Collection[str]) -> dict[str, Decimal]:
        market = Market(market)
        if not symbols:
            return {}
        self.calls.append(("latest_prices", market, ",".join(sorted(symbols))))
        for symbol in symbols:
            self._fail_if_asked(symbol)  # one batched request: one failing symbol fails it all
        return {s: self.prices[(market, s)] for s in symbols if (market, s) in self.prices}

    def symbol_exists(self, market: Market, symbol: str, interval: str, now: datetime) -> bool:
        market = Market(market)
        self.calls.append(("symbol_exists", market, symbol))
        self._fail_if_asked(symbol)
        return any(key[:2] == (market, symbol) for key in self.series)

    def agg_trades(self, market: Market, symbol: str, start: datetime, end: datetime) -> list[AggTrade]:
        market = Market(market)
        self.calls.append(("agg_trades", market, symbol))
        self._fail_if_asked(symbol)
        if (market, symbol, start) in self.tapes:
            tape = self.tapes[(market, symbol, start)]
            if tape is None:
                raise BadTape(f"fake exchange: the tape of {symbol} at {start.isoformat()} is set to be bad")
            return list(tape)
        trades: list[AggTrade] = []
        for candle in self._finest(market, symbol):
            if start <= candle.open_time < end:
                row = (0, candle.open, candle.high, candle.low, candle.close, Decimal(0))
                for price in candle_prices(row, 8, natural_order(row)):
                    trades.append(AggTrade(len(trades), price, Decimal(1), candle.open_time))
        if not trades:
            raise BadTape(f"fake exchange: no trades of {symbol} in [{start.isoformat()}, {end.isoformat()})")
        return trades

    def funding_rates(self, symbol: str, start: datetime, end: datetime) -> list[FundingEvent]:
        self.calls.append(("funding_rates", Market.FUTURES, symbol))
        self._fail_if_asked(symbol)
        return [e for e in self.funding.get(symbol, []) if start <= e.time <= end]

    def _finest(self, market: Market, symbol: str) -> list[Candle]:
        keys = sorted((key for key in self.series if key[:2] == (market, symbol)), key=lambda k: interval_length(k[2]))
        if not keys:
            raise UnknownSymbol(f"{symbol}: invalid symbol (fake exchange)")
        return self.series[keys[0]]

    def _fail_if_asked(self, symbol: str) -> None:
        if symbol in self.failing:
            raise ExchangeError(f"fake exchange: {symbol} is set to fail")

    def _candles(self, market: Market, symbol: str, interval: str, length: timedelta) -> list[Candle]:
        if (market, symbol, interval) in self.series:
            return self.series[(market, symbol, interval)]
        finer = [
            key for key in self.series
            if key[:2] == (market, symbol) and length % interval_length(key[2]) == timedelta(0)
        ]
        if not finer:
            if any(key[:2] == (market, symbol) for key in self.series):
                raise ExchangeError(f"fake exchange: no {interval} candles for {market} {symbol}")
            raise UnknownSymbol(f"{symbol}: invalid symbol (fake exchange)")
        # Cached as a series of its own: later calls page through it cheaply.
        self.series[(market, symbol, interval)] = coarser(self.series[finer[0]], length)
        return self.series[(market, symbol, interval)]
