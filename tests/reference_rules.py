"""An independent implementation of the trade rules, written from docs/trade-rules.md alone.

It shares nothing with `shared.exits` but the text of the rules: plain tuples for candles, one
loop, every sentence of "Entry", "Exits" and "Several targets" in the order the document gives
them. The tests compare the worker's trades and fills with what this computes, field by field.
Decimals in a 34-digit context, like the money rules say.

Candles are `(open_time, open, high, low, close)`, in time order.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Context, Decimal, localcontext

CONTEXT = Context(prec=34)
FILL_KIND = {"CLOSED_SL": "sl", "LIQUIDATED": "liquidated", "CLOSED_EXPIRED": "expired"}


@dataclass
class Setup:
    side: str
    targets: list[Decimal]
    stop_loss: Decimal
    signal_time: datetime
    entry: Decimal | None = None  # the signal's entry price
    leverage: int = 1
    stake: Decimal = Decimal(100)
    fee: Decimal = Decimal("0.001")
    entry_mode: str = "market"
    slippage_bps: Decimal = Decimal(0)
    mmr: Decimal = Decimal("0.004")
    pending_hours: Decimal = Decimal(24)
    max_hours: Decimal = Decimal(0)
    tp_split: str = "single"
    take_profit_target: int = 1
    stop_after_tp: str = "none"
    # The order inside a candle the exchange's trades show ("high_first" / "low_first"), or None
    # when they cannot be had; no function at all: no tape (the stop-loss is assumed).
    tape: Callable[[tuple[datetime, Decimal, Decimal, Decimal, Decimal]], str | None] | None = None


@dataclass
class Outcome:
    status: str = "PENDING"
    reason: str = ""
    entry_time: datetime | None = None
    entry_price: Decimal | None = None
    exit_time: datetime | None = None
    exit_price: Decimal | None = None
    fees: Decimal | None = None
    pnl: Decimal | None = None
    ambiguous: bool = False
    resolution: str = "candle"
    fills: list[tuple[datetime, str, Decimal, Decimal, Decimal, Decimal]] = field(default_factory=list)

    @property
    def targets_hit(self) -> int:
        return sum(1 for fill in self.fills if fill[1].startswith("tp"))


def split(setup: Setup) -> list[tuple[Decimal, Decimal]]:
    """(target, share) per portion, from `tp_split`."""
    n = len(setup.targets)
    with localcontext(CONTEXT):
        if setup.tp_split == "single":
            return [(setup.targets[min(setup.take_profit_target, n) - 1], Decimal(1))]
        if setup.tp_split == "even":
            # "1/n rounded down to 18 decimal places, the last target what the others leave"
            shares = [(Decimal(1) / n).quantize(Decimal("1e-18"), ROUND_DOWN) for _ in range(n)]
        else:
            pcts = [Decimal(p) / 100 for p in setup.tp_split.split(",")]
            m = min(len(pcts), n)
            shares = pcts[:m - 1] + [sum(pcts[m - 1:])]
        shares[-1] = 1 - sum(shares[:-1])
    return list(zip(setup.targets, shares))


def simulate(setup: Setup, candles: list[tuple[datetime, Decimal, Decimal, Decimal, Decimal]],
             complete_until: datetime | None = None) -> Outcome:
    s = 1 if setup.side == "LONG" else -1
    long = s == 1
    slip = setup.slippage_bps / 10000
    portions = split(setup)
    out = Outcome()
    stop = setup.stop_loss
    deadline = setup.signal_time + timedelta(hours=float(setup.pending_hours))
    if setup.entry_mode == "signal":
        out.status, out.entry_time, out.entry_price = "OPEN", setup.signal_time, setup.entry

    def settle(share: Decimal, exit_: Decimal, liquidated: bool) -> tuple[Decimal, Decimal]:
        with localcontext(CONTEXT):
            notional = setup.stake * share * setup.leverage
            if liquidated:
                fees = setup.fee * notional
                return fees, -setup.stake * share - fees
            fees = setup.fee * notional * (1 + exit_ / out.entry_price)
            return fees, notional * s * (exit_ - out.entry_price) / out.entry_price - fees

    def fill(time: datetime, kind: str, price: Decimal, share: Decimal) -> None:
        fees, pnl = settle(share, price, kind == "liquidated")
        out.fills.append((time, kind, price, share, fees, pnl))

    def finish(status: str, time: datetime) -> None:
        with localcontext(CONTEXT):
            out.status, out.exit_time = status, time
            out.exit_price = sum(f[3] * f[2] for f in out.fills)
            out.fees = sum(f[4] for f in out.fills)
            out.pnl = sum(f[5] for f in out.fills)

    def rest() -> Decimal:
        with localcontext(CONTEXT):
            return sum(share for _, share in portions[out.targets_hit:])

    def check(candle: tuple[datetime, Decimal, Decimal, Decimal, Decimal], targets_allowed: bool) -> None:
        nonlocal stop
        t, o, h, l, _ = candle
        if setup.max_hours > 0 and t >= out.entry_time + timedelta(hours=float(setup.max_hours)):
            with localcontext(CONTEXT):
                fill(t, "expired", o * (1 - s * slip), rest())
            finish("CLOSED_EXPIRED", t)
            return
        liq = None
        if setup.leverage > 1:
            with localcontext(CONTEXT):
                liq = out.entry_price * (1 - s * (Decimal(1) / setup.leverage - setup.mmr))
        level = stop if liq is None else (max(stop, liq) if long else min(stop, liq))
        adverse = l <= level if long else h >= level
        waiting = portions[out.targets_hit:]
        reached = [p for p in waiting if targets_allowed and (h >= p[0] if long else l <= p[0])]
        order = setup.tape(candle) if adverse and reached and setup.tape is not None else None
        if order is not None:
            # "the first trade at or beyond either level decides": the trades walk open → first
            # extreme → second extreme → close. A candle opening through the adverse level meets
            # it first; otherwise the targets on the way to the favourable extreme fill first,
            # when that extreme comes first.
            out.resolution = "trades"
            opened_through = o <= level if long else o >= level
            favourable_first = (order == "high_first") == long
            if not opened_through:
                # The first trade is the open: targets it reaches fill first; then, when the
                # favourable extreme comes first, every target on the way to it.
                first = [p for p in reached if (o >= p[0] if long else o <= p[0])]
                for target, share in reached if favourable_first else first:
                    fill(t, f"tp{out.targets_hit + 1}", target, share)
                if out.targets_hit == len(portions):
                    finish("CLOSED_TP", t)
                    return
            reached = []  # the adverse level closes what is left
        elif adverse and reached:
            out.resolution = "assumed"
        if adverse:
            out.ambiguous = bool(reached) and out.resolution == "assumed"
            raw = min(o, level) if long else max(o, level)
            if liq is not None and (raw <= liq if long else raw >= liq):
                fill(t, "liquidated", liq, rest())
                finish("LIQUIDATED", t)
            else:
                with localcontext(CONTEXT):
                    fill(t, "sl", raw * (1 - s * slip), rest())
                finish("CLOSED_SL", t)
            return
        for target, share in reached:
            fill(t, f"tp{out.targets_hit + 1}", target, share)
        if reached and out.targets_hit == len(portions):
            finish("CLOSED_TP", t)
            return
        if reached and setup.stop_after_tp != "none":  # from the next candle on
            k = out.targets_hit
            if setup.stop_after_tp == "breakeven" or k == 1:
                stop = out.entry_price
            else:
                stop = portions[k - 2][0]

    for candle in candles:
        if out.status not in ("PENDING", "OPEN"):
            break
        t, o, h, l, _ = candle
        if t < setup.signal_time:
            continue
        if out.status == "PENDING":
            if setup.entry_mode == "market":
                with localcontext(CONTEXT):
                    entry = o * (1 + s * slip)
                first = portions[0][0]
                if (entry <= setup.stop_loss or entry >= first) if long else (entry >= setup.stop_loss or entry <= first):
                    out.status, out.reason = "CANCELLED", "entry beyond stop-loss/take-profit"
                    break
                out.status, out.entry_time, out.entry_price = "OPEN", t, entry
                check(candle, True)
            else:  # limit
                if t >= deadline:
                    out.status, out.reason = "CANCELLED", "entry not reached"
                    break
                if not (l <= setup.entry if long else h >= setup.entry):
                    continue
                out.status, out.entry_time = "OPEN", t
                out.entry_price = min(o, setup.entry) if long else max(o, setup.entry)
                check(candle, False)
        else:
            check(candle, True)
    if (out.status == "PENDING" and setup.entry_mode == "limit" and complete_until is not None
            and complete_until >= deadline):
        out.status, out.reason = "CANCELLED", "entry not reached"
    return out
