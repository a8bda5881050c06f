"""Multi-target trades: how a position is split over a signal's targets, and where its stop
moves after a target fills (docs/trade-rules.md, "Several targets").

Pure, like the exits: settings text and targets in, portions out.

- `tp_split`:
  - `single` (the default): the whole position exits at target `take_profit_target`, or the last
    target when the signal has fewer;
  - `even`: the position is split equally over all the signal's targets;
  - percentages such as `50,30,20`: portions over the first targets, summing to 100; a signal
    with fewer targets gives the rest to its last one.
- `stop_after_tp`:
  - `none`: the stop stays where the signal put it;
  - `breakeven`: after the first target fills, the stop moves to the entry price;
  - `trailing`: after target k fills, the stop moves to target k−1 (the entry for k = 1).
  A moved stop applies from the next candle on. With one portion (`single`) there is nothing left
  after the target, so `stop_after_tp` changes nothing.
"""

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from enum import StrEnum

from shared.money import MONEY_CONTEXT

SINGLE = "single"
EVEN = "even"
MAX_PORTIONS = 10  # percentages listed in `tp_split`
MAX_SPLIT_CHARS = 100
HUNDRED = Decimal(100)
SHARE_STEP = Decimal("1e-18")


class StopRule(StrEnum):
    NONE = "none"
    BREAKEVEN = "breakeven"
    TRAILING = "trailing"


class SplitError(ValueError):
    """A `tp_split` the owner should correct; the message says how."""


@dataclass(frozen=True, slots=True)
class Portion:
    """A part of the position: it exits at exactly `target`, for `share` of the quantity (0–1)."""

    target: Decimal
    share: Decimal


def parse_split(text: str) -> str:
    """`tp_split` as stored: `single`, `even`, or percentages ("50,30,20", each above 0, summing to 100)."""
    value = text.strip().lower()
    if value in (SINGLE, EVEN):
        return value
    if len(value) > MAX_SPLIT_CHARS:
        raise SplitError("too long: single, even, or up to 10 percentages such as 50,30,20")
    parts = [part.strip() for part in value.split(",")]
    if not all(re.fullmatch(r"-?[0-9]{1,3}(\.[0-9]{1,6})?", part) for part in parts):
        raise SplitError(f"{ascii(text.strip()[:40])} is not single, even, or percentages such as 50,30,20 "
                         "(numbers of up to 6 decimal places)")
    percentages = [Decimal(part) for part in parts]
    if any(p <= 0 for p in percentages):
        raise SplitError("every percentage must be above 0")
    if len(percentages) > MAX_PORTIONS:
        raise SplitError(f"at most {MAX_PORTIONS} targets ({len(percentages)} listed)")
    total = sum(percentages)
    if total != HUNDRED:
        raise SplitError(f"the percentages must sum to 100 (they sum to {_plain(total)})")
    return ",".join(_plain(p) for p in percentages)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def portions(tp_split: str, targets: tuple[Decimal, ...], take_profit_target: int = 1) -> tuple[Portion, ...]:
    """The portions a trade opens with, in target order. Their shares sum to exactly 1: `even`
    gives each target 1/n rounded down to 18 decimal places and the last target what the others
    leave (over three targets: 0.333333333333333333 twice, then 0.333333333333333334). Shares
    are exact in every format they are written in (table, ledger, export)."""
    assert targets, "a signal has at least one target"
    if tp_split == SINGLE:
        return (Portion(targets[min(take_profit_target, len(targets)) - 1], Decimal(1)),)
    with localcontext(MONEY_CONTEXT):
        if tp_split == EVEN:
            shares = [(Decimal(1) / len(targets)).quantize(SHARE_STEP, ROUND_DOWN)] * len(targets)
        else:
            percentages = [Decimal(p) / HUNDRED for p in tp_split.split(",")]
            used = min(len(percentages), len(targets))
            shares = percentages[:used - 1] + [sum(percentages[used - 1:])]  # the rest to the last target
        shares[-1] = 1 - sum(shares[:-1])
    return tuple(Portion(target, share) for target, share in zip(targets, shares))
