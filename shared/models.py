"""The tables and the enums of signalproof, and nothing else (queries live beside them).

Data flows one way: bot → `signal` → worker → `trade` + `event` → site (read-only).
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from shared.columns import Money, UtcDateTime


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


def _utc(**kw: object) -> object:
    return Field(sa_type=UtcDateTime, **kw)  # type: ignore[arg-type]


def _money(**kw: object) -> object:
    return Field(sa_type=Money, **kw)  # type: ignore[arg-type]


class Signal(SQLModel, table=True):
    """One trade idea exactly as received, plus what became of it.

    Bots may insert rows directly with status NEW (see the README); every column a bot
    does not know has a server default.
    """

    __table_args__ = (sa.UniqueConstraint("source", "signal_id", name="uq_signal_source_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(sa_column_kwargs={"server_default": "default"})
    signal_id: str
    time: datetime | None = _utc(default=None)
    received_at: datetime | None = _utc(
        default=None, nullable=False, sa_column_kwargs={"server_default": sa.func.current_timestamp()}
    )
    symbol: str | None = None
    side: str | None = None
    market: str | None = Field(default=None, sa_column_kwargs={"server_default": Market.SPOT.value})
    entry: Decimal | None = _money(default=None)
    take_profit: str | None = None  # one or more targets, ";"-separated, in the bot's order
    stop_loss: Decimal | None = _money(default=None)
    leverage: int | None = Field(default=None, sa_column_kwargs={"server_default": "1"})
    confidence: Decimal | None = _money(default=None)
    note: str | None = None
    status: str = Field(default=SignalStatus.NEW, index=True, sa_column_kwargs={"server_default": SignalStatus.NEW.value})
    reason: str | None = None
    origin: str | None = None
    raw: str | None = None  # the original row (JSON) for imported and polled signals
    processed_at: datetime | None = _utc(default=None)


class Trade(SQLModel, table=True):
    """A system trade: one per accepted signal, with the settings it was opened with."""

    __table_args__ = (sa.Index("ix_trade_market_symbol", "market", "symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    signal_pk: int = Field(foreign_key="signal.id", unique=True)
    source: str
    signal_id: str
    origin: str
    symbol: str
    market: str
    side: str
    leverage: int
    signal_time: datetime = _utc()
    signal_entry: Decimal | None = _money(default=None)
    take_profit: Decimal = _money()
    stop_loss: Decimal = _money()
    # Settings in force when the signal was processed; later changes never touch this trade.
    stake_usd: Decimal = _money()
    fee_rate: Decimal = _money()
    entry_mode: str
    slippage_bps: Decimal = _money()
    maintenance_margin_rate: Decimal = _money()
    pending_expiry_hours: Decimal = _money()
    max_trade_hours: Decimal = _money()
    candle_interval: str
    # Life cycle.
    status: str = Field(index=True)
    reason: str | None = None
    entry_time: datetime | None = _utc(default=None)
    entry_price: Decimal | None = _money(default=None)
    exit_time: datetime | None = _utc(default=None, index=True)
    exit_price: Decimal | None = _money(default=None)
    fees_usd: Decimal | None = _money(default=None)
    pnl_usd: Decimal | None = _money(default=None)
    pnl_pct: Decimal | None = _money(default=None)
    ambiguous: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    last_candle_time: datetime | None = _utc(default=None)  # open time of the last candle checked
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    version: int = Field(default=0)  # optimistic lock: every update is `WHERE version = old`


class Event(SQLModel, table=True):
    """The append-only log of every state change. Rows are inserted, never updated."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    kind: str = Field(index=True)  # e.g. signal.rejected, trade.closed, settings.changed
    actor: str = "worker"
    signal_pk: int | None = None
    trade_id: int | None = Field(default=None, index=True)
    message: str
    data: str | None = None  # JSON


class RuntimeSettings(SQLModel, table=True):
    """The one row of settings the owner edits at run time (defaults = DESIGN.md)."""

    __tablename__ = "runtime_settings"

    id: int = Field(default=1, primary_key=True)
    stake_usd: Decimal = _money(default=Decimal("100"))
    entry_mode: str = EntryMode.MARKET.value
    take_profit_target: int = 1
    fee_rate_spot: Decimal = _money(default=Decimal("0.001"))
    fee_rate_futures: Decimal = _money(default=Decimal("0.0005"))
    slippage_bps: Decimal = _money(default=Decimal("0"))
    maintenance_margin_rate: Decimal = _money(default=Decimal("0.004"))
    pending_expiry_hours: Decimal = _money(default=Decimal("24"))
    max_trade_hours: Decimal = _money(default=Decimal("0"))
    candle_interval: str = "1m"
    starting_balance_usd: Decimal = _money(default=Decimal("1000"))
    min_confidence: Decimal = _money(default=Decimal("0"))
    markets: str = "SPOT,FUTURES"
    symbols_allow: str = ""
    symbols_deny: str = ""
    max_open_trades: int = 0
    one_per_symbol_side: bool = False
    paused: bool = False
    signal_feed_url: str = ""
    site_title: str = "signalproof"
    site_description: str = "The honest, verifiable track record of a crypto signal bot."
    updated_at: datetime | None = _utc(default=None)


class WorkerHeartbeat(SQLModel, table=True):
    """One row the worker keeps current, so the site can say how fresh the data is
    (written and judged in shared/heartbeat.py only)."""

    __tablename__ = "worker_heartbeat"

    id: int = Field(default=1, primary_key=True)
    started_at: datetime | None = _utc(default=None)
    last_tick_at: datetime | None = _utc(default=None)
    last_success_at: datetime | None = _utc(default=None)
    last_error: str | None = None
    last_error_at: datetime | None = _utc(default=None)
    behind_seconds: float | None = None  # how far the oldest unresolved trade lags real time
    pid: int | None = None
    hostname: str | None = None
    feed_last_poll_at: datetime | None = _utc(default=None)
    feed_last_error: str | None = None
    feed_received: int = 0
    # What waits for the exchange: set by the intake and the monitor, judged by shared.heartbeat.
    failing_since: datetime | None = _utc(default=None)  # first failure of the current streak
    waiting_signals: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # NEW, symbol unchecked
    stuck_trades: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # not updated by the last pass


class LatestPrice(SQLModel, table=True):
    """The last price the worker saw per symbol; open trades are marked to it."""

    __tablename__ = "latest_price"

    market: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    price: Decimal = _money()
    updated_at: datetime = _utc()


class LoginThrottle(SQLModel, table=True):
    """Failed owner logins, so the settings page slows guessing down even across restarts.

    One row per client address, and one for the whole site (client "*"), which slows down a
    guesser spread over many addresses too (see site/track_record/auth.py).
    """

    __tablename__ = "login_throttle"

    client: str = Field(primary_key=True, max_length=64)
    failures: int = 0  # consecutive failures since the last success (forgotten after an hour)
    last_failure_at: datetime | None = _utc(default=None)
