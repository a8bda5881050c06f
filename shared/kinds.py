"""The domain's kinds: sides, markets, entry modes, statuses, origins.

Plain enums with no persistence import, so the pure core (exits, signals, admission, metrics)
uses them without pulling in SQLModel. The tables store each member as its text
(`shared.columns.EnumText`), exactly as before these were enums.
"""

from enum import StrEnum


class Side(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def sign(self) -> int:
        return 1 if self is Side.LONG else -1


class Market(StrEnum):
    SPOT = "SPOT"
    FUTURES = "FUTURES"


class EntryMode(StrEnum):
    MARKET = "market"
    SIGNAL = "signal"
    LIMIT = "limit"


class SignalStatus(StrEnum):
    NEW = "NEW"  # stored, not yet looked at by the worker
    ACCEPTED = "ACCEPTED"  # became a trade
    REJECTED = "REJECTED"  # invalid; `reason` says why
    SKIPPED = "SKIPPED"  # valid, but filtered out by the runtime settings; `reason` says which


class Origin(StrEnum):
    LIVE = "live"
    BACKFILL = "backfill"


class TradeStatus(StrEnum):
    PENDING = "PENDING"
    OPEN = "OPEN"
    CLOSED_TP = "CLOSED_TP"
    CLOSED_SL = "CLOSED_SL"
    CLOSED_EXPIRED = "CLOSED_EXPIRED"
    CLOSED_MANUAL = "CLOSED_MANUAL"
    LIQUIDATED = "LIQUIDATED"
    CANCELLED = "CANCELLED"

    @property
    def is_active(self) -> bool:
        return self in (TradeStatus.PENDING, TradeStatus.OPEN)

    @property
    def is_closed(self) -> bool:
        """Counted in the metrics: every CLOSED_* and LIQUIDATED."""
        return self.startswith("CLOSED_") or self is TradeStatus.LIQUIDATED


ACTIVE_STATUSES = tuple(s.value for s in TradeStatus if s.is_active)
CLOSED_STATUSES = tuple(s.value for s in TradeStatus if s.is_closed)
