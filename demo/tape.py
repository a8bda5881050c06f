"""The simulated exchange's trade tape and funding history, made up from its candles.

Deterministic: the same candles give the same trades and the same funding events, whoever
asks and in whatever order.

Trades: every candle has `per_candle` aggregate trades (at least 4), ids numbered without gaps
across candles (candle i holds ids i·per_candle … i·per_candle + per_candle − 1), times spread
over the candle. Their prices walk open → first extreme → second extreme → close in straight
lines on the candle's own price grid: the first trade is the open, the last the close, and
the walk touches the high and the low, never leaving [low, high]. Which extreme comes first
is the candle's own (`LOW_FIRST` for a candle that closes at or above its open: the usual
reading of a rising candle, `HIGH_FIRST` otherwise) unless a test forces it.

Funding: an event every 8 h (00:00, 08:00, 16:00 UTC) once a candle has closed at that time,
with a small rate taken from `RATES` by the time and the symbol, and markPrice = the close of
the candle ending at that time.
"""

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

# The same row as demo.exchange.Row (open ms, o, h, l, c, volume); not imported from there,
# since demo.exchange imports this module.
Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]

LOW_FIRST, HIGH_FIRST = "low_first", "high_first"
ORDERS = (LOW_FIRST, HIGH_FIRST)
DEFAULT_TRADES_PER_CANDLE = 8
FUNDING_PERIOD_MS = 8 * 3600 * 1000
# Per 8 h, as Binance's USDⓈ-M perpetuals usually pay: mostly the 0.01 % baseline.
RATES = ("0.00010000", "0.00010000", "0.00005000", "-0.00002500", "0.00012000", "0.00003000", "0.00010000")
# Ways a test can spoil a tape (`SimulatedExchange.tape_faults`) or a funding answer.
TAPE_FAULTS = ("empty", "truncated", "out_of_order", "outside")
FUNDING_FAULTS = ("missing_field", "no_mark_price")


def natural_order(row: Row) -> str:
    """A rising (or flat) candle dips first, then rallies; a falling one the other way round."""
    return LOW_FIRST if row[4] >= row[1] else HIGH_FIRST


def _grid(row: Row) -> Decimal:
    """The finest price step among the candle's own four prices (its tick, as far as we can tell)."""
    exponent = min(int(price.as_tuple().exponent) for price in row[1:5])
    return Decimal(1).scaleb(exponent)


def candle_prices(row: Row, count: int, order: str) -> list[Decimal]:
    """`count` prices: open, (straight line) first extreme, second extreme, close."""
    if count < 4:
        raise ValueError("a candle's tape needs at least 4 trades (open, high, low, close)")
    _, open_, high, low, close = row[:5]
    first, second = (low, high) if order == LOW_FIRST else (high, low)
    marks = [(0, open_), (count // 3, first), (2 * count // 3, second), (count - 1, close)]
    grid = _grid(row)
    prices: list[Decimal] = []
    for (start, a), (end, b) in zip(marks, marks[1:]):
        steps = end - start
        prices.extend((a + (b - a) * k / steps).quantize(grid) for k in range(steps))
    prices.append(close)
    return prices


def trade_json(trade_id: int, price: Decimal, time_ms: int, spot: bool) -> dict[str, Any]:
    """Binance's aggregate trade: {"a", "p", "q", "f", "l", "T", "m"} (+ "M" on spot)."""
    entry: dict[str, Any] = {"a": trade_id, "p": format(price, "f"), "q": f"{Decimal(1 + trade_id % 7) / 1000:.3f}",
                             "f": 2 * trade_id, "l": 2 * trade_id + 1, "T": time_ms, "m": trade_id % 2 == 0}
    if spot:
        entry["M"] = True
    return entry


def candle_trades(index: int, row: Row, length_ms: int, per_candle: int, order: str,
                  spot: bool) -> list[dict[str, Any]]:
    """The aggregate trades of the candle at `index` of its series."""
    prices = candle_prices(row, per_candle, order)
    first_id = index * per_candle
    return [trade_json(first_id + j, price, row[0] + j * length_ms // per_candle, spot)
            for j, price in enumerate(prices)]


def spoil(trades: list[dict[str, Any]], fault: str) -> list[dict[str, Any]]:
    """One page of trades spoilt the way `fault` says (for the client's bad-tape tests)."""
    if fault == "empty":
        return []
    if not trades:
        return trades
    spoilt = [dict(t) for t in trades]
    middle = len(spoilt) // 2
    if fault == "truncated":  # a trade missing in the middle: a gap in the ids
        return spoilt[:middle] + spoilt[middle + 1:] if len(spoilt) > 2 else spoilt[:1]
    if fault == "out_of_order":
        if len(spoilt) > 1:
            spoilt[0], spoilt[1] = spoilt[1], spoilt[0]
        return spoilt
    if fault == "outside":  # a price no candle of this tape reaches
        spoilt[middle]["p"] = format(max(Decimal(t["p"]) for t in spoilt) * 2, "f")
        return spoilt
    raise ValueError(f"unknown tape fault {fault!r} (one of {', '.join(TAPE_FAULTS)})")


def funding_rate(symbol: str, time_ms: int) -> str:
    return RATES[(time_ms // FUNDING_PERIOD_MS + sum(map(ord, symbol))) % len(RATES)]


def funding_events(symbol: str, rows: Sequence[Row], length_ms: int, closed_by_ms: int, start_ms: int,
                   end_ms: int) -> Iterator[dict[str, Any]]:
    """The funding events with start_ms <= fundingTime <= end_ms, ascending: one at each 8 h
    boundary where a candle of `rows` (one series, ascending) ends, once it has closed by
    `closed_by_ms`; Binance's {"symbol", "fundingTime", "fundingRate", "markPrice"}."""
    if not rows:
        return
    first = max(start_ms, rows[0][0] + length_ms)
    last = min(end_ms, rows[-1][0] + length_ms, closed_by_ms)
    boundary = -(-first // FUNDING_PERIOD_MS) * FUNDING_PERIOD_MS  # the first at or after `first`
    while boundary <= last:
        index = bisect_left(rows, boundary - length_ms, key=lambda row: row[0])
        if index < len(rows) and rows[index][0] == boundary - length_ms:  # no candle there: no event
            yield {"symbol": symbol, "fundingTime": boundary, "fundingRate": funding_rate(symbol, boundary),
                   "markPrice": f"{rows[index][4]:.8f}"}
        boundary += FUNDING_PERIOD_MS
