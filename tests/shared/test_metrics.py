"""Metrics: hand-derived examples (the docstrings show the arithmetic) and invariants."""

import doctest
import json
import math
import statistics
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import metrics
from shared.metrics import (
    ClosedTrade,
    Counts,
    DrawDown,
    compute_stats,
    daily_returns,
    equity_curve,
    max_drawdown,
    monthly_returns,
    order_closed,
    period_pnl,
    sharpe_sortino,
    streaks,
)

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
D = Decimal

JSON_KEYS = [
    "closed_trades", "wins", "losses", "breakeven", "win_rate", "total_pnl_usd",
    "gross_profit_usd", "gross_loss_usd", "profit_factor", "expectancy_usd", "avg_win_usd",
    "avg_loss_usd", "best_trade_usd", "worst_trade_usd", "max_drawdown_usd", "max_drawdown_pct",
    "open_trades", "pending_trades", "cancelled_trades", "ambiguous_trades", "sharpe", "sortino",
]  # fmt: skip


def frac(a: int, b: int) -> Decimal:
    """a / b at the 34 digits the metrics compute with (the default context keeps only 28)."""
    with localcontext(prec=34):
        return Decimal(a) / Decimal(b)


def make_trade(
    trade_id: int = 1, pnl: str | int = "0", *, entry_h: float = 0, exit_h: float = 1
) -> ClosedTrade:
    """A closed trade whose times are hours after 2024-01-01 00:00 UTC."""
    return ClosedTrade(
        trade_id=trade_id,
        entry_time=T0 + timedelta(hours=entry_h),
        exit_time=T0 + timedelta(hours=exit_h),
        pnl_usd=D(pnl),
    )


def at_hour(h: int | None) -> datetime | None:
    return None if h is None else T0 + timedelta(hours=h)


def series(*pnls: str | int) -> list[ClosedTrade]:
    """Trades i = 1, 2, … entered at hour 0 and exited at hour i, with the given P/L."""
    return [make_trade(i, p, exit_h=i) for i, p in enumerate(pnls, 1)]


def test_docstring_examples() -> None:
    assert doctest.testmod(metrics).failed == 0


# --- ordering and the equity curve -------------------------------------------------------


def test_ties_at_the_same_exit_time_are_ordered_by_trade_id() -> None:
    same_exit = [make_trade(7, 1, exit_h=5), make_trade(3, 2, exit_h=5), make_trade(9, 3, exit_h=2)]
    assert [t.trade_id for t in order_closed(same_exit)] == [9, 3, 7]


def test_equity_curve_starts_with_the_balance_at_the_first_entry() -> None:
    """+10, −20, +5 on 1000: equity 1000 → 1010 → 990 → 995; peak 1010 from the first exit."""
    trades = [
        make_trade(1, 10, entry_h=2, exit_h=3),
        make_trade(2, -20, entry_h=1, exit_h=4),
        make_trade(3, 5, entry_h=5, exit_h=6),
    ]
    curve = equity_curve(trades, D(1000))
    assert [(p.time, p.trade_id) for p in curve] == [
        (T0 + timedelta(hours=1), None),  # the earliest entry, not the first trade's entry
        (T0 + timedelta(hours=3), 1),
        (T0 + timedelta(hours=4), 2),
        (T0 + timedelta(hours=6), 3),
    ]
    assert [p.equity for p in curve] == [D(1000), D(1010), D(990), D(995)]
    assert [p.peak for p in curve] == [D(1000), D(1010), D(1010), D(1010)]
    assert [p.drawdown_usd for p in curve] == [D(0), D(0), D(20), D(15)]
    assert curve[2].drawdown_pct == frac(20, 1010)


def test_equity_curve_is_empty_without_trades() -> None:
    assert equity_curve([], D(1000)) == []


# --- drawdown ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pnls", "balance", "usd", "pct", "peak_h", "trough_h"),
    [
        # 1000 → 1010 → 990 → 995: the fall is 1010 − 990 = 20, i.e. 20/1010 of that peak.
        (("10", "-20", "5"), 1000, D(20), frac(20, 1010), 1, 2),
        # A first loss falls from the starting balance itself: 1000 → 900, 10 %.
        (("-100", "50"), 1000, D(100), D("0.1"), 0, 1),
        # Two falls: 1000→950 (50, 5 %) then 1100→1000 (100, 9.09 %): the larger $ fall wins.
        (("-50", "150", "-100"), 1000, D(100), frac(100, 1100), 2, 3),
        # Two consecutive losses make one fall: 1000 → 990 → 970 = 30.
        (("-10", "-20", "40"), 1000, D(30), D("0.03"), 0, 2),
        # Only gains: no drawdown, no times.
        (("1", "2"), 1000, D(0), D(0), None, None),
    ],
)
def test_max_drawdown(
    pnls: tuple[str, ...], balance: int, usd: Decimal, pct: Decimal, peak_h: int | None, trough_h: int | None
) -> None:
    dd = max_drawdown(series(*pnls), D(balance))
    assert dd == DrawDown(usd, pct, at_hour(peak_h), at_hour(trough_h))


def test_max_drawdown_without_trades_is_zero() -> None:
    assert max_drawdown([], D(1000)) == DrawDown(D(0), D(0), None, None)


def test_drawdown_pct_is_zero_when_there_is_no_positive_peak() -> None:
    """A zero bankroll has no fraction to lose; the $ drawdown is still reported."""
    dd = max_drawdown(series("-5"), D(0))
    assert (dd.max_drawdown_usd, dd.max_drawdown_pct) == (D(5), D(0))


# --- daily and monthly returns -------------------------------------------------------------


def test_daily_returns_from_first_entry_day_with_quiet_days_at_zero() -> None:
    """Balance 1000. Jan 1 entry; Jan 2 +10 → 10/1000; Jan 3 nothing; Jan 4 −20 and +5
    → −15/1010 (equity at the end of Jan 3 = 1010)."""
    trades = [
        make_trade(1, 10, entry_h=10, exit_h=24 + 12),
        make_trade(2, -20, entry_h=24 + 13, exit_h=72 + 9),
        make_trade(3, 5, entry_h=48, exit_h=72 + 15),
    ]
    got = daily_returns(trades, D(1000))
    assert [d for d, _ in got] == [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]
    assert [r for _, r in got] == pytest.approx([0.0, 0.01, 0.0, -15 / 1010])


def test_daily_returns_use_utc_days_for_non_utc_times() -> None:
    """23:30 at UTC−5 on Jan 1 is 04:30 UTC on Jan 2."""
    minus5 = timezone(timedelta(hours=-5))
    entry, exit_ = datetime(2024, 1, 1, 20, tzinfo=minus5), datetime(2024, 1, 1, 23, 30, tzinfo=minus5)
    trade = ClosedTrade(1, entry, exit_, D(10))
    assert daily_returns([trade], D(1000)) == [(date(2024, 1, 2), 0.01)]


def test_daily_returns_skip_days_that_start_without_equity() -> None:
    """1000 − 1000 on Jan 1 leaves nothing to take a return on for Jan 2."""
    trades = [make_trade(1, -1000, exit_h=1), make_trade(2, 5, exit_h=25)]
    assert daily_returns(trades, D(1000)) == [(date(2024, 1, 1), -1.0)]


def test_daily_returns_empty_without_trades() -> None:
    assert daily_returns([], D(1000)) == []


def test_monthly_returns_include_quiet_months() -> None:
    """Jan +10 → 10/1000; Feb nothing → 0; Mar −20 → −20/1010; Dec→Jan rolls the year."""
    m = lambda y, mo: datetime(y, mo, 15, tzinfo=UTC)  # noqa: E731
    trades = [
        ClosedTrade(1, m(2023, 12), m(2024, 1), D(10)),
        ClosedTrade(2, m(2024, 3), m(2024, 3), D(-20)),
    ]
    assert monthly_returns(trades, D(1000)) == [
        (2023, 12, D(0), D(0)),
        (2024, 1, D(10), D("0.01")),
        (2024, 2, D(0), D(0)),
        (2024, 3, D(-20), frac(-20, 1010)),
    ]
    assert monthly_returns([], D(1000)) == []


# --- Sharpe and Sortino --------------------------------------------------------------------


def test_sharpe_sortino_hand_computed() -> None:
    """r = 0.01, −0.02, 0.03, 0: mean 0.005; squared deviations sum 0.0013, /3 → std 0.0208167;
    downside mean((−0.02)²/4) = 0.0001 → 0.01; both × √365 ≈ 19.105."""
    r = [0.01, -0.02, 0.03, 0.0]
    sharpe, sortino = sharpe_sortino(r)
    assert sharpe == pytest.approx(statistics.mean(r) / statistics.stdev(r) * math.sqrt(365))
    assert sharpe == pytest.approx(0.005 / math.sqrt(0.0013 / 3) * math.sqrt(365))
    assert sharpe == pytest.approx(4.5888, abs=1e-4)
    assert sortino == pytest.approx(0.5 * math.sqrt(365))


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([], (None, None)),
        ([0.01], (None, None)),  # fewer than 2 returns
        ([0.01, 0.01], (None, None)),  # no variation, no losing day
        ([0.0, 0.02], (pytest.approx(0.01 / math.sqrt(0.0002) * math.sqrt(365)), None)),  # no losing day
        ([-0.01, -0.01], (None, pytest.approx(-math.sqrt(365)))),  # no variation
    ],
)
def test_sharpe_sortino_undefined_cases(returns: list[float], expected: tuple[object, object]) -> None:
    assert sharpe_sortino(returns) == expected


def test_ratios_only_from_min_trades() -> None:
    """29 trades → None; 30 → the ratios of the daily returns. Alternating +10/−5, one exit a day."""
    trades = [make_trade(i, 10 if i % 2 else -5, entry_h=24 * i, exit_h=24 * i + 1) for i in range(30)]
    under = compute_stats(trades[:29], starting_balance=D(1000))
    assert (under.sharpe, under.sortino) == (None, None)
    full = compute_stats(trades, starting_balance=D(1000))
    expected = sharpe_sortino([r for _, r in daily_returns(trades, D(1000))])
    assert (full.sharpe, full.sortino) == expected
    assert full.sharpe is not None and full.sortino is not None
    assert compute_stats(trades[:5], starting_balance=D(1000), min_trades_for_ratios=5).sharpe is not None


# --- compute_stats -------------------------------------------------------------------------


def test_stats_hand_derived() -> None:
    """+10, −20, +5, 0 on 1000: 2 wins, 1 loss, 1 breakeven; gross +15 / −20 → PF 0.75;
    expectancy −5/4; averages 7.5 and −20; drawdown 1010 → 990 = 20."""
    s = compute_stats(series("10", "-20", "5", "0"), starting_balance=D(1000), counts=Counts(1, 2, 3, 4))
    assert (s.closed_trades, s.wins, s.losses, s.breakeven) == (4, 2, 1, 1)
    assert s.win_rate == D("0.5")
    assert (s.total_pnl_usd, s.gross_profit_usd, s.gross_loss_usd) == (D(-5), D(15), D(-20))
    assert s.profit_factor == D("0.75")
    assert s.expectancy_usd == D("-1.25")
    assert (s.avg_win_usd, s.avg_loss_usd) == (D("7.5"), D(-20))
    assert (s.best_trade_usd, s.worst_trade_usd) == (D(10), D(-20))
    assert (s.max_drawdown_usd, s.max_drawdown_pct) == (D(20), frac(20, 1010))
    assert (s.open_trades, s.pending_trades, s.cancelled_trades, s.ambiguous_trades) == (1, 2, 3, 4)
    assert (s.sharpe, s.sortino) == (None, None)


def test_profit_factor_is_none_without_losses() -> None:
    s = compute_stats(series("10", "0"), starting_balance=D(1000))
    assert (s.profit_factor, s.avg_loss_usd, s.gross_loss_usd) == (None, None, D(0))


def test_profit_factor_is_zero_with_losses_only() -> None:
    s = compute_stats(series("-10"), starting_balance=D(1000))
    assert (s.profit_factor, s.avg_win_usd, s.win_rate) == (D(0), None, D(0))


def test_stats_without_trades() -> None:
    s = compute_stats([], starting_balance=D(1000), counts=Counts(open_trades=2))
    assert (s.closed_trades, s.win_rate, s.expectancy_usd, s.best_trade_usd) == (0, None, None, None)
    assert (s.total_pnl_usd, s.max_drawdown_usd, s.open_trades) == (D(0), D(0), 2)
    assert s.to_json_dict()["win_rate"] is None


def test_to_json_dict_keys_order_and_types() -> None:
    s = compute_stats(series("10", "-20", "5"), starting_balance=D(1000))
    d = s.to_json_dict()
    assert list(d) == JSON_KEYS
    assert d["win_rate"] == pytest.approx(2 / 3) and isinstance(d["win_rate"], float)
    assert d["closed_trades"] == 3 and isinstance(d["closed_trades"], int)
    assert d["sharpe"] is None and d["profit_factor"] == 0.75
    assert json.loads(json.dumps(d)) == d


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="naive entry_time"):
        ClosedTrade(1, datetime(2024, 1, 1), T0, D(1))


# --- streaks and period P/L ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pnls", "expected"),
    [
        ((), (0, 0)),
        (("1", "2", "0", "3", "-1", "-1"), (2, 2)),  # the breakeven splits the wins 2 | 1
        (("-1", "1", "-1", "-1", "-1", "2", "2"), (2, 3)),
        (("0", "0"), (0, 0)),
    ],
)
def test_streaks(pnls: tuple[str, ...], expected: tuple[int, int]) -> None:
    assert streaks(series(*pnls)) == expected


def test_streaks_follow_exit_order_not_input_order() -> None:
    """Exit order is −1 (h1), +1 (h2), +1 (h3): one win streak of 2."""
    trades = [make_trade(3, 1, exit_h=3), make_trade(1, -1, exit_h=1), make_trade(2, 1, exit_h=2)]
    assert streaks(trades) == (2, 1)


def test_period_pnl_includes_exits_at_since() -> None:
    trades = series("10", "-20", "5")  # exits at hours 1, 2, 3
    assert period_pnl(trades, T0 + timedelta(hours=2)) == D(-15)
    assert period_pnl(trades, T0 + timedelta(hours=4)) == D(0)


# --- invariants ----------------------------------------------------------------------------

pnl_values = st.decimals(min_value=-500, max_value=500, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def closed_trades(draw: st.DrawFn, max_size: int = 40) -> list[ClosedTrade]:
    """Trades with unique ids over ~10 days, exits often sharing a timestamp (ties)."""
    n = draw(st.integers(0, max_size))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    trades = []
    for trade_id in ids:
        entry = draw(st.integers(0, 240))
        held = draw(st.sampled_from([0, 1, 5, 30]))
        trades.append(make_trade(trade_id, draw(pnl_values), entry_h=entry, exit_h=entry + held))
    return trades


@settings(max_examples=150, deadline=None)
@given(trades=closed_trades(), balance=st.integers(0, 5000), data=st.data())
def test_stats_do_not_depend_on_input_order(
    trades: list[ClosedTrade], balance: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(trades))
    b = D(balance)
    kwargs = {"starting_balance": b, "min_trades_for_ratios": 2}
    assert compute_stats(shuffled, **kwargs) == compute_stats(trades, **kwargs)
    assert equity_curve(shuffled, b) == equity_curve(trades, b)
    assert daily_returns(shuffled, b) == daily_returns(trades, b)
    assert monthly_returns(shuffled, b) == monthly_returns(trades, b)
    assert streaks(shuffled) == streaks(trades)


@settings(max_examples=150, deadline=None)
@given(trades=closed_trades(), balance=st.integers(0, 5000))
def test_stats_invariants(trades: list[ClosedTrade], balance: int) -> None:
    s = compute_stats(trades, starting_balance=D(balance))
    pnls = [t.pnl_usd for t in trades]
    assert s.wins + s.losses + s.breakeven == s.closed_trades == len(trades)
    assert s.win_rate is None if not trades else D(0) <= s.win_rate <= D(1)
    assert s.total_pnl_usd == sum(pnls, D(0)) == s.gross_profit_usd + s.gross_loss_usd
    assert s.gross_profit_usd >= 0 >= s.gross_loss_usd
    assert D(0) <= s.max_drawdown_usd <= -s.gross_loss_usd
    assert s.max_drawdown_pct >= 0
    json.dumps(s.to_json_dict())


@settings(max_examples=150, deadline=None)
@given(trades=closed_trades())
def test_drawdown_pct_below_one_while_balance_stays_positive(trades: list[ClosedTrade]) -> None:
    # A balance larger than every loss together keeps equity positive on any path.
    balance = sum((-t.pnl_usd for t in trades if t.pnl_usd < 0), D(1))
    dd = max_drawdown(trades, balance)
    assert D(0) <= dd.max_drawdown_pct < D(1)
    assert all(p.equity > 0 and 0 <= p.drawdown_pct < 1 for p in equity_curve(trades, balance))
    if dd.max_drawdown_usd > 0:
        assert dd.peak_time is not None and dd.trough_time is not None and dd.peak_time <= dd.trough_time


@settings(max_examples=100, deadline=None)
@given(trades=closed_trades(), balance=st.integers(1, 5000))
def test_curve_ends_at_balance_plus_total_and_returns_cover_every_day(
    trades: list[ClosedTrade], balance: int
) -> None:
    curve = equity_curve(trades, D(balance))
    if not trades:
        assert curve == [] and daily_returns(trades, D(balance)) == []
        return
    assert curve[-1].equity == D(balance) + sum((t.pnl_usd for t in trades), D(0))
    assert len(curve) == len(trades) + 1
    days = [d for d, _ in daily_returns(trades, D(balance))]
    first = min(t.entry_time for t in trades).date()
    last = max(t.exit_time for t in trades).date()
    if all(p.equity > 0 for p in curve):
        assert days == [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert sum(m[2] for m in monthly_returns(trades, D(balance))) == sum(t.pnl_usd for t in trades)


# --- the honest statistics (docs/metrics.md "Statistics") ---------------------------------------

def test_wilson_interval_by_hand() -> None:
    """52 wins in 100 trades, z = 1.96: z²/n = 0.038415, centre = (0.52 + 0.0192075) / 1.038415
    = 0.51926; half-width = 1.96 / 1.038415 · √(0.52·0.48/100 + 3.8415/40000) = 1.8875 · 0.050912
    = 0.096094; so 0.4232 to 0.6154 (the plain normal interval would be 0.4221 to 0.6179)."""
    low, high = metrics.wilson_interval(52, 100)
    assert (round(low, 4), round(high, 4)) == (0.4232, 0.6154)


def test_wilson_interval_of_a_perfect_small_sample_is_not_certain() -> None:
    """10 of 10: p = 1, centre = (1 + 0.19207) / 1.38415 = 0.86122, half = 1.96/1.38415 · √(0.0096037)
    = 0.13877; so 0.7225 to 1 — a clean sheet of ten does not prove a 100 % win rate."""
    low, high = metrics.wilson_interval(10, 10)
    assert (round(low, 4), round(high, 10)) == (0.7225, 1.0)
    assert metrics.wilson_interval(0, 0) is None


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_interval_holds_the_observed_rate_inside_zero_and_one(wins: int, trades: int) -> None:
    wins = min(wins, trades)
    low, high = metrics.wilson_interval(wins, trades)
    assert 0 <= low <= wins / trades + 1e-12 and wins / trades - 1e-12 <= high <= 1


@pytest.mark.parametrize(("avg_win", "avg_loss", "breakeven", "payoff"), [
    (D(3), D(-2), 0.4, 1.5),  # 2 / (3 + 2); 3 / 2
    (D("1.5"), D("-4.5"), 0.75, 1 / 3),  # 4.5 / 6; 1.5 / 4.5
    (None, D(-2), None, None),  # no win yet: no payoff to judge
    (D(3), None, None, None),
])
def test_breakeven_win_rate_and_payoff_by_hand(avg_win: Decimal | None, avg_loss: Decimal | None,
                                               breakeven: float | None, payoff: float | None) -> None:
    assert metrics.breakeven_win_rate(avg_win, avg_loss) == (pytest.approx(breakeven) if breakeven else None)
    assert metrics.payoff_ratio(avg_win, avg_loss) == (pytest.approx(payoff) if payoff else None)


@given(st.decimals(D("0.01"), D(1000), places=2), st.decimals(D("0.01"), D(1000), places=2))
def test_the_breakeven_win_rate_makes_the_expectancy_zero(avg_win: Decimal, loss: Decimal) -> None:
    """At win rate b: b·win − (1 − b)·loss = 0 exactly when b = loss / (win + loss)."""
    b = metrics.breakeven_win_rate(avg_win, -loss)
    assert b * float(avg_win) - (1 - b) * float(loss) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize(("starting", "pnl", "days", "expected"), [
    (D(1000), D(100), 365, 0.1),  # one year, +10 %
    (D(1000), D(100), 182.5, 0.21),  # half a year at +10 %: 1.1² − 1
    (D(1000), D(-190), 730, -0.1),  # two years to 810: 0.81^(1/2) − 1
    (D(1000), D(-1000), 30, -1.0),  # the bankroll is gone
    (D(1000), D(50), 0, None),  # no length: nothing to annualise
    (D(0), D(50), 10, None),  # no bankroll
])
def test_cagr_by_hand(starting: Decimal, pnl: Decimal, days: float, expected: float | None) -> None:
    result = metrics.cagr(starting, pnl, days)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_calmar_and_trades_per_day_by_hand() -> None:
    """CAGR 21 % over a 7 % maximum drawdown: 3.0; 30 trades over 7.5 days: 4 a day."""
    assert metrics.calmar(0.21, D("0.07")) == pytest.approx(3.0)
    assert metrics.calmar(0.21, D(0)) is None and metrics.calmar(None, D("0.1")) is None
    assert metrics.trades_per_day(30, 7.5) == 4.0 and metrics.trades_per_day(3, 0) is None
    assert metrics.record_days(T0, T0 + timedelta(days=2, hours=12)) == 2.5


def test_buy_and_hold_by_hand() -> None:
    """Bought at 100: 110 is +10 %, 95 is −5 %."""
    closes = [(T0 + timedelta(days=d), D(p)) for d, p in enumerate(("100", "110", "95"))]
    assert [(at, round(r, 10)) for at, r in metrics.buy_and_hold(closes)] == [
        (closes[0][0], 0.0), (closes[1][0], 0.1), (closes[2][0], -0.05)]
    assert metrics.buy_and_hold([]) == []
