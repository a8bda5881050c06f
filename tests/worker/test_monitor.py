"""The trade monitor over an in-memory market: requests per symbol, resuming after downtime,
and exchange failures that change nothing."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from fakes import InMemoryMarket
from shared.candles import Candle
from shared.database import make_engine, transaction
from shared.exits import close_manually
from shared.models import Event, Market, Trade
from shared.signal_files import RawRow
from shared.trade_rows import save_decision, save_progress, state_of, terms_of
from worker.intake import process_new_signals, store_rows
from worker.market_data import RequestRefused
from worker.monitor import monitor_trades, store_prices

T0 = datetime(2018, 1, 22, 0, 0, tzinfo=timezone.utc)


def make_row(n: int, **over: object) -> RawRow:
    fields = {"id": f"m{n}", "time": (T0 + timedelta(minutes=n)).isoformat(), "symbol": "ETHBTC", "side": "LONG",
              "take_profit": "0.2", "stop_loss": "0.01"}  # far away: stays open for a while
    fields.update({k: str(v) for k, v in over.items()})
    return RawRow(line=n, text=str(fields), fields=fields, error=None)


@pytest.fixture
def market(candles_path: Path) -> InMemoryMarket:
    return InMemoryMarket.from_candle_dir(candles_path)


def open_trades(database_url: str, market: InMemoryMarket, rows: list[RawRow], now: datetime) -> None:
    engine = make_engine(database_url)
    with transaction(engine) as session:
        store_rows(rows, default_source="test", received_at=now, actor="test", session=session)
    process_new_signals(engine, market, now=now, known_symbols={})


def trades(database_url: str) -> list[Trade]:
    with transaction(make_engine(database_url)) as session:
        return list(session.exec(select(Trade).order_by(Trade.id)))


def test_one_klines_request_per_symbol_when_caught_up(database_url: str, market: InMemoryMarket) -> None:
    now = T0 + timedelta(hours=2)
    rows = [make_row(n) for n in range(5)] + [make_row(10 + n, symbol="LTCBTC", take_profit="0.5", stop_loss="0.001")
                                              for n in range(3)]
    open_trades(database_url, market, rows, now)
    engine = make_engine(database_url)
    monitor_trades(engine, market, now=now)  # catching up: ~120 candles, one page each
    market.calls.clear()
    report = monitor_trades(engine, market, now=now + timedelta(minutes=1))
    assert [c for c in market.calls if c[0] == "klines"] == [("klines", Market.SPOT, "ETHBTC"),
                                                            ("klines", Market.SPOT, "LTCBTC")]
    assert report.requests == 2 and report.behind_seconds is not None and report.behind_seconds < 180
    assert all(t.status == "OPEN" and t.last_candle_time == T0 + timedelta(hours=2) for t in trades(database_url))


def test_far_behind_reads_hours_then_minutes_only_where_needed(database_url: str, market: InMemoryMarket) -> None:
    """Four days behind: one page of 96 hourly candles, the 1m candles of the hour holding the
    start candle (the market entry), and the minutes after the last closed hour (none here)."""
    open_trades(database_url, market, [make_row(0)], T0)
    report = monitor_trades(make_engine(database_url), market, now=T0 + timedelta(days=4))
    assert [c[0] for c in market.calls].count("klines") == report.requests == 3
    (trade,) = trades(database_url)
    assert trade.status == "OPEN" and trade.last_candle_time == T0 + timedelta(days=4, minutes=-1)


@pytest.mark.parametrize("server_page,requests", [(None, 6), (700, 9)])
def test_paging_when_far_behind(database_url: str, market: InMemoryMarket, server_page: int | None,
                                requests: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exchange without hourly candles: four days of 1m candles = 5760 rows (a few minutes
    missing), six pages of 1000, or nine when the server sends at most 700 a page; then caught up."""
    if server_page is not None:
        market.page_limit = lambda _market: server_page  # type: ignore[method-assign]
    klines = market.klines

    def no_hours(market_: Market, symbol: str, interval: str, **kwargs: Any) -> list[Candle]:
        if interval != "1m":
            raise RequestRefused(f"HTTP 400: invalid interval {interval}")
        return klines(market_, symbol, interval, **kwargs)

    monkeypatch.setattr(market, "klines", no_hours)
    open_trades(database_url, market, [make_row(0)], T0)
    report = monitor_trades(make_engine(database_url), market, now=T0 + timedelta(days=4))
    assert report.requests == requests
    (trade,) = trades(database_url)
    assert trade.last_candle_time == T0 + timedelta(days=4, minutes=-1)


def test_an_exit_during_downtime_is_found_at_its_candle(database_url: str, market: InMemoryMarket,
                                                         tmp_path: Path, new_database: object) -> None:
    """Checking every hour, or once after three days, gives the same exit."""
    row = make_row(0, take_profit="0.0950", stop_loss="0.0850")  # ETHBTC TP 0.095 reached 2018-01-26 09:06
    open_trades(database_url, market, [row], T0)
    engine = make_engine(database_url)
    for hour in range(1, 24 * 5):
        monitor_trades(engine, market, now=T0 + timedelta(hours=hour))
    hourly = trades(database_url)[0]
    other = new_database()  # type: ignore[operator]
    open_trades(other, market, [row], T0)
    monitor_trades(make_engine(other), market, now=T0 + timedelta(days=5))
    once = trades(other)[0]
    assert (hourly.status, hourly.exit_time, hourly.exit_price) == ("CLOSED_TP", datetime(2018, 1, 26, 9, 6, tzinfo=timezone.utc), D("0.095"))
    assert (once.status, once.exit_time, once.exit_price, once.pnl_usd) == (
        hourly.status, hourly.exit_time, hourly.exit_price, hourly.pnl_usd)


def test_exchange_failure_changes_nothing(database_url: str, market: InMemoryMarket) -> None:
    open_trades(database_url, market, [make_row(0, stop_loss="0.0906")], T0)  # opens 0.09083788, low 0.090574 within minutes
    before = trades(database_url)
    market.failing.add("ETHBTC")
    report = monitor_trades(make_engine(database_url), market, now=T0 + timedelta(days=1))
    assert report.failed and "ETHBTC" in report.failed[0]
    after = trades(database_url)
    assert [(t.status, t.last_candle_time, t.version) for t in after] == [(t.status, t.last_candle_time, t.version) for t in before]
    market.failing.clear()
    monitor_trades(make_engine(database_url), market, now=T0 + timedelta(days=1))
    assert trades(database_url)[0].status == "CLOSED_SL"


def test_latest_prices_one_batched_call_per_market(database_url: str, market: InMemoryMarket) -> None:
    rows = [make_row(0), make_row(1, symbol="LTCBTC", take_profit="0.5", stop_loss="0.001"),
            make_row(2, symbol="XRPUSDT", market="FUTURES", take_profit="5", stop_loss="0.1",
                     time="2021-11-15T00:00:00+00:00")]
    later = datetime(2022, 1, 1, tzinfo=timezone.utc)  # after every signal's time
    open_trades(database_url, market, rows, later)
    market.calls.clear()
    assert store_prices(make_engine(database_url), market, now=later) == 3
    assert [c[:2] for c in market.calls] == [("latest_prices", Market.FUTURES), ("latest_prices", Market.SPOT)]


def test_a_trade_the_owner_closed_between_passes_is_not_touched_again(database_url: str,
                                                                       market: InMemoryMarket) -> None:
    """The monitor keeps terms between passes; a row whose version moved is read again."""
    open_trades(database_url, market, [make_row(0, take_profit="0.0950", stop_loss="0.0850")], T0)
    engine = make_engine(database_url)
    monitor_trades(engine, market, now=T0 + timedelta(hours=1))  # kept in memory, OPEN
    (trade,) = trades(database_url)
    with transaction(engine) as session:
        row = session.get(Trade, trade.id)
        assert row is not None
        before = state_of(row)
        after = close_manually(terms_of(row), before, price=D("0.0905"), now=T0 + timedelta(hours=1))
        assert save_decision(row, before, after, now=T0 + timedelta(hours=1), actor="owner", session=session)
    monitor_trades(engine, market, now=T0 + timedelta(days=5))  # the take-profit of 2018-01-26 09:06 comes
    (closed,) = trades(database_url)
    assert (closed.status, closed.exit_price, closed.last_candle_time) == ("CLOSED_MANUAL", after.exit_price,
                                                                          trade.last_candle_time)
    with transaction(engine) as session:
        kinds = [e.kind for e in session.exec(select(Event).where(Event.trade_id == trade.id).order_by(Event.id))]
    assert kinds == ["trade.opened", "trade.filled", "trade.closed"]


def test_progress_only_moves_forward(database_url: str, market: InMemoryMarket) -> None:
    """Another worker that checked further first keeps its progress (no version moves for it)."""
    open_trades(database_url, market, [make_row(0)], T0)
    engine = make_engine(database_url)
    monitor_trades(engine, market, now=T0 + timedelta(hours=1))
    ahead, (trade,) = T0 + timedelta(hours=3), trades(database_url)
    assert trade.id is not None
    with transaction(engine) as session:
        save_progress([trade.id], ahead, session=session)  # as another worker would
        save_progress([trade.id], T0, session=session)  # never backwards
    assert trades(database_url)[0].last_candle_time == ahead
    monitor_trades(engine, market, now=T0 + timedelta(hours=2))  # less far than the other worker went
    assert trades(database_url)[0].last_candle_time == ahead
    monitor_trades(engine, market, now=T0 + timedelta(hours=4))
    assert trades(database_url)[0].last_candle_time == T0 + timedelta(hours=4, minutes=-1)
