"""The one place that reads the wall clock. Everything else takes `now` as an argument."""

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def seconds_ago(seconds: float) -> str:
    """An age as people read it: "12 s ago", "4 min ago", "3 h ago", "2 d ago"."""
    whole = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if whole >= size:
            return f"{whole // size} {unit} ago"
    return f"{whole} s ago"
