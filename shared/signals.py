"""Signals: validating them (docs/signals.md), and mapping a valid one to the signal table and
the ledger. Reading files and feed bodies into records is `shared.signal_files`.

Pure: no database, no HTTP, no wall clock — the moment a signal was received is an input.
All three ways in (file import, HTTP feed, rows a bot inserted directly) end in `validate`,
which returns either a `ValidSignal` or a `Rejection` with one human-readable reason; it
never raises on bad data, because a bad row must become a REJECTED row, not a crash.
"""

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from shared.kinds import Market, Origin, Side

SIGNAL_FIELDS = (
    "id", "time", "symbol", "side", "market", "entry", "take_profit",
    "stop_loss", "leverage", "confidence", "source", "note",
)  # fmt: skip

# Nothing this tracks has candles before this (Binance opened in July 2017): an older time is a
# mistake (year 1, the epoch), and would otherwise be traded at the first candle there is.
EARLIEST_TIME = datetime(2017, 1, 1, tzinfo=timezone.utc)
FUTURE_TOLERANCE = timedelta(minutes=5)  # bot and server clocks drift; beyond this it is an error
BACKFILL_AFTER = timedelta(minutes=10)  # older than this when received = not a live call
MAX_LEVERAGE = 125  # Binance's highest futures leverage
NOTE_MAX_CHARS = 1000
ID_MAX_CHARS = 200  # ids and sources are keys shown in tables, not free text
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{5,20}")
SYMBOL_SEPARATORS = str.maketrans("", "", "/-_")
# Plain decimal notation only: Decimal() alone would also take "1_000", "Infinity" and
# non-ASCII digits, none of which a bot means as a price.
NUMBER_PATTERN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DATE_ONLY_PATTERN = re.compile(r"[0-9]{4}-?(?:[0-9]{2}-?[0-9]{2}|W[0-9]{2}(?:-?[0-9])?)", re.I)
# Prices live far inside this range (BTC-quoted alts ~1e-10, BTC ~1e5); the bounds stop a
# value like 1e999999999 from turning into a gigabyte string when it is stored as text.
PRICE_MIN_EXPONENT, PRICE_MAX_EXPONENT, MAX_DIGITS = -18, 15, 40
# Epoch milliseconds for any real signal are ~1.7e12; a 10-digit number is epoch seconds.
MIN_EPOCH_MS = 100_000_000_000
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the end of datetime
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SHOWN_CHARS = 40


@dataclass(frozen=True)
class ValidSignal:
    source: str
    signal_id: str
    time: datetime  # timezone-aware UTC
    symbol: str
    side: Side
    market: Market
    entry: Decimal | None
    take_profits: tuple[Decimal, ...]  # in the bot's order; never empty
    stop_loss: Decimal
    leverage: int
    confidence: Decimal | None
    note: str | None
    origin: Origin

    def take_profit_for(self, target: int) -> Decimal:
        """The `target`-th take-profit (1-based); the last one when the signal has fewer."""
        if target < 1:
            raise ValueError(f"take-profit target numbers start at 1 (got {target})")
        return self.take_profits[min(target, len(self.take_profits)) - 1]


@dataclass(frozen=True)
class Rejection:
    source: str | None  # None when the source itself is what is wrong
    signal_id: str | None  # None when the id is missing or invalid
    reason: str


class _Invalid(Exception):
    """A field broke a rule; carries the reason. Never escapes this module."""


def shown(value: object) -> str:
    """A value quoted for a reason: escaped so control characters and HTML in it stay inert."""
    try:
        text = value if isinstance(value, str) else str(value)
    except ValueError:  # an int too long for str() (Python's 4300-digit limit)
        return "(a number too long to show)"
    cut = text[:SHOWN_CHARS]
    # A string is quoted like repr (so an empty or space-only value is visible); a number is not.
    quoted = ascii(cut) if isinstance(value, str) else ascii(cut)[1:-1]
    quoted = quoted.replace("<", "\\x3c").replace(">", "\\x3e").replace("&", "\\x26")
    return quoted + ("..." if len(text) > SHOWN_CHARS else "")


def _is_missing(value: object) -> bool:
    # CSV cannot say "null": an empty cell is how a missing value arrives from a file.
    return value is None or (isinstance(value, str) and not value.strip())


# --- one function per field, in the order the rules are checked -----------------------


def _identifier(value: object, field: str) -> str:
    """An id or source: text (or a number, as bots often use numeric ids), trimmed."""
    if _is_missing(value):
        raise _Invalid(f"{field} is required")
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise _Invalid(f"{field} must be text or a number (got {shown(value)})")
    try:
        text = value.strip() if isinstance(value, str) else str(value)
    except ValueError:
        raise _Invalid(f"{field} is too long") from None
    if len(text) > ID_MAX_CHARS:
        raise _Invalid(f"{field} is too long ({len(text)} characters, at most {ID_MAX_CHARS})")
    # PostgreSQL cannot store NUL, and a key with control characters cannot be displayed.
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise _Invalid(f"{field} must not contain control characters (got {shown(text)})")
    return text


def _epoch_ms(ms: Decimal, original: object) -> datetime:
    if not ms.is_finite():
        raise _Invalid(f"time must be finite epoch milliseconds (got {shown(original)})")
    if ms < MIN_EPOCH_MS:
        raise _Invalid(
            f"time {shown(original)} is too small for epoch milliseconds (epoch seconds given?)"
        )
    if ms > MAX_EPOCH_MS:
        raise _Invalid(f"time is out of range (got {shown(original)})")
    return EPOCH + timedelta(microseconds=int(ms * 1000))


def _utc_time(value: object) -> datetime:
    """ISO 8601 (offset, Z, or naive = UTC), epoch milliseconds, or a datetime (naive = UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool) or isinstance(value, date):
        raise _Invalid(f"time must be a date and time (got {shown(value)})")
    elif isinstance(value, (int, Decimal)):
        return _epoch_ms(Decimal(value), value)
    elif isinstance(value, float):
        return _epoch_ms(Decimal(str(value)), value)
    elif isinstance(value, str):
        text = value.strip()
        if NUMBER_PATTERN.fullmatch(text):
            return _epoch_ms(Decimal(text), value)
        if DATE_ONLY_PATTERN.fullmatch(text):
            raise _Invalid(f"time needs a time of day, not only a date (got {shown(value)})")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(
                "time must be ISO 8601 (e.g. 2024-05-01T12:00:00Z) or epoch milliseconds"
                f" (got {shown(value)})"
            ) from None
    else:
        raise _Invalid(f"time must be ISO 8601 text or epoch milliseconds (got {shown(value)})")
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise _Invalid(f"time is out of range (got {shown(value)})") from None


def normalise_symbol(text: str) -> str | None:
    """A symbol as the exchange names it: trimmed, upper-cased, `/ - _` removed ("eth/btc" →
    "ETHBTC"); None unless that is 5–20 ASCII letters and digits. The one rule for signals and
    for the settings' symbol lists."""
    symbol = text.strip().upper().translate(SYMBOL_SEPARATORS)
    # ASCII is required of the original: "ı".upper() == "I" would let a look-alike through.
    return symbol if text.isascii() and SYMBOL_PATTERN.fullmatch(symbol) else None


def _symbol(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"symbol must be text like BTCUSDT (got {shown(value)})")
    symbol = normalise_symbol(value)
    if symbol is None:
        raise _Invalid(
            f"symbol must be 5-20 letters and digits once / - _ are removed (got {shown(value)})"
        )
    return symbol


SIDES = {"LONG": Side.LONG, "BUY": Side.LONG, "SHORT": Side.SHORT, "SELL": Side.SHORT}


def _side(value: object) -> Side:
    side = SIDES.get(value.strip().upper()) if isinstance(value, str) else None
    if side is None:
        raise _Invalid(f"side must be LONG, SHORT, BUY or SELL (got {shown(value)})")
    return side


def _market(value: object) -> Market:
    if _is_missing(value):
        return Market.SPOT
    name = value.strip().upper() if isinstance(value, str) else None
    if name not in Market.__members__:
        raise _Invalid(f"market must be SPOT or FUTURES (got {shown(value)})")
    return Market(name)


def _decimal(value: object, field: str) -> Decimal:
    """An exact decimal: strings go straight to Decimal, never through float."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))  # the shortest repr: 0.1 stays 0.1
    elif isinstance(value, str) and NUMBER_PATTERN.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        raise _Invalid(f"{field} must be a number (got {shown(value)})")
    if not number.is_finite():
        raise _Invalid(f"{field} must be a finite number (got {shown(value)})")
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise _Invalid(f"{field} has too many digits (got {shown(value)})")
    return number


def _price(value: object, field: str) -> Decimal:
    price = _decimal(value, field)
    if price <= 0:
        raise _Invalid(f"{field} must be greater than 0 (got {shown(value)})")
    if not PRICE_MIN_EXPONENT <= price.adjusted() <= PRICE_MAX_EXPONENT:
        raise _Invalid(f"{field} is out of range (got {shown(value)})")
    return price


def _take_profits(value: object) -> tuple[Decimal, ...]:
    if _is_missing(value):
        raise _Invalid("take_profit is required")
    if isinstance(value, str):
        targets: list[object] = value.split(";")
    elif isinstance(value, (list, tuple)):
        targets = list(value)
    else:
        targets = [value]
    if not targets:
        raise _Invalid("take_profit is required")
    prices = []
    for number, target in enumerate(targets, start=1):
        field = "take_profit" if len(targets) == 1 else f"take_profit target {number}"
        if _is_missing(target):
            raise _Invalid(f"{field} is empty (got {shown(value)})")
        prices.append(_price(target, field))
    return tuple(prices)


def _check_levels(
    side: Side, entry: Decimal | None, targets: tuple[Decimal, ...], stop_loss: Decimal
) -> None:
    """LONG: stop_loss < entry < first target < second target ..., every target > stop_loss. SHORT mirrored."""

    def beyond(price: Decimal, level: Decimal) -> bool:  # "above" for a LONG, "below" for a SHORT
        return price > level if side is Side.LONG else price < level

    toward, away = ("below", "above") if side is Side.LONG else ("above", "below")
    if entry is not None:
        if not beyond(entry, stop_loss):
            raise _Invalid(
                f"stop_loss must be {toward} entry for a {side}"
                f" (got entry {entry}, stop_loss {stop_loss})"
            )
        if not beyond(targets[0], entry):
            raise _Invalid(
                f"take_profit must be {away} entry for a {side}"
                f" (got entry {entry}, take_profit {targets[0]})"
            )
    for number, target in enumerate(targets, start=1):
        if not beyond(target, stop_loss):
            name = "take_profit" if len(targets) == 1 else f"take_profit target {number}"
            raise _Invalid(
                f"{name} must be {away} stop_loss for a {side}"
                f" (got {name} {target}, stop_loss {stop_loss})"
            )
    for number in range(1, len(targets)):
        if not beyond(targets[number], targets[number - 1]):
            order = "increase" if side is Side.LONG else "decrease"
            raise _Invalid(
                f"take_profit targets must {order} for a {side}"
                f" (got target {number + 1} {targets[number]} after target {number} {targets[number - 1]})"
            )


def _leverage(value: object, market: Market) -> int:
    if _is_missing(value):
        return 1
    try:
        number = _decimal(value, "leverage")
    except _Invalid:
        number = None
    if number is None or number != number.to_integral_value() or not 1 <= number <= MAX_LEVERAGE:
        raise _Invalid(f"leverage must be a whole number 1-{MAX_LEVERAGE} (got {shown(value)})")
    leverage = int(number)
    if market is Market.SPOT and leverage != 1:
        raise _Invalid(f"leverage must be 1 on SPOT (got {leverage})")
    return leverage


def _confidence(value: object) -> Decimal | None:
    if _is_missing(value):
        return None
    confidence = _decimal(value, "confidence")
    if not 0 <= confidence <= 1:
        raise _Invalid(f"confidence must be between 0 and 1 (got {shown(value)})")
    return confidence


def _note(value: object) -> str | None:
    if _is_missing(value):
        return None
    try:
        text = value if isinstance(value, str) else str(value)
    except ValueError:
        return None
    # Kept as plain data (the site escapes it); only NUL goes, which PostgreSQL cannot store.
    return text.replace("\x00", "")[:NOTE_MAX_CHARS] or None


# --- the rules, in their order ---------------------------------------------------------


def validate(
    raw: Mapping[str, object], *, received_at: datetime, default_source: str = "default"
) -> ValidSignal | Rejection:
    """Apply every rule of docs/signals.md; the first broken one, in a stable order
    (id, source, time, symbol, side, market, prices, leverage, confidence), is the reason."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")  # a caller bug, not bad data
    try:
        signal_id = _identifier(raw.get("id"), "id")
        source = _source(raw.get("source"), default_source)
        return _validated(raw, signal_id, source, received_at)
    except _Invalid as problem:
        # The rejected row is stored under whichever of its keys are themselves valid.
        return Rejection(
            source=_valid_or_none(lambda: _source(raw.get("source"), default_source)),
            signal_id=_valid_or_none(lambda: _identifier(raw.get("id"), "id")),
            reason=str(problem),
        )


def _source(value: object, default_source: str) -> str:
    return default_source if _is_missing(value) else _identifier(value, "source")


def _valid_or_none(parse: Callable[[], str]) -> str | None:
    try:
        return parse()
    except _Invalid:
        return None


def _validated(
    raw: Mapping[str, object], signal_id: str, source: str, received_at: datetime
) -> ValidSignal:
    if _is_missing(raw.get("time")):
        raise _Invalid("time is required")
    time = _utc_time(raw.get("time"))
    if time < EARLIEST_TIME:
        raise _Invalid(
            f"time is too old ({time.isoformat()} is before {EARLIEST_TIME.isoformat()},"
            " earlier than any exchange history)"
        )
    if time - received_at > FUTURE_TOLERANCE:
        raise _Invalid(
            f"time is in the future ({time.isoformat()} is more than 5 minutes after it was"
            f" received at {received_at.astimezone(timezone.utc).isoformat()})"
        )
    if _is_missing(raw.get("symbol")):
        raise _Invalid("symbol is required")
    symbol = _symbol(raw.get("symbol"))
    if _is_missing(raw.get("side")):
        raise _Invalid("side is required")
    side = _side(raw.get("side"))
    market = _market(raw.get("market"))
    entry = None if _is_missing(raw.get("entry")) else _price(raw.get("entry"), "entry")
    take_profits = _take_profits(raw.get("take_profit"))
    if _is_missing(raw.get("stop_loss")):
        raise _Invalid("stop_loss is required")
    stop_loss = _price(raw.get("stop_loss"), "stop_loss")
    _check_levels(side, entry, take_profits, stop_loss)
    return ValidSignal(
        source=source,
        signal_id=signal_id,
        time=time,
        symbol=symbol,
        side=side,
        market=market,
        entry=entry,
        take_profits=take_profits,
        stop_loss=stop_loss,
        leverage=_leverage(raw.get("leverage"), market),
        confidence=_confidence(raw.get("confidence")),
        note=_note(raw.get("note")),
        origin=Origin.BACKFILL if received_at - time > BACKFILL_AFTER else Origin.LIVE,
    )


# --- the signal table, both directions ---------------------------------------------------


def to_row_values(signal: ValidSignal) -> dict[str, object]:
    """The `signal` table's column values for a valid signal (shared.models.Signal)."""
    return {
        "source": signal.source,
        "signal_id": signal.signal_id,
        "time": signal.time,
        "symbol": signal.symbol,
        "side": signal.side,
        "market": signal.market,
        "entry": signal.entry,
        "take_profit": ";".join(format(target, "f") for target in signal.take_profits),
        "stop_loss": signal.stop_loss,
        "leverage": signal.leverage,
        "confidence": signal.confidence,
        "note": signal.note,
        "origin": signal.origin,
    }


def ledger_data(signal: ValidSignal, *, received_at: datetime) -> dict[str, object]:
    """The whole normalised signal as its `signal.received` ledger entry holds it (export column
    names where there is one: `signal_id`, `signal_time`; every target, in the bot's order)."""
    return {
        "source": signal.source, "signal_id": signal.signal_id, "signal_time": signal.time,
        "symbol": signal.symbol, "side": signal.side, "market": signal.market, "entry": signal.entry,
        "take_profit": list(signal.take_profits), "stop_loss": signal.stop_loss, "leverage": signal.leverage,
        "confidence": signal.confidence, "note": signal.note, "origin": signal.origin, "received_at": received_at,
    }


def row_to_raw(signal_row: Any) -> dict[str, object]:
    """The `validate` input for a row of the signal table (a bot may have inserted it)."""
    raw: dict[str, object] = {"id": getattr(signal_row, "signal_id", None)}
    for field in SIGNAL_FIELDS[1:]:
        raw[field] = getattr(signal_row, field, None)
    return raw
