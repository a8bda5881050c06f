"""What the worker benchmarks (bench/tick.py, bench/catchup.py) share: a market of many symbols,
served over real HTTP by the simulated exchange in a process of its own, trades written straight
into the database, and counters of requests and SQL statements.

The market is a seeded random walk of 1m candles per symbol (prices in whole ticks, so every
price is an exact decimal), anchored at `start`: a candle is a function of the seed, the symbol
and its open time only, so the benchmark process can walk the very candles the exchange serves.
Coarser intervals are aggregated from the 1m candles, aligned like Binance's. The exchange runs
in another process so that its CPU time is not counted as the worker's; its clock is a shared
value the benchmark sets (the candle that is forming at that instant is served, as Binance does).
"""

import multiprocessing
import sys
from bisect import bisect_left
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The code to measure: this checkout, or `--code DIR` (e.g. an export of main, for the
    "before" figures). Read from argv before anything of the project is imported."""
    if "--code" in sys.argv:
        return Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
    return ROOT


import site_load  # noqa: E402  (puts this checkout on the path: the code to measure goes before it)

sys.path.insert(0, str(project_root()))
bench_database = site_load.bench_database

from demo.exchange import Row, SimulatedExchange, interval_ms  # noqa: E402
from shared.candles import Candle  # noqa: E402
from shared.clock import from_ms, to_ms  # noqa: E402
from shared.kinds import Market  # noqa: E402

MINUTE_MS = 60_000
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class MarketSpec:
    """Which symbols, from when, for how long, and the seed of their walks."""

    symbols: int
    start: datetime  # a UTC midnight: every Binance interval up to 1d is aligned to it
    minutes: int
    seed: int = 1
    futures_share: float = 0.2  # this share of the symbols is a USDⓈ-M contract, the rest spot

    def names(self) -> list[tuple[Market, str]]:
        cut = int(self.symbols * (1 - self.futures_share))
        return [(Market.SPOT if n < cut else Market.FUTURES, f"S{n:04d}USDT") for n in range(self.symbols)]


class _Series:
    """One symbol's 1m walk as integer ticks (price = ticks · 10^exponent)."""

    def __init__(self, spec: MarketSpec, index: int) -> None:
        rng = np.random.default_rng([spec.seed, index])
        level = 10 ** rng.uniform(-3, 4.5)
        self.exponent = int(np.floor(np.log10(level))) - 5  # about six significant digits
        sigma = rng.uniform(0.0004, 0.0012)  # per minute: 1.5–4.5 % a day
        hourly = np.repeat(np.exp(rng.normal(0, 0.35, spec.minutes // 60 + 1)), 60)[:spec.minutes]
        steps = rng.standard_t(4, spec.minutes) * sigma * hourly / np.sqrt(2)
        closes = level * np.exp(np.cumsum(steps))
        scale = 10.0 ** -self.exponent
        close = np.maximum(np.rint(closes * scale), 1).astype(np.int64)
        open_ = np.concatenate(([close[0]], close[:-1]))
        wick = np.abs(rng.normal(0, 0.6, (2, spec.minutes))) * sigma * hourly * closes * scale
        self.high = np.maximum(open_, close) + np.rint(wick[0]).astype(np.int64)
        self.low = np.maximum(np.minimum(open_, close) - np.rint(wick[1]).astype(np.int64), 1)
        self.open, self.close = open_, close


class _Rows(Sequence[Row]):
    """A series' candles at one interval as Binance rows, made on demand (a month of 1m candles
    for a hundred symbols would not fit in memory as Decimals)."""

    def __init__(self, start_ms: int, step_ms: int, exponent: int, prices: np.ndarray, count: int) -> None:
        self.start_ms, self.step_ms, self.exponent, self.prices, self.count = start_ms, step_ms, exponent, prices, count

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | Sequence[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        o, h, l, c = (Decimal(int(v)).scaleb(self.exponent) for v in self.prices[index])
        return (self.start_ms + index * self.step_ms, o, h, l, c, Decimal(1))


class SyntheticMarket:
    """A `CandleSource` (demo/exchange.py) over `MarketSpec`'s walks."""

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.start_ms = to_ms(spec.start)
        self.listed = set(spec.names())
        self.index = {name: n for n, (_, name) in enumerate(spec.names())}
        self._series: dict[str, _Series] = {}
        self._prices: dict[tuple[str, int], np.ndarray] = {}

    def symbols(self, market: Market) -> Collection[str]:
        return {name for m, name in self.listed if m is market}

    def rows(self, market: Market, symbol: str, interval: str, now_ms: int) -> Sequence[Row] | None:
        step = interval_ms(interval)
        if step % MINUTE_MS:
            return None
        prices = self._aggregated(symbol, step // MINUTE_MS)
        existing = max(0, min(len(prices), (now_ms - self.start_ms) // step + 1))  # the forming one included
        return _Rows(self.start_ms, step, self._walk(symbol).exponent, prices, existing)

    def native_interval(self, market: Market, symbol: str) -> str:
        return "1m"  # the walks are per minute (the trade tape and funding are made from these)

    def last_price(self, market: Market, symbol: str, now_ms: int) -> Decimal:
        rows = self.rows(market, symbol, "1m", now_ms)
        assert rows is not None
        return rows[len(rows) - 1][4]

    def candles(self, market: Market, symbol: str, interval: str, since: datetime, until: datetime) -> list[Candle]:
        """The closed candles opening in [since, until): what the worker should see."""
        rows = self.rows(market, symbol, interval, to_ms(until))
        assert rows is not None
        first = bisect_left(rows, to_ms(since), key=lambda row: row[0])
        step = interval_ms(interval)
        return [Candle(from_ms(r[0]), r[1], r[2], r[3], r[4]) for r in rows[first:] if r[0] + step <= to_ms(until)]

    def _walk(self, symbol: str) -> _Series:
        if symbol not in self._series:
            self._series[symbol] = _Series(self.spec, self.index[symbol])
        return self._series[symbol]

    def _aggregated(self, symbol: str, minutes: int) -> np.ndarray:
        key = (symbol, minutes)
        if key not in self._prices:
            walk = self._walk(symbol)
            cuts = np.arange(0, self.spec.minutes, minutes)
            last = np.minimum(cuts + minutes, self.spec.minutes) - 1
            self._prices[key] = np.stack([walk.open[cuts], np.maximum.reduceat(walk.high, cuts),
                                          np.minimum.reduceat(walk.low, cuts), walk.close[last]], axis=1)
        return self._prices[key]


# --- the exchange in a process of its own -------------------------------------------------------


def _serve(spec: MarketSpec, now_ms: Any, pipe: Any) -> None:
    source = SyntheticMarket(spec)
    exchange = SimulatedExchange(source, clock=lambda: from_ms(now_ms.value))
    exchange.keep_requests = False
    with exchange:
        pipe.send(exchange.url)
        pipe.recv()  # until told to stop


class ExchangeProcess:
    """The simulated exchange over `SyntheticMarket(spec)`, in a child process; `now` is its clock."""

    def __init__(self, spec: MarketSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._now = context.Value("q", to_ms(spec.start))
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(spec, self._now, child), daemon=True)

    def __enter__(self) -> "ExchangeProcess":
        self._process.start()
        self.url: str = self._pipe.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)

    def set_now(self, now: datetime) -> None:
        self._now.value = to_ms(now)


# --- counting --------------------------------------------------------------------------------


class CountingMarketData:
    """A `MarketData` that counts the klines requests of the client it wraps."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.klines_requests = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def klines(self, *args: Any, **kwargs: Any) -> Any:
        self.klines_requests += 1
        return self.client.klines(*args, **kwargs)


class StatementCounter:
    """Counts the SQL statements an engine sends (SQLAlchemy's before_cursor_execute)."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    def summary(self, top: int = 6) -> str:
        """The commonest statements, by their first words."""
        from collections import Counter

        kinds = Counter(" ".join(s.split()[:3]) for s in self.statements)
        return ", ".join(f"{count} × {kind}" for kind, count in kinds.most_common(top))


def insert_trades(url: str, trades: list[dict[str, Any]], *, now: datetime) -> None:
    """Trades (and the ACCEPTED signals they came from) written directly, in one transaction:
    what intake would have stored, without its symbol checks and ledger entries (the monitor
    needs neither)."""
    import sqlalchemy as sa

    from shared.database import make_engine
    from shared.models import Signal, Trade

    engine = make_engine(url)
    signals, rows = [], []
    for n, trade in enumerate(trades, start=1):
        signals.append({"id": n, "source": "bench", "signal_id": f"b{n}", "time": trade["signal_time"],
                        "received_at": trade["signal_time"], "symbol": trade["symbol"], "side": trade["side"],
                        "market": trade["market"], "entry": trade.get("signal_entry"),
                        "take_profit": str(trade["take_profit"]), "stop_loss": trade["stop_loss"],
                        "leverage": trade["leverage"], "status": "ACCEPTED", "origin": "live", "processed_at": now})
        rows.append({"id": n, "signal_pk": n, "source": "bench", "signal_id": f"b{n}", "origin": "live",
                     "created_at": now, "updated_at": now, "version": 0, **trade})
    with engine.begin() as connection:
        for table, values in ((Signal.__table__, signals), (Trade.__table__, rows)):
            columns = sorted({key for row in values for key in row})
            connection.execute(sa.insert(table), [{c: row.get(c) for c in columns} for row in values])
        if engine.dialect.name == "postgresql":
            for table in ("signal", "trade"):
                connection.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                           f"(SELECT max(id) FROM \"{table}\"))"))
            connection.execute(sa.text("ANALYZE"))
    engine.dispose()


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


def timed(function: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    import time

    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu
