"""The trade tape rule (shared/tape.py): which level the trades inside a candle reach first.

Every row names the tape as prices in order; the candle is the one those prices make, unless
the row says otherwise.
"""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.candles import Candle
from shared.kinds import Side
from shared.ledger import to_data
from shared.tape import AggTrade, InconsistentTape, TapeVerdict, check_tape, decide, walk

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
LONG, SHORT = Side.LONG, Side.SHORT


def tape(*prices: str, first_id: int = 100) -> list[AggTrade]:
    """Trades at the given prices, one second apart from the candle's open, ids consecutive."""
    return [AggTrade(first_id + i, D(p), D("0.5"), T0 + timedelta(seconds=i)) for i, p in enumerate(prices)]


def candle_of(trades: list[AggTrade]) -> Candle:
    prices = [t.price for t in trades]
    return Candle(T0, prices[0], max(prices), min(prices), prices[-1])


def summary(verdict: TapeVerdict) -> tuple[list[tuple[int, int]], int | None]:
    """(target index, deciding trade id) per fill, and the adverse trade's id."""
    return [(f.index, f.trade.id) for f in verdict.targets], (verdict.adverse.id if verdict.adverse else None)


@pytest.mark.parametrize("side, adverse, targets, prices, expected", [
    # LONG, stop 95, target 105. The tape dips to 95 (trade 101) before it rallies: the stop decides.
    (LONG, "95", ["105"], ["100", "95", "106", "104"], ([], 101)),
    # The same candle the other way round: 106 (trade 101) before 95 (102): the target fills,
    # then the stop closes nothing more (reported all the same: the caller knows the order).
    (LONG, "95", ["105"], ["100", "106", "95", "104"], ([(0, 101)], 102)),
    # "At or beyond": exactly 105 reaches the target, exactly 95 the stop.
    (LONG, "95", ["105"], ["100", "105", "95"], ([(0, 101)], 102)),
    # Three targets: 102 (trade 101) and 104 (trade 102) before the stop (103); 106 never.
    (LONG, "95", ["102", "104", "106"], ["100", "102", "104", "94", "107"], ([(0, 101), (1, 102)], 103)),
    # One trade beyond two targets fills both (in the caller's order).
    (LONG, "95", ["102", "104"], ["100", "105", "94"], ([(0, 101), (1, 101)], 102)),
    # The candle opened through the stop: the first trade decides, no target can come first.
    (LONG, "95", ["105"], ["94", "106", "100"], ([], 100)),
    # A limit entry's fill candle: no targets may fill, only the stop is looked for.
    (LONG, "95", [], ["100", "106", "95"], ([], 102)),
    # SHORT mirrored: stop 105 above, target 95 below. 95 (101) first, then 105 (102).
    (SHORT, "105", ["95"], ["100", "95", "105"], ([(0, 101)], 102)),
    (SHORT, "105", ["95"], ["100", "105", "95"], ([], 101)),
    # The tape never reaches the adverse level (walk alone: a target-only candle).
    (LONG, "95", ["105"], ["100", "106", "101"], ([(0, 101)], None)),
])
def test_the_first_trade_at_or_beyond_a_level_decides(side: Side, adverse: str, targets: list[str],
                                                      prices: list[str], expected: tuple[object, object]) -> None:
    assert summary(walk(side, D(adverse), [D(t) for t in targets], tape(*prices))) == expected


def test_a_target_fill_keeps_the_target_price_and_the_trade() -> None:
    """A take-profit fills at exactly its price, whatever the trade that reached it traded at:
    target 105 reached by a trade at 106 fills at 105, and the verdict keeps trade 101 (106, 10:00:01)."""
    verdict = walk(LONG, D(95), [D(105)], tape("100", "106", "95"))
    fill = verdict.targets[0]
    assert (fill.price, fill.trade.price, fill.trade.time) == (D(105), D(106), T0 + timedelta(seconds=1))
    assert verdict.ledger_data() == {
        "tape_targets": [{"target": 0, "price": D(105), "trade_id": 101, "trade_price": D(106),
                          "trade_time": T0 + timedelta(seconds=1)}],
        "tape_adverse": {"trade_id": 102, "trade_price": D(95), "trade_time": T0 + timedelta(seconds=2)},
    }
    assert to_data(verdict.ledger_data())["tape_adverse"] == {"trade_id": 102, "trade_price": "95",
                                                              "trade_time": "2024-03-01T10:00:02.000000Z"}
    assert to_data(walk(LONG, D(95), [D(105)], tape("100", "101")).ledger_data()) == {"tape_targets": [],
                                                                                       "tape_adverse": None}


def test_decide_checks_the_tape_then_walks_it() -> None:
    trades = tape("100", "106", "95", "101")
    assert summary(decide(candle_of(trades), MINUTE, LONG, D(95), [D(105)], trades)) == ([(0, 101)], 102)


def spoilt(kind: str) -> tuple[Candle, list[AggTrade]]:
    good = tape("100", "106", "95", "101")
    candle = candle_of(good)
    if kind == "empty":
        return candle, []
    if kind == "truncated":  # trade 102 missing
        return candle, [good[0], good[1], good[3]]
    if kind == "ids out of order":
        return candle, [good[1], good[0], *good[2:]]
    if kind == "times out of order":
        return candle, [good[0], AggTrade(101, D(106), D(1), T0 + timedelta(seconds=5)), good[2], good[3]]
    if kind == "above the high":
        return candle, [*good[:3], AggTrade(103, D(107), D(1), T0 + timedelta(seconds=3))]
    if kind == "below the low":
        return candle, [*good[:3], AggTrade(103, D(94), D(1), T0 + timedelta(seconds=3))]
    if kind == "before the candle":
        return candle, [AggTrade(100, D(100), D(1), T0 - timedelta(milliseconds=1)), *good[1:]]
    if kind == "after the candle":
        return candle, [*good[:3], AggTrade(103, D(101), D(1), T0 + MINUTE)]
    if kind == "never reaches the low":  # the candle says 94: trades are missing
        return Candle(T0, D(100), D(106), D(94), D(101)), good
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("empty", "no trades"),
    ("truncated", "truncated"),
    ("ids out of order", "out of order"),
    ("times out of order", "out of order"),
    ("above the high", "outside the candle's range"),
    ("below the low", "outside the candle's range"),
    ("before the candle", "outside the candle"),
    ("after the candle", "outside the candle"),
])
def test_a_tape_the_candle_contradicts_is_refused(kind: str, message: str) -> None:
    candle, trades = spoilt(kind)
    with pytest.raises(InconsistentTape, match=message):
        check_tape(candle, MINUTE, trades)
    with pytest.raises(InconsistentTape):
        decide(candle, MINUTE, LONG, D(95), [D(105)], trades)


def test_a_tape_that_misses_the_adverse_level_the_candle_reaches_is_refused() -> None:
    """The candle's low (94) is below the stop (94.5) but no trade of its tape is: trades are
    missing, and the verdict would say the stop was never reached. A tape short of an extreme
    the levels do not depend on is accepted (futures tapes leave some trades out)."""
    candle, trades = spoilt("never reaches the low")
    check_tape(candle, MINUTE, trades)
    with pytest.raises(InconsistentTape, match="no trade of its tape does"):
        decide(candle, MINUTE, LONG, D("94.5"), [D(105)], trades)
    decide(candle, MINUTE, LONG, D(95), [D(105)], trades)


def test_the_first_trade_need_not_be_the_open() -> None:
    """Documented choice: only the range is enforced, not first = open / last = close."""
    trades = tape("101", "106", "95", "100")
    check_tape(Candle(T0, D(100), D(106), D(95), D(101)), MINUTE, trades)
    assert summary(decide(Candle(T0, D(100), D(106), D(95), D(101)), MINUTE, LONG, D(95), [D(105)], trades)) == (
        [(0, 101)], 102)


def test_a_candle_opening_through_the_stop_needs_a_tape_that_does_too() -> None:
    """The candle opens at 94, below the stop at 95: the stop was reached first, at the open.
    A tape starting at 101 that reaches 106 before 94 contradicts it."""
    trades = tape("101", "106", "94", "100")
    with pytest.raises(InconsistentTape, match="opens through"):
        decide(Candle(T0, D(94), D(106), D(94), D(100)), MINUTE, LONG, D(95), [D(105)], trades)
    good = tape("94", "106", "100")
    assert summary(decide(candle_of(good), MINUTE, LONG, D(95), [D(105)], good)) == ([], 100)


prices = st.integers(min_value=90, max_value=110).map(D)


@given(st.lists(prices, min_size=1, max_size=40), st.sampled_from([LONG, SHORT]))
def test_the_verdict_is_the_first_crossing(path: list[D], side: Side) -> None:
    """Against a plain reading of the rule: the adverse trade is the first at or beyond the
    level, every fill comes before it, and each fill's trade is the first to reach its target."""
    trades = tape(*map(str, path))
    adverse, targets = (D(95), [D(103), D(106)]) if side is LONG else (D(105), [D(97), D(94)])
    verdict = walk(side, adverse, targets, trades)
    hit = [t for t in trades if (t.price <= adverse if side is LONG else t.price >= adverse)]
    assert verdict.adverse == (hit[0] if hit else None)
    stop_at = verdict.adverse.id if verdict.adverse else trades[-1].id + 1
    for index, target in enumerate(targets):
        reached = [t for t in trades if t.id < stop_at and (t.price >= target if side is LONG else t.price <= target)]
        fills = [f for f in verdict.targets if f.index == index]
        assert fills == ([] if not reached else [fills[0]])
        if reached:
            assert fills[0].trade == reached[0] and fills[0].price == target
