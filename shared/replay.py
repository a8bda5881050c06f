"""Replay: decide every trade again from the ledger and the candles, with the worker's own rules.

Pure apart from the candles, which come in through a function (the exchange or files: the
composition root decides). For each `trade.opened` the signal of its `signal.received` and the
settings in force at that seq (the genesis entry's `settings`, then every `settings.changed`
before it) go through `shared.admission.admit` — with the trades open at that seq, as the
worker saw them in that same serialised transaction — and must give exactly the terms the
entry recorded; each `signal.skipped` must be skipped for the same reason. Then each trade's
terms walk the candles with `shared.exits.advance` up to the moment its decision was recorded,
and must reach the same status, times, prices, fees, P/L and ambiguity. An owner's manual
close or cancel cannot be replayed from candles (its price was the latest ticker price):
replay checks the rules had not decided the trade before it, and keeps the recorded outcome.
"""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from shared import metrics
from shared.admission import Verdict, admit
from shared.candles import Candle, interval_length
from shared.exits import CANDLE, TradeState, TradeTerms, advance, open_trade, with_funding
from shared.funding import FundingEvent
from shared.tape import AggTrade
from shared.kinds import EntryMode, Market, Origin, Side, TradeStatus
from shared.ledger import Entry, Problem, parse_time
from shared.projection import Projection, ProjectedTrade, cell, decimal
from shared.models import RuntimeSettings
from shared.settings import SETTINGS, SettingError, parse_setting
from shared.signals import ValidSignal
from shared.targets import SINGLE
from shared.trade_rows import split_of

# (market, symbol, interval, start, end) → the closed candles with start ≤ open time and
# open time + interval ≤ end, ascending.
CandleSource = Callable[[str, str, str, datetime, datetime], list[Candle]]
TOLERANCE = Decimal("1e-9")
# Settings added after the first ledgers were written: a ledger from before has them at their defaults.
LATER_SETTINGS = ("tp_split", "stop_after_tp", "futures_funding")
DEFAULT_SETTINGS = RuntimeSettings()
COMPARED = ("status", "reason", "entry_time", "entry_price", "exit_time", "exit_price", "fees_usd", "pnl_usd",
            "pnl_pct", "ambiguous", "targets_hit", "funding_usd")
MONEY = frozenset({"fees_usd", "pnl_usd", "pnl_pct", "exit_price", "funding_usd"})  # a split trade's exit price is a mean


@dataclass
class Decision:
    """What the replay made of one trade: the export row's state columns."""

    trade_id: int
    row: dict[str, str]
    replayed: bool  # False: decided by the owner (kept as recorded) or still active


@dataclass
class ReplayResult:
    problems: list[Problem] = field(default_factory=list)
    decisions: dict[int, Decision] = field(default_factory=dict)
    starting_balance: Decimal = Decimal(1000)
    checked_admissions: int = 0
    replayed_trades: int = 0

    def stats(self) -> metrics.Stats:
        """The `stats --json` metrics of the replayed trades (docs/metrics.md)."""
        closed, counts = [], defaultdict(int)
        for decision in self.decisions.values():
            row = decision.row
            status = TradeStatus(row["status"])
            if status.is_closed:
                exit_time = parse_export_time(row["exit_time"])
                closed.append(metrics.ClosedTrade(decision.trade_id, parse_export_time(row["entry_time"]) or exit_time,
                                                  exit_time, Decimal(row["pnl_usd"])))
            counts[status] += 1
            counts["ambiguous"] += row["ambiguous"] == "true"
        return metrics.compute_stats(closed, starting_balance=self.starting_balance, counts=metrics.Counts(
            open_trades=counts[TradeStatus.OPEN], pending_trades=counts[TradeStatus.PENDING],
            cancelled_trades=counts[TradeStatus.CANCELLED], ambiguous_trades=counts["ambiguous"]))


def parse_export_time(text: str) -> Any:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SettingsInForce:
    """The runtime settings as the ledger tells them, seq by seq."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}

    def genesis(self, entry: Entry) -> None:
        settings = entry.data.get("settings")
        if isinstance(settings, dict):
            self.text.update({k: v for k, v in settings.items() if isinstance(v, str)})

    def changed(self, entry: Entry) -> None:
        key, new = entry.data.get("key"), entry.data.get("new")
        if isinstance(key, str) and isinstance(new, str):
            self.text[key] = new

    def values(self) -> SimpleNamespace:
        values: dict[str, Any] = {key: getattr(DEFAULT_SETTINGS, key) for key in LATER_SETTINGS}  # older ledgers
        for key in SETTINGS:
            if key in self.text:
                try:
                    values[key] = parse_setting(key, self.text[key])
                except SettingError:
                    values[key] = self.text[key]  # e.g. a feed URL shown as "set (host)": admission never reads it
        return SimpleNamespace(**values)


def signal_of(data: dict[str, Any]) -> ValidSignal:
    """The normalised signal a `signal.received` entry holds."""
    targets = data.get("take_profit")
    if not isinstance(targets, list) or not targets:
        raise ValueError("take_profit is not a list of targets")
    return ValidSignal(
        source=str(data["source"]), signal_id=str(data["signal_id"]), time=parse_time(data["signal_time"]),
        symbol=str(data["symbol"]), side=Side(data["side"]), market=Market(data["market"]),
        entry=None if data.get("entry") is None else decimal(data["entry"], "entry"),
        take_profits=tuple(decimal(t, "take_profit") for t in targets),
        stop_loss=decimal(data["stop_loss"], "stop_loss"), leverage=int(data["leverage"]),
        confidence=None if data.get("confidence") is None else decimal(data["confidence"], "confidence"),
        note=data.get("note"), origin=Origin(data["origin"]),
    )


def terms_of(data: dict[str, Any]) -> TradeTerms:
    """The terms a `trade.opened` entry recorded."""
    optional = data.get("signal_entry")
    return TradeTerms(
        side=Side(data["side"]), leverage=int(data["leverage"]), stake_usd=decimal(data["stake_usd"], "stake_usd"),
        fee_rate=decimal(data["fee_rate"], "fee_rate"), entry_mode=EntryMode(data["entry_mode"]),
        slippage_bps=decimal(data["slippage_bps"], "slippage_bps"),
        maintenance_margin_rate=decimal(data["maintenance_margin_rate"], "maintenance_margin_rate"),
        pending_expiry_hours=decimal(data["pending_expiry_hours"], "pending_expiry_hours"),
        max_trade_hours=decimal(data["max_trade_hours"], "max_trade_hours"),
        signal_time=parse_time(data["signal_time"]), signal_entry=None if optional is None else decimal(optional, "signal_entry"),
        take_profit=decimal(data["take_profit"], "take_profit"), stop_loss=decimal(data["stop_loss"], "stop_loss"),
        **split_of(str(data.get("tp_split", SINGLE)), str(data.get("stop_after_tp", "none")),
                   [decimal(t, "targets") for t in _list(data.get("targets"))],
                   [decimal(t, "shares") for t in _list(data.get("shares"))]),
        funding=data.get("futures_funding") is True,
    )


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("targets and shares must be lists")
    return value


class AdmissionReplay:
    """Feed entries in seq order: checks every trade.opened and signal.skipped against admission."""

    def __init__(self, result: ReplayResult) -> None:
        self.result = result
        self.settings = SettingsInForce()
        self.signals: dict[int, dict[str, Any]] = {}
        self.open: dict[int, tuple[str, Side]] = {}

    def feed(self, entry: Entry) -> None:
        kind, data = entry.kind, entry.data
        try:
            if kind == "ledger.genesis":
                self.settings.genesis(entry)
            elif kind == "settings.changed":
                self.settings.changed(entry)
            elif kind == "signal.received" and isinstance(data.get("signal_pk"), int):
                self.signals[data["signal_pk"]] = data
            elif kind in ("trade.opened", "signal.skipped"):
                self._admission(entry)
            elif kind in ("trade.closed", "trade.cancelled") and isinstance(data.get("trade_id"), int):
                self.open.pop(data["trade_id"], None)
        except (KeyError, ValueError, TypeError) as error:
            self.result.problems.append(Problem(entry.seq, f"{kind}: cannot replay ({error})"))
        self.result.starting_balance = getattr(self.settings.values(), "starting_balance_usd", Decimal(1000)) \
            if kind in ("ledger.genesis", "settings.changed") else self.result.starting_balance

    def _admission(self, entry: Entry) -> None:
        data = entry.data
        received = self.signals.get(data.get("signal_pk"))  # type: ignore[arg-type]
        if received is None:
            self.result.problems.append(Problem(entry.seq, f"{entry.kind}: no signal.received before it for signal "
                                                           f"{data.get('signal_pk')}"))
            return
        signal = signal_of(received)
        settings = self.settings.values()
        decision = admit(signal, settings, open_trades=list(self.open.values()), listed=True)  # type: ignore[arg-type]
        self.result.checked_admissions += 1
        if entry.kind == "signal.skipped":
            if decision.verdict is not Verdict.SKIP or decision.reason != data.get("reason"):
                got = decision.reason if decision.verdict is Verdict.SKIP else decision.verdict.value
                self.result.problems.append(Problem(entry.seq, f"signal {signal.source}/{signal.signal_id} recorded "
                                                               f"skipped ({data.get('reason')}); replay: {got}"))
            return
        trade_id = data["trade_id"]
        self.open[trade_id] = (signal.symbol, signal.side)
        if decision.verdict is not Verdict.ACCEPT or decision.terms is None:
            self.result.problems.append(Problem(entry.seq, f"trade {trade_id} was opened but the settings in force "
                                                           f"give {decision.verdict.value} ({decision.reason})"))
            return
        recorded = terms_of(data)
        if "futures_funding" not in data:  # opened before funding was recorded: none applied
            decision = replace(decision, terms=replace(decision.terms, funding=False))
        if recorded != decision.terms or data.get("candle_interval") != settings.candle_interval:
            names = [n for n in TradeTerms.__slots__ if getattr(recorded, n) != getattr(decision.terms, n)]
            if data.get("candle_interval") != settings.candle_interval:
                names.append("candle_interval")
            self.result.problems.append(Problem(entry.seq, f"trade {trade_id} opened with {', '.join(names)} other "
                                                           "than the signal and the settings in force give"))


def replay(entries: Iterable[Entry], projection: Projection, candles: CandleSource,
           progress: Callable[[str], None] = lambda _: None) -> ReplayResult:
    """Replay admissions over `entries` (all of them, in order) and every trade of `projection`."""
    result = ReplayResult()
    admissions = AdmissionReplay(result)
    for entry in entries:
        admissions.feed(entry)
    groups: dict[tuple[str, str, str], list[ProjectedTrade]] = defaultdict(list)
    for trade in projection.trades.values():
        groups[(trade.terms.get("market", ""), trade.terms.get("symbol", ""), trade.terms.get("candle_interval", ""))
               ].append(trade)
    for number, ((market, symbol, interval), trades) in enumerate(sorted(groups.items()), start=1):
        progress(f"replay: {market} {symbol} {interval} ({number}/{len(groups)}), {len(trades)} trade(s)")
        _replay_group(result, market, symbol, interval, trades, candles)
    return result


def _replay_group(result: ReplayResult, market: str, symbol: str, interval: str, trades: list[ProjectedTrade],
                  candles: CandleSource) -> None:
    length = interval_length(interval)
    decided = [t for t in trades if t.decided_seq is not None]
    for trade in trades:
        if trade.decided_seq is None:  # still active: nothing recorded to compare with
            result.decisions[trade.trade_id] = Decision(trade.trade_id, dict(trade.row), replayed=False)
    if not decided:
        return
    terms = {t.trade_id: terms_of(t.terms) for t in decided}
    start = min(term.signal_time for term in terms.values())
    end = max(parse_time(t.decided_time) for t in decided if t.decided_time)
    series = candles(market, symbol, interval, start, end)
    opens = [c.open_time for c in series]
    for trade in decided:
        term = terms[trade.trade_id]
        at = parse_time(trade.decided_time or "")
        # The candles the worker could have seen when it recorded the decision: closed by then.
        first = bisect_left(opens, term.signal_time)
        last = bisect_left(opens, at - length + timedelta(microseconds=1))
        closed = trade.closed or {}
        state = advance(term, open_trade(term), series[first:last], complete_until=at - length,
                        tape=RecordedTape(closed.get("tape"), length))
        if term.funding and state.status.is_closed:
            state = with_funding(term, state, recorded_funding(closed.get("funding")))
        result.replayed_trades += 1
        _compare(result, trade, state, at)
        if state.resolution != closed.get("resolution", CANDLE) and state.status.is_closed:
            result.problems.append(Problem(trade.decided_seq or trade.last_seq,
                                           f"trade {trade.trade_id}: its deciding candle was read by "
                                           f"{closed.get('resolution', CANDLE)} in the ledger, by {state.resolution} "
                                           "in the replay"))


class RecordedTape:
    """The trades a ledger recorded as deciding a candle (its `tape` verdict: the trade that
    reached each target, then the one that reached the adverse level), given back in that order
    for the candle they lie in. The replay walks them with the same rule; each must lie inside
    the candle, in time and in price. A candle without a recorded verdict has no tape (the
    stop-loss is assumed there, as the worker did)."""

    def __init__(self, verdict: Any, length: timedelta) -> None:
        self.length = length
        self.recorded: list[AggTrade] = []
        if isinstance(verdict, dict):
            for item in [*verdict.get("tape_targets", []), verdict.get("tape_adverse")]:
                if isinstance(item, dict):
                    self.recorded.append(AggTrade(int(item["trade_id"]), decimal(item["trade_price"], "trade_price"),
                                                  Decimal(0), parse_time(item["trade_time"])))

    def trades(self, candle: Candle) -> list[AggTrade] | None:
        inside = [t for t in self.recorded if candle.open_time <= t.time < candle.open_time + self.length]
        if not inside or len(inside) != len(self.recorded):
            return None
        if any(not candle.low <= t.price <= candle.high for t in inside):
            return None
        return sorted(inside, key=lambda t: (t.time, t.id))


def recorded_funding(payments: Any) -> list[FundingEvent]:
    """The funding events a ledger recorded with a trade's payments (time, rate, mark price)."""
    if payments is None:
        return []
    if not isinstance(payments, list):
        raise ValueError("funding is not a list")
    return [FundingEvent(parse_time(p["funding_time"]), decimal(p["funding_rate"], "funding_rate"),
                         None if p.get("mark_price") is None else decimal(p["mark_price"], "mark_price"))
            for p in payments]


def _compare(result: ReplayResult, trade: ProjectedTrade, state: TradeState, at: datetime) -> None:
    recorded = trade.row
    if trade.decided_actor not in (None, "worker"):
        # An owner's close or cancel: the rules must not have decided the trade before it.
        if not state.status.is_active:
            result.problems.append(Problem(trade.decided_seq or trade.last_seq,
                                           f"trade {trade.trade_id}: recorded {recorded['status']} by "
                                           f"{trade.decided_actor}, but the candles had already decided it "
                                           f"({state.status} at {cell('exit_time', _t(state.exit_time))})"))
        result.decisions[trade.trade_id] = Decision(trade.trade_id, dict(recorded), replayed=False)
        return
    values = {"status": state.status.value, "reason": state.reason, "entry_time": _t(state.entry_time),
              "entry_price": state.entry_price, "exit_time": _t(state.exit_time), "exit_price": state.exit_price,
              "fees_usd": state.fees_usd, "pnl_usd": state.pnl_usd, "pnl_pct": state.pnl_pct,
              "ambiguous": state.ambiguous}
    row = dict(recorded)
    row["targets_hit"] = str(state.targets_hit)
    row["funding_usd"] = cell("funding_usd", format(state.funding_usd, "f"))
    for column, value in values.items():
        row[column] = cell(column, value if not isinstance(value, Decimal) else format(value, "f"))
    result.decisions[trade.trade_id] = Decision(trade.trade_id, row, replayed=True)
    differences = []
    for column in COMPARED:
        mine, theirs = row[column], recorded[column]
        if column in MONEY and mine and theirs:
            if abs(Decimal(mine) - Decimal(theirs)) <= TOLERANCE:
                continue
        elif mine == theirs:
            continue
        differences.append(f"{column} {theirs or '(empty)'} recorded, {mine or '(empty)'} replayed")
    if differences:
        result.problems.append(Problem(trade.decided_seq or trade.last_seq,
                                       f"trade {trade.trade_id}: " + "; ".join(differences)))


def _t(moment: datetime | None) -> str | None:
    from shared.ledger import format_time

    return None if moment is None else format_time(moment)
