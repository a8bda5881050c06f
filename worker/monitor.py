"""The trade monitor: feed closed candles to every PENDING/OPEN trade and record what happens.

Requests grow with symbols, not trades: all active trades of one (market, symbol, interval)
share one klines request when caught up. Each trade resumes after its own last checked candle,
so an exit touched while the worker was down is still found at the right candle.

Far behind (a catch-up after downtime), a group reads coarse candles first (1h for 1m trades,
`COARSER`) and asks for its own interval only inside the coarse candles that may change a trade:
a coarse candle's low and high bound every candle inside it (also the part of it after a
trade's resume point), so one that reaches no level, entry or time limit of any trade cannot
change one, and its candles need not be read. Where the coarse series has a gap, and after the
last closed coarse candle, the group walks its own interval; an exchange that refuses the coarse
interval gets the plain walk. The outcome is the one the plain walk gives, candle for candle
(tests/worker/test_coarse_to_fine.py checks it); only the progress may differ, a cleared coarse
candle counting as checked up to its last candle.

Inside the candles read, a precomputed `Screen` per trade passes over the candles that touch
nothing for a couple of comparisons; every other candle goes through the trade rules
(`shared.exits.advance`), whose result is the only one recorded.

The trades' terms stay in memory between passes (`TradeBook`, checked against each row's
`version`); a pass reads only the light columns of the active trades and the full rows of new
or changed ones. The pass computes first (the network part) and writes after, in one
transaction (a long catch-up writes every `FLUSH_DECISIONS` decisions or `FLUSH_SECONDS`): the
decisions one by one (`save_decision`, guarded by `version`, with their ledger entries), the
progress batched (`save_progress`, which only ever moves a trade's last checked candle forward),
the latest prices in one upsert, and the candles fetched in one insert (`shared.candle_store`: the
site draws each trade's life on them; no request is made for them). Two workers, or a worker killed and restarted, never record
a trade twice or lose one.
"""

import logging
import threading
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from threading import Event as StopFlag
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shared import candle_store, queries
from shared.candles import Candle, interval_length
from shared.clock import EPOCH
from shared.database import transaction
from shared import funding_store
from shared.exits import Fill, Tape, TradeState, TradeTerms, adverse_level, advance, next_targets, with_funding
from shared.kinds import EntryMode, Side, TradeStatus
from shared.models import LatestPrice, Market, Trade
from shared.trade_rows import fills_of, one_of, save_decision, save_progress, state_of, terms_of
from shared.tape import AggTrade
from worker.market_data import (
    BadTape, ExchangeError, ExchangeUnreachable, MarketData, RequestRefused, TapeReader, UnknownSymbol,
)

log = logging.getLogger(__name__)

GroupKey = tuple[str, str, str]  # (market, symbol, candle interval)

# The coarse interval read first when far behind: a Binance interval that is a whole multiple of
# the trades' own, ~12–60 times longer (1,000 hours of 1h candles in one request). Coarser
# trade intervals are cheap to walk as they are.
COARSER: dict[str, str] = {"1m": "1h", "3m": "2h", "5m": "4h", "15m": "12h", "30m": "1d", "1h": "1d", "2h": "1d"}
# What a long pass keeps before it writes: lost work if it is killed, and memory.
FLUSH_DECISIONS = 1000
FLUSH_SECONDS = 10.0
# The screen's expiry instant is computed here, not by the rules: a margin keeps it on the early
# (safe) side of theirs whatever the rounding (an early "may act" only costs the exact check).
EXPIRY_MARGIN = timedelta(seconds=1)


@dataclass
class MonitorReport:
    requests: int = 0
    changed: int = 0
    failed: list[str] = field(default_factory=list)  # groups the exchange could not serve
    stuck: int = 0  # active trades in those groups: not updated by this pass
    unreachable: bool = False  # a host did not resolve or refused connections (retrying soon won't help)
    behind_seconds: float | None = None
    tape_reads: int = 0  # candles whose trade tape was read: one per (symbol, candle), however many trades
    waiting_funding: int = 0  # futures trades decided, left open until their funding history is known
    funding_problems: list[str] = field(default_factory=list)  # the funding history's, for the heartbeat


# --- the screen: which candles may change a trade -------------------------------------------


@dataclass(frozen=True, slots=True)
class Screen:
    """When a candle may change a trade in its present state: its low at or below `low`, its
    high at or above `high`, or it ends after `after`. Any other candle only moves the trade's
    last checked candle (`advance` would find nothing in it)."""

    low: Decimal | None = None
    high: Decimal | None = None
    after: datetime | None = None

    def may_act(self, candle: Candle, end: datetime) -> bool:
        return ((self.low is not None and candle.low <= self.low)
                or (self.high is not None and candle.high >= self.high)
                or (self.after is not None and end > self.after))


def combined(screens: Iterable[Screen]) -> Screen:
    """One screen that may act on exactly the candles some of `screens` may act on."""
    lows, highs, afters = [], [], []
    for screen in screens:
        if screen.low is not None:
            lows.append(screen.low)
        if screen.high is not None:
            highs.append(screen.high)
        if screen.after is not None:
            afters.append(screen.after)
    return Screen(low=max(lows, default=None), high=min(highs, default=None), after=min(afters, default=None))


def screen_of(terms: TradeTerms, state: TradeState) -> Screen:
    """The levels and instants of the rules (docs/trade-rules.md) for an active state."""
    long = terms.side is Side.LONG
    if state.status is TradeStatus.PENDING:
        if terms.entry_mode is not EntryMode.LIMIT:
            # A market entry is decided by its start candle, the first one opening at or after
            # the signal's time, whatever it is.
            return Screen(after=terms.signal_time)
        # A limit fills when the price reaches it; it is cancelled by the first candle at or
        # after its deadline (which ends after the deadline).
        limit = terms.signal_entry
        return Screen(low=limit, after=terms.pending_deadline) if long else Screen(high=limit,
                                                                                   after=terms.pending_deadline)
    assert state.entry_price is not None and state.entry_time is not None
    adverse = adverse_level(terms, state)  # the stop in force from the next candle on
    targets = next_targets(terms, state)
    target = targets[0].target if targets else None
    expiry = None
    if terms.max_trade_hours > 0:
        expiry = state.entry_time + timedelta(hours=float(terms.max_trade_hours)) - EXPIRY_MARGIN
    if long:
        return Screen(low=adverse, high=target, after=expiry)
    return Screen(low=target, high=adverse, after=expiry)


# --- the trades kept between passes ---------------------------------------------------------


@dataclass(slots=True)
class Followed:
    """An active trade as the monitor keeps it between passes.

    `stored` is its state as last read or written (`version`: the row's then), `state` the state
    a pass works out, `screen` that state's screen. The last candle looked at is kept apart, in
    `checked` (`stored_checked`: the row's): a candle the screen clears moves only that, without
    rebuilding the state, so a state's own `last_candle_time` may lag behind it (never ahead)
    until a decision is written (`decided`).
    """

    id: int
    version: int
    terms: TradeTerms
    stored: TradeState
    state: TradeState
    screen: Screen
    checked: datetime | None
    stored_checked: datetime | None

    @classmethod
    def of(cls, row: Any, fills: tuple[Fill, ...] = ()) -> "Followed":
        """From a row of `FOLLOWED_COLUMNS` (terms_of and state_of read them by name) and its fills."""
        terms, state = terms_of(row), state_of(row, fills)
        return cls(row.id, row.version, terms, state, state, screen_of(terms, state), state.last_candle_time,
                   state.last_candle_time)

    def start(self, last_candle_time: datetime | None) -> None:
        """Begin a pass from the stored state and the row's last checked candle."""
        self.checked = self.stored_checked = last_candle_time
        lagging = self.stored.last_candle_time
        if lagging is not None and (last_candle_time is None or lagging > last_candle_time):
            self.stored = replace(self.stored, last_candle_time=last_candle_time)  # the row went back: follow it
        if self.state is not self.stored:
            if (self.state.status, self.state.entry_price, self.state.fills) != (
                    self.stored.status, self.stored.entry_price, self.stored.fills):
                self.screen = screen_of(self.terms, self.stored)  # the last pass's decision was not written
            self.state = self.stored

    def next_candle_time(self, interval: timedelta) -> datetime:
        """The open time of the first candle this trade still has to look at (at the earliest)."""
        signal_time = self.terms.signal_time
        return signal_time if self.checked is None else max(self.checked + interval, signal_time)

    def feed(self, candles: Sequence[Candle], times: Sequence[datetime], interval: timedelta,
             complete_until: datetime, tape: Tape | None = None) -> None:
        """Exactly `advance(terms, state, candles, complete_until=...)`, with the candles the
        screen clears passed over for a couple of comparisons each."""
        state = self.state
        if not state.status.is_active:
            return
        first = bisect_left(times, self.terms.signal_time)
        if self.checked is not None:
            first = max(first, bisect_right(times, self.checked))
        for index in range(first, len(candles)):
            if self.screen.may_act(candles[index], times[index] + interval):
                # The candles before this one are cleared: it is the next one `advance` looks at.
                status, fills = state.status, state.fills
                state = advance(self.terms, state, (candles[index],), complete_until=times[index], tape=tape)
                if not state.status.is_active:
                    self.state, self.checked = state, times[index]
                    return
                if state.status is not status or state.fills is not fills:  # entered, or a target filled
                    self.screen = screen_of(self.terms, state)
        if first < len(candles):
            self.checked = times[-1]
        if state.status is TradeStatus.PENDING:  # the rules' last one: a limit's deadline passed without candles
            state = advance(self.terms, state, (), complete_until=complete_until)
        self.state = state

    def passed(self, last_open: datetime) -> None:
        """Every candle up to the one opening at `last_open` is known to change nothing."""
        if self.state.status.is_active and (self.checked is None or self.checked < last_open):
            self.checked = last_open

    def decided(self) -> TradeState:
        """The state worked out, with its last checked candle: what `advance` would have given."""
        state = self.state
        return state if state.last_candle_time == self.checked else replace(state, last_candle_time=self.checked)


_TRADE = Trade.__table__.c  # type: ignore[attr-defined]
# What the monitor reads of every active trade on every pass: enough to group it and to see
# whether anything but its progress changed since it was kept.
LIGHT_COLUMNS = (_TRADE.id, _TRADE.version, _TRADE.status, _TRADE.last_candle_time, _TRADE.market, _TRADE.symbol,
                 _TRADE.candle_interval)


def _light_columns(dialect: str) -> tuple[Any, ...]:
    """PostgreSQL's driver already returns aware times and text: skip our columns' conversions
    on every active trade of every pass (the comparisons do not need enum members or UTC)."""
    if dialect != "postgresql":
        return LIGHT_COLUMNS
    return (_TRADE.id, _TRADE.version, sa.type_coerce(_TRADE.status, sa.String).label("status"),
            sa.type_coerce(_TRADE.last_candle_time, sa.DateTime(timezone=True)).label("last_candle_time"),
            sa.type_coerce(_TRADE.market, sa.String).label("market"), _TRADE.symbol, _TRADE.candle_interval)


# ... and, once (then whenever its version moves), its terms and state.
FOLLOWED_COLUMNS = (_TRADE.id, _TRADE.version, *(_TRADE[name] for name in (
    "side", "leverage", "stake_usd", "fee_rate", "entry_mode", "slippage_bps", "maintenance_margin_rate",
    "pending_expiry_hours", "max_trade_hours", "signal_time", "signal_entry", "take_profit", "stop_loss",
    "status", "entry_time", "entry_price", "exit_time", "exit_price", "fees_usd", "pnl_usd", "pnl_pct", "reason",
    "ambiguous", "last_candle_time", "tp_split", "stop_after_tp", "targets", "shares", "targets_hit", "resolution",
    "futures_funding", "funding_usd")))


class TradeBook:
    """The active trades of one database, kept between passes; a row whose `version` or status
    moved (a decision by anyone) is read again, a trade no longer active is forgotten."""

    def __init__(self) -> None:
        self.trades: dict[int, Followed] = {}
        self.lock = threading.Lock()  # one pass at a time per database

    def load(self, engine: Engine) -> dict[GroupKey, list[Followed]]:
        with transaction(engine) as session:
            connection = session.connection()
            rows = connection.execute(sa.select(*_light_columns(connection.dialect.name)).where(
                queries.is_active()).order_by(_TRADE.id)).all()
            stale = [trade_id for trade_id, version, status, *_ in rows if (known := self.trades.get(trade_id)) is None
                     or known.version != version or known.stored.status != status]
            if stale:
                found = connection.execute(sa.select(*FOLLOWED_COLUMNS).where(one_of(_TRADE.id, stale,
                                                                                    session=session))).all()
                fills = fills_of([row.id for row in found if row.targets_hit], session=session)
                for row in found:
                    self.trades[row.id] = Followed.of(row, fills.get(row.id, ()))
        groups: dict[GroupKey, list[Followed]] = defaultdict(list)
        active: dict[int, Followed] = {}
        for trade_id, _, _, last_candle_time, market, symbol, interval in rows:
            if (followed := self.trades.get(trade_id)) is None:
                continue  # not found again by the second query: next pass
            active[trade_id] = followed
            followed.start(last_candle_time)
            groups[(market, symbol, interval)].append(followed)
        self.trades = active
        return groups

    def forget(self, trade_id: int) -> None:
        self.trades.pop(trade_id, None)


_books: "WeakKeyDictionary[Engine, TradeBook]" = WeakKeyDictionary()
_books_lock = threading.Lock()


def trade_book(engine: Engine) -> TradeBook:
    """The book of the database behind `engine` (one per engine, for the engine's life)."""
    with _books_lock:
        return _books.setdefault(engine, TradeBook())


# --- one group: fetch and decide --------------------------------------------------------------


class ExchangeTape:
    """The tape of a candle that reaches both a trade's adverse level and a target, read from the
    exchange once per candle however many trades need it (`TapeReader`). A tape the exchange
    cannot give whole and consistent, after retries, is None: the stop-loss is assumed there. An
    exchange that cannot be reached raises, and the group is retried at the next pass."""

    def __init__(self, reader: TapeReader, market: Market, symbol: str) -> None:
        self.reader, self.market, self.symbol = reader, market, symbol
        self.reads = 0

    def trades(self, candle: Candle) -> Sequence[AggTrade] | None:
        self.reads += 1
        try:
            return self.reader.tape(self.market, self.symbol, candle)
        except BadTape as exc:
            log.warning("%s %s: no usable trade tape for the candle of %s (%s): the stop-loss is assumed",
                        self.market, self.symbol, candle.open_time.isoformat(), exc)
            return None



class GroupWalk:
    """One (market, symbol, interval) group through the closed candles up to `now`; the states it
    works out are in its trades' `state`, so a group the exchange fails half way keeps what it did."""

    def __init__(self, market_data: MarketData, key: GroupKey, trades: list[Followed], *, now: datetime,
                 report: MonitorReport) -> None:
        self.market_data = market_data
        self.market, self.symbol, self.interval_name = key
        self.interval = interval_length(self.interval_name)
        self.trades = trades
        self.now = now
        self.report = report
        self.page = market_data.page_limit(Market(self.market))
        self.latest: Candle | None = None  # the newest candle seen: the symbol's latest price
        self.tape = ExchangeTape(TapeReader(market_data, self.interval_name), Market(self.market), self.symbol)
        self.fetched: list[candle_store.StoredRow] = []  # every closed candle fetched, coarse ones too

    def run(self, stop: StopFlag | None) -> None:
        start = min(t.next_candle_time(self.interval) for t in self.trades)
        coarse = COARSER.get(self.interval_name)
        if coarse is not None and self.now - start > self.page * self.interval:
            start = self.walk_coarse(coarse, start, stop)
            if stop is not None and stop.is_set():
                return
        self.walk_on(start, stop)

    def active(self) -> bool:
        return any(t.state.status.is_active for t in self.trades)

    def _klines(self, interval: str, start: datetime, limit: int | None = None) -> list[Candle]:
        candles = self.market_data.klines(Market(self.market), self.symbol, interval, start=start, now=self.now,
                                          limit=limit)
        self.report.requests += 1
        self.fetched += [(self.market, self.symbol, interval, candle) for candle in candles]
        return candles

    def _feed(self, candles: list[Candle], complete_until: datetime) -> None:
        times = [c.open_time for c in candles]
        for trade in self.trades:
            trade.feed(candles, times, self.interval, complete_until, self.tape)
        if candles and (self.latest is None or candles[-1].open_time > self.latest.open_time):
            self.latest = candles[-1]

    def walk_on(self, start: datetime, stop: StopFlag | None) -> None:
        """Every closed candle from `start` on, page after page."""
        while self.active():
            candles = self._klines(self.interval_name, start)
            # More closed candles may follow the last one returned, whatever size of page the server
            # chose to send; only an empty page or the newest closed candle means "caught up".
            more = bool(candles) and candles[-1].open_time + 2 * self.interval <= self.now
            # Every closed candle opening at or before this instant has now been seen.
            self._feed(candles, candles[-1].open_time if more else self.now - self.interval)
            if not more or (stop is not None and stop.is_set()):
                return
            start = candles[-1].open_time + self.interval

    def walk_range(self, start: datetime, until: datetime) -> int:
        """Every candle opening in [start, until), a stretch of the past; returns the requests."""
        requests = 0
        while start < until:
            requests += 1
            wanted = -(-(until - start) // self.interval)  # candles in the stretch, at most
            candles = self._klines(self.interval_name, start, limit=min(self.page, wanted))
            inside = [c for c in candles if c.open_time < until]
            # A page that stops short of `until` may be followed by more (or by a gap).
            more = bool(inside) and len(inside) == len(candles) and inside[-1].open_time + self.interval < until
            self._feed(inside, inside[-1].open_time if more else until - self.interval)
            if not more:
                break
            start = inside[-1].open_time + self.interval
        return requests

    def walk_coarse(self, coarse_name: str, start: datetime, stop: StopFlag | None) -> datetime:
        """Coarse candles from the one holding `start`, reading the trades' own interval only
        where one may act; returns where the plain walk takes over (after the last closed one).

        A group whose trades keep asking for a closer look (many trades on one symbol) goes on
        with the plain walk once that has cost as many requests as the plain walk would."""
        coarse = interval_length(coarse_name)
        budget = -(-(self.now - start) // (self.page * self.interval))  # the plain walk's requests
        cursor = start  # every candle before it has been looked at (or cleared) for every trade
        page_start = start - (start - EPOCH) % coarse  # Binance's candles are aligned to the epoch
        closer_looks = 0
        while self.active():
            try:
                candles = self._klines(coarse_name, page_start)
            except RequestRefused as exc:  # an exchange without that interval
                log.info("%s %s: no %s candles (%s): reading %s candles", self.market, self.symbol, coarse_name, exc,
                         self.interval_name)
                break
            group = combined(t.screen for t in self.trades if t.state.status.is_active)
            for candle in candles:
                end = candle.open_time + coarse
                if end <= cursor:
                    continue
                if closer_looks >= budget:
                    break
                if candle.open_time > cursor:  # a gap in the coarse series: read it as it is
                    closer_looks += self.walk_range(cursor, candle.open_time)
                    group = combined(t.screen for t in self.trades if t.state.status.is_active)
                last_open = end - self.interval
                if group.may_act(candle, end) and any(
                        t.screen.may_act(candle, end) and t.next_candle_time(self.interval) <= last_open
                        for t in self.trades if t.state.status.is_active):
                    closer_looks += self.walk_range(max(cursor, candle.open_time), end)
                    group = combined(t.screen for t in self.trades if t.state.status.is_active)
                if self.latest is None or candle.open_time > self.latest.open_time:
                    self.latest = candle
                cursor = end
            more = bool(candles) and candles[-1].open_time + 2 * coarse <= self.now
            if not more or closer_looks >= budget or (stop is not None and stop.is_set()):
                break
            page_start = candles[-1].open_time + coarse
        # The coarse candles passed over changed nothing: the trades have checked them all.
        for trade in self.trades:
            if trade.next_candle_time(self.interval) <= cursor - self.interval:
                trade.passed(cursor - self.interval)
        return cursor


# --- writing ----------------------------------------------------------------------------------


class Writes:
    """What passes over groups have worked out and not yet written."""

    def __init__(self, funding_known: Mapping[str, datetime] | None = None) -> None:
        self.funding_known = funding_known
        self.symbols: dict[int, str] = {}  # the symbol of each decision (for its funding)
        self.held = 0  # decided, but its funding history is not known through its exit yet
        self.decisions: list[Followed] = []
        self.progress: list[Followed] = []
        self.prices: dict[tuple[str, str], Candle] = {}
        self.candles: list[candle_store.StoredRow] = []
        self.since = time.monotonic()

    def clear(self) -> None:
        self.decisions, self.progress, self.prices, self.since = [], [], {}, time.monotonic()
        self.candles = []

    def add(self, walk: GroupWalk) -> None:
        for trade in walk.trades:
            if trade.state.status is not trade.stored.status or trade.state.fills is not trade.stored.fills:
                if self._funding_unknown(trade, walk.symbol):
                    self.held += 1  # left as it is: the next pass decides it again, with its funding
                    continue
                self.decisions.append(trade)
                self.symbols[trade.id] = walk.symbol
            elif trade.checked != trade.stored_checked:
                self.progress.append(trade)
        self.candles += walk.fetched
        latest, key = walk.latest, (walk.market, walk.symbol)
        if latest is not None and (key not in self.prices or self.prices[key].open_time < latest.open_time):
            self.prices[key] = latest

    def _funding_unknown(self, trade: Followed, symbol: str) -> bool:
        """A futures trade that pays funding closes only once every funding event up to its exit
        is stored (worker/funding.py keeps the history; `funding_known` says how far)."""
        exit_time = trade.state.exit_time
        if not trade.terms.funding or trade.state.status.is_active or exit_time is None:
            return False
        if self.funding_known is None:
            return False  # no funding job in this run (tests of the monitor alone): the store as it is
        known = self.funding_known.get(symbol)
        return known is None or known < exit_time

    def due(self) -> bool:
        return len(self.decisions) >= FLUSH_DECISIONS or time.monotonic() - self.since >= FLUSH_SECONDS

    def flush(self, engine: Engine, book: TradeBook, *, now: datetime) -> int:
        """One transaction: the decisions, the progress, the prices, the candles. Returns the
        decisions written."""
        written: list[Followed] = []
        if self.decisions or self.progress or self.prices or self.candles:
            with transaction(engine) as session:
                rows = _rows([trade.id for trade in self.decisions], session=session)
                for trade in self.decisions:
                    row, after = rows.get(trade.id), trade.decided()
                    if trade.terms.funding and not after.status.is_active and after.entry_time is not None:
                        after = with_funding(trade.terms, after, funding_store.events(
                            self.symbols[trade.id], after.entry_time, after.exit_time, session=session))
                    if (row is not None and (row.version, row.status) == (trade.version, trade.stored.status)
                            and save_decision(row, trade.stored, after, now=now, session=session)):
                        trade.version, trade.state = row.version, after
                        written.append(trade)
                    else:  # another writer got there first: read it again next pass
                        book.forget(trade.id)
                moved: dict[datetime, list[int]] = defaultdict(list)
                for trade in self.progress:
                    moved[trade.checked].append(trade.id)  # type: ignore[index]
                for last_candle_time, ids in moved.items():
                    save_progress(ids, last_candle_time, session=session)
                _store_prices([(market, symbol, candle.close, candle.open_time)
                               for (market, symbol), candle in self.prices.items()], session=session)
                candle_store.store(self.candles, session=session)
        for trade in written:
            trade.stored, trade.stored_checked = trade.state, trade.checked
        for trade in self.progress:
            trade.stored_checked = trade.checked
        self.clear()
        return len(written)


def _rows(ids: list[int], *, session: Session) -> dict[int, Trade]:
    """The full rows of the trades to decide (what `save_decision` takes), in the write transaction.

    Detached from the session: an ORM UPDATE looks for the rows it changes among the objects the
    session holds, and with every decided row held that search would grow with their square."""
    if not ids:
        return {}
    rows = {row.id: row for row in session.exec(select(Trade).where(one_of(_TRADE.id, ids, session=session)))}
    for row in rows.values():
        session.expunge(row)
    return rows  # type: ignore[return-value]


def _store_prices(prices: list[tuple[str, str, Decimal, datetime]], *, session: Session) -> None:
    """Keep the newest known price per symbol, in one upsert: a row's price changes only for a
    newer one (a ticker price from the price job may be newer than a candle)."""
    if not prices:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = LatestPrice.__table__  # type: ignore[attr-defined]
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.market, table.c.symbol],
        set_={"price": statement.excluded.price, "updated_at": statement.excluded.updated_at},
        where=table.c.updated_at < statement.excluded.updated_at)
    # With RETURNING, SQLAlchemy sends the rows as one multi-row INSERT from a statement it
    # compiled once ("insertmanyvalues"), not one INSERT per row.
    session.execute(statement.returning(table.c.symbol),
                    [{"market": m, "symbol": s, "price": p, "updated_at": at} for m, s, p, at in prices]).all()


# --- the pass ------------------------------------------------------------------------------------


def monitor_trades(engine: Engine, market_data: MarketData, *, now: datetime, stop: StopFlag | None = None,
                   progress: Callable[[], None] | None = None,
                   funding_known: Mapping[str, datetime] | None = None) -> MonitorReport:
    """One pass over all active trades, as far as closed candles allow.

    `funding_known`: per futures symbol, the time through which its funding history is stored
    (worker/funding.py). A futures trade that pays funding and closes after that stays open
    until the history is known (counted in `waiting_funding`).

    `progress` is called after each (market, symbol) group, served or refused by the exchange:
    a long pass through an exchange outage is still a worker at work (the systemd watchdog).
    """
    report = MonitorReport()
    book = trade_book(engine)
    with book.lock:
        try:
            _pass(engine, market_data, book, report, now=now, stop=stop, progress=progress,
                  funding_known=funding_known)
        except BaseException:
            book.trades.clear()  # what was written is unknown: read every row again next pass
            raise
    report.behind_seconds = behind_seconds(engine, now=now)
    return report


def _pass(engine: Engine, market_data: MarketData, book: TradeBook, report: MonitorReport, *, now: datetime,
          stop: StopFlag | None, progress: Callable[[], None] | None,
          funding_known: Mapping[str, datetime] | None = None) -> None:
    writes = Writes(funding_known)
    for key, trades in sorted(book.load(engine).items()):
        if stop is not None and stop.is_set():
            break
        walk = GroupWalk(market_data, key, trades, now=now, report=report)
        try:
            walk.run(stop)
        except (ExchangeError, UnknownSymbol) as exc:
            log.warning("%s %s: %s (trades unchanged, will retry)", key[0], key[1], exc)
            report.failed.append(f"{key[0]} {key[1]}: {exc}")
            report.stuck += len(trades)
            report.unreachable = report.unreachable or isinstance(exc, ExchangeUnreachable)
        writes.add(walk)  # what it worked out before a failure holds too
        report.tape_reads += walk.tape.reader.reads
        if writes.due():
            report.changed += writes.flush(engine, book, now=now)
        if progress is not None:
            progress()
    report.changed += writes.flush(engine, book, now=now)
    report.waiting_funding = writes.held


def store_prices(engine: Engine, market_data: MarketData, *, now: datetime) -> int:
    """One batched ticker request per market for the symbols of active trades."""
    with transaction(engine) as session:
        pairs = queries.active_markets(session=session)
    prices: list[tuple[str, str, Decimal, datetime]] = []
    for market in sorted({m for m, _ in pairs}):
        answer = market_data.latest_prices(Market(market), sorted(s for m, s in pairs if m == market))
        prices += [(market, symbol, price, now) for symbol, price in sorted(answer.items())]
    with transaction(engine) as session:
        _store_prices(prices, session=session)
    return len(prices)


def behind_seconds(engine: Engine, *, now: datetime) -> float | None:
    """How far behind real time the oldest unresolved trade is (None when nothing is open)."""
    with transaction(engine) as session:
        oldest = queries.oldest_unresolved(session=session)
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())

