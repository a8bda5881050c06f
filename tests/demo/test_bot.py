"""The demo's simulated bot: signals the real validation accepts, fixed by the seed, and a month
of them that, under the real trade rules, looks like a decent bot's record (not a perfect one)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from demo import DEFAULT_SEED
from demo.bot import LEVERAGES, RECKLESS_LEVERAGE, SIGNALS_PER_DAY, SOURCE, SignalBot, json_lines
from demo.exchange import from_ms, to_ms
from demo.market import RandomWalkMarket
from shared.candles import Candle
from shared.exits import TradeState, TradeTerms, advance, open_trade
from shared.models import EntryMode, Market, Origin, TradeStatus
from shared.signal_files import read_rows
from shared.signals import ValidSignal, validate

NOW = datetime(2024, 6, 1, 12, 0, 10, tzinfo=timezone.utc)
MONTH = timedelta(days=30)


def month_of_calls(seed: int) -> tuple[RandomWalkMarket, list[ValidSignal]]:
    """What `signalproof demo` imports: a month of calls, validated as the intake does."""
    market = RandomWalkMarket(seed=seed, start=NOW - MONTH)
    calls = SignalBot(market, seed=seed).backfill(market.start, NOW - timedelta(minutes=15))
    checked = [validate(call, received_at=NOW) for call in calls]
    assert all(isinstance(signal, ValidSignal) for signal in checked), [s for s in checked if not isinstance(s, ValidSignal)]
    return market, checked  # type: ignore[return-value]


def test_a_month_of_backfill_is_valid_in_time_order_and_labelled_backfill() -> None:
    market, signals = month_of_calls(seed=1)
    assert len(signals) == pytest.approx(30 * SIGNALS_PER_DAY, abs=2)
    assert [s.time for s in signals] == sorted(s.time for s in signals)
    assert market.start <= signals[0].time and signals[-1].time <= NOW - timedelta(minutes=15)
    assert {s.origin for s in signals} == {Origin.BACKFILL}
    assert {s.source for s in signals} == {SOURCE}
    assert len({s.signal_id for s in signals}) == len(signals)
    assert {s.side.value for s in signals} == {"LONG", "SHORT"} and {s.market for s in signals} == set(Market)


def test_a_live_call_is_live_and_at_the_price_of_its_moment() -> None:
    market = RandomWalkMarket(seed=4, start=NOW - MONTH)
    call = SignalBot(market, seed=4).signal_at(NOW)
    signal = validate(call, received_at=NOW + timedelta(seconds=1))
    assert isinstance(signal, ValidSignal) and signal.origin is Origin.LIVE
    assert signal.time == NOW.replace(microsecond=0)
    # A scalp (demo.bot.SCALP_SHARE) calls at the open of its start candle, the next minute's.
    moment = to_ms(NOW) if not signal.note.startswith("scalp") else to_ms(NOW.replace(second=0, microsecond=0)) + 60_000
    assert signal.entry == market.price_at(signal.symbol, moment)


def test_the_seed_fixes_every_call() -> None:
    def calls(seed: int) -> str:
        market = RandomWalkMarket(seed=seed, start=NOW - timedelta(days=2))
        return json_lines(SignalBot(market, seed=seed).backfill(market.start, NOW))

    assert calls(5) == calls(5)
    assert calls(5) != calls(6)


def test_two_demos_started_at_different_times_make_the_same_calls_and_trades_on_the_overlap() -> None:
    """What `signalproof demo --seed N` imports when started at NOW and 2 days 3 h later: the
    calls in both windows are identical (id, time, levels …) and resolve to the same trades."""
    later = NOW + timedelta(days=2, hours=3, minutes=17, seconds=25)
    runs = []
    for now in (NOW, later):
        market = RandomWalkMarket(seed=DEFAULT_SEED, start=now - MONTH)
        calls = SignalBot(market, seed=DEFAULT_SEED).backfill(market.start, now - timedelta(minutes=15))
        runs.append((market, {call["time"]: call for call in calls}))
    (first_market, first), (second_market, second) = runs
    shared = sorted(set(first) & set(second))
    assert len(shared) == pytest.approx((30 - 2) * SIGNALS_PER_DAY, abs=SIGNALS_PER_DAY)
    assert set(first) - set(second) == {t for t in first if t < second_market.start.isoformat().replace("+00:00", "Z")}
    assert [first[t] for t in shared] == [second[t] for t in shared]
    checked = [validate(first[t], received_at=NOW) for t in shared]
    assert all(isinstance(s, ValidSignal) for s in checked)
    assert [resolve(first_market, s) for s in checked] == [resolve(second_market, s) for s in checked]  # type: ignore[arg-type]


def test_the_calls_read_as_a_json_lines_import() -> None:
    market = RandomWalkMarket(seed=2, start=NOW - timedelta(days=1))
    calls = SignalBot(market, seed=2).backfill(market.start, NOW)
    rows = read_rows(json_lines(calls))
    assert [row.fields["id"] for row in rows if row.fields] == [call["id"] for call in calls]
    assert all(row.error is None for row in rows)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), minutes=st.integers(0, 3 * 24 * 60))
def test_every_call_follows_the_signal_rules(seed: int, minutes: int) -> None:
    market = RandomWalkMarket(seed=seed, start=NOW - timedelta(days=3))
    moment = market.start + timedelta(minutes=minutes, seconds=seed % 60)
    signal = validate(SignalBot(market, seed=seed).signal_at(moment), received_at=moment)
    assert isinstance(signal, ValidSignal), signal
    asset = market.assets[signal.symbol]
    tick = Decimal(asset.tick)
    assert signal.entry is not None and all(p % tick == 0 for p in (signal.entry, signal.stop_loss, *signal.take_profits))
    if signal.market is Market.SPOT:
        assert signal.leverage == 1
    else:
        assert asset.futures and signal.leverage in (*LEVERAGES, RECKLESS_LEVERAGE)
    assert signal.confidence is not None and Decimal("0.5") <= signal.confidence <= Decimal("0.95")
    assert signal.note


def resolve(market: RandomWalkMarket, signal: ValidSignal) -> TradeState:
    """The trade the worker would make of it, with the demo's settings (market entry, 24 h)."""
    terms = TradeTerms(
        side=signal.side, leverage=signal.leverage, stake_usd=Decimal(100),
        fee_rate=Decimal("0.0005") if signal.market is Market.FUTURES else Decimal("0.001"),
        entry_mode=EntryMode.MARKET, slippage_bps=Decimal(0), maintenance_margin_rate=Decimal("0.004"),
        pending_expiry_hours=Decimal(24), max_trade_hours=Decimal(24), signal_time=signal.time,
        signal_entry=signal.entry, take_profit=signal.take_profits[0], stop_loss=signal.stop_loss)
    first = market.index_at(to_ms(signal.time))
    closed = market.visible(signal.symbol, to_ms(NOW))[:-1]
    day_and_the_expiry_candle = closed[first:first + 24 * 60 + 1]
    candles = [Candle(from_ms(ms), o, h, low, c) for ms, o, h, low, c, _ in day_and_the_expiry_candle]
    return advance(terms, open_trade(terms), candles, complete_until=NOW)


def test_the_default_month_looks_like_a_decent_bots_record() -> None:
    market, signals = month_of_calls(seed=DEFAULT_SEED)
    trades = [resolve(market, signal) for signal in signals]
    closed = [t for t in trades if t.status.is_closed]
    pnl = [t.pnl_usd for t in closed if t.pnl_usd is not None]
    wins, losses = [p for p in pnl if p > 0], [p for p in pnl if p < 0]
    assert len(closed) > 150
    assert 0.4 < len(wins) / len(closed) < 0.7  # wins and losses, like a real record
    assert 1.0 < sum(wins) / -sum(losses) < 2.5  # a mild edge: simulated, and said so in demo/bot.py
    assert {t.status for t in closed} >= {TradeStatus.CLOSED_TP, TradeStatus.CLOSED_SL, TradeStatus.CLOSED_EXPIRED}
