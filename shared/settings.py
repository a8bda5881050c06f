"""Runtime settings: one typed row the owner edits while everything runs.

The worker re-reads the row every tick, so a change applies without a restart. Every change is
validated here, for the CLI and the settings page alike, and logged as a public event.
"""

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session

from shared import events
from shared.candles import INTERVALS
from shared.database import single_row
from shared.models import EntryMode, Market, RuntimeSettings
from shared.signals import normalise_symbol, shown
from shared.targets import SplitError, StopRule, parse_split

# Far beyond any real stake, fee or rate, and what keeps a value storable: PostgreSQL's
# NUMERIC refuses absurd scales ("1e-999999") and SQLite stores the digits as text.
MAX_NUMBER_CHARS = 50
MAX_DECIMAL_PLACES = 18


class SettingError(ValueError):
    """A setting key or value the owner should correct; the message says how."""


def _decimal(low: Decimal, high: Decimal | None = None, *, low_open: bool = False) -> Callable[[str], Decimal]:
    def parse(text: str) -> Decimal:
        if len(text.strip()) > MAX_NUMBER_CHARS:
            raise SettingError(f"{text[:20]!r}... is too long for a number")
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise SettingError(f"{text!r} is not a number") from None
        if not value.is_finite() or (value <= low if low_open else value < low) or (high is not None and value > high):
            bound = f"{'above' if low_open else 'at least'} {low}" + (f" and at most {high}" if high is not None else "")
            raise SettingError(f"{text!r} is out of range: must be {bound}")
        if value and _decimal_places(value) > MAX_DECIMAL_PLACES:
            raise SettingError(f"{text!r} is too precise: at most {MAX_DECIMAL_PLACES} decimal places")
        return value.normalize() if value == value.to_integral_value() else value
    return parse


def _decimal_places(value: Decimal) -> int:
    """Decimal places of a finite value, not counting trailing zeros (exactly: no rounding)."""
    _sign, digits, exponent = value.as_tuple()
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(int(exponent) + trailing_zeros))


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[0-9]+\s*", text):
            raise SettingError(f"{shown(text)} is not a whole number")
        if len(text.strip().lstrip("0")) > len(str(high)):  # also keeps int() away from huge inputs
            raise SettingError(f"{shown(text)} is out of range: must be {low}–{high}")
        value = int(text)
        if not low <= value <= high:
            raise SettingError(f"{value} is out of range: must be {low}–{high}")
        return value
    return parse


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise SettingError(f"{shown(text)} is not true or false")


def _choice(options: tuple[str, ...], *, fold_case: bool = True) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if fold_case:
            value = value.lower() if options[0].islower() else value.upper()
        if value not in options:
            raise SettingError(f"{shown(text)} is not one of {', '.join(options)}")
        return value
    return parse


def _markets(text: str) -> str:
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in Market.__members__]
    if not names or unknown:
        raise SettingError(f"{shown(text)}: list one or both of SPOT, FUTURES, separated by commas")
    return ",".join(dict.fromkeys(names))


def _symbols(text: str) -> str:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    names = [normalise_symbol(part) for part in parts]
    bad = [part for part, name in zip(parts, names) if name is None]
    if bad:
        raise SettingError(f"not a symbol: {shown(bad[0])} (5–20 letters/digits, e.g. BTCUSDT)")
    return ",".join(dict.fromkeys(name for name in names if name))


def _feed_url(text: str) -> str:
    value = text.strip()
    if not value:
        return value
    problem = len(value) > 2000 or not value.isprintable() or not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", value)
    if not problem:
        try:
            parts = urlsplit(value)
            _port = parts.port  # raises ValueError on a malformed port ("http://host:99999")
            problem = not parts.hostname
        except ValueError:  # e.g. "http://[::1": an unclosed IPv6 bracket
            problem = True
    if problem:
        raise SettingError(f"{shown(text)} is not an http(s) URL (leave empty to turn the feed off)")
    return value


def _split(text: str) -> str:
    try:
        return parse_split(text)
    except SplitError as exc:
        raise SettingError(str(exc)) from None


def _text(max_length: int, *, required: bool) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if required and not value:
            raise SettingError("must not be empty")
        if len(value) > max_length:
            raise SettingError(f"too long: at most {max_length} characters")
        # PostgreSQL cannot store NUL, and other control characters would garble the page.
        if any(unicodedata.category(ch) == "Cc" and ch not in "\t\r\n" for ch in value):
            raise SettingError("must not contain control characters")
        return value
    return parse


# key → (parser, one-line help shown by `settings show` and on the settings page)
SETTINGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "stake_usd": (_decimal(Decimal(0), Decimal(10**9), low_open=True), "margin per system trade, USD"),
    "entry_mode": (_choice(tuple(m.value for m in EntryMode)), "market, signal or limit"),
    "take_profit_target": (_integer(1, 100), "with tp_split=single: which target of a multi-target signal closes the trade"),
    "tp_split": (_split, "single (one target), even (split over all targets) or percentages such as 50,30,20"),
    "stop_after_tp": (_choice(tuple(r.value for r in StopRule)),
                      "none, breakeven (stop to entry after target 1) or trailing (to target k−1 after target k); "
                      "no effect with tp_split=single"),
    "futures_funding": (_boolean, "futures trades pay or receive funding every 8 h (part of their P/L)"),
    "fee_rate_spot": (_decimal(Decimal(0), Decimal("0.1")), "fee per side, fraction of notional (spot)"),
    "fee_rate_futures": (_decimal(Decimal(0), Decimal("0.1")), "fee per side, fraction of notional (futures)"),
    "slippage_bps": (_decimal(Decimal(0), Decimal(1000)), "basis points applied to fills at market"),
    "maintenance_margin_rate": (_decimal(Decimal(0), Decimal("0.5")), "for the liquidation price of leveraged trades"),
    "pending_expiry_hours": (_decimal(Decimal(0), Decimal(24 * 365), low_open=True), "hours a limit entry may wait"),
    "max_trade_hours": (_decimal(Decimal(0), Decimal(24 * 365)), "0 = never; else close at market after this long"),
    # Exact case: Binance's "1M" is a month, not "1m".
    "candle_interval": (_choice(tuple(INTERVALS), fold_case=False), "kline interval used to resolve trades"),
    "starting_balance_usd": (_decimal(Decimal(0), Decimal(10**12), low_open=True), "bankroll for % returns and drawdown"),
    "min_confidence": (_decimal(Decimal(0), Decimal(1)), "signals below are skipped"),
    "markets": (_markets, "markets traded (SPOT,FUTURES); others skipped"),
    "symbols_allow": (_symbols, "comma list; when set, only these symbols trade"),
    "symbols_deny": (_symbols, "comma list of symbols never traded"),
    "max_open_trades": (_integer(0, 100_000), "0 = unlimited; beyond it signals are skipped"),
    "one_per_symbol_side": (_boolean, "skip a signal while the same symbol and side is open"),
    "paused": (_boolean, "kill switch: new signals are skipped while true"),
    "signal_feed_url": (_feed_url, "optional HTTP feed polled for signals (empty = off)"),
    "site_title": (_text(100, required=True), "public site title"),
    "site_description": (_text(1000, required=False), "public site description"),
}


def parse_setting(key: str, text: str) -> Any:
    if key not in SETTINGS:
        raise SettingError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")
    try:
        return SETTINGS[key][0](text)
    except SettingError as exc:
        raise SettingError(f"{key}: {exc}") from None


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize() if value == value.to_integral_value() else value, "f")
    return str(value)


def load(*, session: Session) -> RuntimeSettings:
    """The settings row, created with the defaults the first time anyone asks."""
    return single_row(RuntimeSettings, session=session)


def current(*, session: Session) -> RuntimeSettings:
    """The settings in force, without writing anything (for read-only connections)."""
    return session.get(RuntimeSettings, 1) or RuntimeSettings(id=1)


def as_dict(settings: RuntimeSettings) -> dict[str, str]:
    return {key: format_value(getattr(settings, key)) for key in SETTINGS}


def change(changes: Mapping[str, str], *, session: Session, actor: str, now: datetime) -> list[tuple[str, str, str]]:
    """Validate every change first (all or nothing), then apply and log each real change."""
    parsed = {key: parse_setting(key, text) for key, text in changes.items()}
    row = load(session=session)
    session.refresh(row, with_for_update=session.get_bind().dialect.name == "postgresql")
    applied = []
    for key, value in parsed.items():
        if getattr(row, key) == value:  # by value: "0.0010" is no change from 0.001
            continue
        old, new = format_value(getattr(row, key)), format_value(value)
        setattr(row, key, value)
        applied.append((key, old, new))
        # The event log is public: values go in as the public may see them.
        old, new = public_value(key, old), public_value(key, new)
        events.record(kind="settings.changed", actor=actor, at=now,
                      message=f"{key} changed {old or '(empty)'} → {new or '(empty)'}",
                      data={"key": key, "old": old, "new": new}, session=session)
    if applied:
        row.updated_at = now
    return applied


def public_value(key: str, value: str) -> str:
    """A setting as the public sees it: a feed URL may carry a token, so only its host is shown."""
    if key == "signal_feed_url" and value:
        return f"set ({urlsplit(value).hostname or 'unknown host'})"
    return value
