"""The trade tape: the exchange's aggregate trades inside one candle, read in order to learn
which of two levels the price reached first when the candle reached both.

Pure: a candle, the levels and the trades in, a verdict out. No clock, no database, no HTTP
(the exchange client reads the tape: worker/market_data.py; the exit rules price the verdict:
shared/exits.py).

The rule (docs/trade-rules.md, "Exact order inside a candle"): walk the trades in order; the
first trade at or beyond either level decides. Targets the tape reaches before the adverse
level fill (each at exactly its price); the first trade at or beyond the adverse level closes
everything still open there, priced as the candle rule prices it (the level, or the candle's
open when the candle opened through it; liquidation as usual; slippage on the stop).

What a tape must be before it may decide anything (`check_tape`), or else `InconsistentTape`
and the caller falls back to the candle rule, flagged `assumed`:
- not empty, ids strictly ascending and consecutive (Binance numbers a symbol's aggregate
  trades without gaps, so a gap means trades are missing), times never going back, every
  time inside the candle;
- every price within the candle's [low, high];
- the walk reaches the adverse level (the candle does: a tape that never gets there is
  missing trades), and a candle that opens through it has a first trade that does too (`verdict`).
A tape need not reach the candle's very high and low otherwise (futures insurance-fund and ADL
trades are not aggregated, so an extreme may come from a trade the tape does not list).
We do not require the first trade to be the open and the last the close in general: neither
changes which level the tape reaches first. The open matters in one case only, a candle that
opens at or beyond the adverse level: then the adverse level was reached first, at the open,
and a tape whose first trade says otherwise is refused (`decide`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.candles import Candle
from shared.kinds import Side


@dataclass(frozen=True, slots=True)
class AggTrade:
    """One aggregate trade: Binance's `{"a": id, "p": price, "q": qty, "T": ms, "m": maker}`."""

    id: int
    price: Decimal
    quantity: Decimal
    time: datetime
    buyer_maker: bool = False


class InconsistentTape(ValueError):
    """The tape cannot be trusted to decide (see the module docstring for what is checked)."""


@dataclass(frozen=True, slots=True)
class TargetFill:
    """A target the tape reached before the adverse level: `index` in the caller's list."""

    index: int
    price: Decimal
    trade: AggTrade


@dataclass(frozen=True, slots=True)
class TapeVerdict:
    """What the tape says about one candle: the targets reached first (in the order they
    filled), then the trade that reached the adverse level, or None if none did."""

    targets: tuple[TargetFill, ...]
    adverse: AggTrade | None

    def ledger_data(self) -> dict[str, Any]:
        """The verdict as the ledger records it (the first deciding trade for each level), so
        `verify --replay` can read the same tape and check it. Prices stay Decimal and times
        datetime: the ledger's own `to_data` formats them."""
        return {
            "tape_targets": [
                {"target": fill.index, "price": fill.price, "trade_id": fill.trade.id,
                 "trade_price": fill.trade.price, "trade_time": fill.trade.time}
                for fill in self.targets
            ],
            "tape_adverse": None if self.adverse is None else {
                "trade_id": self.adverse.id, "trade_price": self.adverse.price, "trade_time": self.adverse.time},
        }


def check_tape(candle: Candle, interval: timedelta, trades: Sequence[AggTrade]) -> None:
    """Raise `InconsistentTape` unless `trades` can be the whole tape of `candle`."""
    if not trades:
        raise InconsistentTape(f"no trades in the candle at {candle.open_time.isoformat()}")
    close_time = candle.open_time + interval
    for earlier, later in zip(trades, trades[1:]):
        if later.id != earlier.id + 1:
            kind = "out of order" if later.id <= earlier.id else "truncated (trades missing)"
            raise InconsistentTape(f"tape {kind}: trade {later.id} follows trade {earlier.id}")
        if later.time < earlier.time:
            raise InconsistentTape(f"tape out of order: trade {later.id} is earlier than trade {earlier.id}")
    for trade in trades:
        if not candle.open_time <= trade.time < close_time:
            raise InconsistentTape(f"trade {trade.id} at {trade.time.isoformat()} is outside the candle "
                                   f"[{candle.open_time.isoformat()}, {close_time.isoformat()})")
        if not candle.low <= trade.price <= candle.high:
            raise InconsistentTape(f"trade {trade.id} at price {trade.price} is outside the candle's range "
                                   f"[{candle.low}, {candle.high}]")


def reaches(side: Side, price: Decimal, target: Decimal) -> bool:
    """A trade at `price` reaches a take-profit `target` (at or beyond it, in the trade's favour)."""
    return price >= target if side is Side.LONG else price <= target


def beyond(side: Side, price: Decimal, level: Decimal) -> bool:
    """A trade at `price` is at or beyond the adverse `level` (below a LONG's, above a SHORT's)."""
    return price <= level if side is Side.LONG else price >= level


def walk(side: Side, adverse: Decimal, targets: Sequence[Decimal], trades: Sequence[AggTrade]) -> TapeVerdict:
    """Walk an already checked tape in order: the first trade at or beyond a level decides it.

    `targets` are the not-yet-filled take-profits (empty in a limit entry's fill candle, where
    no target may fill). A trade at or beyond the adverse level ends the walk: targets not
    reached before it stay unfilled (the adverse level closes the rest). Within one trade the
    adverse level is looked at first: a trade cannot be beyond both unless the levels cross,
    and then the pessimistic reading is the one the candle rule would record.
    """
    open_targets = dict(enumerate(targets))
    fills: list[TargetFill] = []
    for trade in trades:
        if beyond(side, trade.price, adverse):
            return TapeVerdict(tuple(fills), trade)
        for index, target in list(open_targets.items()):
            if reaches(side, trade.price, target):
                fills.append(TargetFill(index, target, trade))
                del open_targets[index]
    return TapeVerdict(tuple(fills), None)


def decide(candle: Candle, interval: timedelta, side: Side, adverse: Decimal, targets: Sequence[Decimal],
           trades: Sequence[AggTrade]) -> TapeVerdict:
    """`check_tape`, then `walk`: the verdict of a tape the candle agrees with, else `InconsistentTape`.

    The candle reached the adverse level (that is why the tape was read), so a tape whose walk
    never reaches it contradicts the candle: also `InconsistentTape`.
    """
    check_tape(candle, interval, trades)
    return verdict(candle, side, adverse, targets, trades)


def verdict(candle: Candle, side: Side, adverse: Decimal, targets: Sequence[Decimal],
            trades: Sequence[AggTrade]) -> TapeVerdict:
    """`walk`, and the checks that the verdict agrees with the candle (the tape itself already
    checked by `check_tape`, or the deciding trades a ledger recorded, in order)."""
    if not trades:
        raise InconsistentTape(f"no trades in the candle at {candle.open_time.isoformat()}")
    verdict = walk(side, adverse, targets, trades)
    adverse_in_candle = beyond(side, candle.low if side is Side.LONG else candle.high, adverse)
    if adverse_in_candle and verdict.adverse is None:
        raise InconsistentTape(f"the candle reaches {adverse} but no trade of its tape does")
    if beyond(side, candle.open, adverse) and verdict.adverse != trades[0]:
        raise InconsistentTape(f"the candle opens through {adverse} but the first trade of its tape does not")
    return verdict
