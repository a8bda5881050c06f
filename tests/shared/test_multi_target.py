"""Multi-target trades (docs/trade-rules.md "Several targets"): one table row per sentence of the
rules, with the numbers derived by hand in each row's docstring, then hypothesis invariants that
hold on random candle histories.

Unless a row says otherwise: a LONG, market entry, stake $100, leverage 1, fee 0.001, no
slippage, stop-loss 90, and a start candle opening at 100 (so entry = 100). A part of the
position with share q exiting at price x has notional N = 100·q and
    P/L = N·(x − 100)/100 − 0.001·N·(1 + x/100)
so per $1 of notional: at 110 → 0.1 − 0.0021 = 0.0979, at 120 → 0.2 − 0.0022 = 0.1978,
at 130 → 0.3 − 0.0023 = 0.2977, at 100 → −0.002, at 90 → −0.1 − 0.0019 = −0.1019.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given, settings, strategies as st

from shared.candles import Candle
from shared.exits import TradeState, TradeTerms, advance, close_manually, open_trade
from shared.kinds import EntryMode, Side, TradeStatus
from shared.money import exact_sum
from shared.targets import SplitError, StopRule, parse_split, portions
from demo.tape import HIGH_FIRST, LOW_FIRST, candle_prices, natural_order
from shared.tape import AggTrade
from tests.reference_rules import Setup, simulate

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
END = T0 + timedelta(days=30)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def candle(minute: int, open_: str, high: str, low: str) -> Candle:
    return Candle(at(minute), D(open_), D(high), D(low), D(open_))


def terms(*targets: str, split: str = "even", stop_after: str = "none", side: Side = Side.LONG, stop: str = "90",
          leverage: int = 1, entry_mode: EntryMode = EntryMode.MARKET, entry: str | None = None,
          max_hours: str = "0", take_profit_target: int = 1) -> TradeTerms:
    prices = tuple(D(t) for t in targets)
    parts = portions(parse_split(split), prices, take_profit_target)
    return TradeTerms(
        side=side, leverage=leverage, stake_usd=D(100), fee_rate=D("0.001"), entry_mode=entry_mode,
        slippage_bps=D(0), maintenance_margin_rate=D("0.004"), pending_expiry_hours=D(24), max_trade_hours=D(max_hours),
        signal_time=T0, signal_entry=None if entry is None else D(entry), take_profit=parts[0].target,
        stop_loss=D(stop), split=() if split == "single" else parts, stop_after_tp=StopRule(stop_after),
    )


def run(t: TradeTerms, *candles: Candle) -> TradeState:
    return advance(t, open_trade(t), candles, complete_until=candles[-1].open_time)


def fills(state: TradeState) -> list[tuple[int, str, D, D]]:
    """(minute, kind, price, share) of each fill."""
    return [(int((f.time - T0).total_seconds() // 60), f.kind, f.price, f.share) for f in state.fills]


def close_to(value: D | None, expected: str) -> bool:
    return value is not None and abs(value - D(expected)) <= D("1e-15")  # shares of 1/3 are 18-place decimals


# --- the split ---------------------------------------------------------------------------------


def test_even_splits_the_position_equally_over_all_targets() -> None:
    """"`even` (the position split equally over all targets)": targets 110/120/130 fill one per
    candle, a third each (0.333333333333333333, twice; the last takes the rest: exactly 1 in all).
    P/L = 100/3·0.0979 + 100/3·0.1978 + 100/3·0.2977 = 100/3·0.5934 = 19.78;
    fees = 0.001·100/3·(2.1 + 2.2 + 2.3) = 0.22; mean exit = (110 + 120 + 130)/3 = 120."""
    state = run(terms("110", "120", "130"), candle(0, "100", "105", "99"), candle(1, "105", "111", "104"),
                candle(2, "111", "121", "110"), candle(3, "121", "131", "120"))
    assert state.status is TradeStatus.CLOSED_TP and state.targets_hit == 3
    assert [(m, k, p) for m, k, p, _ in fills(state)] == [(1, "tp1", D(110)), (2, "tp2", D(120)), (3, "tp3", D(130))]
    assert exact_sum(f.share for f in state.fills) == 1
    assert close_to(state.pnl_usd, "19.78") and close_to(state.fees_usd, "0.22")
    assert close_to(state.exit_price, "120") and state.exit_time == at(3)


def test_percentages_split_over_the_first_targets() -> None:
    """"percentages such as 50,30,20 (summing to 100, over the first targets)": a fourth target
    (140) gets nothing, so reaching 130 closes the trade. P/L = 50·0.0979 + 30·0.1978 +
    20·0.2977 = 4.895 + 5.934 + 5.954 = 16.783; mean exit = 0.5·110 + 0.3·120 + 0.2·130 = 117."""
    state = run(terms("110", "120", "130", "140", split="50,30,20"), candle(0, "100", "131", "99"))
    assert fills(state) == [(0, "tp1", D(110), D("0.5")), (0, "tp2", D(120), D("0.3")), (0, "tp3", D(130), D("0.2"))]
    assert state.status is TradeStatus.CLOSED_TP
    assert close_to(state.pnl_usd, "16.783") and close_to(state.exit_price, "117")


def test_fewer_targets_than_percentages_give_the_rest_to_the_last() -> None:
    """"a signal with fewer targets gives the rest to its last one": 50,30,20 over two targets
    is 50 % at 110 and 30 + 20 = 50 % at 120."""
    parts = portions("50,30,20", (D(110), D(120)))
    assert [(p.target, p.share) for p in parts] == [(D(110), D("0.5")), (D(120), D("0.5"))]


def test_single_puts_everything_on_the_chosen_target() -> None:
    """"`single` (default: one exit at target `take_profit_target`, today's rule)": target 2 of
    three, or the last one when the signal has fewer."""
    assert [(p.target, p.share) for p in portions("single", (D(1), D(2), D(3)), 2)] == [(D(2), D(1))]
    assert [(p.target, p.share) for p in portions("single", (D(1), D(2)), 5)] == [(D(2), D(1))]


@pytest.mark.parametrize(("text", "problem"), [
    ("50,30", "sum to 100"), ("150,-50", "above 0"), (",".join(["5"] * 20), "at most 10 targets"),
    ("fifty,fifty", "not single, even, or percentages"),
])
def test_a_bad_split_is_refused(text: str, problem: str) -> None:
    with pytest.raises(SplitError, match=problem):
        parse_split(text)


# --- the candle rules ------------------------------------------------------------------------


def test_several_targets_can_fill_in_one_candle() -> None:
    """"several targets can fill in one candle": a high of 125 reaches 110 and 120, not 130;
    the trade stays open with its last third."""
    state = run(terms("110", "120", "130"), candle(0, "100", "125", "99"))
    assert state.status is TradeStatus.OPEN and state.targets_hit == 2
    assert [(k, p) for _, k, p, _ in fills(state)] == [("tp1", D(110)), ("tp2", D(120))]
    assert state.pnl_usd is None  # nothing is realized on the trade until its last part closes


def test_a_limit_entrys_fill_candle_fills_no_target() -> None:
    """"a limit entry's fill candle fills no target": the fill candle (low 99 ≤ 100) also has a
    high of 125, but the targets wait for the next candle, which reaches both."""
    t = terms("110", "120", entry_mode=EntryMode.LIMIT, entry="100")
    state = run(t, candle(0, "102", "125", "99"))
    assert state.status is TradeStatus.OPEN and state.entry_price == D(100) and state.fills == ()
    state = advance(t, state, [candle(1, "112", "125", "111")], complete_until=at(1))
    assert state.status is TradeStatus.CLOSED_TP and [k for _, k, _, _ in fills(state)] == ["tp1", "tp2"]


def test_a_market_entry_at_the_first_target_is_cancelled() -> None:
    """"a market entry already at or beyond the stop-loss or the *first* target is CANCELLED":
    the start candle opens at 110, the first target."""
    state = run(terms("110", "120"), candle(0, "110", "111", "109"))
    assert state.status is TradeStatus.CANCELLED and state.reason == "entry beyond stop-loss/take-profit"


def test_expiry_comes_first() -> None:
    """"In each candle: expiry first": with max_trade_hours 1, the candle at minute 60 reaches
    both the stop and the second target, but the rest (1/2) goes out at its open 115.
    P/L = 50·0.0979 + 50·(0.15 − 0.001·2.15) = 4.895 + 7.3925 = 12.2875."""
    t = terms("110", "120", max_hours="1")
    state = run(t, candle(0, "100", "111", "99"), candle(60, "115", "125", "85"))
    assert fills(state) == [(0, "tp1", D(110), D("0.5")), (60, "expired", D(115), D("0.5"))]
    assert state.status is TradeStatus.CLOSED_EXPIRED and close_to(state.pnl_usd, "12.2875")


def test_the_adverse_level_closes_everything_still_open() -> None:
    """"then the adverse level for everything still open": after target 1, the stop (90) closes
    the other half. P/L = 50·0.0979 + 50·(−0.1019) = −0.2; status CLOSED_SL ("the rest closed
    at the stop")."""
    state = run(terms("110", "120"), candle(0, "100", "111", "99"), candle(1, "105", "106", "89"))
    assert fills(state) == [(0, "tp1", D(110), D("0.5")), (1, "sl", D(90), D("0.5"))]
    assert state.status is TradeStatus.CLOSED_SL and state.targets_hit == 1 and not state.ambiguous
    assert close_to(state.pnl_usd, "-0.2") and close_to(state.exit_price, "100")


def test_the_adverse_level_beats_a_target_in_the_same_candle() -> None:
    """"The adverse level and a not-yet-filled target in one candle: the adverse level wins for
    all that is still open (flagged ambiguous)": high 125 and low 89 in one candle → everything
    at 90, no target filled. P/L = 100·(−0.1019) = −10.19."""
    state = run(terms("110", "120"), candle(0, "100", "125", "89"))
    assert fills(state) == [(0, "sl", D(90), D(1))]
    assert state.status is TradeStatus.CLOSED_SL and state.ambiguous and close_to(state.pnl_usd, "-10.19")


def test_breakeven_moves_the_stop_to_the_entry_from_the_next_candle() -> None:
    """"`breakeven` (after the first target fills, the stop moves to the entry price)" and "A
    moved stop applies from the next candle on": the candle filling target 1 dips to 99 (below
    the entry) and does not stop the rest; the next one (low 99.5) does, at 100.
    P/L = 50·0.0979 + 50·(−0.002) = 4.795."""
    state = run(terms("110", "120", stop_after="breakeven"), candle(0, "100", "111", "99"),
                candle(1, "105", "106", "99.5"))
    assert fills(state) == [(0, "tp1", D(110), D("0.5")), (1, "sl", D(100), D("0.5"))]
    assert state.status is TradeStatus.CLOSED_SL and close_to(state.pnl_usd, "4.795")


def test_trailing_moves_the_stop_to_the_previous_target() -> None:
    """"`trailing` (after target k fills, the stop moves to target k−1, the entry for k = 1)":
    after target 2 (120) the stop is target 1 (110); a low of 109 closes the last third there.
    P/L = 100/3·0.0979 + 100/3·0.1978 + 100/3·0.0979 = 13.12."""
    t = terms("110", "120", "130", stop_after="trailing")
    state = run(t, candle(0, "100", "111", "99.5"))
    state = advance(t, state, [candle(1, "101", "102", "99.5")], complete_until=at(1))  # stop at 100 now
    assert state.status is TradeStatus.CLOSED_SL and state.exit_time == at(1)
    state = run(t, candle(0, "100", "111", "101"), candle(1, "111", "121", "110.5"), candle(2, "115", "116", "109"))
    assert [(m, k, p) for m, k, p, _ in fills(state)] == [(0, "tp1", D(110)), (1, "tp2", D(120)), (2, "sl", D(110))]
    assert close_to(state.pnl_usd, "13.12")


def test_liquidation_stays_computed_from_the_entry() -> None:
    """"Liquidation stays computed from the entry": leverage 10, stop 80, so the liquidation
    price 100·(1 − 0.1 + 0.004) = 90.4 is the adverse level before and after target 1.
    P/L = 500·0.0979 (half at 110, notional 500) + (−50 − 0.001·500) = 48.95 − 50.5 = −1.55."""
    state = run(terms("110", "120", stop="80", leverage=10), candle(0, "100", "111", "99"),
                candle(1, "100", "101", "90"))
    assert fills(state) == [(0, "tp1", D(110), D("0.5")), (1, "liquidated", D("90.4"), D("0.5"))]
    assert state.status is TradeStatus.LIQUIDATED and close_to(state.pnl_usd, "-1.55")


def test_a_short_mirrors_it() -> None:
    """SHORT at 100, targets 90/80, stop 110: target 1 at 90 (P/L per $ = 0.1 − 0.001·1.9 =
    0.0981), then the stop at 110 (−0.1 − 0.001·2.1 = −0.1021): 50·(0.0981 − 0.1021) = −0.2."""
    state = run(terms("90", "80", side=Side.SHORT, stop="110"), candle(0, "100", "101", "89"),
                candle(1, "95", "111", "94"))
    assert fills(state) == [(0, "tp1", D(90), D("0.5")), (1, "sl", D(110), D("0.5"))]
    assert close_to(state.pnl_usd, "-0.2")


def test_the_owner_closes_the_rest() -> None:
    """"`CLOSED_MANUAL` as before": after target 1, the owner closes the other half at 105.
    P/L = 50·0.0979 + 50·(0.05 − 0.001·2.05) = 4.895 + 2.3975 = 7.2925."""
    t = terms("110", "120")
    state = run(t, candle(0, "100", "111", "99"))
    closed = close_manually(t, state, price=D(105), now=at(5))
    assert [(k, p, q) for _, k, p, q in fills(closed)] == [("tp1", D(110), D("0.5")), ("manual", D(105), D("0.5"))]
    assert closed.status is TradeStatus.CLOSED_MANUAL and close_to(closed.pnl_usd, "7.2925")


# --- invariants on random histories -------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[TradeTerms, Setup, list[Candle]]:
    side = draw(st.sampled_from([Side.LONG, Side.SHORT]))
    s = side.sign
    count = draw(st.integers(1, 5))
    steps = sorted(draw(st.lists(st.integers(1, 40), min_size=count, max_size=count, unique=True)))
    targets = [D(100) + s * D(step) / 2 for step in steps]
    stop = D(100) - s * D(draw(st.integers(1, 30))) / 2
    split = draw(st.sampled_from(["single", "even", "50,30,20", "25,25,25,25", "70,30", "100"]))
    stop_after = draw(st.sampled_from(["none", "breakeven", "trailing"]))
    leverage = draw(st.sampled_from([1, 1, 5, 20]))
    mode = draw(st.sampled_from([EntryMode.MARKET, EntryMode.LIMIT, EntryMode.SIGNAL]))
    max_hours = draw(st.sampled_from(["0", "0", "0.5"]))
    tpt = draw(st.integers(1, 4))
    entry = D(100) - s * D(draw(st.integers(0, 6))) / 4 if mode is not EntryMode.MARKET else None
    t = TradeTerms(side=side, leverage=leverage, stake_usd=D(100), fee_rate=D("0.0005"), entry_mode=mode,
                   slippage_bps=D(draw(st.sampled_from([0, 5]))), maintenance_margin_rate=D("0.004"),
                   pending_expiry_hours=D(1), max_trade_hours=D(max_hours), signal_time=T0, signal_entry=entry,
                   take_profit=portions(split, tuple(targets), tpt)[0].target, stop_loss=stop,
                   split=() if split == "single" else portions(split, tuple(targets), tpt),
                   stop_after_tp=StopRule(stop_after))
    setup = Setup(side=side.value, targets=targets, stop_loss=stop, signal_time=T0, entry=entry, leverage=leverage,
                  fee=D("0.0005"), entry_mode=mode.value, slippage_bps=t.slippage_bps, pending_hours=D(1),
                  max_hours=D(max_hours), tp_split=split, take_profit_target=tpt, stop_after_tp=stop_after)
    price, candles = D(100), []
    for minute in range(draw(st.integers(1, 80))):
        if draw(st.booleans()) and minute:
            continue  # an exchange gap
        move = D(draw(st.integers(-8, 8))) / 2
        open_ = max(D("0.5"), price + move)
        high = open_ + D(draw(st.integers(0, 12))) / 2
        low = max(D("0.25"), open_ - D(draw(st.integers(0, 12))) / 2)
        candles.append(Candle(at(minute), open_, high, low, low + (high - low) / 2))
        price = candles[-1].close
    return t, setup, candles


def _as_reference(state: TradeState) -> tuple[object, ...]:
    return (state.status.value, state.entry_time, state.entry_price, state.exit_time, state.exit_price,
            state.fees_usd, state.pnl_usd, state.ambiguous,
            [(f.time, f.kind, f.price, f.share, f.fees_usd, f.pnl_usd) for f in state.fills])


@settings(max_examples=400, deadline=None)
@given(histories())
def test_the_rules_agree_with_the_independent_implementation(history: tuple[TradeTerms, Setup, list[Candle]]) -> None:
    """Every trade and fill, on random histories in every split and stop mode; `single` is
    today's one-target rule, so this also says `single` gives exactly today's results."""
    t, setup, candles = history
    state = advance(t, open_trade(t), candles, complete_until=END)
    reference = simulate(setup, [(c.open_time, c.open, c.high, c.low, c.close) for c in candles], END)
    expected = (reference.status, reference.entry_time, reference.entry_price, reference.exit_time,
                reference.exit_price, reference.fees, reference.pnl, reference.ambiguous, reference.fills)
    assert _as_reference(state) == expected


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_resuming_at_any_candle_gives_the_one_pass_result(history: tuple[TradeTerms, Setup, list[Candle]],
                                                          data: st.DataObject) -> None:
    t, _, candles = history
    whole = advance(t, open_trade(t), candles, complete_until=END)
    cut = data.draw(st.integers(0, len(candles)))
    first = advance(t, open_trade(t), candles[:cut], complete_until=candles[cut - 1].open_time if cut else T0)
    resumed = advance(t, first, candles, complete_until=END)  # the candles already seen are skipped
    assert resumed == replace(whole, last_candle_time=resumed.last_candle_time)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=12),
       st.sampled_from(["single", "even", "50,30,20", "33.3,33.3,33.4", "10,10,10,10,10,10,10,10,10,10", "1,99"]),
       st.integers(1, 12))
def test_portions_always_sum_to_the_whole_position(steps: list[int], split: str, target: int) -> None:
    targets = tuple(D(100) + D(step) for step in sorted(set(steps)))
    parts = portions(split, targets, target)
    assert exact_sum(p.share for p in parts) == 1 and all(p.share > 0 for p in parts)
    assert [p.target for p in parts] == sorted(p.target for p in parts)


class MadeUpTape:
    """Trades inside a candle as the fake exchange makes them (demo/tape.py): open → first
    extreme → second extreme → close, in the order `order_of` picks (None: no tape to be had)."""

    def __init__(self, order_of: Callable[[Candle], str | None]) -> None:
        self.order_of = order_of

    def trades(self, candle: Candle) -> list[AggTrade] | None:
        order = self.order_of(candle)
        if order is None:
            return None
        row = (0, candle.open, candle.high, candle.low, candle.close, D(0))
        return [AggTrade(i, price, D(1), candle.open_time + timedelta(seconds=i))
                for i, price in enumerate(candle_prices(row, 8, order))]


@settings(max_examples=300, deadline=None)
@given(histories(), st.sampled_from([HIGH_FIRST, LOW_FIRST, None]), st.booleans())
def test_the_tape_decides_as_the_independent_implementation(history: tuple[TradeTerms, Setup, list[Candle]],
                                                            fixed: str | None, by_candle: bool) -> None:
    """"the first trade at or beyond either level decides": on random histories, with every
    candle's trades going high first, low first, the candle's own way, or not to be had."""
    t, setup, candles = history
    order_of = (lambda c: natural_order((0, c.open, c.high, c.low, c.close, D(0)))) if by_candle else (lambda c: fixed)
    state = advance(t, open_trade(t), candles, complete_until=END, tape=MadeUpTape(order_of))
    reference = simulate(replace(setup, tape=lambda c: order_of(Candle(*c))),
                         [(c.open_time, c.open, c.high, c.low, c.close) for c in candles], END)
    expected = (reference.status, reference.entry_time, reference.entry_price, reference.exit_time,
                reference.exit_price, reference.fees, reference.pnl, reference.ambiguous, reference.fills)
    assert _as_reference(state) == expected
    assert state.resolution == reference.resolution


def test_a_tape_settles_the_same_candle_case() -> None:
    """Both the stop (90) and the targets (110, 120) in one candle, its trades going up first:
    both targets fill, the trade closes CLOSED_TP, settled by the tape, not ambiguous. Going down
    first: the stop at 90 closes it all, settled too. No tape: the stop, flagged ambiguous."""
    both = candle(0, "100", "125", "89")
    up = run_with_tape(terms("110", "120"), both, HIGH_FIRST)
    assert up.status is TradeStatus.CLOSED_TP and up.resolution == "trades" and not up.ambiguous
    assert up.tape is not None and [f.index for f in up.tape.targets] == [0, 1]
    down = run_with_tape(terms("110", "120"), both, LOW_FIRST)
    assert down.status is TradeStatus.CLOSED_SL and down.resolution == "trades" and not down.ambiguous
    assert fills(down) == [(0, "sl", D(90), D(1))]
    none = run_with_tape(terms("110", "120"), both, None)
    assert none.status is TradeStatus.CLOSED_SL and none.resolution == "assumed" and none.ambiguous


def test_a_tape_the_candle_contradicts_is_not_used() -> None:
    """A tape whose trades never reach the stop the candle reaches is refused: assumed."""
    both = candle(0, "100", "125", "89")

    class Short:
        def trades(self, candle: Candle) -> list[AggTrade]:
            return [AggTrade(1, D(100), D(1), at(0)), AggTrade(2, D(125), D(1), at(0) + timedelta(seconds=5))]

    state = advance(terms("110", "120"), open_trade(terms("110", "120")), [both], complete_until=at(0), tape=Short())
    assert state.resolution == "assumed" and state.ambiguous and state.status is TradeStatus.CLOSED_SL


def run_with_tape(t: TradeTerms, c: Candle, order: str | None) -> TradeState:
    return advance(t, open_trade(t), [c], complete_until=c.open_time, tape=MadeUpTape(lambda _: order))
