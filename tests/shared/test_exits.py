"""One row per sentence of docs/trade-rules.md. Expected numbers are derived in the ids/comments."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from shared.candles import Candle
from shared.exits import (
    BEYOND_LEVELS, ENTRY_NOT_REACHED, ManualActionRefused, TradeState, TradeTerms, advance, close_manually,
    liquidation_price, open_trade, unrealized_pnl,
)
from shared.kinds import EntryMode, Side, TradeStatus

T0 = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)


def at(minute: int, second: int = 0) -> datetime:
    return T0 + timedelta(minutes=minute, seconds=second)


def candle(minute: int, o: str, h: str, l: str, c: str | None = None) -> Candle:
    return Candle(at(minute), D(o), D(h), D(l), D(c or o))


def make_terms(**over: object) -> TradeTerms:
    base = dict(
        side=Side.LONG, leverage=1, stake_usd=D(100), fee_rate=D(0), entry_mode=EntryMode.MARKET,
        slippage_bps=D(0), maintenance_margin_rate=D("0.004"), pending_expiry_hours=D(24),
        max_trade_hours=D(0), signal_time=at(0), signal_entry=None, take_profit=D(110), stop_loss=D(90),
    )
    base.update(over)
    return TradeTerms(**base)  # type: ignore[arg-type]


def run(terms: TradeTerms, candles: list[Candle], complete_until: datetime | None = None) -> TradeState:
    until = complete_until or (candles[-1].open_time if candles else terms.signal_time)
    return advance(terms, open_trade(terms), candles, complete_until=until)


FLAT = ("100", "101", "99")  # a candle that touches nothing


# (id, terms overrides, candles, expected status, entry_time, entry, exit_time, exit, ambiguous)
RULES = [
    # "The start candle is the first candle whose open time is >= the signal time."
    ("signal at 10:00:00 starts at the 10:00 candle", {}, [candle(0, "100", "111", "99")],
     TradeStatus.CLOSED_TP, at(0), "100", at(0), "110", False),
    ("signal at 10:00:01 starts at the 10:01 candle", {"signal_time": at(0, 1)},
     [candle(0, "100", "111", "99"), candle(1, "102", "103", "101")],
     TradeStatus.OPEN, at(1), "102", None, None, False),
    # market: entry = start open × (1 + s·slippage); 10 bps on 100 → 100.1 (LONG), 99.9 (SHORT)
    ("market LONG entry worsened by slippage", {"slippage_bps": D(10)}, [candle(0, *FLAT)],
     TradeStatus.OPEN, at(0), "100.1", None, None, False),
    ("market SHORT entry worsened by slippage", {"slippage_bps": D(10), "side": Side.SHORT,
     "take_profit": D(90), "stop_loss": D(110)}, [candle(0, *FLAT)],
     TradeStatus.OPEN, at(0), "99.9", None, None, False),
    # "If that entry is already at or beyond the stop-loss or the take-profit → CANCELLED"
    ("market LONG opening at the stop-loss is cancelled", {"stop_loss": D(100)}, [candle(0, *FLAT)],
     TradeStatus.CANCELLED, None, None, None, None, False),
    ("market LONG opening above the take-profit is cancelled", {"take_profit": D(99.5)}, [candle(0, *FLAT)],
     TradeStatus.CANCELLED, None, None, None, None, False),
    ("market SHORT opening at the take-profit is cancelled", {"side": Side.SHORT, "take_profit": D(100),
     "stop_loss": D(110)}, [candle(0, *FLAT)], TradeStatus.CANCELLED, None, None, None, None, False),
    ("slippage alone can push the entry past the take-profit", {"take_profit": D("100.05"), "slippage_bps": D(10)},
     [candle(0, *FLAT)], TradeStatus.CANCELLED, None, None, None, None, False),
    # signal: entry = the signal's entry price, entry time = the signal time
    ("signal entry at the signal's price and time", {"entry_mode": EntryMode.SIGNAL, "signal_entry": D(97),
     "signal_time": at(0, 30)}, [candle(1, *FLAT)], TradeStatus.OPEN, at(0, 30), "97", None, None, False),
    # limit: fills in the first candle where low <= entry, at min(open, entry)
    ("limit LONG fills at its price", {"entry_mode": EntryMode.LIMIT, "signal_entry": D("99.5")},
     [candle(0, "100", "101", "99.8"), candle(1, "100", "101", "99")],
     TradeStatus.OPEN, at(1), "99.5", None, None, False),
    ("limit LONG gapping through fills at the open", {"entry_mode": EntryMode.LIMIT, "signal_entry": D("99.5")},
     [candle(0, "99.2", "99.6", "99")], TradeStatus.OPEN, at(0), "99.2", None, None, False),
    ("limit SHORT fills at max(open, entry)", {"entry_mode": EntryMode.LIMIT, "signal_entry": D("100.5"),
     "side": Side.SHORT, "take_profit": D(90), "stop_loss": D(110)}, [candle(0, "100.8", "101", "100")],
     TradeStatus.OPEN, at(0), "100.8", None, None, False),
    # "Not filled before signal time + pending_expiry_hours → CANCELLED (entry not reached)"
    ("limit not reached before the deadline", {"entry_mode": EntryMode.LIMIT, "signal_entry": D(95),
     "pending_expiry_hours": D(1)}, [candle(0, *FLAT), candle(60, "100", "101", "94")],
     TradeStatus.CANCELLED, None, None, None, None, False),
    ("limit fills in the last candle before the deadline", {"entry_mode": EntryMode.LIMIT, "signal_entry": D(95),
     "pending_expiry_hours": D(1)}, [candle(59, "100", "101", "94")],
     TradeStatus.OPEN, at(59), "95", None, None, False),
    # "In the fill candle only the stop-loss (and liquidation) can close the trade, not the take-profit."
    ("limit fill candle ignores the take-profit", {"entry_mode": EntryMode.LIMIT, "signal_entry": D(99)},
     [candle(0, "100", "111", "98")], TradeStatus.OPEN, at(0), "99", None, None, False),
    ("limit fill candle can hit the stop-loss", {"entry_mode": EntryMode.LIMIT, "signal_entry": D(99)},
     [candle(0, "100", "111", "89")], TradeStatus.CLOSED_SL, at(0), "99", at(0), "90", False),
    ("limit take-profit from the next candle", {"entry_mode": EntryMode.LIMIT, "signal_entry": D(99)},
     [candle(0, "100", "111", "98"), candle(1, "100", "111", "99")],
     TradeStatus.CLOSED_TP, at(0), "99", at(1), "110", False),
    # 1. Expiry: candle opening at/after entry + max_trade_hours → CLOSED_EXPIRED at its open, worsened
    ("expiry at the open of the first candle at entry + 1h", {"max_trade_hours": D(1), "slippage_bps": D(10)},
     [candle(0, *FLAT), candle(59, *FLAT), candle(61, "105", "120", "80")],
     TradeStatus.CLOSED_EXPIRED, at(0), "100.1", at(61), "104.895", False),
    ("expiry beats a stop-loss in the same candle", {"max_trade_hours": D(1)},
     [candle(0, *FLAT), candle(60, "100", "101", "80")],
     TradeStatus.CLOSED_EXPIRED, at(0), "100", at(60), "100", False),
    # 2. Stop-loss: LONG low <= SL → at SL; a candle opening through it fills at its open
    ("LONG stop-loss at the level", {}, [candle(0, *FLAT), candle(1, "95", "96", "89")],
     TradeStatus.CLOSED_SL, at(0), "100", at(1), "90", False),
    ("LONG stop-loss gapped through fills at the open", {}, [candle(0, *FLAT), candle(1, "85", "86", "80")],
     TradeStatus.CLOSED_SL, at(0), "100", at(1), "85", False),
    ("stop-loss exit worsened by slippage", {"slippage_bps": D(10)}, [candle(0, *FLAT), candle(1, "95", "96", "89")],
     TradeStatus.CLOSED_SL, at(0), "100.1", at(1), "89.91", False),
    ("SHORT stop-loss: high >= SL, gapped → max(open, SL)", {"side": Side.SHORT, "take_profit": D(90),
     "stop_loss": D(110)}, [candle(0, *FLAT), candle(1, "112", "115", "111")],
     TradeStatus.CLOSED_SL, at(0), "100", at(1), "112", False),
    # Liquidation: L=10, mmr 0.004 → LONG liq = 100·(1 − 0.1 + 0.004) = 90.4, nearer than SL 85
    ("liquidation nearer than the stop-loss", {"leverage": 10, "stop_loss": D(85)},
     [candle(0, *FLAT), candle(1, "95", "96", "90")],
     TradeStatus.LIQUIDATED, at(0), "100", at(1), "90.4", False),
    ("gap through a nearer stop-loss beyond liquidation", {"leverage": 10, "stop_loss": D(95)},
     [candle(0, *FLAT), candle(1, "89", "90", "88")],
     TradeStatus.LIQUIDATED, at(0), "100", at(1), "90.4", False),
    ("stop-loss nearer than liquidation closes as stop-loss", {"leverage": 10, "stop_loss": D(95)},
     [candle(0, *FLAT), candle(1, "96", "97", "94")],
     TradeStatus.CLOSED_SL, at(0), "100", at(1), "95", False),
    # SHORT L=5: liq = 100·(1 + 0.2 − 0.004) = 119.6
    ("SHORT liquidation", {"leverage": 5, "side": Side.SHORT, "take_profit": D(90), "stop_loss": D(130)},
     [candle(0, *FLAT), candle(1, "110", "120", "109")],
     TradeStatus.LIQUIDATED, at(0), "100", at(1), "119.6", False),
    # 3. Take-profit: LONG high >= TP → exactly TP, even when the candle opens above it
    ("LONG take-profit exactly at TP", {}, [candle(0, *FLAT), candle(1, "105", "110", "104")],
     TradeStatus.CLOSED_TP, at(0), "100", at(1), "110", False),
    ("gap above the take-profit still exits at TP", {}, [candle(0, *FLAT), candle(1, "115", "116", "114")],
     TradeStatus.CLOSED_TP, at(0), "100", at(1), "110", False),
    ("SHORT take-profit: low <= TP", {"side": Side.SHORT, "take_profit": D(90), "stop_loss": D(110)},
     [candle(0, *FLAT), candle(1, "95", "96", "90")], TradeStatus.CLOSED_TP, at(0), "100", at(1), "90", False),
    # 4. Both in one candle: the stop-loss wins, flagged ambiguous
    ("same candle hits both: stop-loss, ambiguous", {}, [candle(0, *FLAT), candle(1, "100", "111", "89")],
     TradeStatus.CLOSED_SL, at(0), "100", at(1), "90", True),
    ("same candle hits TP and liquidation: liquidated, ambiguous", {"leverage": 10, "stop_loss": D(85)},
     [candle(0, *FLAT), candle(1, "100", "111", "90")],
     TradeStatus.LIQUIDATED, at(0), "100", at(1), "90.4", True),
    # Exits are checked from the start candle itself (market and signal)
    ("stop-loss in the start candle", {}, [candle(0, "100", "101", "89")],
     TradeStatus.CLOSED_SL, at(0), "100", at(0), "90", False),
    # Missing candles are simply absent; the next candle decides
    ("a gap: the next candle decides", {}, [candle(0, *FLAT), candle(45, "108", "112", "107")],
     TradeStatus.CLOSED_TP, at(0), "100", at(45), "110", False),
]


@pytest.mark.parametrize(
    "overrides,candles,status,entry_time,entry,exit_time,exit,ambiguous",
    [row[1:] for row in RULES], ids=[row[0] for row in RULES],
)
def test_rule(overrides: dict, candles: list[Candle], status: TradeStatus, entry_time: datetime | None,
              entry: str | None, exit_time: datetime | None, exit: str | None, ambiguous: bool) -> None:
    state = run(make_terms(**overrides), candles)
    assert state.status is status
    assert state.entry_time == entry_time
    assert state.entry_price == (D(entry) if entry else None)
    assert state.exit_time == exit_time
    assert state.exit_price == (D(exit) if exit else None)
    assert state.ambiguous is ambiguous


def test_cancel_reasons() -> None:
    assert run(make_terms(stop_loss=D(100)), [candle(0, *FLAT)]).reason == BEYOND_LEVELS
    limit = make_terms(entry_mode=EntryMode.LIMIT, signal_entry=D(95), pending_expiry_hours=D(1))
    assert run(limit, [candle(60, "100", "101", "94")]).reason == ENTRY_NOT_REACHED


def test_limit_expires_by_time_without_a_candle_after_the_deadline() -> None:
    """Candles before the deadline never touched 95; the exchange then has a gap. Once every
    candle before the deadline is known (complete_until >= deadline), the order is cancelled."""
    limit = make_terms(entry_mode=EntryMode.LIMIT, signal_entry=D(95), pending_expiry_hours=D(1))
    early = advance(limit, open_trade(limit), [candle(0, *FLAT)], complete_until=at(30))
    assert early.status is TradeStatus.PENDING
    late = advance(limit, early, [], complete_until=at(60))
    assert late.status is TradeStatus.CANCELLED and late.reason == ENTRY_NOT_REACHED


# P/L = N·s·(exit − entry)/entry − f·N·(1 + exit/entry), pnl_pct = pnl / S
PNL = [
    # LONG 1x, f=0.001, 100 → 110: 100·0.1 − 0.001·100·2.1 = 10 − 0.21 = 9.79
    ("long TP spot", {"fee_rate": D("0.001")}, [candle(0, *FLAT), candle(1, "105", "110", "104")],
     "0.21", "9.79", "0.0979"),
    # SHORT 5x, f=0.0005, 100 → 90: N=500; 500·0.1 − 0.0005·500·1.9 = 50 − 0.475 = 49.525
    ("short TP futures 5x", {"fee_rate": D("0.0005"), "leverage": 5, "side": Side.SHORT, "take_profit": D(90),
     "stop_loss": D(110)}, [candle(0, *FLAT), candle(1, "95", "96", "90")], "0.475", "49.525", "0.49525"),
    # LONG 10x liquidated: −S − f·N = −100 − 0.0005·1000 = −100.5; only the entry fee
    ("liquidated", {"fee_rate": D("0.0005"), "leverage": 10, "stop_loss": D(85)},
     [candle(0, *FLAT), candle(1, "95", "96", "90")], "0.5", "-100.5", "-1.005"),
    # ADABTC-sized prices: 0.00005 → 0.000055 (+10 %), f=0.001: 10 − 0.001·100·2.1 = 9.79
    ("BTC-quoted tiny prices", {"fee_rate": D("0.001"), "take_profit": D("0.000055"), "stop_loss": D("0.000045")},
     [Candle(at(0), D("0.00005"), D("0.0000501"), D("0.0000499"), D("0.00005")),
      Candle(at(1), D("0.0000540"), D("0.00005512"), D("0.0000539"), D("0.000055"))], "0.21", "9.79", "0.0979"),
]


@pytest.mark.parametrize("overrides,candles,fees,pnl,pct", [r[1:] for r in PNL], ids=[r[0] for r in PNL])
def test_pnl(overrides: dict, candles: list[Candle], fees: str, pnl: str, pct: str) -> None:
    state = run(make_terms(**overrides), candles)
    assert (state.fees_usd, state.pnl_usd, state.pnl_pct) == (D(fees), D(pnl), D(pct))


def test_liquidation_price_formula() -> None:
    assert liquidation_price(make_terms(leverage=10), D(100)) == D("90.4")
    assert liquidation_price(make_terms(leverage=5, side=Side.SHORT), D(100)) == D("119.6")
    assert liquidation_price(make_terms(leverage=1), D(100)) is None


def test_mark_to_market() -> None:
    terms = make_terms(fee_rate=D("0.001"))
    opened = run(terms, [candle(0, *FLAT)])
    assert unrealized_pnl(terms, opened, D(110)) == D("9.79")


SHORT_5X = {"side": Side.SHORT, "leverage": 5, "take_profit": D(90), "stop_loss": D(110)}
# id, terms, latest price → (status, exit price, P/L), or the refusal. Entry 100 (FLAT's open).
MANUAL_CLOSE = [
    ("a LONG at market, fees on both sides", {"fee_rate": D("0.001")}, "105", ("CLOSED_MANUAL", "105", "4.795")),
    # 10 bps: entered at 100.1, out at 104.895; 100 × 4.795 / 100.1 = 4.79020979…
    ("slippage worsens the exit like any fill at market", {"slippage_bps": D(10)}, "105",
     ("CLOSED_MANUAL", "104.895", "4.790209790209790209790209790209790")),
    ("a SHORT at 5x gains five times the fall", SHORT_5X, "95", ("CLOSED_MANUAL", "95", "25")),
    ("at the stop-loss the rules decide, not the owner", {}, "90", "stop-loss or liquidation"),
    ("beyond the liquidation price (90.4 at 10x) likewise", {"leverage": 10, "stop_loss": D(80)}, "90.3",
     "stop-loss or liquidation"),
    ("at the take-profit the rules decide", {}, "110", "has reached the take-profit"),
    ("a SHORT beyond its take-profit likewise", SHORT_5X, "89", "has reached the take-profit"),
]


@pytest.mark.parametrize("overrides,price,expected", [r[1:] for r in MANUAL_CLOSE], ids=[r[0] for r in MANUAL_CLOSE])
def test_manual_close(overrides: dict, price: str, expected: tuple[str, str, str] | str) -> None:
    terms = make_terms(**overrides)
    opened = run(terms, [candle(0, *FLAT)])
    if isinstance(expected, str):
        with pytest.raises(ManualActionRefused, match=expected):
            close_manually(terms, opened, price=D(price), now=at(5))
        return
    closed = close_manually(terms, opened, price=D(price), now=at(5))
    assert (closed.status.value, closed.exit_price, closed.pnl_usd, closed.exit_time) == (
        expected[0], D(expected[1]), D(expected[2]), at(5))


@pytest.mark.parametrize("mode,side,price,refusal", [
    (EntryMode.LIMIT, Side.LONG, "96", None),  # limit buy at 95, price above it: not reached
    (EntryMode.LIMIT, Side.LONG, None, None),  # no price stored yet
    (EntryMode.LIMIT, Side.LONG, "95", "has reached the limit entry"),
    (EntryMode.LIMIT, Side.SHORT, "95.5", "has reached the limit entry"),  # limit sell at 95: price above it
    (EntryMode.MARKET, Side.LONG, "100", "decided by its start candle"),
])
def test_manual_cancel(mode: EntryMode, side: Side, price: str | None, refusal: str | None) -> None:
    levels = {"take_profit": D(110), "stop_loss": D(90)} if side is Side.LONG else \
        {"take_profit": D(80), "stop_loss": D(110)}
    terms = make_terms(entry_mode=mode, side=side, signal_entry=D(95), **levels)
    pending = open_trade(terms)
    price_ = D(price) if price else None
    if refusal:
        with pytest.raises(ManualActionRefused, match=refusal):
            close_manually(terms, pending, price=price_, now=at(5))
    else:
        assert close_manually(terms, pending, price=price_, now=at(5)).status is TradeStatus.CANCELLED


prices = st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=4)


@st.composite
def candle_series(draw: st.DrawFn) -> list[Candle]:
    minutes = sorted(draw(st.sets(st.integers(0, 300), min_size=1, max_size=60)))
    out = []
    for m in minutes:
        a, b, o = draw(prices), draw(prices), draw(prices)
        lo, hi = min(a, b, o), max(a, b, o)
        out.append(Candle(at(m), o, hi, lo, draw(st.sampled_from([lo, hi, o]))))
    return out


@given(candle_series(), st.integers(1, 59), st.sampled_from(list(EntryMode)), st.sampled_from(list(Side)),
       st.integers(1, 20), st.sampled_from([D(0), D(1), D(2)]))
def test_resuming_in_pieces_equals_one_pass(candles: list[Candle], cut: int, mode: EntryMode, side: Side,
                                            leverage: int, max_hours: D) -> None:
    """A worker that stops after any candle and resumes later ends exactly where one pass ends."""
    long = side is Side.LONG
    terms = make_terms(entry_mode=mode, side=side, leverage=leverage, max_trade_hours=max_hours,
                       signal_entry=D(1), take_profit=D("1.2") if long else D("0.8"),
                       stop_loss=D("0.8") if long else D("1.2"), pending_expiry_hours=D(2))
    whole = advance(terms, open_trade(terms), candles, complete_until=at(400))
    k = cut % len(candles)
    first = advance(terms, open_trade(terms), candles[:k], complete_until=candles[k - 1].open_time if k else at(0))
    # the second piece re-sends overlapping candles: already-seen ones must be skipped
    second = advance(terms, first, candles, complete_until=at(400))
    assert second == whole
    if whole.status.is_closed:
        assert whole.exit_time is not None and whole.entry_time is not None and whole.exit_time >= whole.entry_time
        assert whole.pnl_usd is not None and whole.pnl_usd >= -terms.stake_usd * (1 + leverage) - 1
