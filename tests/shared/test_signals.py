"""One row per sentence of docs/signals.md (parsing and validation), plus the readers."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from shared.models import Market, Origin, Side, Signal
from shared.signal_files import RawRow, parse_feed_body, read_rows
from shared.signals import SIGNAL_FIELDS, Rejection, ValidSignal, row_to_raw, to_row_values, validate

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)  # when every test signal is received
NOW_MS = int(NOW.timestamp() * 1000)


def make_raw(**over: object) -> dict[str, object]:
    """A valid LONG spot signal as a CSV row gives it (all text, "" = missing)."""
    base: dict[str, object] = dict(
        id="s1", time="2024-05-01T11:59:00Z", symbol="BTCUSDT", side="LONG", market="",
        entry="60000", take_profit="61000", stop_loss="59000", leverage="", confidence="",
        source="", note="",
    )
    base.update(over)
    return base


def check(**over: object) -> ValidSignal | Rejection:
    return validate(make_raw(**over), received_at=NOW)


def test_the_base_row_is_valid() -> None:
    assert check() == ValidSignal(
        source="default", signal_id="s1", time=datetime(2024, 5, 1, 11, 59, tzinfo=timezone.utc),
        symbol="BTCUSDT", side=Side.LONG, market=Market.SPOT, entry=D("60000"),
        take_profits=(D("61000"),), stop_loss=D("59000"), leverage=1, confidence=None, note=None,
        origin=Origin.LIVE,
    )


SHORT = dict(side="SHORT", entry="60000", take_profit="59000", stop_loss="61000")
UTC = timezone.utc

# (row overrides, expected attributes of the ValidSignal)
ACCEPTED = [
    # id and source
    pytest.param({"id": "  abc  "}, {"signal_id": "abc"}, id="id is trimmed"),
    pytest.param({"id": 42}, {"signal_id": "42"}, id="a numeric id becomes text"),
    pytest.param({"source": "botA"}, {"source": "botA"}, id="the row's own source wins"),
    pytest.param({"source": "  "}, {"source": "default"}, id="empty source -> default_source"),
    # "time: ISO 8601 with offset, Z, naive (taken as UTC), or epoch milliseconds"
    pytest.param({"time": "2024-05-01T13:59:00+02:00"}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="ISO with offset converted to UTC"),
    pytest.param({"time": "2024-05-01T11:59:00Z"}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="ISO with Z"),
    pytest.param({"time": "2024-05-01T11:59:00"}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="naive ISO is UTC"),
    pytest.param({"time": "2024-05-01 11:59:00.250"},
                 {"time": datetime(2024, 5, 1, 11, 59, 0, 250000, tzinfo=UTC)}, id="ISO with space and ms"),
    pytest.param({"time": NOW_MS - 60_000}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="epoch ms as a number"),
    pytest.param({"time": str(NOW_MS - 60_000)}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="epoch ms as digits"),
    pytest.param({"time": f"{NOW_MS - 60_000}.5"},
                 {"time": datetime(2024, 5, 1, 11, 59, 0, 500, tzinfo=UTC)}, id="epoch ms as a float string"),
    pytest.param({"time": D(NOW_MS - 60_000)}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="epoch ms as a JSON Decimal"),
    pytest.param({"time": datetime(2024, 5, 1, 11, 59)}, {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)},
                 id="naive datetime from the database is UTC"),
    pytest.param({"time": datetime(2024, 5, 1, 13, 59, tzinfo=timezone(timedelta(hours=2)))},
                 {"time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC)}, id="aware datetime converted to UTC"),
    # "more than 5 minutes in the future is rejected": exactly 5 minutes is not more
    pytest.param({"time": "2024-05-01T12:05:00Z"}, {"origin": Origin.LIVE}, id="exactly 5 min ahead accepted"),
    # "more than 10 minutes before it was received is marked origin = backfill (else live)"
    pytest.param({"time": "2024-05-01T11:50:00Z"}, {"origin": Origin.LIVE}, id="exactly 10 min old is live"),
    pytest.param({"time": "2024-05-01T11:49:59.999Z"}, {"origin": Origin.BACKFILL}, id="older is backfill"),
    pytest.param({"time": "2023-01-01T00:00:00Z"}, {"origin": Origin.BACKFILL}, id="last year is backfill"),
    # "symbol: upper-cased, separators / - _ removed; must match ^[A-Z0-9]{5,20}$"
    pytest.param({"symbol": "btc/usdt"}, {"symbol": "BTCUSDT"}, id="btc/usdt -> BTCUSDT"),
    pytest.param({"symbol": "eth-btc", "entry": "", "take_profit": "0.06", "stop_loss": "0.04"},
                 {"symbol": "ETHBTC"}, id="eth-btc -> ETHBTC"),
    pytest.param({"symbol": "ETH_BTC", "entry": "", "take_profit": "0.06", "stop_loss": "0.04"},
                 {"symbol": "ETHBTC"}, id="ETH_BTC -> ETHBTC"),
    pytest.param({"symbol": "  1000pepe-usdt \t"}, {"symbol": "1000PEPEUSDT"}, id="spaces at the ends trimmed"),
    pytest.param({"symbol": "A" * 20}, {"symbol": "A" * 20}, id="20 characters"),
    # "side: LONG/SHORT, BUY=LONG, SELL=SHORT, any case"
    pytest.param({"side": "buy"}, {"side": Side.LONG}, id="buy = LONG"),
    pytest.param({"side": " Long "}, {"side": Side.LONG}, id="long any case"),
    pytest.param({**SHORT, "side": "SELL"}, {"side": Side.SHORT}, id="SELL = SHORT"),
    pytest.param({**SHORT, "side": "short"}, {"side": Side.SHORT}, id="short any case"),
    # "market: SPOT (default) or FUTURES"
    pytest.param({"market": ""}, {"market": Market.SPOT}, id="market defaults to SPOT"),
    pytest.param({"market": None}, {"market": Market.SPOT}, id="market None defaults to SPOT"),
    pytest.param({"market": "futures"}, {"market": Market.FUTURES}, id="futures any case"),
    pytest.param({"market": "Spot"}, {"market": Market.SPOT}, id="spot any case"),
    # "prices: finite decimals > 0" — exact, never through float
    pytest.param({"symbol": "DOGEBTC", "entry": "0.00000150", "take_profit": "0.00000160",
                  "stop_loss": "0.00000140"}, {"entry": D("0.00000150")}, id="tiny BTC-quoted prices"),
    pytest.param({"entry": "", "take_profit": "0.00005124", "stop_loss": "0.00005123"},
                 {"stop_loss": D("0.00005123"), "entry": None}, id="0.00005123 kept exactly; entry optional"),
    pytest.param({"entry": 60000.1, "take_profit": 61000, "stop_loss": D("59000.25")},
                 {"entry": D("60000.1"), "take_profits": (D(61000),), "stop_loss": D("59000.25")},
                 id="numbers and Decimals"),
    pytest.param({"entry": "6e4", "take_profit": "+61000.", "stop_loss": ".59e5"},
                 {"entry": D("6E+4"), "take_profits": (D(61000),), "stop_loss": D(59000)}, id="plain notations"),
    # "take_profit targets separated by ; in CSV" (and a JSON list)
    pytest.param({"take_profit": "61000;62000; 63000"}, {"take_profits": (D(61000), D(62000), D(63000))},
                 id="; separated targets"),
    pytest.param({"take_profit": [61000, "62000", D("63000.5")]},
                 {"take_profits": (D(61000), D(62000), D("63000.5"))}, id="a list of targets"),
    # "LONG: every target > stop_loss, and with an entry: stop_loss < entry < first target"
    pytest.param({"entry": "", "take_profit": "59500;60000", "stop_loss": "59000"},
                 {"take_profits": (D(59500), D(60000))}, id="LONG without entry: targets above SL"),
    # "SHORT mirrored"
    pytest.param(SHORT, {"side": Side.SHORT, "stop_loss": D(61000)}, id="SHORT SL above entry above target"),
    pytest.param({**SHORT, "take_profit": "59000;58000"}, {"take_profits": (D(59000), D(58000))},
                 id="SHORT several targets"),
    # "leverage: integer 1-125, and 1 on SPOT"
    pytest.param({"leverage": ""}, {"leverage": 1}, id="leverage defaults to 1"),
    pytest.param({"leverage": "1"}, {"leverage": 1}, id="leverage 1 on SPOT"),
    pytest.param({"market": "FUTURES", "leverage": "3"}, {"leverage": 3}, id="leverage 3 on FUTURES"),
    pytest.param({"market": "FUTURES", "leverage": "3.0"}, {"leverage": 3}, id="leverage 3.0 is whole"),
    pytest.param({"market": "FUTURES", "leverage": 125}, {"leverage": 125}, id="leverage 125"),
    pytest.param({"market": "FUTURES", "leverage": D("20")}, {"leverage": 20}, id="leverage Decimal"),
    # "confidence: 0-1"
    pytest.param({"confidence": "0"}, {"confidence": D(0)}, id="confidence 0"),
    pytest.param({"confidence": "1"}, {"confidence": D(1)}, id="confidence 1"),
    pytest.param({"confidence": 0.75}, {"confidence": D("0.75")}, id="confidence 0.75"),
    pytest.param({"confidence": ""}, {"confidence": None}, id="confidence optional"),
    # note: plain data, capped
    pytest.param({"note": "<script>alert(1)</script> & co"}, {"note": "<script>alert(1)</script> & co"},
                 id="HTML in a note is kept as plain data"),
    pytest.param({"note": "x" * 1500}, {"note": "x" * 1000}, id="note capped at 1000 characters"),
]


@pytest.mark.parametrize(("over", "expected"), ACCEPTED)
def test_accepted(over: dict[str, object], expected: dict[str, object]) -> None:
    signal = check(**over)
    assert isinstance(signal, ValidSignal), signal
    assert {name: getattr(signal, name) for name in expected} == expected


# (row overrides, the start of the one reason)
REJECTED = [
    # id
    pytest.param({"id": ""}, "id is required", id="id missing"),
    pytest.param({"id": "   "}, "id is required", id="id blank"),
    pytest.param({"id": None}, "id is required", id="id None"),
    pytest.param({"id": True}, "id must be text", id="id boolean"),
    pytest.param({"id": "a\x00b"}, "id must not contain control characters", id="id with NUL"),
    pytest.param({"id": "x" * 201}, "id is too long", id="id too long"),
    pytest.param({"source": ["a"]}, "source must be text", id="source not text"),
    # time
    pytest.param({"time": ""}, "time is required", id="time missing"),
    pytest.param({"time": "yesterday"}, "time must be ISO 8601", id="time garbage"),
    pytest.param({"time": "2024-05-01"}, "time needs a time of day", id="date without time"),
    pytest.param({"time": "2024-05-01T11:59:00 UTC"}, "time must be ISO 8601", id="time with a zone name"),
    pytest.param({"time": "2024-05-01T12:05:00.001Z"}, "time is in the future", id="over 5 min ahead"),
    pytest.param({"time": NOW_MS + 3_600_000}, "time is in the future", id="epoch ms an hour ahead"),
    pytest.param({"time": "1714564740"}, "time '1714564740' is too small for epoch milliseconds",
                 id="epoch seconds"),
    pytest.param({"time": 10**20}, "time is out of range", id="epoch ms beyond year 9999"),
    pytest.param({"time": float("nan")}, "time must be finite", id="time NaN"),
    pytest.param({"time": True}, "time must be a date and time", id="time boolean"),
    pytest.param({"time": "0001-01-01T00:00:00Z"}, "time is too old (0001-01-01T00:00:00+00:00 is before 2017-01-01",
                 id="year 1"),
    pytest.param({"time": "1970-01-01T00:00:00Z"}, "time is too old", id="the epoch"),
    pytest.param({"time": 100_000_000_000}, "time is too old", id="smallest epoch ms (1973)"),
    pytest.param({"time": "2016-12-31T23:59:59.999999Z"}, "time is too old", id="just before 2017"),
    # symbol
    pytest.param({"symbol": ""}, "symbol is required", id="symbol missing"),
    pytest.param({"symbol": "BTC"}, "symbol must be 5-20 letters and digits", id="symbol too short"),
    pytest.param({"symbol": "A" * 21}, "symbol must be 5-20", id="symbol too long"),
    pytest.param({"symbol": "BTC USDT"}, "symbol must be 5-20", id="space inside"),
    pytest.param({"symbol": "BTC.USDT"}, "symbol must be 5-20", id="dot is not a separator"),
    pytest.param({"symbol": "bıtusdt"}, "symbol must be 5-20", id="non-ASCII look-alike"),
    pytest.param({"symbol": "BTCUSDT\nX"}, "symbol must be 5-20", id="line break inside"),
    pytest.param({"symbol": 12345}, "symbol must be text", id="symbol number"),
    # side / market
    pytest.param({"side": ""}, "side is required", id="side missing"),
    pytest.param({"side": "HOLD"}, "side must be LONG, SHORT, BUY or SELL", id="side unknown"),
    pytest.param({"market": "MARGIN"}, "market must be SPOT or FUTURES", id="market unknown"),
    pytest.param({"market": 1}, "market must be SPOT or FUTURES", id="market number"),
    # prices: "finite decimals > 0"
    pytest.param({"entry": "abc"}, "entry must be a number", id="entry garbage"),
    pytest.param({"entry": "nan"}, "entry must be a number", id="entry nan text"),
    pytest.param({"entry": D("NaN")}, "entry must be a finite number", id="entry NaN Decimal"),
    pytest.param({"entry": float("inf")}, "entry must be a finite number", id="entry inf"),
    pytest.param({"entry": "Infinity"}, "entry must be a number", id="entry Infinity text"),
    pytest.param({"entry": "-1"}, "entry must be greater than 0", id="entry negative"),
    pytest.param({"entry": "0"}, "entry must be greater than 0", id="entry zero"),
    pytest.param({"entry": True}, "entry must be a number", id="entry boolean"),
    pytest.param({"entry": "1_000"}, "entry must be a number", id="entry with underscore"),
    pytest.param({"entry": "60000,5"}, "entry must be a number", id="entry decimal comma"),
    pytest.param({"entry": "1e999999999"}, "entry is out of range", id="entry absurd exponent"),
    pytest.param({"take_profit": ""}, "take_profit is required", id="take_profit missing"),
    pytest.param({"take_profit": []}, "take_profit is required", id="take_profit empty list"),
    pytest.param({"take_profit": "61000;;62000"}, "take_profit target 2 is empty", id="empty target"),
    pytest.param({"take_profit": "61000;"}, "take_profit target 2 is empty", id="trailing ;"),
    pytest.param({"take_profit": [61000, None]}, "take_profit target 2 is empty", id="None in list"),
    pytest.param({"take_profit": "61000;x"}, "take_profit target 2 must be a number", id="bad target"),
    pytest.param({"take_profit": "-5"}, "take_profit must be greater than 0", id="negative target"),
    pytest.param({"stop_loss": ""}, "stop_loss is required", id="stop_loss missing"),
    pytest.param({"stop_loss": "0"}, "stop_loss must be greater than 0", id="stop_loss zero"),
    # "LONG: every target > stop_loss, and with an entry: stop_loss < entry < first target"
    pytest.param({"entry": "1.0", "take_profit": "1.5", "stop_loss": "1.2"},
                 "stop_loss must be below entry for a LONG (got entry 1.0, stop_loss 1.2)", id="LONG SL above entry"),
    pytest.param({"entry": "1.0", "take_profit": "1.5", "stop_loss": "1.0"}, "stop_loss must be below entry",
                 id="LONG SL equal to entry"),
    pytest.param({"take_profit": "60000"}, "take_profit must be above entry for a LONG", id="LONG TP at entry"),
    # "LONG targets must increase" (multi-target trades, docs/trade-rules.md)
    pytest.param({"take_profit": "62000;61000;60500"},
                 "take_profit targets must increase for a LONG (got target 2 61000 after target 1 62000)",
                 id="LONG targets out of order"),
    pytest.param({"take_profit": "61000;61000"}, "take_profit targets must increase for a LONG",
                 id="LONG targets repeated"),
    pytest.param({"side": "SHORT", "entry": "60000", "take_profit": "59000;59500", "stop_loss": "61000"},
                 "take_profit targets must decrease for a SHORT (got target 2 59500 after target 1 59000)",
                 id="SHORT targets out of order"),
    pytest.param({"take_profit": "59500;61000"}, "take_profit must be above entry for a LONG",
                 id="LONG first target below entry"),
    pytest.param({"take_profit": "61000;58000"}, "take_profit target 2 must be above stop_loss for a LONG",
                 id="LONG later target below SL"),
    pytest.param({"entry": "", "take_profit": "59000"}, "take_profit must be above stop_loss",
                 id="LONG without entry TP at SL"),
    # "SHORT mirrored"
    pytest.param({**SHORT, "stop_loss": "59500"}, "stop_loss must be above entry for a SHORT",
                 id="SHORT SL below entry"),
    pytest.param({**SHORT, "take_profit": "60500"}, "take_profit must be below entry for a SHORT",
                 id="SHORT TP above entry"),
    pytest.param({**SHORT, "take_profit": "59000;62000"},
                 "take_profit target 2 must be below stop_loss for a SHORT", id="SHORT later target above SL"),
    pytest.param({**SHORT, "entry": "", "take_profit": "62000"}, "take_profit must be below stop_loss",
                 id="SHORT without entry TP above SL"),
    pytest.param({**SHORT, "side": "LONG"}, "stop_loss must be below entry for a LONG",
                 id="SHORT levels sent as LONG"),
    # "leverage: integer 1-125, and 1 on SPOT"
    pytest.param({"market": "FUTURES", "leverage": "2.5"}, "leverage must be a whole number 1-125",
                 id="leverage 2.5"),
    pytest.param({"market": "FUTURES", "leverage": 2.5}, "leverage must be a whole number", id="leverage 2.5 num"),
    pytest.param({"market": "FUTURES", "leverage": "0"}, "leverage must be a whole number", id="leverage 0"),
    pytest.param({"market": "FUTURES", "leverage": "126"}, "leverage must be a whole number", id="leverage 126"),
    pytest.param({"market": "FUTURES", "leverage": "-3"}, "leverage must be a whole number", id="negative"),
    pytest.param({"market": "FUTURES", "leverage": "10x"}, "leverage must be a whole number", id="leverage 10x"),
    pytest.param({"market": "FUTURES", "leverage": True}, "leverage must be a whole number", id="leverage bool"),
    pytest.param({"leverage": "3"}, "leverage must be 1 on SPOT (got 3)", id="leverage 3 on SPOT"),
    # "confidence: 0-1"
    pytest.param({"confidence": "1.01"}, "confidence must be between 0 and 1", id="confidence above 1"),
    pytest.param({"confidence": "-0.1"}, "confidence must be between 0 and 1", id="confidence negative"),
    pytest.param({"confidence": "85"}, "confidence must be between 0 and 1", id="confidence as percent"),
    pytest.param({"confidence": "high"}, "confidence must be a number", id="confidence garbage"),
]


@pytest.mark.parametrize(("over", "reason"), REJECTED)
def test_rejected(over: dict[str, object], reason: str) -> None:
    rejection = check(**over)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.reason.startswith(reason), rejection.reason


def test_a_rejection_keeps_the_keys_that_are_valid() -> None:
    assert check(source="botA", symbol="X") == Rejection(
        "botA", "s1", "symbol must be 5-20 letters and digits once / - _ are removed (got 'X')"
    )
    assert check(id="", source="botA") == Rejection("botA", None, "id is required")
    assert validate(make_raw(id="", source=""), received_at=NOW, default_source="feed") == Rejection(
        "feed", None, "id is required"
    )


def test_html_and_control_characters_in_a_symbol_are_escaped_in_the_reason() -> None:
    rejection = check(symbol="<img src=x onerror=alert(1)>\x1b[31m" + "A" * 100)
    assert isinstance(rejection, Rejection)
    assert "<" not in rejection.reason and ">" not in rejection.reason and "\x1b" not in rejection.reason
    assert "\\x3cimg src=x onerror=alert(1)\\x3e\\x1b[31m" in rejection.reason
    assert rejection.reason.endswith("...)") and len(rejection.reason) < 150


# "report the first problem found in a stable order (id, source, time, symbol, side, market,
# prices, leverage, confidence)": each row breaks one field and every field after it.
ORDER = ["id", "source", "time", "symbol", "side", "market", "entry", "leverage", "confidence"]
BROKEN = {"id": "", "source": ["x"], "time": "soon", "symbol": "?", "side": "up", "market": "moon",
          "entry": "-1", "leverage": "abc", "confidence": "2"}


@pytest.mark.parametrize("field", ORDER)
def test_the_first_problem_in_the_stable_order_is_reported(field: str) -> None:
    later = ORDER[ORDER.index(field):]
    rejection = check(**{name: BROKEN[name] for name in later})
    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith(field), rejection.reason


def test_received_at_must_be_aware() -> None:
    with pytest.raises(ValueError):
        validate(make_raw(), received_at=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(("target", "expected"), [(1, "1"), (2, "2"), (3, "3"), (4, "3"), (99, "3")])
def test_take_profit_for_uses_the_last_target_when_there_are_fewer(target: int, expected: str) -> None:
    signal = check(entry="", take_profit="1;2;3", stop_loss="0.5")
    assert isinstance(signal, ValidSignal)
    assert signal.take_profit_for(target) == D(expected)
    with pytest.raises(ValueError):
        signal.take_profit_for(0)


# --- the signal table, both ways -------------------------------------------------------------


def test_row_values_match_the_signal_table() -> None:
    signal = check(symbol="eth/btc", market="futures", leverage="5", entry="0.05", take_profit="0.06;7E-2",
                   stop_loss="0.04", confidence="0.9", note="n", source="botA")
    assert isinstance(signal, ValidSignal)
    values = to_row_values(signal)
    assert values == {
        "source": "botA", "signal_id": "s1", "time": datetime(2024, 5, 1, 11, 59, tzinfo=UTC),
        "symbol": "ETHBTC", "side": "LONG", "market": "FUTURES", "entry": D("0.05"),
        "take_profit": "0.06;0.07", "stop_loss": D("0.04"), "leverage": 5, "confidence": D("0.9"),
        "note": "n", "origin": "live",
    }
    assert set(values) <= set(Signal.model_fields)
    row = Signal(**values)  # the real table model accepts exactly these values
    assert validate(row_to_raw(row), received_at=NOW) == signal


def test_a_row_a_bot_inserted_directly_is_validated() -> None:
    row = Signal(source="default", signal_id="7", time=datetime(2024, 5, 1, 11, 0), symbol="btcusdt",
                 side="sell", take_profit="50000", stop_loss=D("70000"), entry=D("60000"), leverage=1)
    signal = validate(row_to_raw(row), received_at=NOW)
    assert isinstance(signal, ValidSignal)
    assert (signal.side, signal.market, signal.origin) == (Side.SHORT, Market.SPOT, Origin.BACKFILL)
    assert set(row_to_raw(row)) == set(SIGNAL_FIELDS)


# --- reading files and feed bodies ---------------------------------------------------------------

HEADER = ",".join(SIGNAL_FIELDS)


def test_csv_with_bom_header_case_extra_columns_and_targets() -> None:
    text = (
        "\ufeffID, Time ,SYMBOL,side,market,entry,take_profit,stop_loss,extra\r\n"
        "a1,2024-05-01T11:59:00Z,btc/usdt,buy,,60000,61000;62000,59000,ignored\r\n"
        "\r\n"
        'a2,2024-05-01T11:59:00Z,ETHUSDT,SELL,,,"2900;2800",3100,"multi\nline"\r\n'
        "a3,too,few\r\n"
    )
    rows = read_rows(text)
    assert [row.line for row in rows] == [2, 4, 6]
    assert rows[0].fields == {"id": "a1", "time": "2024-05-01T11:59:00Z", "symbol": "btc/usdt", "side": "buy",
                              "market": "", "entry": "60000", "take_profit": "61000;62000", "stop_loss": "59000"}
    assert rows[0].text == "a1,2024-05-01T11:59:00Z,btc/usdt,buy,,60000,61000;62000,59000,ignored"
    first = validate(rows[0].fields, received_at=NOW)
    assert isinstance(first, ValidSignal) and first.take_profits == (D(61000), D(62000))
    assert rows[1].error is None and rows[1].text.endswith('"multi\nline"')
    assert rows[2].fields is None and rows[2].error == "expected 9 columns like the header on line 1, got 3"


def test_csv_tiny_prices_stay_exact() -> None:
    rows = read_rows(f"{HEADER}\nx,{NOW_MS},ETH-BTC,long,spot,0.00005123,0.00005200;0.0000530,0.00005001,1,,,\n")
    signal = validate(rows[0].fields or {}, received_at=NOW)
    assert isinstance(signal, ValidSignal)
    assert (signal.entry, signal.take_profits, signal.stop_loss) == (
        D("0.00005123"), (D("0.00005200"), D("0.0000530")), D("0.00005001"))
    assert to_row_values(signal)["take_profit"] == "0.00005200;0.0000530"


def test_a_file_without_a_usable_header_reports_every_line() -> None:
    rows = read_rows("\n\nid;symbol;side\n1;BTCUSDT;LONG\n")
    assert [(row.line, row.fields) for row in rows] == [(3, None), (4, None)]
    assert rows[0].error and "separator must be ','" in rows[0].error
    assert rows[1].error == "not read: the file has no usable header (see line 3)"


def test_json_lines_with_list_targets_and_broken_lines() -> None:
    text = (
        '{"id": 1, "time": "2024-05-01T11:59:00Z", "symbol": "BTCUSDT", "side": "LONG",'
        ' "take_profit": [61000.5, "62000"], "stop_loss": 59000.10, "Unknown": 1}\n'
        "\n"
        "{not json\n"
        "[1, 2]\n"
        '{"id": "2", "entry": NaN}\n'
    )
    rows = read_rows(text)
    assert [row.line for row in rows] == [1, 3, 4, 5]
    assert rows[0].fields is not None and rows[0].fields["take_profit"] == [D("61000.5"), "62000"]
    assert "unknown" not in rows[0].fields
    signal = validate(rows[0].fields, received_at=NOW)
    assert isinstance(signal, ValidSignal) and signal.stop_loss == D("59000.10")
    assert rows[1].error and rows[1].error.startswith("invalid JSON")
    assert rows[2].error == "not a JSON object (got list)"
    rejection = validate(rows[3].fields or {}, received_at=NOW)
    assert isinstance(rejection, Rejection)


def test_json_array_document_numbers_elements_from_one() -> None:
    body = json.dumps([
        {"id": "a", "time": NOW_MS, "symbol": "SOLUSDT", "side": "BUY", "take_profit": "150", "stop_loss": "140"},
        "oops",
        {"id": "c"},
    ], indent=2)
    for rows in (read_rows(body), parse_feed_body(body)):
        assert [(row.line, row.error is None) for row in rows] == [(1, True), (2, False), (3, True)]
        assert json.loads(rows[0].text)["id"] == "a"
        assert isinstance(validate(rows[0].fields or {}, received_at=NOW), ValidSignal)


@pytest.mark.parametrize(("body", "lines", "error"), [
    ("[]", [], None),
    ("  \n ", [], None),
    ('[{"id": 1}, {"id": 2', [1, 2], "invalid JSON array element"),
    ('[{"id": 1} {"id": 2}]', [1, 2], "invalid JSON array: expected , or ]"),
    ('[{"id": 1}] trailing', [1, 2], "text after the end of the JSON array"),
    ("<html><body>502 Bad Gateway</body></html>", [1], "not JSON"),
    ('{\n  "id": 1,\n  "symbol": "BTCUSDT"\n}', [1], None),
])
def test_feed_bodies(body: str, lines: list[int], error: str | None) -> None:
    rows = parse_feed_body(body)
    assert [row.line for row in rows] == lines
    if error:
        assert rows[-1].error and rows[-1].error.startswith(error)
    else:
        assert all(row.error is None for row in rows)


def test_a_feed_body_is_never_read_as_csv() -> None:
    rows = parse_feed_body(f"{HEADER}\n1,{NOW_MS},BTCUSDT,LONG,,,61000,59000,,,,\n")
    assert len(rows) == 1 and rows[0].fields is None


# --- invariants ---------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(), st.text(max_size=30), st.integers(), st.floats(), st.booleans(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "BUY", "sell", "FUTURES", "spot", "btc/usdt", "ETH_BTC", "3", "3.0", "0.5",
                     "1;2", "2;1", "nan", "-1", "1e999999999", "2024-05-01T11:59:00Z", str(NOW_MS), "\x00"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.decimals()), max_size=3),
)


def assert_invariants(signal: ValidSignal) -> None:
    """What every accepted signal promises the trade engine."""
    def beyond(a: D, b: D) -> bool:
        return a > b if signal.side is Side.LONG else a < b

    assert signal.take_profits and all(p.is_finite() and p > 0 for p in signal.take_profits)
    assert signal.stop_loss > 0 and all(beyond(tp, signal.stop_loss) for tp in signal.take_profits)
    if signal.entry is not None:
        assert beyond(signal.entry, signal.stop_loss) and beyond(signal.take_profits[0], signal.entry)
    assert 1 <= signal.leverage <= 125 and (signal.market is Market.FUTURES or signal.leverage == 1)
    assert signal.confidence is None or 0 <= signal.confidence <= 1
    assert signal.time.utcoffset() == timedelta(0) and signal.time - NOW <= timedelta(minutes=5)
    assert signal.signal_id.strip() == signal.signal_id != ""
    assert signal.note is None or len(signal.note) <= 1000


@settings(max_examples=300)
@given(st.fixed_dictionaries({field: ANY_VALUE for field in SIGNAL_FIELDS}))
def test_validate_never_raises_on_arbitrary_values(raw: dict[str, object]) -> None:
    result = validate(raw, received_at=NOW)
    assert isinstance(result, (ValidSignal, Rejection))
    if isinstance(result, ValidSignal):
        assert_invariants(result)
    else:
        assert result.reason.split(" ")[0].split("'")[0] in SIGNAL_FIELDS


PRICES = st.decimals(min_value=D("0.00000001"), max_value=D(1_000_000), places=8)


@st.composite
def plausible_raw(draw: st.DrawFn) -> dict[str, object]:
    """Rows near the boundaries of every rule, so many pass and many fail narrowly."""
    side = draw(st.sampled_from(["LONG", "SHORT", "buy", "sell"]))
    levels = sorted(draw(st.lists(PRICES, min_size=3, max_size=6, unique=True)))
    if side in ("SHORT", "sell"):
        levels.reverse()
    stop_loss, entry, *targets = levels
    targets = draw(st.permutations(targets)) if draw(st.booleans()) else targets
    as_text = draw(st.booleans())
    market = draw(st.sampled_from(["", "SPOT", "futures"]))
    return {
        "id": draw(st.one_of(st.integers(0, 10**9), st.text(min_size=1, max_size=10))),
        "time": NOW + timedelta(seconds=draw(st.integers(-86_400, 400))),
        "symbol": draw(st.sampled_from(["btc/usdt", "ETH-BTC", "SOL_USDT", "1000PEPEUSDT"])),
        "side": side, "market": market,
        "entry": draw(st.sampled_from([None, str(entry), entry])),
        "take_profit": ";".join(map(str, targets)) if as_text else list(targets),
        "stop_loss": str(stop_loss) if as_text else stop_loss,
        "leverage": draw(st.sampled_from(["", 1, "1", "3", 20, "125.0"])),
        "confidence": draw(st.one_of(st.none(), st.decimals(0, 1, places=3))),
        "source": draw(st.sampled_from(["", "botA", None])),
        "note": draw(st.one_of(st.none(), st.text(max_size=1200))),
    }


@settings(max_examples=300)
@given(plausible_raw())
def test_accepted_signals_keep_their_promises_and_round_trip_through_the_table(raw: dict[str, object]) -> None:
    result = validate(raw, received_at=NOW)
    if isinstance(result, Rejection):
        return
    assert_invariants(result)
    stored = SimpleNamespace(**to_row_values(result))
    assert validate(row_to_raw(stored), received_at=NOW) == result


@settings(max_examples=100)
@given(plausible_raw())
def test_a_signal_survives_a_csv_file(raw: dict[str, object]) -> None:
    expected = validate(raw, received_at=NOW)
    if isinstance(expected, Rejection):
        return
    values = to_row_values(expected)
    cells = {**values, "id": values["signal_id"], "time": expected.time.isoformat()}
    out = io.StringIO()
    csv.writer(out).writerows([SIGNAL_FIELDS, [cells[field] if cells[field] is not None else ""
                                               for field in SIGNAL_FIELDS]])
    (row,) = read_rows(out.getvalue())
    assert validate(row.fields or {}, received_at=NOW) == expected


TEXTS = st.one_of(
    st.text(),
    st.builds(lambda body: HEADER + "\n" + body, st.text()),
    st.builds(lambda body: "[" + body, st.text()),
    st.builds(lambda body: "{" + body, st.text()),
    st.lists(st.sampled_from(['{"id": 1}', "[", "]", ",", "{", '"', "\r", "\n", "\ufeff", "1,2", HEADER, "nan"]))
    .map("".join),
)


def assert_well_formed(rows: list[RawRow]) -> None:
    for row in rows:
        assert row.line >= 1
        assert (row.fields is None) != (row.error is None)
        assert row.fields is None or set(row.fields) <= set(SIGNAL_FIELDS)


@settings(max_examples=300)
@given(TEXTS)
def test_reading_arbitrary_text_never_raises(text: str) -> None:
    rows = read_rows(text)
    assert_well_formed(rows)
    assert [row.line for row in rows] == sorted(row.line for row in rows)
    assert_well_formed(parse_feed_body(text))
    for row in rows:
        if row.fields is not None:
            assert isinstance(validate(row.fields, received_at=NOW), (ValidSignal, Rejection))
