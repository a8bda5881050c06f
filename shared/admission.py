"""Admission: what becomes of a valid signal (docs/signals.md and docs/trade-rules.md).

A pure rule, like the exits: the signal, the settings in force, the trades open right now and
whether the exchange lists the symbol go in; one decision comes out. No database, no HTTP, no
clock. `worker.intake` only orchestrates: it claims the signal row and writes what this says.

The checks, in order:
1. an entry mode that needs the signal's entry price (`signal`, `limit`) and a signal without
   one → REJECTED;
2. the exchange has not been asked yet (it was unreachable) → WAIT, the signal stays NEW;
3. a symbol the exchange does not list → REJECTED ("unknown symbol");
4. the filters of the runtime settings, in this order → SKIPPED with the filter's reason:
   paused, markets, symbols_allow, symbols_deny, min_confidence, max_open_trades,
   one_per_symbol_side;
5. otherwise ACCEPTED, with the terms the trade keeps for life.
"""

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Protocol

from shared.exits import TradeTerms
from shared.kinds import EntryMode, Market, Side
from shared.signals import ValidSignal
from shared.targets import SINGLE, StopRule, portions


class Verdict(Enum):
    ACCEPT = "accept"
    SKIP = "skip"
    REJECT = "reject"
    WAIT = "wait"  # the symbol could not be checked yet: decide on a later tick


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    reason: str | None = None  # why it was skipped or rejected
    terms: TradeTerms | None = None  # the trade's terms when accepted


class AdmissionSettings(Protocol):
    """The runtime settings admission reads (the `runtime_settings` row has them all)."""

    stake_usd: Decimal
    entry_mode: EntryMode
    take_profit_target: int
    tp_split: str
    stop_after_tp: str
    futures_funding: bool
    fee_rate_spot: Decimal
    fee_rate_futures: Decimal
    slippage_bps: Decimal
    maintenance_margin_rate: Decimal
    pending_expiry_hours: Decimal
    max_trade_hours: Decimal
    min_confidence: Decimal
    markets: str
    symbols_allow: str
    symbols_deny: str
    max_open_trades: int
    one_per_symbol_side: bool
    paused: bool


OpenKey = tuple[str, Side]  # (symbol, side) of a PENDING or OPEN trade


def admit(signal: ValidSignal, settings: AdmissionSettings, *, open_trades: Collection[OpenKey],
          listed: bool | None) -> Admission:
    """Decide one valid signal. `listed`: does the exchange list its symbol (None: not known yet)."""
    entry_mode = EntryMode(settings.entry_mode)
    if entry_mode is not EntryMode.MARKET and signal.entry is None:
        return Admission(Verdict.REJECT, f"entry mode {entry_mode} needs an entry price and the signal has none")
    if listed is None:
        return Admission(Verdict.WAIT)
    if not listed:
        return Admission(Verdict.REJECT, f"unknown symbol {signal.symbol} on {signal.market}")
    if (reason := skip_reason(signal, settings, open_trades)) is not None:
        return Admission(Verdict.SKIP, reason)
    return Admission(Verdict.ACCEPT, terms=terms_for(signal, settings))


def skip_reason(signal: ValidSignal, settings: AdmissionSettings, open_trades: Collection[OpenKey]) -> str | None:
    """The runtime-settings filter a valid signal fails, if any (status SKIPPED)."""
    if settings.paused:
        return "paused"
    if signal.market not in settings.markets.split(","):
        return f"market {signal.market} is not traded (markets = {settings.markets})"
    allow = symbol_set(settings.symbols_allow)
    if allow and signal.symbol not in allow:
        return f"symbol {signal.symbol} is not in symbols_allow"
    if signal.symbol in symbol_set(settings.symbols_deny):
        return f"symbol {signal.symbol} is in symbols_deny"
    if signal.confidence is not None and signal.confidence < settings.min_confidence:
        return f"confidence {signal.confidence} is below min_confidence {settings.min_confidence}"
    if settings.max_open_trades and len(open_trades) >= settings.max_open_trades:
        return f"max_open_trades ({settings.max_open_trades}) reached"
    if settings.one_per_symbol_side and (signal.symbol, signal.side) in open_trades:
        return f"a {signal.side} {signal.symbol} trade is already open (one_per_symbol_side)"
    return None


def terms_for(signal: ValidSignal, settings: AdmissionSettings) -> TradeTerms:
    """The terms an accepted signal's trade is opened with, and keeps for life."""
    split = portions(settings.tp_split, signal.take_profits, settings.take_profit_target)
    return TradeTerms(
        side=signal.side, leverage=signal.leverage, stake_usd=settings.stake_usd,
        fee_rate=settings.fee_rate_futures if signal.market is Market.FUTURES else settings.fee_rate_spot,
        entry_mode=EntryMode(settings.entry_mode), slippage_bps=settings.slippage_bps,
        maintenance_margin_rate=settings.maintenance_margin_rate,
        pending_expiry_hours=settings.pending_expiry_hours, max_trade_hours=settings.max_trade_hours,
        signal_time=signal.time, signal_entry=signal.entry,
        take_profit=split[0].target, stop_loss=signal.stop_loss,
        # With one portion nothing is left after the target: `stop_after_tp` has nothing to move.
        split=() if settings.tp_split == SINGLE else split,
        stop_after_tp=StopRule.NONE if settings.tp_split == SINGLE else StopRule(settings.stop_after_tp),
        funding=signal.market is Market.FUTURES and settings.futures_funding,
    )


def symbol_set(text: str) -> set[str]:
    """A comma list of symbols as stored in the settings ("BTCUSDT,ETHBTC")."""
    return {part for part in text.split(",") if part}
