"""The funding job (worker/funding.py) and the client's funding history, over real HTTP from the
fake exchange (an event every 8 h of the recorded futures candles, demo/tape.py), on SQLite
and PostgreSQL. Requests are counted at the exchange."""

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from fake_exchange import FakeExchange, read_candles
from shared.candles import Candle
from shared.database import transaction
from shared.funding_store import FundingRate, events, store_events, stored_ranges
from shared.kinds import Market
from shared.models import Signal, Trade, TradeStatus
from worker.funding import FundingState, refresh_funding
from worker.market_data import BinanceClient, ExchangeError

UTC = timezone.utc
SYMBOL = "XRPUSDT"  # recorded 5m futures candles, 2021-11-15 … 2021-11-21: 20 funding events
FIRST_EVENT = datetime(2021, 11, 15, 8, tzinfo=UTC)
LAST_EVENT = datetime(2021, 11, 21, 16, tzinfo=UTC)
ENTRY = datetime(2021, 11, 15, 1, 30, tzinfo=UTC)
NOW = datetime(2021, 11, 21, 17, 0, tzinfo=UTC)


@pytest.fixture
def client(exchange: FakeExchange) -> Iterator[BinanceClient]:
    client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url, timeout=0.3, sleep=lambda s: None)
    yield client
    client.close()


def add_trade(engine: Engine, name: str, *, market: str = "FUTURES", symbol: str = SYMBOL,
              status: TradeStatus = TradeStatus.OPEN, entry_time: datetime | None = ENTRY, **over: Any) -> None:
    with transaction(engine) as session:
        signal = Signal(source="bot", signal_id=name, time=entry_time or ENTRY, received_at=ENTRY, symbol=symbol,
                        side="LONG", market=market, take_profit="2", stop_loss=D("0.5"), leverage=5 if market ==
                        "FUTURES" else 1, status="ACCEPTED", origin="live")
        session.add(signal)
        session.flush()
        session.add(Trade(signal_pk=signal.id, source="bot", signal_id=name, origin="live", symbol=symbol,
                          market=market, side="LONG", leverage=signal.leverage, signal_time=signal.time,
                          signal_entry=D(1), take_profit=D(2), stop_loss=D("0.5"), stake_usd=D(100),
                          fee_rate=D("0.0005"), entry_mode="market", slippage_bps=D(0),
                          maintenance_margin_rate=D("0.004"), pending_expiry_hours=D(24), max_trade_hours=D(0),
                          candle_interval="5m", status=status.value, entry_time=entry_time,
                          entry_price=D(1) if entry_time else None, created_at=ENTRY, updated_at=ENTRY, **over))


def stored(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(FundingRate)).one()


def funding_requests(exchange: FakeExchange) -> list[dict[str, str]]:
    return [params for _, params in exchange.requests_to("fundingRate")]


def test_nothing_to_do_without_open_futures_trades(engine: Engine, exchange: FakeExchange,
                                                   client: BinanceClient) -> None:
    add_trade(engine, "spot", market="SPOT", symbol="ETHBTC")
    add_trade(engine, "closed", status=TradeStatus.CLOSED_TP)
    report = refresh_funding(engine, client, now=NOW)
    assert (report.symbols, report.requested, report.message) == ((), (), None)
    assert funding_requests(exchange) == [] and stored(engine) == 0


def test_the_history_from_the_oldest_entry_is_stored_once(engine: Engine, exchange: FakeExchange,
                                                          client: BinanceClient) -> None:
    add_trade(engine, "a", entry_time=ENTRY + timedelta(days=2))
    add_trade(engine, "b")  # the oldest
    add_trade(engine, "pending", status=TradeStatus.PENDING, entry_time=None)
    report = refresh_funding(engine, client, now=NOW)
    assert (report.symbols, report.requested, report.events, report.message) == ((SYMBOL,), (SYMBOL,), 20, None)
    assert funding_requests(exchange) == [{"symbol": SYMBOL, "startTime": str(int(ENTRY.timestamp() * 1000) + 1),
                                           "endTime": str(int((NOW - timedelta(minutes=1)).timestamp() * 1000)),
                                           "limit": "1000"}]
    assert report.known_through == {SYMBOL: NOW - timedelta(minutes=1)}
    with Session(engine) as session:
        assert stored_ranges([SYMBOL, "BTCUSDT"], session=session) == {SYMBOL: (FIRST_EVENT, LAST_EVENT)}
        first = events(SYMBOL, ENTRY, FIRST_EVENT, session=session)
    # markPrice = the close of the 5m candle ending at 08:00; the rate from demo/tape.RATES.
    closing = next(c for c in read_candles(Market.FUTURES, SYMBOL, "5m")
                   if c.open_time == FIRST_EVENT - timedelta(minutes=5))
    assert [(e.time, e.mark_price) for e in first] == [(FIRST_EVENT, closing.close)]
    assert first[0].rate == D("0.00005")
    # Asked again from scratch (a restart): the events are stored once.
    refresh_funding(engine, client, now=NOW)
    assert stored(engine) == 20


def test_once_caught_up_one_request_per_funding_time(engine: Engine, exchange: FakeExchange,
                                                     client: BinanceClient) -> None:
    add_trade(engine, "a")
    state = FundingState()
    refresh_funding(engine, client, now=NOW, state=state)
    for minutes in range(0, 7 * 60, 30):  # a tick every half hour until the next funding time (00:00)
        report = refresh_funding(engine, client, now=NOW + timedelta(minutes=minutes), state=state)
        assert report.requested == ()
    assert len(funding_requests(exchange)) == 1
    next_time = datetime(2021, 11, 22, 0, tzinfo=UTC)
    assert refresh_funding(engine, client, now=next_time, state=state).requested == ()  # not published yet
    assert refresh_funding(engine, client, now=next_time + timedelta(minutes=2), state=state).requested == (SYMBOL,)
    assert refresh_funding(engine, client, now=next_time + timedelta(hours=1), state=state).requested == ()
    assert len(funding_requests(exchange)) == 2
    # From the last tick that found nothing to ask for (23:59 known: no funding time after 16:00 before it).
    assert funding_requests(exchange)[1]["startTime"] == str(int((next_time - timedelta(minutes=1)).timestamp() * 1000)
                                                             + 1)


def test_after_a_restart_it_continues_from_the_newest_stored_event(engine: Engine, exchange: FakeExchange,
                                                                    client: BinanceClient) -> None:
    add_trade(engine, "a")
    refresh_funding(engine, client, now=NOW)
    exchange.requests.clear()
    report = refresh_funding(engine, client, now=NOW + timedelta(hours=8), state=FundingState())
    assert report.requested == (SYMBOL,)
    assert funding_requests(exchange)[0]["startTime"] == str(int(LAST_EVENT.timestamp() * 1000) + 1)


def test_a_trade_older_than_the_stored_history_reads_back_to_its_entry(engine: Engine, exchange: FakeExchange,
                                                                       client: BinanceClient) -> None:
    add_trade(engine, "late", entry_time=datetime(2021, 11, 20, tzinfo=UTC))
    state = FundingState()
    refresh_funding(engine, client, now=NOW, state=state)
    assert stored(engine) == 5  # 20th 08:00, 16:00, 21st 00:00, 08:00, 16:00
    add_trade(engine, "backfilled")  # entered on the 15th
    assert refresh_funding(engine, client, now=NOW, state=state).requested == (SYMBOL,)
    assert stored(engine) == 20


@pytest.mark.parametrize("fault", ["503", "missing_field"])
def test_a_failure_changes_nothing_and_says_so(engine: Engine, exchange: FakeExchange, client: BinanceClient,
                                               fault: str) -> None:
    """The exchange down (every retry a 503), or answering with an event that lacks its rate."""
    add_trade(engine, "a")
    if fault == "503":
        exchange.faults = [fault] * 6
    else:
        exchange.funding_faults = [fault] * 6
    state = FundingState()
    report = refresh_funding(engine, client, now=NOW, state=state)
    assert report.message is not None and SYMBOL in report.message and "waits" in report.message
    assert stored(engine) == 0 and report.known_through == {} and state == FundingState()
    report = refresh_funding(engine, client, now=NOW, state=state)  # the exchange is back
    assert report.message is None and stored(engine) == 20


def test_events_without_a_mark_price_are_stored_without_one(engine: Engine, exchange: FakeExchange,
                                                            client: BinanceClient) -> None:
    add_trade(engine, "a")
    exchange.funding_faults = ["no_mark_price"]
    refresh_funding(engine, client, now=NOW)
    with Session(engine) as session:
        assert {e.mark_price for e in events(SYMBOL, ENTRY, NOW, session=session)} == {None}


def test_storing_an_event_again_keeps_the_first_version(engine: Engine) -> None:
    from shared.funding import FundingEvent
    with transaction(engine) as session:
        store_events(SYMBOL, [FundingEvent(FIRST_EVENT, D("0.0001"), D("1.2"))], session=session)
    with transaction(engine) as session:
        store_events(SYMBOL, [FundingEvent(FIRST_EVENT, D("0.0009"), D("9")),
                              FundingEvent(LAST_EVENT, D("-0.0001"), None)], session=session)
    with Session(engine) as session:
        assert events(SYMBOL, ENTRY, NOW, session=session) == [FundingEvent(FIRST_EVENT, D("0.0001"), D("1.2")),
                                                                FundingEvent(LAST_EVENT, D("-0.0001"), None)]


# --- the client alone ------------------------------------------------------------------------


def test_more_than_a_page_of_funding_is_read_by_time(exchange: FakeExchange, client: BinanceClient) -> None:
    """2,100 events (one per 8 h candle of a series made here): pages of 1,000, 1,000 and 100."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    candles = [Candle(start + timedelta(hours=8 * i), D(10), D(11), D(9), D(10) + D(i) / 100) for i in range(2100)]
    exchange.add_candles(Market.FUTURES, "LONGUSDT", "8h", candles)
    got = client.funding_rates("LONGUSDT", start, start + timedelta(days=800))
    assert len(got) == 2100 and got[0].time == start + timedelta(hours=8) and got[-1].mark_price == D("30.99")
    pages = funding_requests(exchange)
    assert len(pages) == 3 and pages[1]["startTime"] == str(int(got[999].time.timestamp() * 1000) + 1)


def test_a_funding_answer_with_missing_fields_is_an_error_never_a_guess(exchange: FakeExchange,
                                                                        client: BinanceClient) -> None:
    exchange.funding_faults = ["missing_field"] * 6
    with pytest.raises(ExchangeError, match="lacks fundingRate"):
        client.funding_rates(SYMBOL, ENTRY, NOW)
