"""Intake (docs/signals.md): rows in → stored once → REJECTED, SKIPPED or one trade each,
on a real SQLite file and a real PostgreSQL database, against the in-memory market."""

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import select

from fakes import InMemoryMarket
from shared import settings as runtime
from shared.clock import utcnow
from shared.database import make_engine, transaction, upgrade
from shared.models import Event, Market, Signal, Trade
from shared.signal_files import RawRow, read_rows
from shared.signals import SIGNAL_FIELDS, ValidSignal, validate
from worker.intake import IntakeReport, process_new_signals, store_rows

UTC = timezone.utc
RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # when the test signals arrive
HEADER = ",".join(SIGNAL_FIELDS)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """For what only SQLite can hold, and for the fast random tests."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def market(candles_path: Path) -> InMemoryMarket:
    """Lists SPOT ETHBTC, ADABTC, LTCBTC, XRPETH and FUTURES XRPUSDT."""
    return InMemoryMarket.from_candle_dir(candles_path)


def make_row(**over: object) -> dict[str, object]:
    """A valid LONG spot ETHBTC signal as a CSV line gives it (all text, "" = missing)."""
    row: dict[str, object] = dict(
        id="s1", time="2024-05-01T11:59:00Z", symbol="ETHBTC", side="LONG", market="", entry="",
        take_profit="0.095", stop_loss="0.085", leverage="", confidence="", source="", note="",
    )
    return row | over


SHORT = dict(side="SHORT", take_profit="0.08", stop_loss="0.095")
FUTURES = dict(symbol="XRPUSDT", market="FUTURES", leverage="10", take_profit="1.3", stop_loss="1.1")


def raw_rows(*rows: dict[str, object] | RawRow) -> list[RawRow]:
    """Records as a reader hands them over: line numbers from 1, the row's JSON as its text."""
    return [row if isinstance(row, RawRow) else RawRow(line, json.dumps(row, default=str), row, None)
            for line, row in enumerate(rows, start=1)]


def store(engine: Engine, *rows: dict[str, object] | RawRow, source: str = "default") -> IntakeReport:
    with transaction(engine) as session:
        return store_rows(raw_rows(*rows), default_source=source, received_at=RECEIVED, actor="import", session=session)


def process(engine: Engine, market: InMemoryMarket, *, now: datetime = RECEIVED,
            known: dict[tuple[str, str], bool] | None = None) -> tuple[int, int]:
    return process_new_signals(engine, market, now=now, known_symbols={} if known is None else known)


def configure(engine: Engine, **changes: str) -> None:
    with transaction(engine) as session:
        runtime.change(changes, actor="owner", now=RECEIVED, session=session)


def signals(engine: Engine) -> dict[str, Signal]:
    with transaction(engine) as session:
        return {row.signal_id: row for row in session.exec(select(Signal).order_by(Signal.id))}


def trades(engine: Engine) -> dict[str, Trade]:
    with transaction(engine) as session:
        return {row.signal_id: row for row in session.exec(select(Trade).order_by(Trade.id))}


def events(engine: Engine, kind: str) -> list[Event]:
    with transaction(engine) as session:
        return list(session.exec(select(Event).where(Event.kind == kind).order_by(Event.id)))


def status(engine: Engine) -> dict[str, tuple[str, str | None]]:
    return {key: (row.status, row.reason) for key, row in signals(engine).items()}


# --- storing ---------------------------------------------------------------------------------


def test_a_valid_row_is_stored_new_then_becomes_one_trade(engine: Engine, market: InMemoryMarket) -> None:
    report = store(engine, make_row(symbol="eth/btc", side="buy", take_profit="0.095;0.1"))
    assert (report.accepted, report.rejected, report.duplicate) == (1, 0, 0)
    [received] = events(engine, "signal.received")
    assert received.actor == "import" and received.message == "signal default/s1 received"
    stored = signals(engine)["s1"]
    assert (stored.status, stored.source, stored.symbol, stored.side, stored.take_profit, stored.processed_at) == (
        "NEW", "default", "ETHBTC", "LONG", "0.095;0.1", None)
    # The ledger holds the whole normalised signal, committed before any candle is looked at.
    assert stored.received_seq == received.id
    assert json.loads(received.data or "") == {
        "source": "default", "signal_id": "s1", "signal_time": "2024-05-01T11:59:00.000000Z", "symbol": "ETHBTC",
        "side": "LONG", "market": "SPOT", "entry": None, "take_profit": ["0.095", "0.1"], "stop_loss": "0.085",
        "leverage": 1, "confidence": None, "note": None, "origin": "live", "received_at": json.loads(
            received.data or "")["received_at"], "actor": "import", "message": "signal default/s1 received",
        "signal_pk": stored.id}

    assert process(engine, market) == (1, 0)
    assert status(engine) == {"s1": ("ACCEPTED", None)}
    trade = trades(engine)["s1"]
    assert (trade.status, trade.symbol, trade.side, trade.market, trade.take_profit, trade.stop_loss) == (
        "PENDING", "ETHBTC", "LONG", "SPOT", D("0.095"), D("0.085"))
    assert trade.signal_time == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    [opened] = events(engine, "trade.opened")
    assert opened.trade_id == trade.id and "LONG ETHBTC market entry" in opened.message
    assert process(engine, market) == (0, 0)  # nothing NEW is left


def test_a_repeated_id_in_one_file_is_a_duplicate_and_the_first_line_stands(engine: Engine) -> None:
    report = store(engine, make_row(symbol="ETHBTC"), make_row(symbol="ADABTC"), make_row(id="s2"))
    assert (report.accepted, report.rejected, report.duplicate) == (2, 0, 1)
    assert signals(engine)["s1"].symbol == "ETHBTC"


def test_a_repeated_id_across_imports_is_a_duplicate_and_the_first_version_stands(
        engine: Engine, market: InMemoryMarket) -> None:
    store(engine, make_row())
    process(engine, market)
    again = store(engine, make_row(symbol="LTCBTC", take_profit="0.02", stop_loss="0.01"), make_row(id="s2"))
    assert (again.accepted, again.rejected, again.duplicate) == (1, 0, 1)
    assert signals(engine)["s1"].symbol == "ETHBTC"
    process(engine, market)
    assert sorted(trades(engine)) == ["s1", "s2"]
    assert trades(engine)["s1"].symbol == "ETHBTC"


def test_the_same_id_from_another_source_is_another_signal(engine: Engine) -> None:
    store(engine, make_row())
    report = store(engine, make_row(source="botB"), make_row(), source="botC")
    assert (report.accepted, report.duplicate) == (2, 0)
    with transaction(engine) as session:
        keys = sorted((s.source, s.signal_id) for s in session.exec(select(Signal)))
    assert keys == [("botB", "s1"), ("botC", "s1"), ("default", "s1")]


def test_a_rejected_row_is_stored_with_its_reason_and_logged(engine: Engine, market: InMemoryMarket) -> None:
    report = store(engine, make_row(id="ok"), make_row(id="bad", take_profit="0.08", stop_loss="0.09"))
    reason = "take_profit must be above stop_loss for a LONG (got take_profit 0.08, stop_loss 0.09)"
    assert (report.accepted, report.rejected, report.rejections) == (1, 1, [(2, reason)])
    bad = signals(engine)["bad"]
    assert (bad.status, bad.reason, bad.processed_at) == ("REJECTED", reason, RECEIVED)
    assert json.loads(bad.raw or "")["stop_loss"] == "0.09"
    [logged] = events(engine, "signal.rejected")
    assert (logged.actor, logged.message) == ("import", f"signal default/bad rejected: {reason}")
    process(engine, market)
    assert status(engine)["bad"] == ("REJECTED", reason)
    assert list(trades(engine)) == ["ok"]
    # The first version stands even when it was the rejected one.
    assert store(engine, make_row(id="bad")).duplicate == 1
    assert signals(engine)["bad"].status == "REJECTED"


def test_rows_without_an_id_are_still_recorded_once(engine: Engine) -> None:
    no_id = make_row(id="")
    other = make_row(id="", symbol="ADABTC")
    unreadable = RawRow(4, "{not json", None, "invalid JSON: Expecting property name")
    report = store(engine, no_id, other, no_id, unreadable)
    assert (report.accepted, report.rejected, report.duplicate) == (0, 3, 1)
    assert [reason for _, reason in report.rejections] == ["id is required", "id is required",
                                                           "invalid JSON: Expecting property name"]
    stored = signals(engine)
    assert len(stored) == 3
    assert all(key.startswith("unidentified-") and row.status == "REJECTED" for key, row in stored.items())
    again = store(engine, no_id, unreadable)
    assert (again.rejected, again.duplicate) == (0, 2)
    assert len(signals(engine)) == 3
    assert len(events(engine, "signal.rejected")) == 3


def test_an_unreadable_line_with_a_nul_byte_is_still_recorded(engine: Engine) -> None:
    """PostgreSQL text cannot hold NUL; the line is kept with U+FFFD in its place."""
    report = store(engine, *read_rows("garbage\x00line\n"))
    assert (report.accepted, report.rejected) == (0, 1)
    [row] = signals(engine).values()
    assert (row.status, row.raw) == ("REJECTED", "garbage\ufffdline")


def test_a_rejected_row_keeps_what_it_said_even_with_a_nul_byte(engine: Engine) -> None:
    report = store(engine, *read_rows('{"id": "x", "time": "2018-01-22T00:00:00Z", "symbol": "<b>ETH\\u0000BTC", '
                                      '"side": "LONG", "take_profit": 1, "stop_loss": 2}\n'))
    assert (report.accepted, report.rejected) == (0, 1)
    [row] = signals(engine).values()
    assert (row.status, row.symbol, row.side) == ("REJECTED", "<b>ETH\ufffdBTC", "LONG")


# --- deciding NEW signals: filters from the runtime settings ----------------------------------

# (settings, row overrides, expected status, expected reason)
FILTERS = [
    pytest.param({"paused": "true"}, {}, "SKIPPED", "paused", id="paused"),
    pytest.param({"paused": "false"}, {}, "ACCEPTED", None, id="not paused"),
    pytest.param({"markets": "FUTURES"}, {}, "SKIPPED", "market SPOT is not traded (markets = FUTURES)",
                 id="market not traded"),
    pytest.param({"markets": "SPOT"}, FUTURES, "SKIPPED", "market FUTURES is not traded (markets = SPOT)",
                 id="futures not traded"),
    pytest.param({"markets": "SPOT"}, {}, "ACCEPTED", None, id="market traded"),
    pytest.param({"symbols_allow": "ADABTC,LTCBTC"}, {}, "SKIPPED", "symbol ETHBTC is not in symbols_allow",
                 id="not in symbols_allow"),
    pytest.param({"symbols_allow": "ADABTC,eth/btc"}, {}, "ACCEPTED", None, id="in symbols_allow"),
    pytest.param({"symbols_deny": "eth-btc"}, {}, "SKIPPED", "symbol ETHBTC is in symbols_deny",
                 id="in symbols_deny"),
    pytest.param({"symbols_deny": "ADABTC"}, {}, "ACCEPTED", None, id="not in symbols_deny"),
    pytest.param({"min_confidence": "0.8"}, {"confidence": "0.79"}, "SKIPPED",
                 "confidence 0.79 is below min_confidence 0.8", id="below min_confidence"),
    pytest.param({"min_confidence": "0.8"}, {"confidence": "0.8"}, "ACCEPTED", None, id="at min_confidence"),
    pytest.param({"paused": "true", "symbols_deny": "ETHBTC"}, {}, "SKIPPED", "paused", id="paused comes first"),
    pytest.param({"paused": "true"}, {"symbol": "NOPECOIN"}, "REJECTED", "unknown symbol NOPECOIN on SPOT",
                 id="an invalid signal is rejected even when paused"),
]


@pytest.mark.parametrize(("changes", "over", "expected_status", "reason"), FILTERS)
def test_each_filter_skips_with_its_reason(engine: Engine, market: InMemoryMarket, changes: dict[str, str],
                                           over: dict[str, object], expected_status: str,
                                           reason: str | None) -> None:
    configure(engine, **changes)
    store(engine, make_row(**over))
    assert process(engine, market) == (1, 0)
    assert status(engine) == {"s1": (expected_status, reason)}
    assert list(trades(engine)) == (["s1"] if expected_status == "ACCEPTED" else [])
    if expected_status == "SKIPPED":
        [skipped] = events(engine, "signal.skipped")
        assert skipped.message == f"signal default/s1 skipped: {reason}"


def test_max_open_trades_skips_beyond_the_limit(engine: Engine, market: InMemoryMarket) -> None:
    configure(engine, max_open_trades="2")
    store(engine, *(make_row(id=f"s{n}", time=f"2024-05-01T11:5{n}:00Z") for n in (1, 2, 3)))
    assert process(engine, market) == (3, 0)
    assert status(engine)["s3"] == ("SKIPPED", "max_open_trades (2) reached")
    with transaction(engine) as session:  # one of the two closes
        session.execute(sa.update(Trade).where(Trade.signal_id == "s1").values(status="CLOSED_TP"))
    store(engine, make_row(id="s4"), make_row(id="s5"))
    process(engine, market)
    assert [status(engine)[k][0] for k in ("s4", "s5")] == ["ACCEPTED", "SKIPPED"]
    configure(engine, max_open_trades="0")  # 0 = unlimited
    store(engine, make_row(id="s6"))
    process(engine, market)
    assert status(engine)["s6"] == ("ACCEPTED", None)


def test_one_per_symbol_side_skips_while_the_same_symbol_and_side_is_open(
        engine: Engine, market: InMemoryMarket) -> None:
    configure(engine, one_per_symbol_side="true")
    store(engine,
          make_row(id="long-1", time="2024-05-01T11:51:00Z"),
          make_row(id="long-2", time="2024-05-01T11:52:00Z"),
          make_row(id="short", time="2024-05-01T11:53:00Z", **SHORT),
          make_row(id="other", time="2024-05-01T11:54:00Z", symbol="ADABTC", take_profit="0.00006",
                   stop_loss="0.00005"))
    process(engine, market)
    reason = "a LONG ETHBTC trade is already open (one_per_symbol_side)"
    assert status(engine) == {"long-1": ("ACCEPTED", None), "long-2": ("SKIPPED", reason),
                              "short": ("ACCEPTED", None), "other": ("ACCEPTED", None)}
    store(engine, make_row(id="long-3"))  # a later tick sees the trade opened earlier
    process(engine, market)
    assert status(engine)["long-3"] == ("SKIPPED", reason)
    with transaction(engine) as session:
        session.execute(sa.update(Trade).where(Trade.signal_id == "long-1").values(status="CLOSED_SL"))
    store(engine, make_row(id="long-4"))
    process(engine, market)
    assert status(engine)["long-4"] == ("ACCEPTED", None)


# --- deciding NEW signals: entry mode, symbol, exchange --------------------------------------


@pytest.mark.parametrize("mode", ["signal", "limit"])
def test_signal_and_limit_entry_need_an_entry_price(engine: Engine, market: InMemoryMarket, mode: str) -> None:
    configure(engine, entry_mode=mode)
    store(engine, make_row(id="without"), make_row(id="with", entry="0.089"))
    process(engine, market)
    assert status(engine) == {
        "without": ("REJECTED", f"entry mode {mode} needs an entry price and the signal has none"),
        "with": ("ACCEPTED", None),
    }
    trade = trades(engine)["with"]
    assert (trade.entry_mode, trade.status) == (mode, "OPEN" if mode == "signal" else "PENDING")


def test_an_unknown_symbol_is_rejected(engine: Engine, market: InMemoryMarket) -> None:
    store(engine, make_row(symbol="NOPECOIN"), make_row(id="s2", symbol="ADABTC", market="FUTURES",
                                                        take_profit="0.00006", stop_loss="0.00005"))
    known: dict[tuple[str, str], bool] = {}
    assert process(engine, market, known=known) == (2, 0)
    assert status(engine) == {"s1": ("REJECTED", "unknown symbol NOPECOIN on SPOT"),
                              "s2": ("REJECTED", "unknown symbol ADABTC on FUTURES")}
    assert known == {("SPOT", "NOPECOIN"): False, ("FUTURES", "ADABTC"): False}
    assert [e.message for e in events(engine, "signal.rejected")] == [
        "signal default/s1 rejected: unknown symbol NOPECOIN on SPOT",
        "signal default/s2 rejected: unknown symbol ADABTC on FUTURES",
    ]


def test_a_failing_exchange_leaves_the_signal_new_until_it_answers(engine: Engine, market: InMemoryMarket) -> None:
    market.failing.add("ETHBTC")
    store(engine, make_row(id="eth"), make_row(id="ada", symbol="ADABTC", take_profit="0.00006",
                                               stop_loss="0.00005"))
    known: dict[tuple[str, str], bool] = {}
    assert process(engine, market, known=known) == (1, 1)
    assert status(engine) == {"eth": ("NEW", None), "ada": ("ACCEPTED", None)}
    assert process(engine, market, known=known) == (0, 1)
    assert signals(engine)["eth"].processed_at is None
    market.failing.clear()
    assert process(engine, market, known=known) == (1, 0)
    assert status(engine)["eth"] == ("ACCEPTED", None)
    assert sorted(trades(engine)) == ["ada", "eth"]


def test_once_a_market_fails_its_other_symbols_wait_for_the_next_tick(engine: Engine, market: InMemoryMarket) -> None:
    """An outage costs one round of retries per tick, not one per new symbol."""
    market.failing.add("ADABTC")  # asked first (alphabetically); ETHBTC would answer
    store(engine, make_row(id="eth"), make_row(id="ada", symbol="ADABTC", take_profit="0.00006",
                                               stop_loss="0.00005"))
    known: dict[tuple[str, str], bool] = {}
    assert process(engine, market, known=known) == (0, 2)
    assert [call for call in market.calls if call[0] == "symbol_exists"] == [("symbol_exists", Market.SPOT, "ADABTC")]
    market.failing.clear()
    assert process(engine, market, known=known) == (2, 0)


# --- rows a bot inserted directly ------------------------------------------------------------

DIRECT = ("INSERT INTO signal (signal_id, time, symbol, side, take_profit, stop_loss)"
          " VALUES (:id, :time, :symbol, :side, :take_profit, :stop_loss)")


def insert_directly(engine: Engine, **over: object) -> None:
    values: dict[str, object] = dict(id="bot-1", time="2018-01-20T12:00:00Z", symbol="eth/btc", side="buy",
                                     take_profit="0.095;0.1", stop_loss="0.085")
    with engine.begin() as connection:
        connection.execute(sa.text(DIRECT), values | over)


def test_a_direct_row_is_validated_and_normalised(engine: Engine, market: InMemoryMarket) -> None:
    insert_directly(engine)
    assert process(engine, market, now=utcnow()) == (1, 0)
    row = signals(engine)["bot-1"]
    assert (row.status, row.source, row.symbol, row.side, row.market, row.take_profit, row.stop_loss,
            row.leverage, row.origin) == ("ACCEPTED", "default", "ETHBTC", "LONG", "SPOT", "0.095;0.1", D("0.085"),
                                          1, "backfill")
    assert row.time == datetime(2018, 1, 20, 12, 0, tzinfo=UTC)
    trade = trades(engine)["bot-1"]
    assert (trade.symbol, trade.side, trade.take_profit, trade.stop_loss) == ("ETHBTC", "LONG", D("0.095"), D("0.085"))


# (bot's values, reason): all inserted at once, so one bad row is also seen not to hold up the rest
DIRECT_INVALID = {
    "side": ({"side": "sideways"}, "side must be LONG, SHORT, BUY or SELL (got 'sideways')"),
    "no-symbol": ({"symbol": None}, "symbol is required"),
    "short-symbol": ({"symbol": "ETH"}, "symbol must be 5-20 letters and digits once / - _ are removed (got 'ETH')"),
    "take-profit": ({"take_profit": "0.095;abc"}, "take_profit target 2 must be a number (got 'abc')"),
    "levels": ({"take_profit": "0.08"}, "take_profit must be above stop_loss for a LONG"),
    "no-time": ({"time": None}, "time is required"),
    "future": ({"time": "2999-01-01T00:00:00Z"}, "time is in the future"),
    "no-stop-loss": ({"stop_loss": None}, "stop_loss is required"),
    "negative-stop-loss": ({"stop_loss": "-1"}, "stop_loss must be greater than 0"),
    "unknown-symbol": ({"symbol": "NOPECOIN"}, "unknown symbol NOPECOIN on SPOT"),
}


def test_invalid_direct_rows_are_rejected(engine: Engine, market: InMemoryMarket) -> None:
    for key, (over, _) in DIRECT_INVALID.items():
        insert_directly(engine, id=key, **over)
    insert_directly(engine, id="good")
    assert process(engine, market, now=utcnow()) == (len(DIRECT_INVALID) + 1, 0)
    rows = signals(engine)
    for key, (_, reason) in DIRECT_INVALID.items():
        assert rows[key].status == "REJECTED"
        assert (rows[key].reason or "").startswith(reason), key
        assert rows[key].processed_at is not None
    assert list(trades(engine)) == ["good"]
    rejected = events(engine, "signal.rejected")
    assert sorted(e.signal_pk for e in rejected) == sorted(rows[key].id for key in DIRECT_INVALID)


# SQLite stores any value in any column; the worker must reject what the typed column cannot
# load instead of failing on it every tick (PostgreSQL refuses such inserts itself).
SQLITE_ONLY_JUNK = [
    pytest.param({"time": "garbage"}, "time must be ISO 8601", id="time text"),
    pytest.param({"time": "2018-01-20"}, "time needs a time of day", id="time date only"),
    pytest.param({"stop_loss": "abc"}, "stop_loss must be a number (got 'abc')", id="stop_loss text"),
    pytest.param({"stop_loss": "NaN"}, "stop_loss must be a number (got 'NaN')", id="stop_loss NaN"),
]


@pytest.mark.parametrize(("over", "reason"), SQLITE_ONLY_JUNK)
def test_a_direct_row_the_column_types_cannot_read_is_rejected(
        sqlite_engine: Engine, market: InMemoryMarket, over: dict[str, object], reason: str) -> None:
    insert_directly(sqlite_engine, **over)
    insert_directly(sqlite_engine, id="bot-2")
    assert process(sqlite_engine, market, now=utcnow()) == (2, 0)
    with sqlite_engine.connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT signal_id, status FROM signal")).all())
        reasons = dict(connection.execute(sa.text("SELECT signal_id, reason FROM signal")).all())
    assert stored == {"bot-1": "REJECTED", "bot-2": "ACCEPTED"}
    assert reasons["bot-1"].startswith(reason)
    rejected = signals(sqlite_engine)["bot-1"]  # and the rejected row stays readable (export, site)
    assert json.loads(rejected.raw or "") == {
        "time": "2018-01-20T12:00:00Z", "symbol": "eth/btc", "side": "buy", "take_profit": "0.095;0.1",
        "stop_loss": "0.085", "market": "SPOT", "entry": None, "leverage": 1, "confidence": None, "note": None,
    } | {k: str(v) for k, v in over.items()}


def test_a_direct_row_with_epoch_milliseconds_is_normalised(sqlite_engine: Engine, market: InMemoryMarket) -> None:
    insert_directly(sqlite_engine, time=1516449600000)
    # Readable before the worker gets to it (the export and the site read NEW rows too) …
    assert signals(sqlite_engine)["bot-1"].time == datetime(2018, 1, 20, 12, 0, tzinfo=UTC)
    assert process(sqlite_engine, market, now=utcnow()) == (1, 0)
    assert signals(sqlite_engine)["bot-1"].time == datetime(2018, 1, 20, 12, 0, tzinfo=UTC)


# --- what a trade remembers ----------------------------------------------------------------------


def test_a_trade_keeps_the_settings_in_force_when_it_was_opened(engine: Engine, market: InMemoryMarket) -> None:
    configure(engine, stake_usd="250", fee_rate_spot="0.002", fee_rate_futures="0.0007", entry_mode="signal",
              take_profit_target="2", slippage_bps="3", maintenance_margin_rate="0.005",
              pending_expiry_hours="6", max_trade_hours="12", candle_interval="5m")
    store(engine,
          make_row(id="spot", entry="0.089", take_profit="0.095;0.1;0.12"),
          make_row(id="one-target", symbol="ADABTC", entry="0.0000535", take_profit="0.000056",
                   stop_loss="0.00005"),
          make_row(id="futures", entry="1.19", **(FUTURES | {"take_profit": "1.2;1.3"})))
    process(engine, market)
    opened = trades(engine)
    expected = {  # id → (take-profit, fee rate)
        "spot": (D("0.1"), D("0.002")),  # the second target
        "one-target": (D("0.000056"), D("0.002")),  # fewer targets than asked: the last one
        "futures": (D("1.3"), D("0.0007")),
    }
    assert {key: (t.take_profit, t.fee_rate) for key, t in opened.items()} == expected
    for trade in opened.values():
        assert (trade.stake_usd, trade.entry_mode, trade.slippage_bps, trade.maintenance_margin_rate,
                trade.pending_expiry_hours, trade.max_trade_hours, trade.candle_interval) == (
            D("250"), "signal", D("3"), D("0.005"), D("6"), D("12"), "5m")
        assert (trade.status, trade.entry_price, trade.entry_time) == ("OPEN", trade.signal_entry, trade.signal_time)
    assert opened["futures"].leverage == 10

    configure(engine, stake_usd="500", fee_rate_spot="0.001", fee_rate_futures="0.0005", entry_mode="market",
              take_profit_target="1", slippage_bps="0", candle_interval="1m")
    store(engine, make_row(id="after", take_profit="0.095;0.1"))
    process(engine, market)
    later = trades(engine)
    assert {key: (t.take_profit, t.fee_rate, t.stake_usd, t.entry_mode) for key, t in later.items()} == {
        **{key: (tp, fee, D("250"), "signal") for key, (tp, fee) in expected.items()},
        "after": (D("0.095"), D("0.001"), D("500"), "market"),
    }


# signal id → (time, origin) for signals received at 12:00
ORIGINS = {
    "a-second-old": ("2024-05-01T11:59:59Z", "live"),
    "exactly-10-minutes-old": ("2024-05-01T11:50:00Z", "live"),
    "just-over-10-minutes-old": ("2024-05-01T11:49:59Z", "backfill"),
    "years-old": ("2018-01-20T12:00:00Z", "backfill"),
    "slightly-ahead": ("2024-05-01T12:04:00Z", "live"),
}


def test_origin_is_live_or_backfill_by_age_when_received(engine: Engine, market: InMemoryMarket) -> None:
    store(engine, *(make_row(id=key, time=time) for key, (time, _) in ORIGINS.items()))
    expected = {key: origin for key, (_, origin) in ORIGINS.items()}
    assert {key: row.origin for key, row in signals(engine).items()} == expected
    process(engine, market)
    assert {key: row.origin for key, row in signals(engine).items()} == expected
    assert {key: trade.origin for key, trade in trades(engine).items()} == expected


# --- invariants over random input (SQLite only, to stay fast) -----------------------------------

JUNK = st.one_of(
    st.none(), st.text(max_size=12), st.integers(-(10**20), 10**20), st.floats(),
    st.decimals(), st.booleans(), st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=2),
)
PLAUSIBLE: dict[str, list[object]] = {
    "id": ["a", "b", "c", "", " ", 7],
    "time": ["2024-05-01T11:59:00Z", "2018-01-20 12:00", "1714564740000", 1714564740000, "2999-01-01T00:00Z",
             "yesterday", ""],
    "symbol": ["ETHBTC", "eth/btc", "ADA-BTC", "XRPUSDT", "NOPECOIN", "ETH", ""],
    "side": ["LONG", "short", "buy", "SELL", "up", ""],
    "market": ["", "SPOT", "futures", "margin"],
    "entry": ["", "0.089", "1.19", "-1", "abc"],
    "take_profit": ["0.095", "0.095;0.1", "0.08", "1.3", ";", "0.095;", ["0.095", 0.1]],
    "stop_loss": ["0.085", "0.09", "1.1", "0", "NaN", "1e999"],
    "leverage": ["", "1", "10", "1.5", "500"],
    "confidence": ["", "0.5", "0.9", "2", "-1"],
    "source": ["", "botA", "botB"],
    "note": ["", "<b>hi</b>", "a\x00b"],
}
FIELD = {key: st.one_of(st.sampled_from(values), JUNK) for key, values in PLAUSIBLE.items()}
# Valid rows (with an entry, so every entry mode can take them) with up to two fields spoiled:
# most examples then hold some rows that become trades and some that must not.
VALID_BASES = [
    make_row(entry="0.089"),
    make_row(entry="0.089", **SHORT),
    make_row(symbol="ADABTC", entry="0.0000535", take_profit="0.000056", stop_loss="0.00005"),
    make_row(entry="1.19", **FUTURES),
]
SPOILED = st.lists(st.sampled_from(SIGNAL_FIELDS).flatmap(lambda key: st.tuples(st.just(key), FIELD[key])),
                   max_size=2).map(dict)
NEARLY_VALID = st.builds(lambda base, key, spoiled: base | {"id": key} | spoiled, st.sampled_from(VALID_BASES),
                         st.sampled_from(["s1", "s2", "s3"]), SPOILED)
ROWS = st.lists(st.one_of(NEARLY_VALID, st.fixed_dictionaries({}, optional=FIELD)), min_size=1, max_size=6)


def as_csv(rows: list[dict[str, Any]]) -> str:
    lines = io.StringIO()
    writer = csv.writer(lines)
    writer.writerow(SIGNAL_FIELDS)
    writer.writerows([[row.get(key, "") for key in SIGNAL_FIELDS] for row in rows])
    return lines.getvalue()


FILES = st.one_of(
    st.text(max_size=300),
    st.builds(lambda body: HEADER + "\n" + body, st.text(max_size=300)),
    ROWS.map(as_csv),
    ROWS.map(lambda rows: "\n".join(json.dumps(row, default=str) for row in rows)),
    ROWS.map(lambda rows: json.dumps(rows, default=str)),
)
RANDOM = hypothesis_settings(max_examples=75, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def start_empty(engine: Engine, entry_mode: str) -> None:
    with engine.begin() as connection:
        for table in ("trade", "event", "signal", "runtime_settings"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
    configure(engine, entry_mode=entry_mode)


def expected_valid_keys(rows: list[RawRow]) -> set[tuple[str, str]]:
    """(source, id) of the rows that may become trades: the first row of each key, if valid."""
    first: dict[tuple[str, str], bool] = {}
    for row in rows:
        result = None if row.fields is None else validate(row.fields, received_at=RECEIVED)
        if isinstance(result, ValidSignal):
            first.setdefault((result.source, result.signal_id), True)
        elif result is not None and result.signal_id is not None:
            first.setdefault((result.source or "default", result.signal_id), False)
    return {key for key, valid in first.items() if valid}


def check_invariants(engine: Engine, market: InMemoryMarket, rows: list[RawRow]) -> None:
    store(engine, *rows)
    process(engine, market)
    assert process(engine, market) == (0, 0)  # decided once; a second pass finds nothing
    with transaction(engine) as session:
        statuses = [s for s in session.exec(select(Signal.status))]
        trade_keys = [(t.source, t.signal_id) for t in session.exec(select(Trade))]
        accepted_with_trade = session.exec(
            select(sa.func.count()).select_from(Trade).join(Signal, Signal.id == Trade.signal_pk)
            .where(Signal.status == "ACCEPTED")).one()
    assert "NEW" not in statuses
    assert len(trade_keys) == len(set(trade_keys)) == statuses.count("ACCEPTED") == accepted_with_trade
    assert set(trade_keys) <= expected_valid_keys(rows)
    event(f"trades made: {min(len(trade_keys), 2)}")  # --hypothesis-show-statistics: not vacuous


@RANDOM
@given(rows=ROWS, entry_mode=st.sampled_from(["market", "signal", "limit"]))
def test_random_rows_never_raise_and_never_make_a_trade_from_an_invalid_row(
        sqlite_engine: Engine, market: InMemoryMarket, rows: list[dict[str, Any]], entry_mode: str) -> None:
    start_empty(sqlite_engine, entry_mode)
    check_invariants(sqlite_engine, market, raw_rows(*rows))


@RANDOM
@given(text=FILES)
def test_random_files_never_raise_and_never_make_a_trade_from_an_invalid_row(
        sqlite_engine: Engine, market: InMemoryMarket, text: str) -> None:
    start_empty(sqlite_engine, "market")
    check_invariants(sqlite_engine, market, read_rows(text))
