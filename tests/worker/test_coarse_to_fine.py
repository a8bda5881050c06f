"""Catching up coarse to fine gives exactly the outcome of walking every candle.

Random trades on the recorded candles (long and short; market, limit and signal entries;
leverage up to 125, so liquidations; time limits; levels so close that one candle reaches the
stop-loss and the take-profit), followed by the monitor over real HTTP from the fake exchange,
which aggregates the hourly (and 4h, 12h, daily) candles from the recorded ones like Binance.
Each trade's outcome must equal, field by field, a plain walk of all its candles through
`shared.exits.advance`, computed here from the recorded files alone. Once in one catch-up,
once in passes at random instants, on SQLite and PostgreSQL.
"""

import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlmodel import select

from fake_exchange import FakeExchange, read_candles
from fakes import coarser
from shared.candles import Candle, interval_length
from shared.database import make_engine, transaction
from shared.exits import TradeState, TradeTerms, advance, open_trade
from shared.kinds import EntryMode, Market, Origin, Side, SignalStatus, TradeStatus
from shared.models import Signal, Trade
from shared.signals import ValidSignal
from shared.trade_rows import new_trade, record_opened
from worker.market_data import BinanceClient, TapeReader
from worker.monitor import ExchangeTape, monitor_trades

# (market, symbol, recorded interval, the intervals trades may use)
SERIES = [(Market.SPOT, "ETHBTC", "1m", ("1m", "1m", "1m", "5m", "15m", "1h")),
          (Market.SPOT, "LTCBTC", "1m", ("1m", "1m", "3m")),
          (Market.SPOT, "ADABTC", "1m", ("1m", "30m")),
          (Market.SPOT, "XRPETH", "1m", ("1m",)),
          (Market.FUTURES, "XRPUSDT", "5m", ("5m", "5m", "15m", "1h"))]
NATIVE = {(market, symbol): native for market, symbol, native, _ in SERIES}
END = datetime(2021, 11, 23, tzinfo=timezone.utc)  # after every recorded candle
OUTCOME = ("status", "reason", "entry_time", "entry_price", "exit_time", "exit_price", "fees_usd", "pnl_usd",
           "pnl_pct", "ambiguous")
TRADES = 120


def candles(market: Market, symbol: str, native: str, interval: str) -> list[Candle]:
    """The recorded candles at `interval`, aggregated here, not by the fake exchange."""
    recorded = read_candles(market, symbol, native)
    return recorded if interval == native else coarser(recorded, interval_length(interval))


def log_uniform(rng: random.Random, low: float, high: float) -> D:
    return D(str(round(low * (high / low) ** rng.random(), 6)))


def random_trades(rng: random.Random, count: int) -> list[tuple[ValidSignal, TradeTerms, str]]:
    made = []
    for n in range(count):
        market, symbol, native, intervals = rng.choice(SERIES)
        interval = rng.choice(intervals)
        series = read_candles(market, symbol, native)
        first, last = series[0].open_time, series[-1].open_time
        signal_time = first + timedelta(seconds=rng.randrange(int((last - first).total_seconds() * 0.9)))
        price = series[max(0, bisect_left([c.open_time for c in series], signal_time) - 1)].close
        side = rng.choice((Side.LONG, Side.SHORT))
        sign = side.sign
        # From a hair (one candle reaches both levels) to a few percent (open for days), and
        # some far away (still open at the end).
        far = rng.random() < 0.1
        take_profit = price * (1 + sign * (D(rng.uniform(0.2, 0.5)) if far else log_uniform(rng, 0.0003, 0.06)))
        stop_loss = price * (1 - sign * (D(rng.uniform(0.2, 0.5)) if far else log_uniform(rng, 0.0003, 0.05)))
        mode = rng.choice((EntryMode.MARKET, EntryMode.MARKET, EntryMode.LIMIT, EntryMode.LIMIT, EntryMode.SIGNAL))
        entry = price * (1 - sign * D(rng.uniform(-0.002, 0.01))) if mode is not EntryMode.MARKET else None
        entry = entry.quantize(D("1e-10")) if entry is not None else None
        terms = TradeTerms(
            side=side, leverage=rng.choice((1, 1, 2, 10, 50, 125)), stake_usd=D(100),
            fee_rate=D("0.0005") if market is Market.FUTURES else D("0.001"), entry_mode=mode,
            slippage_bps=D(rng.choice((0, 0, 3, 20))), maintenance_margin_rate=D(rng.choice(("0.004", "0.01"))),
            pending_expiry_hours=D(rng.choice(("0.25", "1", "6", "24", "72"))),
            max_trade_hours=D(rng.choice(("0", "0", "0", "0.5", "3", "24", "100"))), signal_time=signal_time,
            signal_entry=entry, take_profit=take_profit.quantize(D("1e-10")), stop_loss=stop_loss.quantize(D("1e-10")))
        signal = ValidSignal(source="random", signal_id=f"r{n}", time=signal_time, symbol=symbol, side=side,
                             market=market, entry=entry, take_profits=(terms.take_profit,), stop_loss=terms.stop_loss,
                             leverage=terms.leverage, confidence=None, note=None, origin=Origin.BACKFILL)
        made.append((signal, terms, interval))
    return made


def open_all(database_url: str, made: list[tuple[ValidSignal, TradeTerms, str]]) -> None:
    """Stored as intake stores an accepted signal's trade (with its ledger entries)."""
    engine = make_engine(database_url)
    with transaction(engine) as session:
        for signal, terms, interval in made:
            row = Signal(source=signal.source, signal_id=signal.signal_id, time=signal.time, symbol=signal.symbol,
                         side=signal.side, market=signal.market, entry=signal.entry,
                         take_profit=str(terms.take_profit), stop_loss=signal.stop_loss, leverage=signal.leverage,
                         status=SignalStatus.ACCEPTED, origin=signal.origin, received_at=signal.time)
            session.add(row)
            session.flush()
            record_opened(new_trade(row.id, signal, terms, candle_interval=interval, now=signal.time),  # type: ignore[arg-type]
                          session=session, now=signal.time)
    engine.dispose()


def fine_walk(made: list[tuple[ValidSignal, TradeTerms, str]], now: datetime,
              client: BinanceClient) -> dict[str, TradeState]:
    """Every trade through every closed candle of its interval, one by one: the definition. A
    candle reaching both a stop and a target reads the same exchange's trade tape."""
    outcomes = {}
    for signal, terms, interval in made:
        length = interval_length(interval)
        series = [c for c in candles(signal.market, signal.symbol, NATIVE[(signal.market, signal.symbol)], interval)
                  if c.open_time + length <= now]
        tape = ExchangeTape(TapeReader(client, interval), Market(signal.market), signal.symbol)
        outcomes[signal.signal_id] = advance(terms, open_trade(terms), series, complete_until=now - length, tape=tape)
    return outcomes


def outcomes(database_url: str) -> dict[str, Trade]:
    engine = make_engine(database_url)
    with transaction(engine) as session:
        found = {t.signal_id: t for t in session.exec(select(Trade))}
    engine.dispose()
    return found


@pytest.fixture
def client(exchange: FakeExchange) -> Iterator[BinanceClient]:
    client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=5)
    yield client
    client.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_coarse_to_fine_equals_the_plain_walk(seed: int, new_database: Callable[[], str], client: BinanceClient,
                                              exchange: FakeExchange, candles_path: Path) -> None:
    rng = random.Random(seed)
    made = random_trades(rng, TRADES)
    once, in_passes = new_database(), new_database()
    for url in (once, in_passes):
        open_all(url, made)
    monitor_trades(make_engine(once), client, now=END)
    engine = make_engine(in_passes)
    first = min(signal.time for signal, _, _ in made)
    for instant in sorted(first + timedelta(seconds=rng.randrange(10 * 24 * 3600)) for _ in range(4)):
        monitor_trades(engine, client, now=instant)
    monitor_trades(engine, client, now=END)
    engine.dispose()

    # Far behind, the monitor read coarse candles first (an hour of 1m ones, 4h of 5m ones, …).
    asked = Counter(params["interval"] for _, params in exchange.requests_to("klines"))
    assert {"1h", "4h", "12h", "1d"} <= set(asked), asked

    expected = fine_walk(made, END, client)
    for url in (once, in_passes):
        got = outcomes(url)
        differences = [f"{signal_id} {name}: walk {getattr(state, name)!r}, monitor {getattr(got[signal_id], name)!r}"
                       for signal_id, state in expected.items() for name in OUTCOME
                       if getattr(state, name) != getattr(got[signal_id], name)]
        assert differences == []
        for signal, terms, interval in made:
            state, checked = expected[signal.signal_id], got[signal.signal_id].last_candle_time
            if state.status.is_closed:  # decided at a candle: checked up to that one
                assert checked == state.last_candle_time == state.exit_time
            elif state.status.is_active:  # checked at least as far, and no candle skipped on the way
                assert state.last_candle_time is not None and checked is not None
                assert checked >= state.last_candle_time
                series = candles(signal.market, signal.symbol, NATIVE[(signal.market, signal.symbol)], interval)
                assert not [c for c in series if state.last_candle_time < c.open_time <= checked]

    # The random trades cover what they should (else the comparison proves little).
    statuses = Counter(state.status for state in expected.values())
    assert {TradeStatus.CLOSED_TP, TradeStatus.CLOSED_SL, TradeStatus.LIQUIDATED, TradeStatus.CLOSED_EXPIRED,
            TradeStatus.CANCELLED, TradeStatus.OPEN} <= set(statuses), statuses
    assert any(state.resolution == "trades" for state in expected.values())  # same-candle cases, read from the tape
    assert any(terms.entry_mode is EntryMode.LIMIT and expected[signal.signal_id].entry_time is not None
               for signal, terms, _ in made)
