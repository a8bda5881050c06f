"""The trade rules: how a signal's paper trade is entered and exited on closed candles.

This module is the methodology in code (docs/trade-rules.md); read them side by side.
It is pure: terms, state and candles in, new state out. No clock, no database, no HTTP.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from shared.candles import Candle
from shared.money import MONEY_CONTEXT, settle
from shared.kinds import EntryMode, Side, TradeStatus

BEYOND_LEVELS = "entry beyond stop-loss/take-profit"
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
    take_profit: Decimal
    stop_loss: Decimal

    @property
    def sign(self) -> int:
        return self.side.sign

    @property
    def slippage(self) -> Decimal:
        return self.slippage_bps / 10000

    @property
    def pending_deadline(self) -> datetime:
        return self.signal_time + _hours(self.pending_expiry_hours)


@dataclass(frozen=True, slots=True)
class TradeState:
    """Where a trade stands. Closed states carry their exit and money."""

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


def _close(terms: TradeTerms, state: TradeState, status: TradeStatus, candle: Candle,
           price: Decimal, *, ambiguous: bool = False) -> TradeState:
    assert state.entry_price is not None
    money = settle(
        side_sign=terms.sign, stake=terms.stake_usd, leverage=terms.leverage, fee_rate=terms.fee_rate,
        entry=state.entry_price, exit=price, liquidated=status is TradeStatus.LIQUIDATED,
    )
    return replace(
        state, status=status, exit_time=candle.open_time, exit_price=price, fees_usd=money.fees_usd,
        pnl_usd=money.pnl_usd, pnl_pct=money.pnl_pct, ambiguous=ambiguous, last_candle_time=candle.open_time,
    )


def decide_exit(terms: TradeTerms, state: TradeState, candle: Candle, *, take_profit_allowed: bool = True) -> TradeState:
    """Check one candle against an open trade, in the order of the methodology."""
    assert state.entry_price is not None and state.entry_time is not None
    long = terms.side is Side.LONG

    # 1. Expiry: the candle opens at or after entry time + max_trade_hours → out at its open.
    if terms.max_trade_hours > 0 and candle.open_time >= state.entry_time + _hours(terms.max_trade_hours):
        return _close(terms, state, TradeStatus.CLOSED_EXPIRED, candle, worsen(terms, candle.open, opening=False))

    # 2. The adverse level: the stop-loss, or the liquidation price if that is nearer the entry.
    liquidation = liquidation_price(terms, state.entry_price)
    adverse = terms.stop_loss
    if liquidation is not None:
        adverse = max(adverse, liquidation) if long else min(adverse, liquidation)
    adverse_hit = candle.low <= adverse if long else candle.high >= adverse

    # 3. The take-profit.
    tp_hit = take_profit_allowed and (candle.high >= terms.take_profit if long else candle.low <= terms.take_profit)

    if adverse_hit:
        # 4. Both in one candle: the stop-loss wins. We cannot know the order of the moves inside
        # a candle, so the pessimistic outcome is recorded and the trade is flagged ambiguous.
        ambiguous = tp_hit
        # A candle that opens through the level fills at its open, not at the level.
        raw_exit = min(candle.open, adverse) if long else max(candle.open, adverse)
        if liquidation is not None and _beyond(terms, raw_exit, liquidation):
            return _close(terms, state, TradeStatus.LIQUIDATED, candle, liquidation, ambiguous=ambiguous)
        return _close(terms, state, TradeStatus.CLOSED_SL, candle, worsen(terms, raw_exit, opening=False),
                      ambiguous=ambiguous)
    if tp_hit:
        return _close(terms, state, TradeStatus.CLOSED_TP, candle, terms.take_profit)
    return replace(state, last_candle_time=candle.open_time)


def _enter(terms: TradeTerms, state: TradeState, candle: Candle) -> TradeState:
    """A PENDING trade meets a candle at or after its signal time."""
    if terms.entry_mode is EntryMode.MARKET:
        # The start candle: the first one opening at or after the signal time.
        entry = worsen(terms, candle.open, opening=True)
        past_target = entry >= terms.take_profit if terms.side is Side.LONG else entry <= terms.take_profit
        if _beyond(terms, entry, terms.stop_loss) or past_target:
            return replace(state, status=TradeStatus.CANCELLED, reason=BEYOND_LEVELS, last_candle_time=candle.open_time)
        # Exits are checked from the start candle itself.
        return decide_exit(terms, replace(state, status=TradeStatus.OPEN, entry_time=candle.open_time, entry_price=entry), candle)

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


def advance(terms: TradeTerms, state: TradeState, candles: Iterable[Candle], *, complete_until: datetime) -> TradeState:
    """Walk closed candles in time order until the trade is decided or the candles run out.

    `complete_until`: every closed candle opening at or before this instant has been given now or
    before (missing ones are exchange gaps). It lets a limit order expire without a candle after
    its deadline. Candles already looked at (by `last_candle_time`) are skipped, so feeding the
    same candles twice is harmless.
    """
    for candle in candles:
        if not state.status.is_active:
            return state
        if candle.open_time < terms.signal_time:
            continue
        if state.last_candle_time is not None and candle.open_time <= state.last_candle_time:
            continue
        if state.status is TradeStatus.PENDING:
            state = _enter(terms, state, candle)
        else:
            state = decide_exit(terms, state, candle)
    if (state.status is TradeStatus.PENDING and terms.entry_mode is EntryMode.LIMIT
            and complete_until >= terms.pending_deadline):
        state = replace(state, status=TradeStatus.CANCELLED, reason=ENTRY_NOT_REACHED)
    return state


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
    if _beyond(terms, price, terms.stop_loss) or (liquidation is not None and _beyond(terms, price, liquidation)):
        raise ManualActionRefused(f"the price ({price}) is at or beyond the stop-loss or liquidation level: "
                                  "the worker records that exit when the candle closes")
    if _beyond(terms, terms.take_profit, price):  # the take-profit is at or behind the price
        raise ManualActionRefused(f"the price ({price}) has reached the take-profit ({terms.take_profit}): "
                                  "the worker records it when the candle closes")
    exit_price = worsen(terms, price, opening=False)
    money = settle(side_sign=terms.sign, stake=terms.stake_usd, leverage=terms.leverage,
                   fee_rate=terms.fee_rate, entry=state.entry_price, exit=exit_price)
    return replace(state, status=TradeStatus.CLOSED_MANUAL, reason="closed by the owner", exit_time=now,
                   exit_price=exit_price, fees_usd=money.fees_usd, pnl_usd=money.pnl_usd, pnl_pct=money.pnl_pct)


def unrealized_pnl(terms: TradeTerms, state: TradeState, price: Decimal) -> Decimal | None:
    """Mark to market: what closing at `price` now would make, fees on both sides included."""
    if state.status is not TradeStatus.OPEN or state.entry_price is None:
        return None
    return settle(side_sign=terms.sign, stake=terms.stake_usd, leverage=terms.leverage,
                  fee_rate=terms.fee_rate, entry=state.entry_price, exit=price).pnl_usd
