"""The trade rules: how a signal's paper trade is entered and exited on closed candles.

This module is the methodology in code (docs/trade-rules.md); read them side by side.
It is pure: terms, state and candles in, new state out. No clock, no database, no HTTP.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Protocol

from shared.candles import Candle
from shared.money import MONEY_CONTEXT, settle
from shared.kinds import EntryMode, Side, TradeStatus
from shared import funding, tape as tape_rules
from shared.funding import FundingEvent, FundingPayment
from shared.tape import AggTrade, InconsistentTape, TapeVerdict
from shared.targets import Portion, StopRule

BEYOND_LEVELS = "entry beyond stop-loss/take-profit"
# How a trade's deciding candle was read: the candle alone, the exchange's trade tape (when the
# candle reached the adverse level and a target), or the stop-loss assumed (no usable tape).
CANDLE, TRADES, ASSUMED = "candle", "trades", "assumed"
ENTRY_NOT_REACHED = "entry not reached"


@dataclass(frozen=True, slots=True)
class TradeTerms:
    """What a trade was opened with; it never changes afterwards."""

    side: Side
    leverage: int
    stake_usd: Decimal
    fee_rate: Decimal
    entry_mode: EntryMode
    slippage_bps: Decimal
    maintenance_margin_rate: Decimal
    pending_expiry_hours: Decimal
    max_trade_hours: Decimal
    signal_time: datetime
    signal_entry: Decimal | None
    take_profit: Decimal  # the first target the position exits at (the only one with one portion)
    stop_loss: Decimal
    split: tuple[Portion, ...] = ()  # several targets (`tp_split`); empty: all of it at `take_profit`
    stop_after_tp: StopRule = StopRule.NONE
    funding: bool = False  # a futures trade opened with `futures_funding` on: it pays or gets funding

    @property
    def portions(self) -> tuple[Portion, ...]:
        return self.split or (Portion(self.take_profit, Decimal(1)),)

    @property
    def sign(self) -> int:
        return self.side.sign

    @property
    def slippage(self) -> Decimal:
        return self.slippage_bps / 10000

    @property
    def pending_deadline(self) -> datetime:
        return self.signal_time + _hours(self.pending_expiry_hours)


# What closed a part of the position (`Fill.kind`); a target's is "tp" and its number.
FILL_KINDS = {TradeStatus.CLOSED_SL: "sl", TradeStatus.LIQUIDATED: "liquidated", TradeStatus.CLOSED_EXPIRED: "expired",
              TradeStatus.CLOSED_MANUAL: "manual"}


@dataclass(frozen=True, slots=True)
class Fill:
    """One exit of a part of the position: at `price`, for `share` of its quantity, with that
    part's fees (entry and exit) and P/L."""

    time: datetime
    kind: str  # tp1, tp2, ... (the trade's targets in order), sl, liquidated, expired, manual
    price: Decimal
    share: Decimal
    fees_usd: Decimal
    pnl_usd: Decimal

    @property
    def target(self) -> int | None:
        """The number of the target this fill reached (1 = the first), None for other exits."""
        return int(self.kind[2:]) if self.kind.startswith("tp") else None


@dataclass(frozen=True, slots=True)
class TradeState:
    """Where a trade stands. Closed states carry their exit and money (over all their fills:
    `exit_price` is the quantity-weighted mean exit); an open one its targets filled so far."""

    status: TradeStatus
    entry_time: datetime | None = None
    entry_price: Decimal | None = None
    exit_time: datetime | None = None
    exit_price: Decimal | None = None
    fees_usd: Decimal | None = None
    pnl_usd: Decimal | None = None
    pnl_pct: Decimal | None = None
    reason: str | None = None
    ambiguous: bool = False
    last_candle_time: datetime | None = None  # open time of the last candle looked at
    fills: tuple[Fill, ...] = ()  # every exit so far, in order
    resolution: str = CANDLE  # how its deciding candle was read: candle, trades or assumed
    tape: TapeVerdict | None = None  # the tape's verdict, when it decided
    funding_usd: Decimal = Decimal(0)  # futures funding, part of pnl_usd (`with_funding`)
    funding: tuple[FundingPayment, ...] = ()  # each funding payment, in time order

    @property
    def targets_hit(self) -> int:
        return sum(1 for fill in self.fills if fill.target is not None)


def _hours(hours: Decimal) -> timedelta:
    return timedelta(seconds=float(hours * 3600))


def liquidation_price(terms: TradeTerms, entry: Decimal) -> Decimal | None:
    """LONG entry·(1 − 1/L + mmr), SHORT entry·(1 + 1/L − mmr); none without leverage."""
    if terms.leverage <= 1:
        return None
    with localcontext(MONEY_CONTEXT):
        return entry * (1 - terms.sign * (Decimal(1) / terms.leverage - terms.maintenance_margin_rate))


def worsen(terms: TradeTerms, price: Decimal, *, opening: bool) -> Decimal:
    """Apply slippage to a fill at market: a LONG buys higher and sells lower; a SHORT mirrors."""
    direction = terms.sign if opening else -terms.sign
    with localcontext(MONEY_CONTEXT):
        return price * (1 + direction * terms.slippage)


def _beyond(terms: TradeTerms, price: Decimal, level: Decimal) -> bool:
    """Is `price` at or past `level` on the adverse side (below for a LONG, above for a SHORT)?"""
    return price <= level if terms.side is Side.LONG else price >= level


def open_trade(terms: TradeTerms) -> TradeState:
    """The state a trade starts in when its signal is accepted."""
    if terms.entry_mode is EntryMode.SIGNAL:
        assert terms.signal_entry is not None, "signal entry mode needs the signal's entry price"
        return TradeState(TradeStatus.OPEN, entry_time=terms.signal_time, entry_price=terms.signal_entry)
    # market: waits for the start candle; limit: waits for its price.
    return TradeState(TradeStatus.PENDING)


def _fill(terms: TradeTerms, state: TradeState, time: datetime, kind: str, price: Decimal, share: Decimal, *,
          liquidated: bool = False) -> Fill:
    """Fees and P/L of one part of the position, as if it were a trade of its own of that size."""
    assert state.entry_price is not None
    with localcontext(MONEY_CONTEXT):
        stake = terms.stake_usd * share
    money = settle(side_sign=terms.sign, stake=stake, leverage=terms.leverage, fee_rate=terms.fee_rate,
                   entry=state.entry_price, exit=price, liquidated=liquidated)
    return Fill(time, kind, price, share, money.fees_usd, money.pnl_usd)


def remaining_share(terms: TradeTerms, state: TradeState) -> Decimal:
    """What is still open of the position: the shares of the targets not filled yet."""
    with localcontext(MONEY_CONTEXT):
        return sum((p.share for p in terms.portions[state.targets_hit:]), Decimal(0))


def _closed(terms: TradeTerms, state: TradeState, status: TradeStatus, time: datetime, fills: tuple[Fill, ...], *,
            ambiguous: bool = False, last_candle_time: datetime | None = None) -> TradeState:
    """The closed state over all its fills: money summed, exit price the quantity-weighted mean."""
    with localcontext(MONEY_CONTEXT):
        fees = sum((f.fees_usd for f in fills[1:]), fills[0].fees_usd)
        pnl = sum((f.pnl_usd for f in fills[1:]), fills[0].pnl_usd)
        exit_price = sum((f.share * f.price for f in fills[1:]), fills[0].share * fills[0].price)
        pnl_pct = pnl / terms.stake_usd
    return replace(state, status=status, exit_time=time, exit_price=exit_price, fees_usd=fees, pnl_usd=pnl,
                   pnl_pct=pnl_pct, ambiguous=ambiguous, fills=fills,
                   last_candle_time=last_candle_time if last_candle_time is not None else state.last_candle_time)


def _close(terms: TradeTerms, state: TradeState, status: TradeStatus, candle: Candle,
           price: Decimal, *, ambiguous: bool = False) -> TradeState:
    """Everything still open exits at `price` in this candle."""
    fill = _fill(terms, state, candle.open_time, FILL_KINDS[status], price, remaining_share(terms, state),
                 liquidated=status is TradeStatus.LIQUIDATED)
    return _closed(terms, state, status, candle.open_time, state.fills + (fill,), ambiguous=ambiguous,
                   last_candle_time=candle.open_time)


def stop_in_force(terms: TradeTerms, state: TradeState, candle_time: datetime | None = None) -> Decimal:
    """The stop for the candle opening at `candle_time` (None: the next candle). It moves after a
    target fills (`stop_after_tp`), from the candle after the fill on."""
    assert state.entry_price is not None
    reached = [f.target for f in state.fills if f.target is not None and (candle_time is None or f.time < candle_time)]
    if not reached or terms.stop_after_tp is StopRule.NONE:
        return terms.stop_loss
    last = max(reached)
    if terms.stop_after_tp is StopRule.BREAKEVEN or last == 1:
        return state.entry_price
    return terms.portions[last - 2].target  # trailing: target k−1 after target k


def adverse_level(terms: TradeTerms, state: TradeState, candle_time: datetime | None = None) -> Decimal:
    """The stop in force, or the liquidation price (always from the entry) if that is nearer the entry."""
    assert state.entry_price is not None
    adverse = stop_in_force(terms, state, candle_time)
    liquidation = liquidation_price(terms, state.entry_price)
    if liquidation is not None:
        adverse = max(adverse, liquidation) if terms.side is Side.LONG else min(adverse, liquidation)
    return adverse


def next_targets(terms: TradeTerms, state: TradeState) -> tuple[Portion, ...]:
    """The portions not filled yet, in order (targets are in order, so they fill in order)."""
    return terms.portions[state.targets_hit:]


class Tape(Protocol):
    """The exchange's trades inside a candle, read only where one candle reaches both the adverse
    level and a target: `trades` gives them in order (already checked against the candle), or
    None when they cannot be had (the stop-loss is then assumed). It may raise to abort the walk."""

    def trades(self, candle: Candle) -> Sequence[AggTrade] | None: ...


def decide_exit(terms: TradeTerms, state: TradeState, candle: Candle, *, take_profit_allowed: bool = True,
                tape: Tape | None = None) -> TradeState:
    """Check one candle against an open trade, in the order of the methodology."""
    assert state.entry_price is not None and state.entry_time is not None
    long = terms.side is Side.LONG

    # 1. Expiry: the candle opens at or after entry time + max_trade_hours → out at its open.
    if terms.max_trade_hours > 0 and candle.open_time >= state.entry_time + _hours(terms.max_trade_hours):
        return _close(terms, state, TradeStatus.CLOSED_EXPIRED, candle, worsen(terms, candle.open, opening=False))

    # 2. The adverse level: the stop in force (moved after a target, from the next candle on), or
    # the liquidation price if that is nearer the entry.
    liquidation = liquidation_price(terms, state.entry_price)
    adverse = adverse_level(terms, state, candle.open_time)
    adverse_hit = candle.low <= adverse if long else candle.high >= adverse

    # 3. The targets not filled yet that this candle reaches (none in a limit's fill candle).
    reached = [p for p in next_targets(terms, state)
               if take_profit_allowed and (candle.high >= p.target if long else candle.low <= p.target)]

    if adverse_hit and reached:
        # 4. Both in one candle: the exchange's trades inside it say which came first. Targets
        # they reach before the adverse level fill; the adverse level closes the rest.
        verdict = _read_tape(terms, candle, adverse, reached, tape)
        if verdict is not None:
            state = replace(_fill_targets(terms, state, candle, reached[:len(verdict.targets)]),
                            resolution=TRADES, tape=verdict)
            if state.status is not TradeStatus.OPEN:
                return state  # every target filled before the adverse level
            return _adverse(terms, state, candle, adverse, liquidation, ambiguous=False)
        # Only when the trades cannot be had: the stop-loss wins for all that is still open. We
        # cannot know the order of the moves inside the candle, so the pessimistic outcome is
        # recorded and the trade is flagged ambiguous.
        return _adverse(terms, replace(state, resolution=ASSUMED), candle, adverse, liquidation, ambiguous=True)
    if adverse_hit:
        return _adverse(terms, state, candle, adverse, liquidation, ambiguous=False)
    if reached:
        return _fill_targets(terms, state, candle, reached)
    return replace(state, last_candle_time=candle.open_time)


def _fill_targets(terms: TradeTerms, state: TradeState, candle: Candle, reached: Sequence[Portion]) -> TradeState:
    """Each portion exits at exactly its target; several can fill in one candle. The last one
    closes the trade (CLOSED_TP)."""
    first = state.targets_hit + 1
    fills = state.fills + tuple(_fill(terms, state, candle.open_time, f"tp{first + i}", p.target, p.share)
                                for i, p in enumerate(reached))
    if len(reached) == len(next_targets(terms, state)):
        return _closed(terms, state, TradeStatus.CLOSED_TP, candle.open_time, fills, last_candle_time=candle.open_time)
    return replace(state, fills=fills, last_candle_time=candle.open_time)


def _adverse(terms: TradeTerms, state: TradeState, candle: Candle, adverse: Decimal, liquidation: Decimal | None, *,
             ambiguous: bool) -> TradeState:
    """The adverse level closes all that is still open: at the level, or at the candle's open when
    the candle opened through it; liquidated when that is at or beyond the liquidation price."""
    raw_exit = min(candle.open, adverse) if terms.side is Side.LONG else max(candle.open, adverse)
    if liquidation is not None and _beyond(terms, raw_exit, liquidation):
        return _close(terms, state, TradeStatus.LIQUIDATED, candle, liquidation, ambiguous=ambiguous)
    return _close(terms, state, TradeStatus.CLOSED_SL, candle, worsen(terms, raw_exit, opening=False),
                  ambiguous=ambiguous)


def _read_tape(terms: TradeTerms, candle: Candle, adverse: Decimal, reached: Sequence[Portion],
               tape: Tape | None) -> TapeVerdict | None:
    """The tape's verdict on a candle reaching both the adverse level and targets, or None when
    there is no usable tape (none given, none to be had, or one the candle contradicts)."""
    trades = tape.trades(candle) if tape is not None else None
    if not trades:
        return None
    try:
        return tape_rules.verdict(candle, terms.side, adverse, [p.target for p in reached], trades)
    except InconsistentTape:
        return None


def _enter(terms: TradeTerms, state: TradeState, candle: Candle, tape: Tape | None = None) -> TradeState:
    """A PENDING trade meets a candle at or after its signal time."""
    if terms.entry_mode is EntryMode.MARKET:
        # The start candle: the first one opening at or after the signal time.
        entry = worsen(terms, candle.open, opening=True)
        first_target = terms.portions[0].target
        past_target = entry >= first_target if terms.side is Side.LONG else entry <= first_target
        if _beyond(terms, entry, terms.stop_loss) or past_target:
            return replace(state, status=TradeStatus.CANCELLED, reason=BEYOND_LEVELS, last_candle_time=candle.open_time)
        # Exits are checked from the start candle itself.
        return decide_exit(terms, replace(state, status=TradeStatus.OPEN, entry_time=candle.open_time, entry_price=entry),
                           candle, tape=tape)

    # limit: fill in the first candle that trades through the entry price, before the deadline.
    if candle.open_time >= terms.pending_deadline:
        return replace(state, status=TradeStatus.CANCELLED, reason=ENTRY_NOT_REACHED, last_candle_time=candle.open_time)
    limit = terms.signal_entry
    assert limit is not None, "limit entry mode needs the signal's entry price"
    touched = candle.low <= limit if terms.side is Side.LONG else candle.high >= limit
    if not touched:
        return replace(state, last_candle_time=candle.open_time)
    entry = min(candle.open, limit) if terms.side is Side.LONG else max(candle.open, limit)
    filled = replace(state, status=TradeStatus.OPEN, entry_time=candle.open_time, entry_price=entry)
    # In the fill candle only the stop-loss (and liquidation) can close the trade: we do not know
    # whether the take-profit was touched before or after the fill.
    return decide_exit(terms, filled, candle, take_profit_allowed=False)


def advance(terms: TradeTerms, state: TradeState, candles: Iterable[Candle], *, complete_until: datetime,
            tape: Tape | None = None) -> TradeState:
    """Walk closed candles in time order until the trade is decided or the candles run out.

    `complete_until`: every closed candle opening at or before this instant has been given now or
    before (missing ones are exchange gaps). It lets a limit order expire without a candle after
    its deadline. Candles already looked at (by `last_candle_time`) are skipped, so feeding the
    same candles twice is harmless. `tape`: the exchange's trades, for a candle reaching both the
    adverse level and a target (without it, the stop-loss is assumed there).
    """
    for candle in candles:
        if not state.status.is_active:
            return state
        if candle.open_time < terms.signal_time:
            continue
        if state.last_candle_time is not None and candle.open_time <= state.last_candle_time:
            continue
        if state.status is TradeStatus.PENDING:
            state = _enter(terms, state, candle, tape)
        else:
            state = decide_exit(terms, state, candle, tape=tape)
    if (state.status is TradeStatus.PENDING and terms.entry_mode is EntryMode.LIMIT
            and complete_until >= terms.pending_deadline):
        state = replace(state, status=TradeStatus.CANCELLED, reason=ENTRY_NOT_REACHED)
    return state


def funding_payments(terms: TradeTerms, state: TradeState, events: Iterable[FundingEvent],
                     until: datetime) -> tuple[FundingPayment, ...]:
    """What a futures position paid or received at each funding event t with entry time < t ≤
    `until` (its exit, or now while it is open): −s·(open notional/entry)·markPrice_t·rate_t,
    the open notional being what is still open at t (a part that exited in a candle opening
    before t pays no more)."""
    if state.entry_price is None or state.entry_time is None:
        return ()
    paid = []
    for event in sorted(events, key=lambda e: e.time):
        if not funding.applies(event.time, entry_time=state.entry_time, until=until):
            continue
        with localcontext(MONEY_CONTEXT):
            gone = sum((f.share for f in state.fills if f.time < event.time), Decimal(0))
            notional = terms.stake_usd * terms.leverage * (1 - gone)
        if notional:
            paid.append(funding.payment(side_sign=terms.sign, notional=notional, entry=state.entry_price,
                                        event=event))
    return tuple(paid)


def with_funding(terms: TradeTerms, state: TradeState, events: Iterable[FundingEvent]) -> TradeState:
    """A closed futures trade with its funding: `funding_usd` (the payments' sum) is part of
    `pnl_usd` and shown on its own."""
    assert state.exit_time is not None and state.pnl_usd is not None
    paid = funding_payments(terms, state, events, state.exit_time)
    amount = funding.total(paid)
    with localcontext(MONEY_CONTEXT):
        pnl = state.pnl_usd + amount
        return replace(state, funding=paid, funding_usd=amount, pnl_usd=pnl, pnl_pct=pnl / terms.stake_usd)


class ManualActionRefused(ValueError):
    """The rules have already decided (or are about to decide) what the owner asks for."""


def close_manually(terms: TradeTerms, state: TradeState, *, price: Decimal | None, now: datetime) -> TradeState:
    """The owner's action: close an OPEN trade at market, or cancel a PENDING limit entry.

    A close is a fill at market: the latest price, worsened by the slippage like every other
    one. The owner may not pick an outcome the rules would not give, so it is refused when the
    price is already at or beyond the stop-loss, the liquidation price or the take-profit (the
    worker records that level when the candle closes); a cancel is refused once the price has
    reached the limit entry, and for a market entry, which its start candle decides.
    """
    if state.status is TradeStatus.PENDING:
        if terms.entry_mode is not EntryMode.LIMIT:
            raise ManualActionRefused("a market entry is decided by its start candle and cannot be cancelled")
        assert terms.signal_entry is not None
        if price is not None and _beyond(terms, price, terms.signal_entry):  # at or through the limit
            raise ManualActionRefused(f"the price ({price}) has reached the limit entry ({terms.signal_entry}): "
                                      "the worker fills it from the candles")
        return replace(state, status=TradeStatus.CANCELLED, reason="cancelled by the owner")
    if state.status is not TradeStatus.OPEN or price is None or state.entry_price is None:
        raise ManualActionRefused("only an open trade with a known latest price can be closed")
    liquidation = liquidation_price(terms, state.entry_price)
    stop = stop_in_force(terms, state)
    if _beyond(terms, price, stop) or (liquidation is not None and _beyond(terms, price, liquidation)):
        raise ManualActionRefused(f"the price ({price}) is at or beyond the stop-loss or liquidation level: "
                                  "the worker records that exit when the candle closes")
    target = next_targets(terms, state)[0].target
    if _beyond(terms, target, price):  # the next take-profit is at or behind the price
        raise ManualActionRefused(f"the price ({price}) has reached the take-profit ({target}): "
                                  "the worker records it when the candle closes")
    exit_price = worsen(terms, price, opening=False)
    fill = _fill(terms, state, now, FILL_KINDS[TradeStatus.CLOSED_MANUAL], exit_price, remaining_share(terms, state))
    closed = _closed(terms, state, TradeStatus.CLOSED_MANUAL, now, state.fills + (fill,))
    return replace(closed, reason="closed by the owner")


def unrealized_pnl(terms: TradeTerms, state: TradeState, price: Decimal) -> Decimal | None:
    """Mark to market: what closing the rest at `price` now would make, fees on both sides
    included, plus what the targets filled so far made."""
    if state.status is not TradeStatus.OPEN or state.entry_price is None:
        return None
    rest = _fill(terms, state, state.entry_time or datetime.min, "manual", price, remaining_share(terms, state))
    with localcontext(MONEY_CONTEXT):
        return sum((f.pnl_usd for f in state.fills), rest.pnl_usd)
