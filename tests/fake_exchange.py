"""The tests' Binance: the simulated exchange (demo/exchange.py) serving the recorded candles.

The exchange client is tested against it over real sockets (fakes over mocks). What is
test-only lives here: where the recorded candle files are, reading them, and `FakeExchange`,
the simulated exchange over a `RecordedCandles` source.

    with FakeExchange(candles_dir()) as exchange:
        exchange.faults = ["503", "timeout"]
        client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=0.3)
"""

import functools
import gzip
import json
import os
import re
import threading
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from demo.exchange import FAULTS, Row, SimulatedExchange, aggregate, can_aggregate, from_ms, interval_ms, to_ms
from shared.candles import Candle
from shared.kinds import Market

__all__ = ["CANDLES_ENV", "FAULTS", "FakeExchange", "RecordedCandles", "candles_dir", "read_candles", "read_rows",
           "series_files"]

CANDLES_ENV = "SIGNALPROOF_TEST_CANDLES"
# Shipped with the tests (tests/data/README.md), so a fresh clone needs nothing beside it.
DEFAULT_CANDLES_DIR = Path(__file__).resolve().parent / "data" / "candles"
# Compressed in the repository; a directory given by $SIGNALPROOF_TEST_CANDLES may hold plain JSON.
FILE_NAME = re.compile(r"^(spot|futures)-([A-Z0-9]+)-(\w+)\.json(\.gz)?$")
SUFFIXES = (".json.gz", ".json")


def candles_dir() -> Path:
    """Where the recorded candles are: $SIGNALPROOF_TEST_CANDLES, else tests/data/candles."""
    return Path(os.environ.get(CANDLES_ENV) or DEFAULT_CANDLES_DIR)


def series_file(directory: Path, market: Market, symbol: str, interval: str) -> Path:
    """The file of one series, `spot-ETHBTC-1m.json.gz` or `spot-ETHBTC-1m.json`."""
    stem = f"{Market(market).value.lower()}-{symbol}-{interval}"
    for suffix in SUFFIXES:
        if (path := directory / f"{stem}{suffix}").is_file():
            return path
    return directory / f"{stem}{SUFFIXES[0]}"  # absent: opening it names the expected file


@functools.cache
def read_rows(path: Path) -> tuple[Row, ...]:
    """One recorded file, numbers exact (cached: the files are read-only and large)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        raw = json.load(file, parse_float=Decimal)
    return tuple((int(r[0]), *(Decimal(str(v)) for v in r[1:6])) for r in raw)  # type: ignore[misc]


def series_files(directory: Path) -> dict[tuple[Market, str, str], Path]:
    """`spot-ETHBTC-1m.json.gz` -> {(Market.SPOT, "ETHBTC", "1m"): path}; other files are ignored."""
    found = {}
    for path in sorted(directory.glob("*.json*")):
        if match := FILE_NAME.match(path.name):
            market, symbol, interval, _ = match.groups()
            found[(Market(market.upper()), symbol, interval)] = path
    return found


def row_candle(row: Row) -> Candle:
    return Candle(open_time=from_ms(row[0]), open=row[1], high=row[2], low=row[3], close=row[4])


def read_candles(market: Market, symbol: str, interval: str, directory: Path | None = None) -> list[Candle]:
    """The recorded candles of one series, as the client should return them."""
    return list(_file_candles(series_file(directory or candles_dir(), market, symbol, interval)))


@functools.cache
def _file_candles(path: Path) -> tuple[Candle, ...]:
    return tuple(row_candle(row) for row in read_rows(path))


class RecordedCandles:
    """A `CandleSource` over fixed series (recorded files, or candles a test built); the clock
    plays no part: every recorded candle is in the past."""

    def __init__(self, directory: Path) -> None:
        # (market, symbol) -> (native interval, rows); other intervals are aggregated from it.
        self.series: dict[tuple[Market, str], tuple[str, tuple[Row, ...]]] = {
            (market, symbol): (interval, read_rows(path))
            for (market, symbol, interval), path in series_files(directory).items()
        }
        self._lock = threading.Lock()
        self._aggregated: dict[tuple[Market, str, str], tuple[Row, ...]] = {}

    def add(self, market: Market, symbol: str, interval: str, candles: Iterable[Candle]) -> None:
        rows = tuple((to_ms(c.open_time), c.open, c.high, c.low, c.close, Decimal(0)) for c in candles)
        with self._lock:
            self.series[(Market(market), symbol)] = (interval, rows)
            self._aggregated = {key: value for key, value in self._aggregated.items()
                                if key[:2] != (Market(market), symbol)}

    def symbols(self, market: Market) -> Collection[str]:
        return {symbol for m, symbol in self.series if m is market}

    def rows(self, market: Market, symbol: str, interval: str, now_ms: int) -> Sequence[Row] | None:
        native, rows = self.series[(market, symbol)]
        if interval == native:
            return rows
        if not can_aggregate(interval, native):
            return None
        with self._lock:
            key = (market, symbol, interval)
            if key not in self._aggregated:
                self._aggregated[key] = aggregate(rows, interval_ms(interval))
            return self._aggregated[key]

    def last_price(self, market: Market, symbol: str, now_ms: int) -> Decimal:
        return self.series[(market, symbol)][1][-1][4]

    def native_interval(self, market: Market, symbol: str) -> str:
        return self.series[(market, symbol)][0]


class FakeExchange(SimulatedExchange):
    """Serves every `<market>-<SYMBOL>-<interval>.json[.gz]` in `candles_dir` as Binance would."""

    source: RecordedCandles

    def __init__(self, candles_dir: Path, *, seed: int = 0) -> None:
        super().__init__(RecordedCandles(candles_dir), seed=seed)

    def add_candles(self, market: Market, symbol: str, interval: str, candles: Iterable[Candle]) -> None:
        """Serve (or replace) a series built in a test instead of read from a file."""
        self.source.add(market, symbol, interval, candles)
