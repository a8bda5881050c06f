"""The funding job: keep the funding history of every contract an open futures trade holds.

    refresh_funding(engine, market_data, now=now, state=state) -> FundingReport

For each symbol with OPEN or PENDING FUTURES trades it reads `/fapi/v1/fundingRate` (through
`MarketData.funding_rates`) from the oldest such trade's entry (or from just after the newest
event it already knows) up to now, and stores what it gets once per (symbol, funding time)
(shared/funding_store.py). The funding rule (shared/funding.py) reads the store.

Requests: funding happens at 00:00, 08:00 and 16:00 UTC, so once a symbol is caught up the
next request waits for the next of those times (plus `SETTLE_DELAY`, so the event has been
published): at most one request per symbol per 8 h. `FundingState` remembers, in memory, how
far each symbol's history is known; after a restart the store's newest event stands in for
it, which costs at most one extra request per symbol.

A failure (the exchange down, an answer with missing fields) leaves everything as it was and
comes back in the report's `message`, for the heartbeat: the trades' funding waits for the
history to be complete (`known_through`), it is never guessed.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.clock import ONE_MS
from shared.database import transaction
from shared.funding import FUNDING_PERIOD, next_funding_time
from shared.funding_store import store_events, stored_ranges
from shared.kinds import ACTIVE_STATUSES, Market
from shared.models import Trade
from worker.market_data import ExchangeError, MarketData, UnknownSymbol

log = logging.getLogger(__name__)

# How long after a funding time its event is surely published (Binance stamps events a few
# milliseconds after the hour and publishes them within seconds).
SETTLE_DELAY = timedelta(minutes=1)


@dataclass
class FundingState:
    """How far each symbol's funding history is known (kept between ticks by the caller)."""

    covered_from: dict[str, datetime] = field(default_factory=dict)  # asked from here on
    known_through: dict[str, datetime] = field(default_factory=dict)  # every event up to here is stored


@dataclass(frozen=True)
class FundingReport:
    symbols: tuple[str, ...]  # futures symbols with open or pending trades
    requested: tuple[str, ...]  # those whose history was asked for this time
    events: int  # events the exchange sent (stored unless already there)
    known_through: dict[str, datetime]  # per symbol: every event up to here is stored
    problems: tuple[str, ...]

    @property
    def message(self) -> str | None:
        """What the heartbeat shows, or None when all went well."""
        return "; ".join(self.problems) or None


def active_futures_symbols(*, session: Session) -> dict[str, datetime]:
    """Symbol -> the oldest entry (signal time while pending) of its OPEN/PENDING FUTURES trades."""
    since = sa.func.min(sa.func.coalesce(Trade.entry_time, Trade.signal_time))
    query = (sa.select(Trade.symbol, since)  # type: ignore[call-overload]
             .where(Trade.market == Market.FUTURES, Trade.status.in_(ACTIVE_STATUSES))  # type: ignore[attr-defined]
             .group_by(Trade.symbol))
    # min() and coalesce() keep the column's type: the times come back aware on both dialects.
    return {symbol: oldest for symbol, oldest in session.execute(query)}


def _asked_from(first_stored: datetime) -> datetime:
    """The earliest time a history whose first stored event is `first_stored` can have been
    asked from: just after the funding time before it (had it been asked from earlier, that
    event would be stored too). Only the store speaks after a restart; the state is exact."""
    return next_funding_time(first_stored) - 2 * FUNDING_PERIOD + ONE_MS


def refresh_funding(engine: Engine, market_data: MarketData, *, now: datetime,
                    state: FundingState | None = None) -> FundingReport:
    """Bring the funding history of every symbol with active futures trades up to `now`."""
    state = FundingState() if state is None else state
    with Session(engine) as session:
        wanted = active_futures_symbols(session=session)
        ranges = stored_ranges(wanted, session=session)
    requested: list[str] = []
    problems: list[str] = []
    events = 0
    until = now - SETTLE_DELAY
    for symbol, oldest in sorted(wanted.items()):
        stored = ranges.get(symbol)
        covered_from = state.covered_from.get(symbol) or (_asked_from(stored[0]) if stored else None)
        known = max(filter(None, (state.known_through.get(symbol), stored[1] if stored else None)), default=None)
        first_needed = oldest + ONE_MS  # an event at the entry time itself is not paid
        if covered_from is None or known is None or next_funding_time(oldest) < covered_from:
            start = first_needed  # nothing asked yet, or a funding time before what was asked
        else:
            start = known + ONE_MS
        if next_funding_time(start - ONE_MS) > until:
            # No funding time lies in [start, until]: nothing to ask for yet.
            if covered_from is None or start < covered_from:
                state.covered_from[symbol] = start
            state.known_through[symbol] = max(known or until, until)
            continue
        requested.append(symbol)
        try:
            fetched = market_data.funding_rates(symbol, start, until)
        except (ExchangeError, UnknownSymbol) as error:
            log.warning("funding history of %s not read: %s", symbol, error)
            problems.append(f"funding history of {symbol} could not be read ({error}); "
                            "its trades' funding waits until it can")
            continue
        with transaction(engine) as session:
            store_events(symbol, fetched, session=session)
        events += len(fetched)
        state.covered_from[symbol] = min(start, covered_from) if covered_from else start
        state.known_through[symbol] = until
    known_through = {symbol: state.known_through[symbol] for symbol in wanted if symbol in state.known_through}
    return FundingReport(tuple(sorted(wanted)), tuple(requested), events, known_through, tuple(problems))
