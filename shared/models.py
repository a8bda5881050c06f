"""The tables of signalproof, and nothing else (their kinds are in `shared.kinds`; queries live beside them).

Data flows one way: bot → `signal` → worker → `trade` + `event` → site (read-only).
"""

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from shared.columns import EnumText, Money, UtcDateTime
from shared.kinds import (  # noqa: F401  (re-exported: the tables' kinds)
    ACTIVE_STATUSES, CLOSED_STATUSES, EntryMode, Market, Origin, Side, SignalStatus, TradeStatus,
)


def _utc(**kw: object) -> object:
    return Field(sa_type=UtcDateTime, **kw)  # type: ignore[arg-type]


def _money(**kw: object) -> object:
    return Field(sa_type=Money, **kw)  # type: ignore[arg-type]


def _kind(kind: type, *, strict: bool = True, **kw: object) -> object:
    return Field(sa_type=EnumText(kind, strict=strict), **kw)  # type: ignore[arg-type]


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
    # Lenient: a bot's direct insert may hold any text here (the worker rejects what it cannot read).
    status: SignalStatus | str = _kind(SignalStatus, strict=False, default=SignalStatus.NEW, index=True,
                                       sa_column_kwargs={"server_default": SignalStatus.NEW.value})
    reason: str | None = None
    origin: Origin | None = _kind(Origin, strict=False, default=None)
    raw: str | None = None  # the original row (JSON) for imported and polled signals
    processed_at: datetime | None = _utc(default=None)
    received_seq: int | None = None  # the ledger entry (signal.received) that committed it


class Trade(SQLModel, table=True):
    """A system trade: one per accepted signal, with the settings it was opened with."""

    __table_args__ = (sa.Index("ix_trade_market_symbol", "market", "symbol"),
                      sa.Index("ix_trade_origin_signal_time", "origin", "signal_time"))

    id: int | None = Field(default=None, primary_key=True)
    signal_pk: int = Field(foreign_key="signal.id", unique=True)
    source: str
    signal_id: str
    origin: Origin = _kind(Origin)
    symbol: str
    market: Market = _kind(Market)
    side: Side = _kind(Side)
    leverage: int
    signal_time: datetime = _utc()
    signal_entry: Decimal | None = _money(default=None)
    take_profit: Decimal = _money()
    stop_loss: Decimal = _money()
    # Settings in force when the signal was processed; later changes never touch this trade.
    stake_usd: Decimal = _money()
    fee_rate: Decimal = _money()
    entry_mode: EntryMode = _kind(EntryMode)
    slippage_bps: Decimal = _money()
    maintenance_margin_rate: Decimal = _money()
    pending_expiry_hours: Decimal = _money()
    max_trade_hours: Decimal = _money()
    candle_interval: str
    # Several targets (docs/trade-rules.md): the split and stop rule in force when it opened, and
    # with a split, its targets and their shares of the position (";"-separated, in order).
    tp_split: str = Field(default="single", sa_column_kwargs={"server_default": "single"})
    stop_after_tp: str = Field(default="none", sa_column_kwargs={"server_default": "none"})
    targets: str | None = None
    shares: str | None = None
    # Life cycle.
    status: TradeStatus = _kind(TradeStatus, index=True)
    reason: str | None = None
    entry_time: datetime | None = _utc(default=None)
    entry_price: Decimal | None = _money(default=None)
    exit_time: datetime | None = _utc(default=None, index=True)
    exit_price: Decimal | None = _money(default=None)
    fees_usd: Decimal | None = _money(default=None)
    pnl_usd: Decimal | None = _money(default=None)
    pnl_pct: Decimal | None = _money(default=None)
    ambiguous: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    targets_hit: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    resolution: str = Field(default="candle", sa_column_kwargs={"server_default": "candle"})  # candle, trades, assumed
    # Futures funding (docs/trade-rules.md): whether it applies to this trade (the `futures_funding`
    # setting when it opened), and what it paid (+) or cost (−), part of pnl_usd.
    futures_funding: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    funding_usd: Decimal = _money(default=Decimal(0), sa_column_kwargs={"server_default": "0"})
    last_candle_time: datetime | None = _utc(default=None)  # open time of the last candle checked
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    version: int = Field(default=0)  # optimistic lock: every update is `WHERE version = old`


class TradeFill(SQLModel, table=True):
    """One exit of a part of a trade's position: a target reached, or the rest closed (stop-loss,
    liquidation, expiry, owner). A closed trade's fills add up to its fees and P/L."""

    __tablename__ = "trade_fill"

    id: int | None = Field(default=None, primary_key=True)
    trade_id: int = Field(foreign_key="trade.id", index=True)
    time: datetime = _utc()
    kind: str = Field(max_length=16)  # tp1, tp2, ..., sl, liquidated, expired, manual
    price: Decimal = _money()
    share: Decimal = _money()  # of the position's quantity, 0–1
    fees_usd: Decimal = _money()
    pnl_usd: Decimal = _money()


class Event(SQLModel, table=True):
    """The ledger: every state change, hash-chained (shared/ledger.py, docs/ledger.md).

    `id` is the entry's seq, given by `shared.events.record` (1, 2, 3 … without gaps, never by
    the database); `at` its time; `data` the canonical JSON of its data object, which repeats
    `actor`, `message`, `trade_id` and `signal_pk` (the columns are there to query by).
    `hash` is over (seq, time, kind, data, prev). Rows are inserted, never updated.
    """

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    kind: str = Field(index=True)  # e.g. signal.received, trade.closed, settings.changed
    actor: str = "worker"
    signal_pk: int | None = None
    trade_id: int | None = Field(default=None, index=True)
    message: str
    data: str | None = None  # canonical JSON of the entry's data
    prev: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class RuntimeSettings(SQLModel, table=True):
    """The one row of settings the owner edits at run time (defaults = docs/configuration.md)."""

    __tablename__ = "runtime_settings"

    id: int = Field(default=1, primary_key=True)
    stake_usd: Decimal = _money(default=Decimal("100"))
    entry_mode: EntryMode = _kind(EntryMode, default=EntryMode.MARKET)
    take_profit_target: int = 1
    tp_split: str = Field(default="single", sa_column_kwargs={"server_default": "single"})
    stop_after_tp: str = Field(default="none", sa_column_kwargs={"server_default": "none"})
    futures_funding: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
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


class StoredCandle(SQLModel, table=True):
    """A closed kline the worker fetched, kept so the site can draw a trade's life without
    calling the exchange (shared/candle_store.py: what is kept and for how long)."""

    __tablename__ = "candle"

    market: str = Field(primary_key=True, max_length=16)
    symbol: str = Field(primary_key=True)
    interval: str = Field(primary_key=True, max_length=8)
    open_time: datetime = _utc(primary_key=True)
    open: Decimal = _money()
    high: Decimal = _money()
    low: Decimal = _money()
    close: Decimal = _money()


class LoginThrottle(SQLModel, table=True):
    """Failed owner logins, so the settings page slows guessing down even across restarts.

    One row per client address, and one for the whole site (client "*"), which slows down a
    guesser spread over many addresses too (see site/track_record/auth.py).
    """

    __tablename__ = "login_throttle"

    client: str = Field(primary_key=True, max_length=64)
    failures: int = 0  # consecutive failures since the last success (forgotten after an hour)
    last_failure_at: datetime | None = _utc(default=None)


class Checkpoint(SQLModel, table=True):
    """The ledger's head at one moment, signed when the worker has a signing key, and what the
    anchor command (which publishes it somewhere public) made of it (worker/checkpoints.py)."""

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    hash: str = Field(max_length=64)
    time: datetime = _utc()
    signature: str | None = None  # base64 Ed25519 over the RFC 8785 bytes of {seq, hash, time}
    public_key: str | None = None  # base64 of the key that signed it
    anchor_status: str | None = None  # none, ok, failed, timeout (None: no anchor command set)
    anchor_detail: str | None = None  # exit status and first line of the anchor's output, cut short
    created_at: datetime = _utc()


# --- summaries: what the public numbers are computed from (shared/summaries.py keeps them) ---


class DaySummary(SQLModel, table=True):
    """The closed trades of one UTC day (by exit time): their `rollup.Tally` and `rollup.Stretch`,
    for every trade (scope "all") and for live signals only ("live")."""

    __tablename__ = "summary_day"

    scope: str = Field(primary_key=True, max_length=8)
    day: date = Field(primary_key=True)
    trades: int
    wins: int
    losses: int
    pnl: Decimal = _money()
    gross_profit: Decimal = _money()
    gross_loss: Decimal = _money()
    best: Decimal = _money()
    worst: Decimal = _money()
    ambiguous: int
    first_entry: datetime = _utc()  # the earliest entry of the day's exits (daily returns start there)
    last_exit: datetime = _utc()
    high: Decimal = _money()  # the stretch: offsets from the equity at the start of the day
    high_time: datetime | None = _utc(default=None)  # None: the start of the day
    low: Decimal = _money()
    low_at: int
    low_time: datetime | None = _utc(default=None)
    fall: Decimal = _money()
    trough: Decimal = _money()
    trough_at: int
    win_lead: int
    win_tail: int
    win_run: int
    loss_lead: int
    loss_tail: int
    loss_run: int


class TradeBreakdown(SQLModel, table=True):
    """Ended trades (closed or cancelled) per origin, symbol, side and status: a `rollup.Tally`."""

    __tablename__ = "summary_breakdown"

    origin: str = Field(primary_key=True, max_length=16)
    symbol: str = Field(primary_key=True)
    side: str = Field(primary_key=True, max_length=8)
    status: str = Field(primary_key=True, max_length=32)
    trades: int
    wins: int
    losses: int
    pnl: Decimal = _money()
    gross_profit: Decimal = _money()
    gross_loss: Decimal = _money()
    best: Decimal | None = _money(default=None)
    worst: Decimal | None = _money(default=None)
    ambiguous: int


class DistributionBin(SQLModel, table=True):
    """Closed trades per origin and bin of P/L (`measure` "pnl", $0.10 wide, breakevens left
    out) or of time in trade ("hours", 20 bins per power of ten)."""

    __tablename__ = "summary_bin"

    origin: str = Field(primary_key=True, max_length=16)
    measure: str = Field(primary_key=True, max_length=8)
    bin: int = Field(primary_key=True)
    trades: int


class SummaryState(SQLModel, table=True):
    """The newest trade the summary tables know of (one row). Every trade is created through
    `trade_rows.record_opened`, which moves it on; a larger `max(trade.id)` means trades were
    written behind the worker's back, and the summaries are not to be trusted (`is_current`)."""

    __tablename__ = "summary_state"

    id: int = Field(default=1, primary_key=True)
    max_trade_id: int = 0
