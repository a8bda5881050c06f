"""How the track record's numbers add up from parts, exactly.

A million closed trades do not fit in a page load; a few hundred days do. Every public number
is a count, a sum, a best/worst, or a walk along the equity curve in exit order, and each of
them combines: the summary of trades A followed by trades B is computed from the summary of A
and the summary of B alone.

- `Tally` is the order-free part (counts, exact sums, best and worst): tallies add up in any
  order, so the worker keeps one per (origin, symbol, side, status) and adds each close to it.
- `Stretch` is the ordered part: the equity curve's highs, lows and largest fall, and the runs
  of wins and losses, over a stretch of trades in exit order. `a.then(b)` is the stretch of a
  followed by b. The worker keeps one per UTC day (shared/summaries.py).

Sums are exact (shared.money.EXACT_CONTEXT), so a combined number equals the one
`shared.metrics` computes trade by trade, digit for digit; tests/shared/test_rollup.py checks it
on random histories. Pure: values in, values out.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from shared import metrics
from shared.money import EXACT_CONTEXT, exact_sum, rounded

_ZERO = Decimal(0)
_EXACT = EXACT_CONTEXT


@dataclass(slots=True)  # not frozen: a frozen dataclass is several times slower to build
class Tally:
    """Counts and exact sums of closed trades' P/L, in no particular order."""

    trades: int = 0
    wins: int = 0
    losses: int = 0
    pnl: Decimal = _ZERO
    gross_profit: Decimal = _ZERO
    gross_loss: Decimal = _ZERO
    best: Decimal | None = None
    worst: Decimal | None = None
    ambiguous: int = 0

    @classmethod
    def of(cls, pnls: Iterable[Decimal], *, ambiguous: int = 0) -> "Tally":
        values = list(pnls)
        wins = [p for p in values if p > 0]
        losses = [p for p in values if p < 0]
        return cls(trades=len(values), wins=len(wins), losses=len(losses), pnl=exact_sum(values),
                   gross_profit=exact_sum(wins), gross_loss=exact_sum(losses), best=max(values, default=None),
                   worst=min(values, default=None), ambiguous=ambiguous)

    @classmethod
    def one(cls, pnl: Decimal, *, ambiguous: bool = False) -> "Tally":
        return cls(trades=1, wins=int(pnl > 0), losses=int(pnl < 0), pnl=pnl,
                   gross_profit=pnl if pnl > 0 else _ZERO, gross_loss=pnl if pnl < 0 else _ZERO,
                   best=pnl, worst=pnl, ambiguous=int(ambiguous))

    def __add__(self, other: "Tally") -> "Tally":
        add = _EXACT.add
        return Tally(
            trades=self.trades + other.trades, wins=self.wins + other.wins, losses=self.losses + other.losses,
            pnl=add(self.pnl, other.pnl), gross_profit=add(self.gross_profit, other.gross_profit),
            gross_loss=add(self.gross_loss, other.gross_loss),
            best=_pick(max, self.best, other.best), worst=_pick(min, self.worst, other.worst),
            ambiguous=self.ambiguous + other.ambiguous,
        )

    def summary(self) -> metrics.Summary:
        return metrics.summary_of(closed=self.trades, wins=self.wins, losses=self.losses, total=self.pnl,
                                  gross_profit=self.gross_profit, gross_loss=self.gross_loss,
                                  best=self.best, worst=self.worst)


def _pick(choose: type[max] | type[min], a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None or b is None:
        return a if b is None else b
    return choose(a, b)


def total(tallies: Iterable[Tally]) -> Tally:
    """The sum of many tallies (as `+`, without building one Tally per step)."""
    trades = wins = losses = ambiguous = 0
    pnl, profit, loss = [], [], []
    best: Decimal | None = None
    worst: Decimal | None = None
    for tally in tallies:
        trades, wins, losses = trades + tally.trades, wins + tally.wins, losses + tally.losses
        ambiguous += tally.ambiguous
        pnl.append(tally.pnl)
        profit.append(tally.gross_profit)
        loss.append(tally.gross_loss)
        best, worst = _pick(max, best, tally.best), _pick(min, worst, tally.worst)
    return Tally(trades=trades, wins=wins, losses=losses, pnl=exact_sum(pnl), gross_profit=exact_sum(profit),
                 gross_loss=exact_sum(loss), best=best, worst=worst, ambiguous=ambiguous)


@dataclass(slots=True)  # not frozen: a frozen dataclass is several times slower to build
class Stretch:
    """A stretch of the equity curve: trades in exit order, as offsets from its start.

    Positions count exits: 0 is the start, k is right after the k-th trade. Of the falls
    (a position's running peak minus its equity), `fall` is the largest and `trough` the
    equity offset at the first position reaching it, exactly what `metrics.max_drawdown`
    reports ("the first of equal falls"). Runs: a breakeven trade ends both kinds.
    """

    trades: int = 0
    pnl: Decimal = _ZERO  # equity at the end, as an offset from the start
    high: Decimal = _ZERO  # the highest offset reached (0 at the start counts)
    low: Decimal = _ZERO  # the lowest offset reached
    low_at: int = 0  # first position at `low`
    fall: Decimal = _ZERO
    trough: Decimal = _ZERO
    trough_at: int = 0
    win_lead: int = 0  # wins at the start of the stretch
    win_tail: int = 0  # wins at its end
    win_run: int = 0  # longest run of wins inside
    loss_lead: int = 0
    loss_tail: int = 0
    loss_run: int = 0

    @classmethod
    def of(cls, pnls: Sequence[Decimal]) -> "Stretch":
        """One walk over trades already in exit order."""
        equity = high = low = fall = trough = _ZERO
        low_at = trough_at = 0
        win = loss = win_run = loss_run = 0
        win_lead = loss_lead = -1  # not ended yet
        with localcontext(EXACT_CONTEXT):
            for position, pnl in enumerate(pnls, 1):
                equity += pnl
                if equity > high:
                    high = equity
                elif high - equity > fall:
                    fall, trough, trough_at = high - equity, equity, position
                if equity < low:
                    low, low_at = equity, position
                win = win + 1 if pnl > 0 else 0
                loss = loss + 1 if pnl < 0 else 0
                if win == 0 and win_lead < 0:
                    win_lead = position - 1
                if loss == 0 and loss_lead < 0:
                    loss_lead = position - 1
                win_run, loss_run = max(win_run, win), max(loss_run, loss)
        n = len(pnls)
        return cls(trades=n, pnl=equity, high=high, low=low, low_at=low_at, fall=fall, trough=trough,
                   trough_at=trough_at, win_lead=n if win_lead < 0 else win_lead, win_tail=win, win_run=win_run,
                   loss_lead=n if loss_lead < 0 else loss_lead, loss_tail=loss, loss_run=loss_run)

    def then(self, later: "Stretch") -> "Stretch":
        """This stretch followed by `later`."""
        a, b, n = self, later, self.trades
        add, subtract = _EXACT.add, _EXACT.subtract  # exact: no rounding whatever the caller's context
        later_low = add(a.pnl, b.low)
        # Falls whose trough lies in `later`: inside it (b.fall), or from this stretch's high
        # down to later's low. The first position reaching the largest fall wins a tie.
        fall, trough, trough_at = a.fall, a.trough, a.trough_at
        inside = (n + b.trough_at, b.fall, add(a.pnl, b.trough))
        across = (n + b.low_at, subtract(a.high, later_low), later_low)
        for at, size, offset in ((inside, across) if inside[0] <= across[0] else (across, inside)):
            if size > fall:
                fall, trough, trough_at = size, offset, at
        low, low_at = (a.low, a.low_at) if a.low <= later_low else (later_low, n + b.low_at)
        return Stretch(
            trades=n + b.trades, pnl=add(a.pnl, b.pnl), high=max(a.high, add(a.pnl, b.high)), low=low, low_at=low_at,
            fall=fall, trough=trough, trough_at=trough_at,
            win_lead=a.win_lead if a.win_lead < n else n + b.win_lead,
            win_tail=b.win_tail if b.win_tail < b.trades else b.trades + a.win_tail,
            win_run=max(a.win_run, b.win_run, a.win_tail + b.win_lead),
            loss_lead=a.loss_lead if a.loss_lead < n else n + b.loss_lead,
            loss_tail=b.loss_tail if b.loss_tail < b.trades else b.trades + a.loss_tail,
            loss_run=max(a.loss_run, b.loss_run, a.loss_tail + b.loss_lead),
        )

    def drawdown(self, starting_balance: Decimal) -> metrics.DrawDown:
        """`metrics.max_drawdown` of the whole record, when this stretch is all of it.
        (Its peak and trough times are not kept: the reports do not show them.)"""
        with localcontext(EXACT_CONTEXT):
            peak = starting_balance + self.trough + self.fall
        return metrics.DrawDown(rounded(self.fall), metrics.drawdown_fraction(self.fall, peak), None, None)

    def streaks(self) -> tuple[int, int]:
        return self.win_run, self.loss_run


def joined(stretches: Iterable[Stretch]) -> Stretch:
    """Consecutive stretches, in order, as one."""
    result = Stretch()
    for stretch in stretches:
        result = result.then(stretch)
    return result
