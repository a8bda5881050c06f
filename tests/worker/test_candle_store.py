"""The candle store, worker side: every closed candle the monitor fetched is stored once (coarse
and fine, no request of its own), retention keeps each trade's life plus its margin and nothing
else, and the benchmark's daily BTCUSDT candles come one request a day, through exchange faults."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from conftest import Cli
from fake_exchange import FakeExchange
from fakes import InMemoryMarket
from shared import candle_store
from shared.candles import Candle
from shared.database import make_engine, transaction
from shared.models import Signal, StoredCandle, Trade
from shared.signal_files import RawRow
from worker.intake import process_new_signals, store_rows
from worker.market_data import BinanceClient
from worker.monitor import monitor_trades
from worker.service import Worker

UTC = timezone.utc
T0 = datetime(2018, 1, 22, 0, 0, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def make_row(n: int, **over: object) -> RawRow:
    fields = {"id": f"c{n}", "time": (T0 + timedelta(minutes=n)).isoformat(), "symbol": "ETHBTC", "side": "LONG",
              "take_profit": "0.0950", "stop_loss": "0.0850"}  # ETHBTC TP reached 2018-01-26 09:06
    fields.update({k: str(v) for k, v in over.items()})
    return RawRow(line=n, text=str(fields), fields=fields, error=None)


class Recording:
    """The in-memory market, noting every candle a klines request returned (what the worker fetched)."""

    def __init__(self, market: InMemoryMarket) -> None:
        self.market = market
        self.fetched: set[tuple[str, str, str, Candle]] = set()
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.market, name)

    def klines(self, market: Any, symbol: str, interval: str, **kwargs: Any) -> list[Candle]:
        self.requests += 1
        candles = self.market.klines(market, symbol, interval, **kwargs)
        self.fetched |= {(str(market), symbol, interval, c) for c in candles}
        return candles


@pytest.fixture
def market(candles_path: Path) -> Recording:
    return Recording(InMemoryMarket.from_candle_dir(candles_path))


def open_trades(url: str, market: Any, rows: list[RawRow], now: datetime) -> None:
    engine = make_engine(url)
    with transaction(engine) as session:
        store_rows(rows, default_source="test", received_at=now, actor="test", session=session)
    process_new_signals(engine, market, now=now, known_symbols={})


def stored(url: str) -> list[tuple[str, str, str, Candle]]:
    with transaction(make_engine(url)) as session:
        rows = session.exec(select(StoredCandle).order_by(StoredCandle.market, StoredCandle.symbol,
                                                           StoredCandle.interval, StoredCandle.open_time))
        return [(r.market, r.symbol, r.interval, Candle(r.open_time, r.open, r.high, r.low, r.close)) for r in rows]


def trades(url: str) -> list[Trade]:
    with transaction(make_engine(url)) as session:
        return list(session.exec(select(Trade).order_by(Trade.id)))


# --- storing ----------------------------------------------------------------------------------------


def test_the_monitor_stores_every_candle_it_fetched_once(database_url: str, market: Recording) -> None:
    """A five-day catch-up reads hours, then minutes where a trade may act: both are stored,
    exactly as fetched, each once; a second pass (caught up) adds its new candles and no duplicate."""
    open_trades(database_url, market, [make_row(0), make_row(1, symbol="LTCBTC", take_profit="0.5",
                                                             stop_loss="0.001")], T0)
    engine = make_engine(database_url)
    monitor_trades(engine, market, now=T0 + 5 * DAY)
    requests = market.requests
    rows = stored(database_url)
    assert {interval for _, _, interval, _ in rows} == {"1m", "1h"}
    assert set(rows) == market.fetched  # what was fetched, values and all, and nothing else
    assert len(rows) == len({row[:3] + (row[3].open_time,) for row in rows})
    eth = trades(database_url)[0]
    assert eth.status == "CLOSED_TP" and eth.exit_time == datetime(2018, 1, 26, 9, 6, tzinfo=UTC)
    assert ("SPOT", "ETHBTC", "1m", eth.exit_time) in {r[:3] + (r[3].open_time,) for r in rows}

    monitor_trades(engine, market, now=T0 + 5 * DAY + 10 * MINUTE)
    assert market.requests == requests + 1  # LTCBTC only: no request for the store
    again = stored(database_url)
    assert set(again) == market.fetched and len(again) == len(set(again)) > len(rows)

    # Storing the same candles again changes nothing.
    with transaction(engine) as session:
        assert candle_store.store(list(market.fetched), session=session) == len(market.fetched)
    assert stored(database_url) == again


def test_worker_once_stores_the_candles_of_its_trades(cli: Cli, database_url: str, tmp_path: Path) -> None:
    signals = tmp_path / "signals.csv"
    signals.write_text("id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"
                       "a,2018-01-22T00:00:00Z,ETHBTC,LONG,SPOT,,0.0950,0.0850,,,,\n"
                       "b,2018-01-22T03:30:00Z,ETHBTC,SHORT,SPOT,,0.0850,0.0950,,,,\n")
    cli("signals", "import", str(signals))
    cli("worker", "--once")
    first = stored(database_url)
    minutes = {r[3].open_time for r in first if r[:3] == ("SPOT", "ETHBTC", "1m")}
    for trade in trades(database_url):
        assert trade.status in ("CLOSED_TP", "CLOSED_SL"), trade
        assert trade.entry_time in minutes and trade.exit_time in minutes
    cli("worker", "--once")
    assert stored(database_url) == first  # nothing new, nothing twice


# --- retention --------------------------------------------------------------------------------------

_ids = iter(range(1, 10_000))


def add_trade(url: str, *, symbol: str, signal_time: datetime, status: str, exit_time: datetime | None = None,
              market: str = "SPOT", last_candle_time: datetime | None = None) -> None:
    n = next(_ids)
    with transaction(make_engine(url)) as session:
        signal = Signal(source="t", signal_id=f"r{n}", time=signal_time, received_at=signal_time, symbol=symbol,
                        side="LONG", market=market, take_profit="2", stop_loss=D(1), leverage=1, status="ACCEPTED")
        session.add(signal)
        session.flush()
        session.add(Trade(
            signal_pk=signal.id, source="t", signal_id=f"r{n}", origin="live", symbol=symbol, market=market,
            side="LONG", leverage=1, signal_time=signal_time, take_profit=D(2), stop_loss=D(1), stake_usd=D(100),
            fee_rate=D("0.001"), entry_mode="market", slippage_bps=D(0), maintenance_margin_rate=D("0.004"),
            pending_expiry_hours=D(24), max_trade_hours=D(0), candle_interval="1m", status=status,
            entry_time=signal_time if status != "PENDING" else None,
            entry_price=D("1.5") if status != "PENDING" else None, exit_time=exit_time,
            exit_price=D(2) if exit_time else None, last_candle_time=last_candle_time or exit_time,
            created_at=signal_time, updated_at=signal_time))


def series(market: str, symbol: str, interval: str, start: datetime, count: int) -> list[tuple[str, str, str, Candle]]:
    step = timedelta(minutes=1) if interval == "1m" else timedelta(hours=1) if interval == "1h" else DAY
    return [(market, symbol, interval, Candle(start + i * step, D(1), D(2), D("0.5"), D("1.5"))) for i in range(count)]


def test_retention_keeps_each_trades_life_plus_the_margin_and_nothing_else(database_url: str) -> None:
    """ETHBTC: a trade from 10:00 to 12:00 and another from day 2 12:00, still open; a cancelled
    one whose end is its last checked candle. LTCBTC: no trade at all. The margin is 60 candles of
    each candle's own interval (an hour of 1m candles, 60 h of 1h candles)."""
    day1 = datetime(2024, 3, 1, 10, tzinfo=UTC)
    add_trade(database_url, symbol="ETHBTC", signal_time=day1, status="CLOSED_TP", exit_time=day1 + 2 * HOUR)
    add_trade(database_url, symbol="ETHBTC", signal_time=day1 + 10 * DAY, status="OPEN",
              last_candle_time=day1 + 10 * DAY + HOUR)
    add_trade(database_url, symbol="ETHBTC", signal_time=day1 + 5 * DAY, status="CANCELLED",
              last_candle_time=day1 + 5 * DAY)
    add_trade(database_url, symbol="ETHBTC", market="FUTURES", signal_time=day1, status="CLOSED_SL",
              exit_time=day1 + HOUR)
    minutes = series("SPOT", "ETHBTC", "1m", day1 - 3 * HOUR, 60 * 24 * 12)  # 12 days of minutes from 07:00
    hours = series("SPOT", "ETHBTC", "1h", day1 - 10 * DAY, 24 * 30)
    futures = series("FUTURES", "ETHBTC", "1m", day1 - 3 * HOUR, 60 * 8)
    orphans = series("SPOT", "LTCBTC", "1m", day1, 100)
    benchmark = series("SPOT", "BTCUSDT", "1d", day1 - 400 * DAY, 500)
    benchmark_hours = series("SPOT", "BTCUSDT", "1h", day1, 5)
    engine = make_engine(database_url)
    with transaction(engine) as session:
        candle_store.store(minutes + hours + futures + orphans + benchmark + benchmark_hours, session=session)
    with transaction(engine) as session:
        deleted = candle_store.retain(session=session, batch=500)  # several batches per symbol

    def kept_minute(t: datetime) -> bool:
        return (day1 - HOUR <= t <= day1 + 3 * HOUR  # the closed trade, an hour either side
                or day1 + 5 * DAY - HOUR <= t <= day1 + 5 * DAY + HOUR  # the cancelled one
                or t >= day1 + 10 * DAY - HOUR)  # the open one: from an hour before its signal on

    def kept_hour(t: datetime) -> bool:
        return (day1 - 60 * HOUR <= t <= day1 + 2 * HOUR + 60 * HOUR
                or day1 + 5 * DAY - 60 * HOUR <= t <= day1 + 5 * DAY + 60 * HOUR
                or t >= day1 + 10 * DAY - 60 * HOUR)

    def kept_futures(t: datetime) -> bool:
        return day1 - HOUR <= t <= day1 + 2 * HOUR

    expected = ([r for r in minutes if kept_minute(r[3].open_time)] + [r for r in hours if kept_hour(r[3].open_time)]
                + [r for r in futures if kept_futures(r[3].open_time)] + benchmark)
    remaining = stored(database_url)
    assert sorted(remaining, key=lambda r: (r[0], r[1], r[2], r[3].open_time)) == \
        sorted(expected, key=lambda r: (r[0], r[1], r[2], r[3].open_time))
    total = len(minutes + hours + futures + orphans + benchmark + benchmark_hours)
    assert deleted == total - len(expected)
    # The edges: the minute an hour before the first signal stays, the one before it goes.
    kept = {(r[0], r[2], r[3].open_time) for r in remaining if r[1] == "ETHBTC"}
    assert ("SPOT", "1m", day1 - HOUR) in kept and ("SPOT", "1m", day1 - HOUR - MINUTE) not in kept
    assert ("SPOT", "1m", day1 + 3 * HOUR) in kept and ("SPOT", "1m", day1 + 3 * HOUR + MINUTE) not in kept
    with transaction(engine) as session:
        assert candle_store.retain(session=session) == 0  # nothing more to delete


# --- the benchmark ------------------------------------------------------------------------------------


def daily(start: datetime, count: int) -> list[Candle]:
    return [Candle(start + i * DAY, D(40000 + i), D(41000 + i), D(39000 + i), D(40500 + i)) for i in range(count)]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_benchmark_makes_one_request_a_day_from_the_first_signal_day(database_url: str) -> None:
    first_signal = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
    market = Recording(InMemoryMarket({("SPOT", "BTCUSDT", "1d"): daily(datetime(2024, 1, 1, tzinfo=UTC), 200)}))
    clock = Clock(datetime(2024, 3, 11, 8, tzinfo=UTC))
    worker = Worker(make_engine(database_url), market, clock=clock)
    assert worker.store_benchmark() == 0 and market.requests == 0  # no trade yet: nothing to compare with
    add_trade(database_url, symbol="ETHBTC", signal_time=first_signal, status="OPEN")
    assert worker.store_benchmark() == 10  # 1 March … 10 March: the closed days
    closes = _closes(database_url)
    assert [t for t, _ in closes] == [datetime(2024, 3, 1, tzinfo=UTC) + i * DAY for i in range(10)]
    assert closes[0][1] == D(40500 + 60)  # 1 March is the 61st day of the series
    for hour in range(1, 16):  # an hourly job: the same day asks nothing more
        clock.now += HOUR
        worker.store_benchmark()
    assert market.requests == 1
    clock.now = datetime(2024, 3, 12, 0, 30, tzinfo=UTC)  # 11 March has closed
    assert worker.store_benchmark() == 1 and market.requests == 2
    assert worker.store_benchmark() == 0 and market.requests == 2
    # A new process (worker --once) asks nothing while the newest closed day is stored.
    fresh = Worker(make_engine(database_url), market, clock=clock)
    assert fresh.store_benchmark() == 0 and market.requests == 2
    assert len(_closes(database_url)) == 11


def test_the_benchmark_survives_exchange_faults_and_retries_at_the_next_run(database_url: str,
                                                                           exchange: FakeExchange) -> None:
    exchange.add_candles("SPOT", "BTCUSDT", "1d", daily(datetime(2024, 1, 1, tzinfo=UTC), 100))
    add_trade(database_url, symbol="ETHBTC", signal_time=datetime(2024, 2, 1, 9, tzinfo=UTC), status="OPEN")
    client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=0.5, retries=1,
                           backoff_base=0.01, retry_after_cap=0.1)
    clock = Clock(datetime(2024, 2, 10, 12, tzinfo=UTC))
    worker = Worker(make_engine(database_url), client, clock=clock)
    try:
        for faults in (["503", "503"], ["garbage", "garbage"], ["wrong_shape", "truncated"]):
            exchange.faults = list(faults)
            assert worker.store_benchmark() == 0  # logged, not raised
            assert _closes(database_url) == []
        exchange.faults = []
        clock.now += HOUR  # the next run
        assert worker.store_benchmark() == 9  # 1 … 9 February
        requests = len(exchange.requests_to("klines"))
        clock.now += HOUR
        assert worker.store_benchmark() == 0 and len(exchange.requests_to("klines")) == requests
        # A run of the scheduler's job through `tick` never fails the worker either.
        clock.now += DAY
        exchange.faults = ["503", "503"]
        worker.tick("benchmark", worker.store_benchmark)
        with transaction(worker.engine) as session:
            from shared.heartbeat import read
            beat = read(session=session)
        assert beat is None or not beat.last_error
    finally:
        client.close()
    assert [t.day for t, _ in _closes(database_url)] == list(range(1, 10))


def _closes(url: str) -> list[tuple[datetime, D]]:
    with transaction(make_engine(url)) as session:
        return candle_store.benchmark_closes(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                                             session=session)


def test_a_database_error_in_retention_is_a_failed_job_not_a_dead_worker(database_url: str) -> None:
    engine = make_engine(database_url)
    worker = Worker(engine, InMemoryMarket({}), clock=Clock(datetime(2024, 1, 1, tzinfo=UTC)))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE candle"))
    worker.tick("candles", worker.retain_candles)  # logged and recorded, not raised
    with transaction(engine) as session:
        from shared.heartbeat import read
        beat = read(session=session)
    assert beat is not None and "candles" in (beat.last_error or "")


def test_an_exchange_without_btcusdt_is_asked_once_a_day_and_fails_nothing(database_url: str) -> None:
    add_trade(database_url, symbol="ETHBTC", signal_time=datetime(2024, 2, 1, 9, tzinfo=UTC), status="OPEN")
    market = Recording(InMemoryMarket({("SPOT", "ETHBTC", "1m"): []}))
    clock = Clock(datetime(2024, 2, 10, 12, tzinfo=UTC))
    worker = Worker(make_engine(database_url), market, clock=clock)
    worker.tick("benchmark", worker.store_benchmark)
    clock.now += HOUR
    worker.tick("benchmark", worker.store_benchmark)
    assert market.requests == 1
    with transaction(worker.engine) as session:
        from shared.heartbeat import read
        beat = read(session=session)
    assert beat is None or not beat.last_error
