"""Time: the one place that reads the clocks — the wall clock (`utcnow`; everything else takes
`now` as an argument) and the monotonic one for durations (`monotonic`) — and the conversions to
and from the exchange's epoch milliseconds."""

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Clock = Callable[[], datetime]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def monotonic() -> float:
    """Seconds on a clock that never jumps (for timeouts and ages, not for timestamps)."""
    return time.monotonic()


def seconds_ago(seconds: float) -> str:
    """An age as people read it: "12 s ago", "4 min ago", "3 h ago", "2 d ago"."""
    whole = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if whole >= size:
            return f"{whole // size} {unit} ago"
    return f"{whole} s ago"


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware time (Binance's time format)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: times must be timezone-aware UTC")
    return (moment - EPOCH) // ONE_MS


def from_ms(millis: int) -> datetime:
    # timedelta arithmetic, not fromtimestamp(ms / 1000): a float would round some milliseconds.
    return EPOCH + millis * ONE_MS
