"""The funding rule (shared/funding.py): payment_t = −s · (notional / entry) · markPrice_t · rate_t
for every event with entry time < t ≤ until."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.funding import FundingEvent, funding_usd, next_funding_time, payment, payments, total
from shared.money import MONEY_CONTEXT

UTC = timezone.utc
ENTRY_TIME = datetime(2024, 3, 1, 7, 30, tzinfo=UTC)
T1, T2, T3 = (datetime(2024, 3, 1, 8, tzinfo=UTC), datetime(2024, 3, 1, 16, tzinfo=UTC),
              datetime(2024, 3, 2, 0, tzinfo=UTC))
EVENTS = [FundingEvent(T1, D("0.0001"), D(2100)), FundingEvent(T2, D("-0.0002"), D(1900)),
          FundingEvent(T3, D("0.0001"), D(2000))]


@pytest.mark.parametrize("side_sign, until, expected", [
    # $100 at 5x: notional 500, entry 2000, so 0.25 units.
    # T1: −(+1)·0.25·2100·0.0001 = −0.0525 (a LONG pays a positive rate).
    (+1, T1, D("-0.0525")),
    # T2 adds −(+1)·0.25·1900·(−0.0002) = +0.095: −0.0525 + 0.095 = 0.0425.
    (+1, T2 + timedelta(hours=1), D("0.0425")),
    # T3 adds −0.25·2000·0.0001 = −0.05: 0.0425 − 0.05 = −0.0075.
    (+1, T3, D("-0.0075")),
    # A SHORT gets the opposite of each payment.
    (-1, T3, D("0.0075")),
    # Closed before the first event: nothing.
    (+1, T1 - timedelta(milliseconds=1), D(0)),
])
def test_funding_of_a_trade(side_sign: int, until: datetime, expected: D) -> None:
    assert funding_usd(side_sign=side_sign, notional=D(500), entry=D(2000), entry_time=ENTRY_TIME, until=until,
                       events=EVENTS) == expected


def test_an_event_at_the_entry_time_is_not_paid_one_at_the_exit_time_is() -> None:
    """entry time < t ≤ exit time: entering exactly at 08:00 pays nothing for 08:00; leaving
    exactly at 16:00 pays 16:00 (+0.095, as above)."""
    paid = payments(side_sign=1, notional=D(500), entry=D(2000), entry_time=T1, until=T2, events=EVENTS)
    assert [(p.time, p.amount_usd) for p in paid] == [(T2, D("0.095"))]
    assert paid[0].ledger_data() == {"funding_time": T2, "funding_rate": D("-0.0002"), "mark_price": D(1900),
                                     "funding_usd": D("0.095")}


def test_an_event_without_a_mark_price_is_priced_at_the_entry() -> None:
    """Binance's oldest events have markPrice "": −0.25 · 2000 · 0.0001 = −0.05 = −notional · rate."""
    paid = payment(side_sign=1, notional=D(500), entry=D(2000), event=FundingEvent(T1, D("0.0001"), None))
    assert (paid.amount_usd, paid.mark_price) == (D("-0.05"), None)


def test_rounding_each_payment_once_the_total_exactly() -> None:
    """notional 100, entry 3, mark 1, rate 0.0001: each payment −0.01/3 rounds to 34 digits
    (−0.003333…3); the total is the exact sum of those three recorded payments (−0.009999…9),
    not −0.01: anyone adding the ledger's payments gets the total."""
    events = [FundingEvent(t, D("0.0001"), D(1)) for t in (T1, T2, T3)]
    paid = payments(side_sign=1, notional=D(100), entry=D(3), entry_time=ENTRY_TIME, until=T3, events=events)
    one = D("-0.003333333333333333333333333333333333")
    assert [p.amount_usd for p in paid] == [one] * 3
    assert total(paid) == D("-0.009999999999999999999999999999999999")
    assert len(one.as_tuple().digits) == MONEY_CONTEXT.prec


@pytest.mark.parametrize("after, expected", [
    (datetime(2024, 3, 1, 7, 59, 59, tzinfo=UTC), T1),
    (T1, T2),
    (T1 + timedelta(milliseconds=3), T2),  # Binance stamps events a few ms late
    (datetime(2024, 3, 1, 23, tzinfo=UTC), T3),
])
def test_the_next_funding_time(after: datetime, expected: datetime) -> None:
    assert next_funding_time(after) == expected


rates = st.decimals(min_value=D("-0.003"), max_value=D("0.003"), places=6)
marks = st.decimals(min_value=D("0.0001"), max_value=D(100000), places=4)


@given(st.lists(st.tuples(st.integers(0, 200), rates, marks), max_size=20, unique_by=lambda e: e[0]),
       st.decimals(min_value=D(1), max_value=D(12500), places=2), marks)
def test_longs_and_shorts_mirror_and_order_does_not_matter(raw: list[tuple[int, D, D]], notional: D,
                                                           entry: D) -> None:
    events = [FundingEvent(ENTRY_TIME + timedelta(hours=8 * k), rate, mark) for k, rate, mark in raw]
    kwargs = dict(notional=notional, entry=entry, entry_time=ENTRY_TIME - timedelta(seconds=1),
                  until=ENTRY_TIME + timedelta(days=100))
    long = funding_usd(side_sign=1, events=events, **kwargs)  # type: ignore[arg-type]
    short = funding_usd(side_sign=-1, events=events, **kwargs)  # type: ignore[arg-type]
    assert long == short.copy_negate()  # (unary minus would round to the default context)
    assert funding_usd(side_sign=1, events=list(reversed(events)), **kwargs) == long  # type: ignore[arg-type]
    if all(e.rate >= 0 for e in events):
        assert long <= 0  # longs pay positive rates
