"""Track-record metrics, as pure functions over closed trades (docs/metrics.md).

The worker's `signalproof stats`, the CLI's `--json` and every number on the public site come
from these functions, so they take plain values (no session, no clock, no Streamlit) and give
the same answer whatever order the trades arrive in: everything that depends on order first
goes through `order_closed`.

Money stays `Decimal` end to end. Sums (totals, the equity curve, per-day P/L) are exact, so
they do not depend on the order of the additions: the site adds per-day subtotals kept by the
worker (shared/rollup.py) and gets the same digits as this module adding trade by trade.
Reported values are rounded to 34 digits (decimal128) and ratios computed in that context; only
the Sharpe and Sortino ratios, which need a square root of a statistical estimate anyway, are
floats.
"""

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import TypeVar

from shared.money import EXACT_CONTEXT, MONEY_CONTEXT, exact_sum, rounded

_ZERO = Decimal(0)
# Daily returns are annualised over calendar days: crypto trades every day of the year.
_DAYS_PER_YEAR = 365
# Sharpe and Sortino are reported from this many closed trades on: below it they say more about
# luck than about the signals (the site says so where it hides them).
MIN_TRADES_FOR_RATIOS = 30

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One closed trade (status CLOSED_* or LIQUIDATED); times are timezone-aware UTC."""

    trade_id: int
    entry_time: datetime
    exit_time: datetime
    pnl_usd: Decimal

    def __post_init__(self) -> None:
        # A naive time would be silently read as local time by `astimezone`, shifting trades
        # to the wrong UTC day; better to fail loudly where the value is built.
        for name in ("entry_time", "exit_time"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"trade {self.trade_id}: naive {name} (times must be aware UTC)")


@dataclass(frozen=True, slots=True)
class Counts:
    """Trades that are not closed, reported next to the closed-trade metrics."""

    open_trades: int = 0
    pending_trades: int = 0
    cancelled_trades: int = 0
    ambiguous_trades: int = 0


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """The realized equity right after one exit (or the starting balance, `trade_id` None).

    `drawdown_usd` is the positive distance below the running peak; `drawdown_pct` is that
    distance as a fraction of the peak (0.25 = 25 %).
    """

    time: datetime
    trade_id: int | None
    equity: Decimal
    peak: Decimal
    drawdown_usd: Decimal
    drawdown_pct: Decimal


@dataclass(frozen=True, slots=True)
class DrawDown:
    """The largest peak-to-trough fall of the equity curve; zeros and no times when none."""

    max_drawdown_usd: Decimal
    max_drawdown_pct: Decimal
    peak_time: datetime | None
    trough_time: datetime | None


@dataclass(frozen=True)
class Summary:
    """The order-free part of the metrics (what a per-symbol or per-side table needs)."""

    closed_trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate: Decimal | None
    total_pnl_usd: Decimal
    gross_profit_usd: Decimal
    gross_loss_usd: Decimal
    profit_factor: Decimal | None
    expectancy_usd: Decimal | None
    avg_win_usd: Decimal | None
    avg_loss_usd: Decimal | None
    best_trade_usd: Decimal | None
    worst_trade_usd: Decimal | None


@dataclass(frozen=True)
class Stats(Summary):
    """The headline metrics. Field order (Summary's, then these) is the `stats --json` key order."""

    max_drawdown_usd: Decimal
    max_drawdown_pct: Decimal
    open_trades: int
    pending_trades: int
    cancelled_trades: int
    ambiguous_trades: int
    sharpe: float | None
    sortino: float | None

    def to_json_dict(self) -> dict[str, object]:
        """The `stats --json` object: Decimals as JSON numbers, None as null, keys in order."""
        return {f.name: _json_value(getattr(self, f.name)) for f in fields(self)}


def _json_value(value: object) -> object:
    # JSON has no decimal type; a float keeps the output a plain number for jq and friends.
    return float(value) if isinstance(value, Decimal) else value


class OrderedTrades(list[ClosedTrade]):
    """A list already in `order_closed` order: the functions below do not sort it again
    (sorting a million trades costs seconds, and a page needs several metrics of one list)."""


def order_closed(trades: Iterable[ClosedTrade]) -> OrderedTrades:
    """Closed trades in the order their results reach the equity curve.

    DESIGN orders ties by exit time then trade id; the P/L is a last tie-breaker only so that
    even malformed input with a repeated id cannot make a metric depend on input order.
    """
    if isinstance(trades, OrderedTrades):
        return trades
    return OrderedTrades(sorted(trades, key=lambda t: (t.exit_time, t.trade_id, t.pnl_usd)))


@dataclass(frozen=True)
class EquityColumns:
    """The equity curve as parallel columns (cheap for a million trades; see equity_curve)."""

    time: list[datetime]
    trade_id: list[int | None]
    equity: list[Decimal]
    peak: list[Decimal]


def equity_columns(trades: Iterable[ClosedTrade], starting_balance: Decimal) -> EquityColumns:
    """Starting balance plus cumulative realized P/L, one step per exit (columns)."""
    ordered = order_closed(trades)
    columns = EquityColumns([], [], [], [])
    if not ordered:
        return columns
    with localcontext(EXACT_CONTEXT):
        equity = peak = Decimal(starting_balance)
        # min() over exits too: a bad row with exit before entry must not start the curve late.
        columns.time.append(min(min(t.entry_time for t in ordered), ordered[0].exit_time))
        columns.trade_id.append(None)
        columns.equity.append(equity)
        columns.peak.append(peak)
        for trade in ordered:
            equity += trade.pnl_usd
            if equity > peak:
                peak = equity
            columns.time.append(trade.exit_time)
            columns.trade_id.append(trade.trade_id)
            columns.equity.append(equity)
            columns.peak.append(peak)
    return columns


def equity_curve(trades: Iterable[ClosedTrade], starting_balance: Decimal) -> list[EquityPoint]:
    """Starting balance plus cumulative realized P/L, one step per exit.

    The first point is the starting balance at the first entry time, so the curve starts when
    the track record does, not at the first result. No trades, no points.

    >>> from datetime import datetime, timezone
    >>> t = lambda h: datetime(2024, 1, 1, h, tzinfo=timezone.utc)
    >>> trades = [ClosedTrade(1, t(0), t(1), Decimal(10)), ClosedTrade(2, t(0), t(2), Decimal(-20)),
    ...           ClosedTrade(3, t(0), t(3), Decimal(5))]
    >>> [str(p.equity) for p in equity_curve(trades, Decimal(1000))]
    ['1000', '1010', '990', '995']
    >>> [str(p.drawdown_usd) for p in equity_curve(trades, Decimal(1000))]
    ['0', '0', '20', '15']
    """
    columns = equity_columns(trades, starting_balance)
    with localcontext(MONEY_CONTEXT):
        return [_point(*row) for row in zip(columns.time, columns.trade_id, columns.equity, columns.peak)]


def _point(time: datetime, trade_id: int | None, equity: Decimal, peak: Decimal) -> EquityPoint:
    drawdown = peak - equity
    return EquityPoint(time, trade_id, equity, peak, drawdown, drawdown_fraction(drawdown, peak))


def max_drawdown(trades: Iterable[ClosedTrade], starting_balance: Decimal) -> DrawDown:
    """The largest fall from a running peak (starting balance included) to a later trough.

    The percentage is of the peak that fall started from (the largest $ fall, not the largest
    % fall, which can be a different, earlier one). The first of equal falls is reported.

    >>> from datetime import datetime, timezone
    >>> t = lambda h: datetime(2024, 1, 1, h, tzinfo=timezone.utc)
    >>> trades = [ClosedTrade(1, t(0), t(1), Decimal(10)), ClosedTrade(2, t(0), t(2), Decimal(-20)),
    ...           ClosedTrade(3, t(0), t(3), Decimal(5))]
    >>> dd = max_drawdown(trades, Decimal(1000))
    >>> dd.max_drawdown_usd, round(dd.max_drawdown_pct, 6), dd.peak_time.hour  # 20 / 1010
    (Decimal('20'), Decimal('0.019802'), 1)
    """
    ordered = order_closed(trades)
    best = DrawDown(_ZERO, _ZERO, None, None)
    if not ordered:
        return best
    # The same walk as equity_curve, without building a point per trade.
    with localcontext(EXACT_CONTEXT):
        equity = peak = Decimal(starting_balance)
        peak_time: datetime | None = min(min(t.entry_time for t in ordered), ordered[0].exit_time)
        for trade in ordered:
            equity += trade.pnl_usd
            if equity >= peak:
                # The latest time at the peak: a fall starts when equity leaves it for good.
                peak, peak_time = equity, trade.exit_time
            elif peak - equity > best.max_drawdown_usd:
                best = DrawDown(peak - equity, drawdown_fraction(peak - equity, peak), peak_time, trade.exit_time)
    return replace(best, max_drawdown_usd=rounded(best.max_drawdown_usd))


def drawdown_fraction(drawdown: Decimal, peak: Decimal) -> Decimal:
    """A fall as a fraction of the peak it started from; 0 with no positive peak (no bankroll
    to lose a fraction of, and a negative peak would flip the sign)."""
    with localcontext(MONEY_CONTEXT):
        return drawdown / peak if peak > 0 else _ZERO


def daily_returns(trades: Iterable[ClosedTrade], starting_balance: Decimal) -> list[tuple[date, float]]:
    """One return per UTC day, from the first entry day to the last exit day.

    r_d = P/L closed on day d / equity at the end of day d-1 (the starting balance before the
    first exit); 0 on days without exits, so quiet days count in the ratios as they should.
    A day that starts with no positive equity has no meaningful return (the bankroll is gone,
    and dividing by a negative equity would flip the sign), so it is left out.

    >>> from datetime import datetime, timezone
    >>> d = lambda day, h: datetime(2024, 1, day, h, tzinfo=timezone.utc)
    >>> trades = [ClosedTrade(1, d(1, 10), d(2, 12), Decimal(10)),
    ...           ClosedTrade(2, d(3, 9), d(4, 9), Decimal(-20))]
    >>> [(day.day, round(r, 6)) for day, r in daily_returns(trades, Decimal(1000))]
    [(1, 0.0), (2, 0.01), (3, 0.0), (4, -0.019802)]
    """
    ordered = order_closed(trades)
    if not ordered:
        return []
    return returns_by_day(_by_utc_day(ordered), _utc_day(min(t.entry_time for t in ordered)), starting_balance)


def returns_by_day(by_day: Mapping[date, Decimal], first_entry_day: date,
                   starting_balance: Decimal) -> list[tuple[date, float]]:
    """`daily_returns` from the P/L per UTC exit day (exact sums) and the first entry day."""
    if not by_day:
        return []
    last = max(by_day)
    returns: list[tuple[date, float]] = []
    equity = Decimal(starting_balance)
    day = min(first_entry_day, min(by_day))
    while day <= last:
        pnl = by_day.get(day, _ZERO)
        if equity > 0:
            returns.append((day, float(MONEY_CONTEXT.divide(pnl, equity))))
        equity = EXACT_CONTEXT.add(equity, pnl)
        day += timedelta(days=1)
    return returns


def sharpe_sortino(returns: Sequence[float]) -> tuple[float | None, float | None]:
    """Annualised (√365) Sharpe and Sortino ratios of daily returns, risk-free rate 0.

    sharpe = mean / sample std (ddof=1); sortino = mean / sqrt(mean(min(r, 0)²)), the downside
    deviation over all days. Each is None with fewer than 2 returns or a zero denominator
    (no variation, or no losing day), where the ratio is undefined rather than infinite.

    >>> sharpe, sortino = sharpe_sortino([0.01, -0.02, 0.03, 0.0])
    >>> round(sortino, 6) == round(0.005 / 0.01 * 365 ** 0.5, 6)
    True
    """
    if len(returns) < 2:
        return None, None
    mean = statistics.fmean(returns)
    std = statistics.stdev(returns)
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    annual = math.sqrt(_DAYS_PER_YEAR)
    sharpe = mean / std * annual if std > 0 else None
    sortino = mean / downside * annual if downside > 0 else None
    return sharpe, sortino


def summarize(pnls: Sequence[Decimal]) -> Summary:
    """Counts, sums and means of closed trades' P/L (docs/metrics.md)."""
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    return summary_of(closed=len(pnls), wins=len(wins), losses=len(losses), total=exact_sum(pnls),
                      gross_profit=exact_sum(wins), gross_loss=exact_sum(losses),
                      best=max(pnls) if pnls else None, worst=min(pnls) if pnls else None)


def summary_of(*, closed: int, wins: int, losses: int, total: Decimal, gross_profit: Decimal, gross_loss: Decimal,
               best: Decimal | None, worst: Decimal | None) -> Summary:
    """The Summary from counts and exact sums: the ratios are derived here, in one place."""
    with localcontext(MONEY_CONTEXT):
        return Summary(
            closed_trades=closed,
            wins=wins,
            losses=losses,
            breakeven=closed - wins - losses,
            win_rate=Decimal(wins) / closed if closed else None,
            total_pnl_usd=rounded(total),
            gross_profit_usd=rounded(gross_profit),
            gross_loss_usd=rounded(gross_loss),
            profit_factor=gross_profit / -gross_loss if losses else None,
            expectancy_usd=total / closed if closed else None,
            avg_win_usd=gross_profit / wins if wins else None,
            avg_loss_usd=gross_loss / losses if losses else None,
            best_trade_usd=best,
            worst_trade_usd=worst,
        )


def compute_stats(
    trades: Iterable[ClosedTrade],
    *,
    starting_balance: Decimal,
    counts: Counts = Counts(),
    min_trades_for_ratios: int = MIN_TRADES_FOR_RATIOS,
) -> Stats:
    """All headline metrics of a track record (docs/metrics.md).

    Ratios that need a denominator are None without one: win rate and expectancy without
    closed trades, profit factor without losses, averages without wins/losses. Sharpe and
    Sortino are None under `min_trades_for_ratios` closed trades, where they are mostly noise.

    >>> from datetime import datetime, timezone
    >>> t = lambda h: datetime(2024, 1, 1, h, tzinfo=timezone.utc)
    >>> s = compute_stats([ClosedTrade(1, t(0), t(1), Decimal(10)),
    ...                    ClosedTrade(2, t(0), t(2), Decimal(-20)),
    ...                    ClosedTrade(3, t(0), t(3), Decimal(5))], starting_balance=Decimal(1000))
    >>> s.wins, s.losses, s.total_pnl_usd, s.profit_factor, s.expectancy_usd, s.max_drawdown_usd
    (2, 1, Decimal('-5'), Decimal('0.75'), Decimal('-1.666666666666666666666666666666667'), Decimal('20'))
    """
    ordered = order_closed(trades)
    enough = bool(ordered) and len(ordered) >= min_trades_for_ratios
    return stats_of(summarize([t.pnl_usd for t in ordered]), max_drawdown(ordered, starting_balance),
                    daily_returns(ordered, starting_balance) if enough else None, counts)


def stats_of(summary: Summary, drawdown: DrawDown, returns: Sequence[tuple[date, float]] | None,
             counts: Counts) -> Stats:
    """The headline metrics from their parts; `returns` None: too few trades for the ratios."""
    sharpe, sortino = sharpe_sortino([r for _, r in returns]) if returns is not None else (None, None)
    return Stats(
        **vars(summary),
        max_drawdown_usd=drawdown.max_drawdown_usd,
        max_drawdown_pct=drawdown.max_drawdown_pct,
        open_trades=counts.open_trades,
        pending_trades=counts.pending_trades,
        cancelled_trades=counts.cancelled_trades,
        ambiguous_trades=counts.ambiguous_trades,
        sharpe=sharpe,
        sortino=sortino,
    )


def streaks(trades: Iterable[ClosedTrade]) -> tuple[int, int]:
    """(longest run of wins, longest run of losses) in exit order; a breakeven ends both.

    >>> from datetime import datetime, timezone
    >>> t = lambda h: datetime(2024, 1, 1, h, tzinfo=timezone.utc)
    >>> streaks([ClosedTrade(i, t(0), t(i), Decimal(p)) for i, p in enumerate([1, 2, 0, 3, -1, -1], 1)])
    (2, 2)
    """
    best_win = best_loss = win = loss = 0
    for trade in order_closed(trades):
        win = win + 1 if trade.pnl_usd > 0 else 0
        loss = loss + 1 if trade.pnl_usd < 0 else 0
        best_win, best_loss = max(best_win, win), max(best_loss, loss)
    return best_win, best_loss


def period_pnl(trades: Iterable[ClosedTrade], since: datetime) -> Decimal:
    """Realized P/L of the trades that exited at or after `since` (the site's 7d/30d cards).

    `since` is a parameter, not "now minus 7 days", so the caller owns the clock.
    """
    return rounded(exact_sum(t.pnl_usd for t in trades if t.exit_time >= since))


def monthly_returns(
    trades: Iterable[ClosedTrade], starting_balance: Decimal
) -> list[tuple[int, int, Decimal, Decimal | None]]:
    """(year, month, P/L, return) per UTC month, from the first entry month to the last exit month.

    return = the month's P/L / equity at the end of the previous month (the starting balance
    before the first exit); months without exits are 0, so the heatmap has no holes. The
    return is None when the month starts with no positive equity (see `daily_returns`).

    >>> from datetime import datetime, timezone
    >>> m = lambda month: datetime(2024, month, 15, tzinfo=timezone.utc)
    >>> rows = monthly_returns([ClosedTrade(1, m(1), m(1), Decimal(10)),
    ...                         ClosedTrade(2, m(3), m(3), Decimal(-20))], Decimal(1000))
    >>> [(y, mo, str(p)) for y, mo, p, _ in rows]
    [(2024, 1, '10'), (2024, 2, '0'), (2024, 3, '-20')]
    """
    ordered = order_closed(trades)
    if not ordered:
        return []
    return returns_by_month(_by_utc_day(ordered), _utc_day(min(t.entry_time for t in ordered)), starting_balance)


def returns_by_month(by_day: Mapping[date, Decimal], first_entry_day: date,
                     starting_balance: Decimal) -> list[tuple[int, int, Decimal, Decimal | None]]:
    """`monthly_returns` from the P/L per UTC exit day (exact sums) and the first entry day."""
    if not by_day:
        return []
    by_month: dict[tuple[int, int], Decimal] = {}
    with localcontext(EXACT_CONTEXT):
        for day, pnl in by_day.items():
            by_month[(day.year, day.month)] = by_month.get((day.year, day.month), _ZERO) + pnl
    first_day = min(first_entry_day, min(by_day))
    year, month = first_day.year, first_day.month
    last = max(by_month)
    rows: list[tuple[int, int, Decimal, Decimal | None]] = []
    equity = Decimal(starting_balance)
    while (year, month) <= last:
        pnl = by_month.get((year, month), _ZERO)
        with localcontext(MONEY_CONTEXT):
            rows.append((year, month, rounded(pnl), pnl / equity if equity > 0 else None))
        equity = exact_sum((pnl,), equity)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return rows


_EPOCH_DAY = date(1970, 1, 1)


def _utc_day(time: datetime) -> date:
    return time.astimezone(timezone.utc).date()


def _by_utc_day(trades: Iterable[ClosedTrade]) -> dict[date, Decimal]:
    """P/L per UTC exit day. Bucketed on whole epoch days first: a million `date` conversions
    cost seconds, the few hundred distinct days cost nothing."""
    seconds_per_day = 86400
    by_index = _sum_by(trades, lambda t: int(t.exit_time.timestamp() // seconds_per_day))
    return {_EPOCH_DAY + timedelta(days=index): pnl for index, pnl in by_index.items()}


def _sum_by(trades: Iterable[ClosedTrade], key: Callable[[ClosedTrade], _T]) -> dict[_T, Decimal]:
    totals: dict[_T, Decimal] = {}
    with localcontext(EXACT_CONTEXT):
        for trade in trades:
            k = key(trade)
            totals[k] = totals.get(k, _ZERO) + trade.pnl_usd
    return totals



# --- the honest statistics: what the observed numbers do and do not say (docs/metrics.md) ---

WILSON_Z = 1.959963984540054  # the two-sided 95 % quantile of the normal distribution


def wilson_interval(wins: int, trades: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of a win rate of `wins` out of `trades`; None without trades.

    Unlike p ± z·√(p(1−p)/n) it stays inside [0, 1] and is honest for small samples and for
    rates near 0 or 1 (10 wins in 10 trades does not mean a 100 % win rate for sure).

    >>> low, high = wilson_interval(52, 100)  # p = .52, z²/n = .0384: centre .5193, half .0961
    >>> round(low, 4), round(high, 4)
    (0.4232, 0.6154)
    """
    if trades <= 0:
        return None
    p = wins / trades
    z2 = z * z
    denominator = 1 + z2 / trades
    centre = (p + z2 / (2 * trades)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trades + z2 / (4 * trades * trades))
    return max(0.0, centre - half), min(1.0, centre + half)


def breakeven_win_rate(avg_win: Decimal | None, avg_loss: Decimal | None) -> float | None:
    """The win rate at which this payoff makes nothing: |avg loss| / (avg win + |avg loss|).

    None without both a win and a loss (the payoff is not known yet).

    >>> breakeven_win_rate(Decimal(3), Decimal(-2))  # 2 / (3 + 2)
    0.4
    """
    if avg_win is None or avg_loss is None or avg_win + abs(avg_loss) == 0:
        return None
    return float(abs(avg_loss) / (avg_win + abs(avg_loss)))


def payoff_ratio(avg_win: Decimal | None, avg_loss: Decimal | None) -> float | None:
    """Average win / |average loss|; None without both.

    >>> payoff_ratio(Decimal(3), Decimal(-2))
    1.5
    """
    if avg_win is None or avg_loss is None or avg_loss == 0:
        return None
    return float(avg_win / abs(avg_loss))


def record_days(first_entry: datetime, end: datetime) -> float:
    """The record's length in days (first entry to last exit, or to now while trades are open)."""
    return max((end - first_entry).total_seconds() / 86400, 0.0)


def cagr(starting_balance: Decimal, total_pnl: Decimal, days: float) -> float | None:
    """Compound annual growth rate of the bankroll: (end / start)^(365 / days) − 1.

    −100 % when the bankroll is gone; None without a positive balance or a positive length.
    Annualising a few weeks multiplies their luck: the page says so beside it.

    >>> round(cagr(Decimal(1000), Decimal(100), 365), 6)  # one year, +10 %
    0.1
    >>> round(cagr(Decimal(1000), Decimal(100), 182.5), 6)  # half a year: 1.1² − 1
    0.21
    """
    if starting_balance <= 0 or days <= 0:
        return None
    end = float((starting_balance + total_pnl) / starting_balance)
    if end <= 0:
        return -1.0
    try:
        return end ** (_DAYS_PER_YEAR / days) - 1
    except OverflowError:
        return math.inf


def calmar(cagr_value: float | None, max_drawdown_fraction: Decimal | float) -> float | None:
    """CAGR / maximum drawdown (as fractions); None without a drawdown or a CAGR.

    >>> calmar(0.21, Decimal("0.07"))
    3.0
    """
    if cagr_value is None or not max_drawdown_fraction or not math.isfinite(cagr_value):
        return None
    return round(cagr_value / float(max_drawdown_fraction), 12)


def trades_per_day(closed: int, days: float) -> float | None:
    """Closed trades per calendar day of the record; None for a record without length.

    >>> trades_per_day(30, 7.5)
    4.0
    """
    return closed / days if days > 0 else None


def buy_and_hold(closes: Sequence[tuple[datetime, Decimal]]) -> list[tuple[datetime, float]]:
    """The return of buying at the first close and holding, at every later close.

    `closes`: (time, close) oldest first. The first point is 0: bought there.

    >>> t = lambda d: datetime(2024, 1, d, tzinfo=timezone.utc)
    >>> [round(r, 4) for _, r in buy_and_hold([(t(1), Decimal(100)), (t(2), Decimal(110)), (t(3), Decimal(95))])]
    [0.0, 0.1, -0.05]
    """
    if not closes or closes[0][1] <= 0:
        return []
    base = closes[0][1]
    return [(at, float(close / base - 1)) for at, close in closes]
