"""One row per rule of admission (shared/admission.py; docs/signals.md and docs/trade-rules.md):
what becomes of a valid signal, given the settings, the open trades and the exchange's listing."""

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from shared.admission import Admission, Verdict, admit
from shared.kinds import EntryMode, Market, Origin, Side
from shared.models import RuntimeSettings
from shared.signals import ValidSignal

T0 = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)


def make_signal(**over: object) -> ValidSignal:
    base = dict(source="bot", signal_id="1", time=T0, symbol="ETHBTC", side=Side.LONG, market=Market.SPOT,
                entry=None, take_profits=(D("0.11"), D("0.12")), stop_loss=D("0.09"), leverage=1,
                confidence=D("0.8"), note=None, origin=Origin.LIVE)
    base.update(over)
    return ValidSignal(**base)  # type: ignore[arg-type]


def make_settings(**over: object) -> RuntimeSettings:
    return RuntimeSettings(id=1, **over)  # the defaults of the table of docs/configuration.md


OPEN_ETH_LONG = [("ETHBTC", Side.LONG)]

# (id, signal overrides, settings overrides, open trades, listed, verdict, reason)
RULES = [
    ("a valid signal with the defaults is accepted", {}, {}, [], True, Verdict.ACCEPT, None),
    ("entry mode signal needs the signal's entry price", {}, {"entry_mode": EntryMode.SIGNAL}, [], True,
     Verdict.REJECT, "entry mode signal needs an entry price and the signal has none"),
    ("entry mode limit needs the signal's entry price", {}, {"entry_mode": EntryMode.LIMIT}, [], True,
     Verdict.REJECT, "entry mode limit needs an entry price and the signal has none"),
    ("… which is checked before the exchange is asked", {}, {"entry_mode": EntryMode.LIMIT}, [], None,
     Verdict.REJECT, "entry mode limit needs an entry price and the signal has none"),
    ("limit with an entry price is accepted", {"entry": D("0.1")}, {"entry_mode": EntryMode.LIMIT}, [], True,
     Verdict.ACCEPT, None),
    ("the exchange could not be asked yet: wait", {}, {}, [], None, Verdict.WAIT, None),
    ("a symbol the exchange does not list is rejected", {"symbol": "NOPEBTC"}, {}, [], False,
     Verdict.REJECT, "unknown symbol NOPEBTC on SPOT"),
    ("paused: skipped", {}, {"paused": True}, [], True, Verdict.SKIP, "paused"),
    ("a market not traded: skipped", {"market": Market.FUTURES}, {"markets": "SPOT"}, [], True,
     Verdict.SKIP, "market FUTURES is not traded (markets = SPOT)"),
    ("not in symbols_allow: skipped", {}, {"symbols_allow": "BTCUSDT"}, [], True,
     Verdict.SKIP, "symbol ETHBTC is not in symbols_allow"),
    ("in symbols_allow: accepted", {}, {"symbols_allow": "BTCUSDT,ETHBTC"}, [], True, Verdict.ACCEPT, None),
    ("in symbols_deny: skipped", {}, {"symbols_deny": "ETHBTC"}, [], True,
     Verdict.SKIP, "symbol ETHBTC is in symbols_deny"),
    ("confidence below min_confidence: skipped", {"confidence": D("0.5")}, {"min_confidence": D("0.6")}, [], True,
     Verdict.SKIP, "confidence 0.5 is below min_confidence 0.6"),
    ("confidence equal to min_confidence: accepted", {"confidence": D("0.6")}, {"min_confidence": D("0.6")}, [],
     True, Verdict.ACCEPT, None),
    ("no confidence is never filtered by min_confidence", {"confidence": None}, {"min_confidence": D("0.9")}, [],
     True, Verdict.ACCEPT, None),
    ("max_open_trades reached: skipped", {}, {"max_open_trades": 1}, OPEN_ETH_LONG, True,
     Verdict.SKIP, "max_open_trades (1) reached"),
    ("max_open_trades 0 = unlimited", {}, {"max_open_trades": 0}, OPEN_ETH_LONG * 5, True, Verdict.ACCEPT, None),
    ("one_per_symbol_side with the same symbol and side open: skipped", {}, {"one_per_symbol_side": True},
     OPEN_ETH_LONG, True, Verdict.SKIP, "a LONG ETHBTC trade is already open (one_per_symbol_side)"),
    ("one_per_symbol_side: the other side is fine", {"side": Side.SHORT, "take_profits": (D("0.09"),),
     "stop_loss": D("0.11")}, {"one_per_symbol_side": True}, OPEN_ETH_LONG, True, Verdict.ACCEPT, None),
    ("filters in order: paused wins over the others", {"confidence": D("0.1")},
     {"paused": True, "symbols_deny": "ETHBTC", "min_confidence": D("0.5")}, [], True, Verdict.SKIP, "paused"),
    ("an unknown symbol is rejected even when paused", {}, {"paused": True}, [], False,
     Verdict.REJECT, "unknown symbol ETHBTC on SPOT"),
]


@pytest.mark.parametrize(("signal_over", "settings_over", "open_trades", "listed", "verdict", "reason"),
                         [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_admission_rules(signal_over: dict[str, object], settings_over: dict[str, object],
                         open_trades: list[tuple[str, Side]], listed: bool | None, verdict: Verdict,
                         reason: str | None) -> None:
    decision = admit(make_signal(**signal_over), make_settings(**settings_over), open_trades=open_trades,
                     listed=listed)
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert (decision.terms is not None) == (verdict is Verdict.ACCEPT)


def test_an_accepted_signal_gets_the_settings_in_force_as_its_terms() -> None:
    """Stake, fee of its market, entry mode, slippage, rates and the chosen target (the last
    one when the signal has fewer: target 3 of a two-target signal is 0.12)."""
    settings = make_settings(stake_usd=D(250), fee_rate_futures=D("0.0004"), slippage_bps=D(5), take_profit_target=3,
                             max_trade_hours=D(48))
    decision = admit(make_signal(market=Market.FUTURES, leverage=10), settings, open_trades=[], listed=True)
    terms = decision.terms
    assert terms is not None
    assert (terms.stake_usd, terms.fee_rate, terms.slippage_bps, terms.leverage) == (D(250), D("0.0004"), D(5), 10)
    assert (terms.take_profit, terms.stop_loss, terms.max_trade_hours) == (D("0.12"), D("0.09"), D(48))
    assert terms.entry_mode is EntryMode.MARKET and terms.signal_time == T0


@given(paused=st.booleans(), listed=st.sampled_from([True, False, None]), max_open=st.integers(0, 3),
       open_count=st.integers(0, 4), one_per=st.booleans())
def test_every_signal_gets_exactly_one_decision_with_a_reason_unless_accepted_or_waiting(
        paused: bool, listed: bool | None, max_open: int, open_count: int, one_per: bool) -> None:
    decision = admit(make_signal(), make_settings(paused=paused, max_open_trades=max_open, one_per_symbol_side=one_per),
                     open_trades=OPEN_ETH_LONG * open_count, listed=listed)
    assert isinstance(decision, Admission)
    assert (decision.reason is None) == (decision.verdict in (Verdict.ACCEPT, Verdict.WAIT))
    if listed is None:
        assert decision.verdict is Verdict.WAIT
