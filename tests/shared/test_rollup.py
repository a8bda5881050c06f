"""Summaries of parts combine into exactly what shared.metrics computes trade by trade."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import metrics
from shared.money import MONEY_CONTEXT
from shared.rollup import Stretch, Tally, joined, total

START = datetime(2024, 1, 1, tzinfo=timezone.utc)

# Round amounts make ties (equal falls, equal peaks, breakevens) common; 34-digit ones make
# rounding show if any sum were not exact.
pnl_values = st.one_of(
    st.integers(-30, 30).map(Decimal),
    st.decimals(min_value=-150, max_value=400, places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("-1.666666666666666666666666666666667"), Decimal("0.3333333333333333333333333333333333"),
                     Decimal("1E-30"), Decimal("-104.04")]),
)


def closed(pnls: list[Decimal]) -> list[metrics.ClosedTrade]:
    return [metrics.ClosedTrade(i, START, START + timedelta(hours=i), pnl) for i, pnl in enumerate(pnls, 1)]


def split(values: list[Decimal], cuts: list[int]) -> list[list[Decimal]]:
    edges = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    return [values[a:b] for a, b in zip(edges, edges[1:])] + [[]]  # an empty part must be harmless too


@settings(max_examples=400, deadline=None)
@given(st.lists(pnl_values, max_size=60), st.lists(st.integers(0, 1000), max_size=8),
       st.sampled_from([Decimal(1000), Decimal(100), Decimal(0), Decimal("-50")]))
def test_parts_combine_into_the_metrics_of_the_whole(pnls, cuts, starting):
    parts = split(pnls, cuts)
    stretch = joined(Stretch.of(part) for part in parts)
    assert stretch == Stretch.of(pnls)

    trades = closed(pnls)
    assert stretch.drawdown(starting).max_drawdown_usd == metrics.max_drawdown(trades, starting).max_drawdown_usd
    assert stretch.drawdown(starting).max_drawdown_pct == metrics.max_drawdown(trades, starting).max_drawdown_pct
    assert stretch.streaks() == metrics.streaks(trades)

    tally = total(Tally.of(part) for part in parts)
    assert tally == Tally.of(pnls)
    assert tally.summary() == metrics.summarize(pnls)


def test_the_first_of_equal_falls_gives_the_percentage():
    # 1000 → 1100 → 1000 (a $100 fall from 1100), then → 1200 → 1100 (an equal fall from 1200).
    pnls = [Decimal(v) for v in (100, -100, 200, -100)]
    for parts in ([pnls], [pnls[:1], pnls[1:]], [pnls[:3], pnls[3:]], [[p] for p in pnls]):
        dd = joined(Stretch.of(p) for p in parts).drawdown(Decimal(1000))
        assert dd.max_drawdown_usd == 100 and dd.max_drawdown_pct == MONEY_CONTEXT.divide(Decimal(100), Decimal(1100))


def test_runs_across_parts():
    pnls = [Decimal(v) for v in (1, 1, -1, 1, 1, 1, 0, -1, -1)]
    assert joined(Stretch.of(pnls[i:i + 1]) for i in range(len(pnls))).streaks() == (3, 2)
    assert joined([Stretch.of(pnls[:4]), Stretch.of(pnls[4:])]).streaks() == (3, 2)
