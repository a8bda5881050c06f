"""Money: fees and P/L of a system trade, exactly as docs/trade-rules.md defines them.

With stake S (USD margin), leverage L, fee rate f per side, notional N = S·L, side s (+1/−1):

    pnl_usd = N·s·(exit − entry)/entry − f·N·(1 + exit/entry)
    pnl_pct = pnl_usd / S            (a fraction: 0.05 is +5 % of the stake)

This is quote-currency agnostic: an ETHBTC trade's $ result is its return times the stake.
A liquidated trade loses its whole margin plus the entry fee: pnl = −S − f·N.
"""

from dataclasses import dataclass
from collections.abc import Iterable
from decimal import Context, Decimal, Inexact, localcontext

# 34 significant digits (decimal128): far beyond any exchange's tick size, so rounding never shows.
# The one Decimal context for money in the whole codebase (trade rules and metrics alike).
MONEY_CONTEXT = Context(prec=34)

# Sums of many P/Ls are kept exact, not rounded at every step: a sum rounded along the way
# depends on the order of the additions, and the site adds per-day subtotals where the CLI adds
# trade by trade. 34-digit terms between 1e-40 and 1e12 fit in 120 digits; a sum that did not
# would raise (Inexact is trapped) rather than round silently.
EXACT_CONTEXT = Context(prec=120, traps=[Inexact])


def exact_sum(values: Iterable[Decimal], start: Decimal = Decimal(0)) -> Decimal:
    """The exact sum (order does not matter); round it with `rounded` where it is reported."""
    with localcontext(EXACT_CONTEXT):
        return sum(values, start)


def rounded(value: Decimal) -> Decimal:
    """A value as reported: rounded to the money context's 34 digits."""
    return MONEY_CONTEXT.plus(value)


@dataclass(frozen=True, slots=True)
class Settlement:
    fees_usd: Decimal
    pnl_usd: Decimal
    pnl_pct: Decimal


def settle(
    *, side_sign: int, stake: Decimal, leverage: int, fee_rate: Decimal,
    entry: Decimal, exit: Decimal, liquidated: bool = False,
) -> Settlement:
    with localcontext(MONEY_CONTEXT):
        notional = stake * leverage
        if liquidated:
            fees = fee_rate * notional  # only the entry fee: the position is gone, not sold
            pnl = -stake - fees
        else:
            fees = fee_rate * notional * (1 + exit / entry)
            pnl = notional * side_sign * (exit - entry) / entry - fees
        return Settlement(fees_usd=fees, pnl_usd=pnl, pnl_pct=pnl / stake)
