"""Candles (klines) and candle intervals, as plain values."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

# Binance kline intervals we accept for `candle_interval` (months are irregular: left out).
INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "3m": timedelta(minutes=3),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "8h": timedelta(hours=8),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
}


def interval_length(interval: str) -> timedelta:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise ValueError(f"unknown candle interval {interval!r} (one of {', '.join(INTERVALS)})") from None


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed kline. `open_time` is timezone-aware UTC; prices are exact decimals."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
