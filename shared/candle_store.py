"""The candle store: closed klines the worker already fetched, kept for the site.

The site never calls the exchange. To draw a trade's life on its candles, and BTCUSDT
buy-and-hold beside the equity curve, it reads candles the worker stored here.
One row per (market, symbol, interval, open time); writing the same candle again changes nothing.
"""

from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, select

from shared.candles import Candle
from shared.kinds import Market
from shared.models import StoredCandle

BENCHMARK_SYMBOL = "BTCUSDT"
BENCHMARK_MARKET = Market.SPOT
BENCHMARK_INTERVAL = "1d"


def candles(market: str, symbol: str, interval: str, since: datetime, until: datetime, *,
            session: Session) -> list[Candle]:
    """The stored candles opening in [since, until], oldest first."""
    rows = session.exec(
        select(StoredCandle)
        .where(StoredCandle.market == market, StoredCandle.symbol == symbol, StoredCandle.interval == interval,
               StoredCandle.open_time >= since, StoredCandle.open_time <= until)
        .order_by(StoredCandle.open_time)
    )
    return [Candle(r.open_time, r.open, r.high, r.low, r.close) for r in rows]


def benchmark_closes(since: datetime, until: datetime, *, session: Session) -> list[tuple[datetime, Decimal]]:
    """BTCUSDT spot daily candles opening in [since, until]: (open time, close), oldest first."""
    return [(c.open_time, c.close) for c in candles(BENCHMARK_MARKET.value, BENCHMARK_SYMBOL, BENCHMARK_INTERVAL,
                                                     since, until, session=session)]
