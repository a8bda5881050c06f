"""Runtime settings (docs/configuration.md, runtime settings): one typed row, validated for the
CLI and the settings page alike, every real change logged publicly."""

from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from conftest import Cli
from shared import settings as runtime
from shared.database import make_engine, transaction
from shared.models import Event, RuntimeSettings
from shared.settings import SETTINGS, SettingError, as_dict, change, load, parse_setting

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
LATER = datetime(2024, 5, 2, 8, 30, tzinfo=timezone.utc)

# the table of docs/configuration.md, as `settings show` prints it.
DESIGN_DEFAULTS = {
    "stake_usd": "100",
    "entry_mode": "market",
    "take_profit_target": "1",
    "tp_split": "single",
    "stop_after_tp": "none",
    "futures_funding": "true",
    "fee_rate_spot": "0.001",
    "fee_rate_futures": "0.0005",
    "slippage_bps": "0",
    "maintenance_margin_rate": "0.004",
    "pending_expiry_hours": "24",
    "max_trade_hours": "0",
    "candle_interval": "1m",
    "starting_balance_usd": "1000",
    "min_confidence": "0",
    "markets": "SPOT,FUTURES",
    "symbols_allow": "",
    "symbols_deny": "",
    "max_open_trades": "0",
    "one_per_symbol_side": "false",
    "paused": "false",
    "signal_feed_url": "",
}
PRESENTATION = {"site_title", "site_description"}  # "…" in docs/configuration.md: any sensible text


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def events(engine: Engine) -> list[Event]:
    """The ledger's entries after its genesis (the one entry every new database starts with)."""
    with transaction(engine) as session:
        return list(session.exec(select(Event).where(Event.kind != "ledger.genesis").order_by(Event.id)))


def settings_rows(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.exec(select(sa.func.count()).select_from(RuntimeSettings)).one()


# --- parsing: one row per key, valid values (with their normal form) and invalid ones ----------

# (key, text given, value stored, as shown)
VALID = [
    ("stake_usd", "250", D("250"), "250"),
    ("stake_usd", " 250.50 ", D("250.50"), "250.50"),
    ("stake_usd", "250.0", D("250"), "250"),
    ("stake_usd", "1e3", D("1000"), "1000"),
    ("stake_usd", "0.01", D("0.01"), "0.01"),
    ("entry_mode", "signal", "signal", "signal"),
    ("entry_mode", " LIMIT ", "limit", "limit"),
    ("entry_mode", "Market", "market", "market"),
    ("take_profit_target", "2", 2, "2"),
    ("take_profit_target", " 3 ", 3, "3"),
    ("take_profit_target", "100", 100, "100"),
    ("tp_split", "single", "single", "single"),
    ("tp_split", " EVEN ", "even", "even"),
    ("tp_split", "50,30,20", "50,30,20", "50,30,20"),
    ("tp_split", "50, 30 ,20.0", "50,30,20", "50,30,20"),
    ("tp_split", "33.5,33.5,33", "33.5,33.5,33", "33.5,33.5,33"),
    ("tp_split", "100", "100", "100"),
    ("tp_split", ",".join(["10"] * 10), ",".join(["10"] * 10), ",".join(["10"] * 10)),
    ("stop_after_tp", "none", "none", "none"),
    ("futures_funding", "false", False, "false"),
    ("futures_funding", " ON ", True, "true"),
    ("stop_after_tp", "Breakeven", "breakeven", "breakeven"),
    ("stop_after_tp", "trailing", "trailing", "trailing"),
    ("fee_rate_spot", "0.002", D("0.002"), "0.002"),
    ("fee_rate_spot", "0", D("0"), "0"),
    ("fee_rate_futures", "0.0002", D("0.0002"), "0.0002"),
    ("fee_rate_futures", "0.1", D("0.1"), "0.1"),
    ("slippage_bps", "5", D("5"), "5"),
    ("slippage_bps", "2.5", D("2.5"), "2.5"),
    ("maintenance_margin_rate", "0.005", D("0.005"), "0.005"),
    ("pending_expiry_hours", "48", D("48"), "48"),
    ("pending_expiry_hours", "0.5", D("0.5"), "0.5"),
    ("max_trade_hours", "0", D("0"), "0"),
    ("max_trade_hours", "72", D("72"), "72"),
    ("candle_interval", "5m", "5m", "5m"),
    ("candle_interval", " 1h ", "1h", "1h"),
    ("candle_interval", "1d", "1d", "1d"),
    ("starting_balance_usd", "5000", D("5000"), "5000"),
    ("min_confidence", "0.7", D("0.7"), "0.7"),
    ("min_confidence", "1", D("1"), "1"),
    ("markets", "spot", "SPOT", "SPOT"),
    ("markets", " futures , spot ", "FUTURES,SPOT", "FUTURES,SPOT"),
    ("markets", "SPOT,SPOT", "SPOT", "SPOT"),
    ("symbols_allow", "eth/btc, ada-btc,XRP_ETH", "ETHBTC,ADABTC,XRPETH", "ETHBTC,ADABTC,XRPETH"),
    ("symbols_allow", "", "", ""),
    ("symbols_deny", "btcusdt,BTCUSDT", "BTCUSDT", "BTCUSDT"),
    ("symbols_deny", " , ", "", ""),
    ("max_open_trades", "5", 5, "5"),
    ("max_open_trades", "0", 0, "0"),
    ("max_open_trades", "0" * 30 + "7", 7, "7"),  # leading zeros are not "too many digits"
    ("one_per_symbol_side", "true", True, "true"),
    ("one_per_symbol_side", "YES", True, "true"),
    ("one_per_symbol_side", "0", False, "false"),
    ("paused", "on", True, "true"),
    ("paused", " False ", False, "false"),
    ("signal_feed_url", " https://bot.example.com/signals.json ", "https://bot.example.com/signals.json",
     "https://bot.example.com/signals.json"),
    ("signal_feed_url", "http://127.0.0.1:8080/feed?since=1", "http://127.0.0.1:8080/feed?since=1",
     "http://127.0.0.1:8080/feed?since=1"),
    ("signal_feed_url", "", "", ""),
    ("site_title", "  My bot's record  ", "My bot's record", "My bot's record"),
    ("site_description", "", "", ""),
    ("site_description", "Line one.\nLine two.", "Line one.\nLine two.", "Line one.\nLine two."),
]


def test_every_key_has_valid_and_invalid_rows() -> None:
    assert {row[0] for row in VALID} == set(SETTINGS)
    assert {row[0] for row in INVALID} == set(SETTINGS)


@pytest.mark.parametrize(("key", "text", "value", "shown"), VALID, ids=[f"{r[0]}={r[1]!r}" for r in VALID])
def test_valid_values_are_accepted_and_normalised(key: str, text: str, value: object, shown: str) -> None:
    parsed = parse_setting(key, text)
    assert parsed == value and type(parsed) is type(value)
    assert runtime.format_value(parsed) == shown


# (key, text given, part of the message after the key)
INVALID = [
    ("stake_usd", "0", "out of range"),
    ("stake_usd", "-5", "out of range"),
    ("stake_usd", "abc", "not a number"),
    ("stake_usd", "", "not a number"),
    ("stake_usd", "NaN", "out of range"),
    ("stake_usd", "Infinity", "out of range"),
    ("stake_usd", "1e-999999", "too precise"),
    ("stake_usd", "0.0000000000000000001", "too precise"),
    ("stake_usd", "0." + "0" * 100 + "1", "too long"),
    ("stake_usd", "2000000000", "out of range"),
    ("entry_mode", "best", "not one of market, signal, limit"),
    ("entry_mode", "", "not one of"),
    ("take_profit_target", "0", "out of range"),
    ("take_profit_target", "101", "out of range"),
    ("take_profit_target", "1.5", "not a whole number"),
    ("take_profit_target", "-1", "not a whole number"),
    ("take_profit_target", "two", "not a whole number"),
    ("tp_split", "50,30", "must sum to 100 (they sum to 80)"),
    ("tp_split", "60,50", "must sum to 100 (they sum to 110)"),
    ("tp_split", "120,-20", "above 0"),
    ("tp_split", "100,0", "above 0"),
    ("tp_split", ",".join(["5"] * 20), "at most 10 targets (20 listed)"),
    ("tp_split", "half,half", "is not single, even, or percentages"),
    ("tp_split", "50,,50", "is not single, even, or percentages"),
    ("tp_split", "nan,100", "is not single, even, or percentages"),
    ("tp_split", "1e2", "is not single, even, or percentages"),
    ("tp_split", "99.9999999,0.0000001", "up to 6 decimal places"),
    ("tp_split", "<script>", "is not single, even, or percentages"),
    ("stop_after_tp", "trail", "not one of none, breakeven, trailing"),
    ("futures_funding", "maybe", "is not true or false"),
    ("stop_after_tp", "", "not one of"),
    ("fee_rate_spot", "-0.001", "out of range"),
    ("fee_rate_spot", "0.5", "out of range"),
    ("fee_rate_futures", "0.11", "out of range"),
    ("fee_rate_futures", "1%", "not a number"),
    ("slippage_bps", "-1", "out of range"),
    ("slippage_bps", "1001", "out of range"),
    ("maintenance_margin_rate", "0.6", "out of range"),
    ("maintenance_margin_rate", "-0.1", "out of range"),
    ("pending_expiry_hours", "0", "out of range"),
    ("pending_expiry_hours", "9000", "out of range"),
    ("max_trade_hours", "-1", "out of range"),
    ("max_trade_hours", "soon", "not a number"),
    ("candle_interval", "2m", "not one of"),
    ("candle_interval", "1M", "not one of"),  # Binance's 1M is a month, never 1 minute
    ("candle_interval", "", "not one of"),
    ("starting_balance_usd", "0", "out of range"),
    ("starting_balance_usd", "-1000", "out of range"),
    ("min_confidence", "1.1", "out of range"),
    ("min_confidence", "-0.1", "out of range"),
    ("markets", "", "list one or both of SPOT, FUTURES"),
    ("markets", "SPOT,MARGIN", "list one or both of SPOT, FUTURES"),
    ("symbols_allow", "BTC", "not a symbol: 'BTC'"),
    ("symbols_allow", "ETHBTC,eth btc!", "not a symbol"),
    ("symbols_deny", "A" * 21, "not a symbol"),
    ("max_open_trades", "-1", "not a whole number"),
    ("max_open_trades", "100001", "out of range"),
    ("max_open_trades", "9" * 5000, "out of range"),  # beyond int()'s digit limit: still a message
    ("max_open_trades", "٣", "not a whole number"),  # a digit, but not an ASCII one
    ("one_per_symbol_side", "maybe", "not true or false"),
    ("one_per_symbol_side", "", "not true or false"),
    ("paused", "2", "not true or false"),
    ("signal_feed_url", "ftp://bot.example.com/feed", "not an http(s) URL"),
    ("signal_feed_url", "bot.example.com/feed", "not an http(s) URL"),
    ("signal_feed_url", "http://bot example.com", "not an http(s) URL"),
    ("signal_feed_url", "http://bot.example.com/\x00", "not an http(s) URL"),
    ("signal_feed_url", "http://[::1", "not an http(s) URL"),  # urlsplit would raise on it
    ("signal_feed_url", "http://bot.example.com:99999/feed", "not an http(s) URL"),
    ("signal_feed_url", "http://bot.example.com/" + "a" * 2000, "not an http(s) URL"),
    ("site_title", "   ", "must not be empty"),
    ("site_title", "x" * 101, "too long"),
    ("site_title", "my\x00bot", "control characters"),
    ("site_description", "x" * 1001, "too long"),
    ("site_description", "bell\x07", "control characters"),
]


@pytest.mark.parametrize(("key", "text", "problem"), INVALID, ids=[f"{r[0]}={r[1][:30]!r}" for r in INVALID])
def test_invalid_values_are_refused_naming_the_key(key: str, text: str, problem: str) -> None:
    with pytest.raises(SettingError) as refused:
        parse_setting(key, text)
    message = str(refused.value)
    assert message.startswith(f"{key}: ")
    assert problem in message
    assert "\n" not in message and len(message) < 300


def test_an_unknown_key_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(SettingError, match="unknown setting 'stake'; known: stake_usd, entry_mode"):
        parse_setting("stake", "100")


# --- the row in the database -------------------------------------------------------------


def test_defaults_are_the_design_table(engine: Engine) -> None:
    with transaction(engine) as session:
        shown = as_dict(load(session=session))
    assert {k: v for k, v in shown.items() if k not in PRESENTATION} == DESIGN_DEFAULTS
    assert set(shown) == set(DESIGN_DEFAULTS) | PRESENTATION
    assert shown["site_title"]


def test_load_creates_the_default_row_once(engine: Engine) -> None:
    with transaction(engine) as session:
        first = load(session=session)
        again = load(session=session)
    with transaction(engine) as session:
        later = load(session=session)
    assert first.id == again.id == later.id == 1
    assert settings_rows(engine) == 1
    assert events(engine) == []  # creating the defaults is not a change


def test_a_change_is_stored_and_logged_with_old_and_new(engine: Engine) -> None:
    with transaction(engine) as session:
        applied = change({"stake_usd": "250"}, actor="owner", now=NOW, session=session)
    assert applied == [("stake_usd", "100", "250")]
    with transaction(engine) as session:
        row = load(session=session)
        assert row.stake_usd == D("250")
        assert row.updated_at == NOW
    [event] = events(engine)
    assert (event.kind, event.actor, event.at, event.message) == (
        "settings.changed", "owner", NOW, "stake_usd changed 100 → 250")
    assert event.signal_pk is None and event.trade_id is None


def test_each_real_change_gets_one_event_and_unchanged_values_none(engine: Engine) -> None:
    with transaction(engine) as session:
        applied = change({
            "stake_usd": "100.00",  # the same amount written differently
            "fee_rate_spot": "0.0010",
            "entry_mode": "MARKET",
            "paused": "no",
            "symbols_deny": "eth/btc",
            "max_open_trades": "3",
        }, actor="owner", now=NOW, session=session)
    assert applied == [("symbols_deny", "", "ETHBTC"), ("max_open_trades", "0", "3")]
    assert [e.message for e in events(engine)] == [
        "symbols_deny changed (empty) → ETHBTC",
        "max_open_trades changed 0 → 3",
    ]
    with transaction(engine) as session:
        assert change({"symbols_deny": "ETHBTC", "max_open_trades": "3"}, actor="owner", now=LATER, session=session) == []
        assert load(session=session).updated_at == NOW  # an empty change touches nothing
    assert len(events(engine)) == 2


def test_a_change_back_is_logged_too(engine: Engine) -> None:
    with transaction(engine) as session:
        change({"paused": "true"}, actor="owner", now=NOW, session=session)
    with transaction(engine) as session:
        change({"paused": "false"}, actor="cli:alice", now=LATER, session=session)
    assert [(e.actor, e.at, e.message) for e in events(engine)] == [
        ("owner", NOW, "paused changed false → true"),
        ("cli:alice", LATER, "paused changed true → false"),
    ]


def test_a_change_is_all_or_nothing(engine: Engine) -> None:
    with transaction(engine) as session:
        with pytest.raises(SettingError, match="^entry_mode: "):
            change({"stake_usd": "250", "entry_mode": "best", "paused": "true"}, actor="owner", now=NOW, session=session)
        row = load(session=session)  # nothing applied even inside the same transaction
        assert (row.stake_usd, row.paused) == (D("100"), False)
    with transaction(engine) as session:
        assert as_dict(load(session=session))["stake_usd"] == "100"
    assert events(engine) == []


@pytest.mark.parametrize(("key", "text", "value", "shown"), [
    ("stake_usd", " 250.50 ", D("250.50"), "250.50"),
    ("fee_rate_futures", "0.000123456789012345", D("0.000123456789012345"), "0.000123456789012345"),
    ("one_per_symbol_side", "yes", True, "true"),
    ("symbols_allow", "eth/btc,ada-btc", "ETHBTC,ADABTC", "ETHBTC,ADABTC"),
    ("site_description", "Bot «α» — ok", "Bot «α» — ok", "Bot «α» — ok"),
])
def test_normalised_values_survive_the_database(engine: Engine, key: str, text: str, value: object,
                                                shown: str) -> None:
    with transaction(engine) as session:
        change({key: text}, actor="owner", now=NOW, session=session)
    with transaction(engine) as session:
        row = load(session=session)
        assert getattr(row, key) == value
        assert as_dict(row)[key] == shown


# --- through the CLI -----------------------------------------------------------------------


def show(cli: Cli) -> dict[str, str]:
    lines = cli("settings", "show").stdout.splitlines()
    return {key: value.strip() for key, _, value in (line.partition(" ") for line in lines)}


def test_the_cli_sets_shows_and_refuses(cli: Cli, engine: Engine) -> None:
    result = cli("settings", "set", "stake_usd", "250")
    assert result.stdout.strip() == "stake_usd: 100 → 250"
    assert cli("settings", "set", "stake_usd", "250.0").stdout.strip() == "stake_usd unchanged"

    shown = show(cli)
    assert shown["stake_usd"] == "250"
    assert {k: v for k, v in shown.items() if k not in PRESENTATION | {"stake_usd"}} == {
        k: v for k, v in DESIGN_DEFAULTS.items() if k != "stake_usd"}

    refused = cli("settings", "set", "stake_usd", "-5", check=False)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("signalproof: stake_usd: '-5' is out of range")
    assert "Traceback" not in refused.stderr

    unknown = cli("settings", "set", "stake", "5", check=False)
    assert unknown.returncode == 2
    assert "Traceback" not in unknown.stderr and "stake" in unknown.stderr

    [event] = events(engine)
    assert event.message == "stake_usd changed 100 → 250"
    assert event.actor == "cli"  # not "cli:<the server's user name>": the log is public
    with transaction(engine) as session:
        assert load(session=session).stake_usd == D("250")
