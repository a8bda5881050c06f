"""Funding: what an open FUTURES position pays or receives at each funding event.

Pure: terms, events and a time in, payments out. No clock, no database, no HTTP.

A perpetual future settles funding between longs and shorts at each funding time t (every
8 h at 00:00, 08:00 and 16:00 UTC on most Binance contracts). A position of quantity
q = open notional / entry (side sign s: +1 LONG, −1 SHORT) pays

    payment_t = −s · q · markPrice_t · rate_t          (negative: the trade pays)

for every event with entry time < t ≤ min(exit time, now). A positive rate makes longs pay
shorts. funding_usd = Σ payment_t is part of `pnl_usd` and shown on its own.

Rounding: each payment is computed in `MONEY_CONTEXT` (34 significant digits, the context
`shared.money.settle` computes fees and P/L in; the product is formed first and divided by
the entry last, so a payment is rounded once per operation like settle's P/L). The total is
the exact sum of those payments (`exact_sum`), rounded to 34 digits once (`rounded`), so it
does not depend on the order of the events. The ledger records each payment and the total (as
text, like every ledger amount: `shared.ledger.decimal_text`), and a replay that recomputes
them from the exchange's funding history gets the same numbers.

Events Binance published without a mark price (its oldest history has `markPrice: ""`) are
priced on the position's entry value: q · entry = the open notional, i.e. the payment is
−s · notional · rate. That is the formula with markPrice_t = entry; each payment says which
price it used (`mark_price` None), so the choice is visible, never silent.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Any

from shared.money import MONEY_CONTEXT, exact_sum, rounded

FUNDING_PERIOD = timedelta(hours=8)
_DAY_START = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class FundingEvent:
    """One funding event of a contract: Binance's fundingTime, fundingRate, markPrice."""

    time: datetime
    rate: Decimal
    mark_price: Decimal | None  # None: Binance's oldest events carry no mark price


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """What one event paid (negative) or brought (positive) one trade."""

    time: datetime
    rate: Decimal
    mark_price: Decimal | None  # the event's; None when the entry price stood in for it
    amount_usd: Decimal

    def ledger_data(self) -> dict[str, Any]:
        """The payment as the ledger records it, so `verify --replay` can recompute it from the
        exchange's funding history (the ledger's `to_data` formats decimals and times)."""
        return {"funding_time": self.time, "funding_rate": self.rate, "mark_price": self.mark_price,
                "funding_usd": self.amount_usd}


def applies(event_time: datetime, *, entry_time: datetime, until: datetime) -> bool:
    """entry time < t ≤ until (until = the exit time, or now while the trade is open)."""
    return entry_time < event_time <= until


def payment(*, side_sign: int, notional: Decimal, entry: Decimal, event: FundingEvent) -> FundingPayment:
    """−s · (notional / entry) · markPrice · rate, the product formed before the division."""
    price = entry if event.mark_price is None else event.mark_price
    with localcontext(MONEY_CONTEXT):
        amount = -side_sign * notional * price * event.rate / entry
    return FundingPayment(event.time, event.rate, event.mark_price, amount)


def payments(*, side_sign: int, notional: Decimal, entry: Decimal, entry_time: datetime, until: datetime,
             events: Iterable[FundingEvent]) -> list[FundingPayment]:
    """The payments of every event with entry time < t ≤ until, in time order."""
    return [payment(side_sign=side_sign, notional=notional, entry=entry, event=event)
            for event in sorted(events, key=lambda e: e.time)
            if applies(event.time, entry_time=entry_time, until=until)]


def total(paid: Iterable[FundingPayment]) -> Decimal:
    """funding_usd: the exact sum of the payments, rounded once to the money context."""
    return rounded(exact_sum(p.amount_usd for p in paid))


def funding_usd(*, side_sign: int, notional: Decimal, entry: Decimal, entry_time: datetime, until: datetime,
                events: Iterable[FundingEvent]) -> Decimal:
    """The funding of one trade from its entry until `until` (its exit, or now while open)."""
    return total(payments(side_sign=side_sign, notional=notional, entry=entry, entry_time=entry_time, until=until,
                          events=events))


def next_funding_time(after: datetime) -> datetime:
    """The first regular funding time (00:00, 08:00, 16:00 UTC) strictly after `after`.

    Binance stamps an event a few milliseconds after the hour at times (…00:00:00.003), so an
    event's own time is floored to its period before stepping to the next one.
    """
    periods = (after - _DAY_START) // FUNDING_PERIOD
    return _DAY_START + (periods + 1) * FUNDING_PERIOD
