"""Projections: the trade table rebuilt from the ledger alone, and compared with the real one.

Pure: entries in, rows (the export schema of `trades export`, same text) and problems out. A
verifier that trusts nothing but the chain feeds it every entry in order; each trade's row is
then what its `trade.opened`, `trade.filled`, `trade.closed` / `trade.cancelled` entries say.
Beyond rebuilding, it checks what an honest worker always writes: a life cycle in order
(opened → filled → closed, or → cancelled), one trade per signal, and the money of every close
recomputed from the trade's own terms (the P/L formula of docs/trade-rules.md, shared.money.settle), so a forged
entry with a recomputed hash but an invented P/L is caught even where no table is there to
compare with (a ledger file).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.kinds import TradeStatus
from shared.ledger import Entry, Problem, parse_time
from shared.money import settle
from shared.trades import FILL_EXPORT_COLUMNS, TRADE_COLUMNS, iso_utc, plain_decimal

TIME_COLUMNS = frozenset({"signal_time", "entry_time", "exit_time", "time"})
DECIMAL_COLUMNS = frozenset({"stake_usd", "entry_price", "take_profit", "stop_loss", "exit_price", "fees_usd",
                             "pnl_usd", "pnl_pct", "funding_usd", "price", "share"})
# A closed trade's one fill, when its position was not split (its close says it all).
WHOLE_FILL_KINDS = {"CLOSED_TP": "tp1", "CLOSED_SL": "sl", "LIQUIDATED": "liquidated", "CLOSED_EXPIRED": "expired",
                    "CLOSED_MANUAL": "manual"}
# What a trade's state entries may set (shared.trade_rows.state_data); a key left out means empty.
STATE_COLUMNS = ("status", "reason", "entry_time", "entry_price", "exit_time", "exit_price", "fees_usd", "pnl_usd",
                 "pnl_pct")
MONEY_TOLERANCE = Decimal("1e-9")


class BadValue(ValueError):
    """A value in an entry's data that is not what its key holds (e.g. a price that is not a decimal)."""


def cell(column: str, value: Any) -> str:
    """A ledger data value as the export shows it (`trades export`, shared.trades)."""
    if value is None:
        return ""
    if column == "ambiguous":
        if not isinstance(value, bool):
            raise BadValue(f"{column} is not true/false")
        return "true" if value else "false"
    if column in TIME_COLUMNS:
        try:
            return iso_utc(parse_time(value))
        except (ValueError, TypeError):
            raise BadValue(f"{column} is not a ledger time") from None
    if column in DECIMAL_COLUMNS:
        return plain_decimal(decimal(value, column))
    return str(value)


def decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str):
        raise BadValue(f"{name} is not a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadValue(f"{name} is not a decimal ({value[:30]!r})") from None
    if not number.is_finite():
        raise BadValue(f"{name} is not finite")
    return number


@dataclass
class ProjectedTrade:
    """One trade as the ledger tells it: its export row, its terms, and which entries made it."""

    trade_id: int
    row: dict[str, str]
    terms: dict[str, Any]  # the `trade.opened` data
    opened_seq: int
    last_seq: int
    filled_seq: int | None = None
    decided_seq: int | None = None  # its trade.closed / trade.cancelled
    decided_time: str | None = None
    decided_actor: str | None = None
    fills: list[dict[str, str]] = field(default_factory=list)  # `trades fills` rows, as text
    closed: dict[str, Any] | None = None  # its trade.closed data (the tape's verdict, the funding)

    @property
    def split(self) -> bool:
        """Was its position split over several targets (it then records each exit as trade.partial)?"""
        return self.terms.get("tp_split", "single") != "single"

    @property
    def status(self) -> str:
        return self.row["status"]


@dataclass
class Projection:
    """Feed entries in seq order; `trades` and `problems` grow as it goes (incremental)."""

    trades: dict[int, ProjectedTrade] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    signals: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # signal_pk → (seq, received data)
    trade_of_signal: dict[int, int] = field(default_factory=dict)

    def feed(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            handler = _HANDLERS.get(entry.kind)
            if handler is None:
                continue
            try:
                handler(self, entry)
            except BadValue as error:
                self.problems.append(Problem(entry.seq, f"{entry.kind}: {error}"))

    # --- the kinds -----------------------------------------------------------------------

    def _received(self, entry: Entry) -> None:
        pk = entry.data.get("signal_pk")
        if isinstance(pk, int) and not isinstance(pk, bool):
            if pk in self.signals:
                self.problems.append(Problem(entry.seq, f"signal {pk} received twice (first at seq "
                                                        f"{self.signals[pk][0]})"))
                return
            self.signals[pk] = (entry.seq, entry.data)

    def _opened(self, entry: Entry) -> None:
        data = entry.data
        trade_id = _int(data.get("trade_id"), "trade_id")
        if trade_id in self.trades:
            raise BadValue(f"trade {trade_id} opened again (first at seq {self.trades[trade_id].opened_seq})")
        pk = data.get("signal_pk")
        if isinstance(pk, int) and pk in self.trade_of_signal:
            raise BadValue(f"signal {pk} got a second trade ({trade_id}; first: trade {self.trade_of_signal[pk]})")
        status = data.get("status")
        if status not in (TradeStatus.PENDING.value, TradeStatus.OPEN.value):
            raise BadValue(f"trade {trade_id} opened with status {status!r}")
        row = {column: "" for column in TRADE_COLUMNS}
        row["trade_id"] = str(trade_id)
        row["ambiguous"] = "false"
        row["targets_hit"] = "0"
        row["funding_usd"] = "0"
        for column in TRADE_COLUMNS:
            if column in data and column != "trade_id":
                row[column] = cell(column, data[column])
        for column in ("stake_usd", "stop_loss", "take_profit", "fee_rate", "slippage_bps", "maintenance_margin_rate"):
            decimal(data.get(column), column)  # the terms a replay and the money checks need
        _int(data.get("leverage"), "leverage")
        self.trades[trade_id] = ProjectedTrade(trade_id, row, dict(data), entry.seq, entry.seq)
        if isinstance(pk, int):
            self.trade_of_signal[pk] = trade_id

    def _trade(self, entry: Entry) -> ProjectedTrade:
        trade_id = _int(entry.data.get("trade_id"), "trade_id")
        trade = self.trades.get(trade_id)
        if trade is None:
            raise BadValue(f"trade {trade_id} was never opened")
        return trade

    def _filled(self, entry: Entry) -> None:
        trade = self._trade(entry)
        if trade.status != TradeStatus.PENDING.value and not (trade.status == TradeStatus.OPEN.value
                                                               and trade.filled_seq is None):
            raise BadValue(f"trade {trade.trade_id} filled while {trade.status}")
        if trade.filled_seq is not None:
            raise BadValue(f"trade {trade.trade_id} filled twice (first at seq {trade.filled_seq})")
        if entry.data.get("status") != TradeStatus.OPEN.value:
            raise BadValue(f"trade {trade.trade_id}: a fill must say status OPEN")
        self._apply(trade, entry)
        trade.filled_seq = entry.seq

    def _closed(self, entry: Entry) -> None:
        trade = self._trade(entry)
        status = entry.data.get("status")
        if not isinstance(status, str) or status not in {s.value for s in TradeStatus if s.is_closed}:
            raise BadValue(f"trade {trade.trade_id}: {status!r} is not a closed status")
        if trade.status != TradeStatus.OPEN.value:
            raise BadValue(f"trade {trade.trade_id} closed while {trade.status}")
        self._apply(trade, entry)
        self._decided(trade, entry)
        trade.closed = dict(entry.data)
        hit = entry.data.get("targets_hit", 1 if status == TradeStatus.CLOSED_TP.value else 0)  # older ledgers
        trade.row["targets_hit"] = str(_int(hit, "targets_hit"))
        trade.row["funding_usd"] = cell("funding_usd", entry.data.get("funding_usd", "0"))
        self._check_funding(trade, entry)
        if trade.split:
            self._check_fills(trade, entry.seq)
        else:
            self._check_money(trade, entry.seq)
            trade.fills = [{"trade_id": str(trade.trade_id), "time": trade.row["exit_time"],
                            "kind": WHOLE_FILL_KINDS[status], "price": trade.row["exit_price"], "share": "1",
                            "fees_usd": trade.row["fees_usd"],
                            "pnl_usd": plain_decimal(Decimal(trade.row["pnl_usd"] or "0")
                                                     - Decimal(trade.row["funding_usd"]))}]

    def _partial(self, entry: Entry) -> None:
        """One exit of a part of a split position: a target reached, or the rest closed."""
        trade = self._trade(entry)
        if trade.status != TradeStatus.OPEN.value:
            raise BadValue(f"trade {trade.trade_id}: a partial exit while {trade.status}")
        if not trade.split:
            raise BadValue(f"trade {trade.trade_id}: a partial exit of a position that was not split")
        data = entry.data
        fill = {"trade_id": str(trade.trade_id)}
        for column in FILL_EXPORT_COLUMNS[1:]:
            fill[column] = cell(column, data.get(column))
        if not all(fill.values()):
            raise BadValue(f"trade {trade.trade_id}: a partial exit without {', '.join(k for k, v in fill.items() if not v)}")
        side = 1 if trade.terms.get("side") == "LONG" else -1
        share = Decimal(fill["share"])
        money = settle(side_sign=side, stake=decimal(trade.terms.get("stake_usd"), "stake_usd") * share,
                       leverage=_int(trade.terms.get("leverage"), "leverage"),
                       fee_rate=decimal(trade.terms.get("fee_rate"), "fee_rate"),
                       entry=Decimal(trade.row["entry_price"] or "1"), exit=Decimal(fill["price"]),
                       liquidated=fill["kind"] == "liquidated")
        for column, expected in (("fees_usd", money.fees_usd), ("pnl_usd", money.pnl_usd)):
            if abs(Decimal(fill[column]) - expected) > MONEY_TOLERANCE:
                self.problems.append(Problem(entry.seq, f"trade {trade.trade_id}: partial exit {column} {fill[column]} "
                                                        f"is not what its terms and price give ({plain_decimal(expected)})"))
        trade.fills.append(fill)
        trade.row["targets_hit"] = str(_int(data.get("targets_hit"), "targets_hit"))
        trade.last_seq = entry.seq

    def _check_funding(self, trade: ProjectedTrade, entry: Entry) -> None:
        """Each funding payment recomputed from its event (rate, mark price) and what was open at
        its time, inside entry < t ≤ exit; their sum is `funding_usd`."""
        payments = entry.data.get("funding", [])
        if not isinstance(payments, list):
            raise BadValue(f"trade {trade.trade_id}: funding is not a list")
        if payments and trade.terms.get("futures_funding") is not True:
            self.problems.append(Problem(entry.seq, f"trade {trade.trade_id} paid funding it was not opened with"))
        side = 1 if trade.terms.get("side") == "LONG" else -1
        notional = decimal(trade.terms.get("stake_usd"), "stake_usd") * _int(trade.terms.get("leverage"), "leverage")
        entry_price = Decimal(trade.row["entry_price"] or "1")
        total = Decimal(0)
        for payment in payments:
            if not isinstance(payment, dict):
                raise BadValue(f"trade {trade.trade_id}: a funding payment is not an object")
            at = parse_time(payment.get("funding_time"))
            if not trade.row["entry_time"] or not (trade.row["entry_time"] < cell("entry_time", payment.get("funding_time"))
                                                   <= trade.row["exit_time"]):
                self.problems.append(Problem(entry.seq, f"trade {trade.trade_id}: funding at {iso_utc(at)} is outside "
                                                        "its entry and exit"))
            gone = sum((Decimal(f["share"]) for f in trade.fills if f["time"] < iso_utc(at)), Decimal(0))
            rate = decimal(payment.get("funding_rate"), "funding_rate")
            mark = payment.get("mark_price")
            price = entry_price if mark is None else decimal(mark, "mark_price")
            expected = -side * notional * (1 - gone) * price * rate / entry_price
            amount = decimal(payment.get("funding_usd"), "funding_usd")
            if abs(amount - expected) > MONEY_TOLERANCE:
                self.problems.append(Problem(entry.seq, f"trade {trade.trade_id}: funding at {iso_utc(at)} is {amount}, "
                                                        f"its rate and mark price give {plain_decimal(expected)}"))
            total += amount
        recorded = Decimal(trade.row["funding_usd"])
        if abs(recorded - total) > MONEY_TOLERANCE:
            self.problems.append(Problem(entry.seq, f"trade {trade.trade_id}: funding_usd {recorded} is not the sum of "
                                                    f"its payments ({plain_decimal(total)})"))

    def _check_fills(self, trade: ProjectedTrade, seq: int) -> None:
        """A split trade's close is the sum of its partial exits: fees, P/L, the mean exit, all of it."""
        fills = trade.fills
        total = sum((Decimal(f["share"]) for f in fills), Decimal(0))
        expected = {"fees_usd": sum((Decimal(f["fees_usd"]) for f in fills), Decimal(0)),
                    "pnl_usd": sum((Decimal(f["pnl_usd"]) for f in fills), Decimal(trade.row["funding_usd"])),
                    "exit_price": sum((Decimal(f["share"]) * Decimal(f["price"]) for f in fills), Decimal(0))}
        if not fills or abs(total - 1) > MONEY_TOLERANCE:
            self.problems.append(Problem(seq, f"trade {trade.trade_id} closed with exits for {plain_decimal(total)} "
                                              "of its position, not all of it"))
            return
        for column, value in expected.items():
            recorded = Decimal(trade.row[column]) if trade.row[column] else None
            if recorded is None or abs(recorded - value) > MONEY_TOLERANCE:
                self.problems.append(Problem(seq, f"trade {trade.trade_id}: {column} {trade.row[column] or '(none)'} "
                                                  f"is not the sum of its exits ({plain_decimal(value)})"))

    def _cancelled(self, entry: Entry) -> None:
        trade = self._trade(entry)
        if entry.data.get("status") != TradeStatus.CANCELLED.value:
            raise BadValue(f"trade {trade.trade_id}: a cancel must say status CANCELLED")
        if trade.status != TradeStatus.PENDING.value:
            raise BadValue(f"trade {trade.trade_id} cancelled while {trade.status}")
        self._apply(trade, entry)
        self._decided(trade, entry)

    def _apply(self, trade: ProjectedTrade, entry: Entry) -> None:
        """A state entry sets every state column: a key left out is empty (trade_rows.state_data)."""
        for column in STATE_COLUMNS:
            trade.row[column] = cell(column, entry.data.get(column))
        trade.row["ambiguous"] = cell("ambiguous", entry.data.get("ambiguous", False))
        trade.last_seq = entry.seq

    @staticmethod
    def _decided(trade: ProjectedTrade, entry: Entry) -> None:
        trade.decided_seq, trade.decided_time = entry.seq, entry.time
        trade.decided_actor = entry.data.get("actor") if isinstance(entry.data.get("actor"), str) else None

    def _check_money(self, trade: ProjectedTrade, seq: int) -> None:
        """Fees and P/L of a close are a function of the terms and the two prices: recompute them."""
        row, terms = trade.row, trade.terms
        if not row["entry_price"] or not row["exit_price"]:
            self.problems.append(Problem(seq, f"trade {trade.trade_id} closed without an entry or exit price"))
            return
        side = 1 if terms.get("side") == "LONG" else -1
        money = settle(side_sign=side, stake=decimal(terms.get("stake_usd"), "stake_usd"),
                       leverage=_int(terms.get("leverage"), "leverage"),
                       fee_rate=decimal(terms.get("fee_rate"), "fee_rate"), entry=Decimal(row["entry_price"]),
                       exit=Decimal(row["exit_price"]), liquidated=row["status"] == TradeStatus.LIQUIDATED.value)
        funding = Decimal(row["funding_usd"] or "0")  # part of the P/L (futures funding)
        stake = decimal(terms.get("stake_usd"), "stake_usd")
        for column, expected in (("fees_usd", money.fees_usd), ("pnl_usd", money.pnl_usd + funding),
                                 ("pnl_pct", (money.pnl_usd + funding) / stake)):
            recorded = Decimal(row[column]) if row[column] else None
            if recorded is None or abs(recorded - expected) > MONEY_TOLERANCE:
                self.problems.append(Problem(seq, f"trade {trade.trade_id}: {column} {row[column] or '(none)'} is not "
                                                  f"what its terms and prices give ({plain_decimal(expected)})"))


_HANDLERS = {
    "signal.received": Projection._received,
    "trade.opened": Projection._opened,
    "trade.filled": Projection._filled,
    "trade.partial": Projection._partial,
    "trade.closed": Projection._closed,
    "trade.cancelled": Projection._cancelled,
}


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(f"{name} is not an integer")
    return value


def project(entries: Iterable[Entry]) -> Projection:
    projection = Projection()
    projection.feed(entries)
    return projection


def compare(projection: Projection, table: Iterable[list[str]]) -> Iterator[str]:
    """Differences between the trade table (export rows) and the trades the ledger tells, one
    line each, naming the seq of the entry that says otherwise."""
    seen: set[int] = set()
    for values in table:
        row = dict(zip(TRADE_COLUMNS, values))
        trade_id = int(row["trade_id"])
        seen.add(trade_id)
        projected = projection.trades.get(trade_id)
        if projected is None:
            yield f"trade {trade_id}: in the trade table but no trade.opened in the ledger"
            continue
        for column in TRADE_COLUMNS:
            if column == "funding_usd" and projected.status == TradeStatus.OPEN.value:
                continue  # an open trade's funding so far is a mark to market, not a recorded state
            if row.get(column, "") != projected.row[column]:
                where = projected.last_seq if column in STATE_COLUMNS or column == "ambiguous" else projected.opened_seq
                yield (f"seq {where}: trade {trade_id} {column} is {row.get(column, '')!r} in the trade table, "
                       f"{projected.row[column]!r} in the ledger")
    for trade_id, projected in projection.trades.items():
        if trade_id not in seen:
            yield f"seq {projected.opened_seq}: trade {trade_id} is in the ledger but not in the trade table"


def compare_fills(projection: Projection, table: Iterable[list[str]]) -> Iterator[str]:
    """Differences between the fill table (`trades fills` rows) and the exits the ledger tells."""
    stored: dict[int, list[dict[str, str]]] = {}
    for values in table:
        row = dict(zip(FILL_EXPORT_COLUMNS, values))
        stored.setdefault(int(row["trade_id"]), []).append(row)
    for trade_id in sorted(set(stored) | {t for t, p in projection.trades.items() if p.fills}):
        projected = projection.trades.get(trade_id)
        told = projected.fills if projected is not None else []
        mine = stored.get(trade_id, [])
        if len(mine) != len(told):
            yield f"trade {trade_id}: {len(mine)} fill(s) in the fill table, {len(told)} in the ledger"
            continue
        for number, (row, fill) in enumerate(zip(mine, told), start=1):
            for column in FILL_EXPORT_COLUMNS[1:]:
                if column in DECIMAL_COLUMNS and row[column] and fill[column]:
                    if abs(Decimal(row[column]) - Decimal(fill[column])) <= MONEY_TOLERANCE:
                        continue
                if row[column] != fill[column]:
                    where = projected.last_seq if projected is not None else 0
                    yield (f"seq {where}: trade {trade_id} fill {number} {column} is {row[column]!r} in the fill "
                           f"table, {fill[column]!r} in the ledger")
