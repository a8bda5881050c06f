"""The owner's settings page, run headless with AppTest against SQLite and PostgreSQL.

As the owner: locked without a hash, wrong and right passwords, every form saving into the
database and into the public log, invalid values refused, the kill switch, closing and
cancelling trades by hand. As an attacker: guesses slowed down (across a restart of the
site), expired sessions, nothing secret in the page or the session.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from argon2 import PasswordHasher
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from shared import settings as runtime
from shared.database import make_engine, transaction
from shared.money import settle
from shared.models import Event, LoginThrottle, RuntimeSettings, Trade, TradeStatus, WorkerHeartbeat
from track_record import auth
from track_record.forms import GROUPS, LABELS

SITE = Path(__file__).resolve().parents[2] / "site"
PASSWORD = "correct horse battery staple"
HASH = PasswordHasher().hash(PASSWORD)
UTC = timezone.utc
Page = Callable[..., AppTest]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Page]:
    """`page()` runs the settings page as a fresh site process would (caches cleared)."""
    def run(*, password_hash: str | None = HASH, script: str = "settings") -> AppTest:
        monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", database_url)
        if password_hash is None:
            monkeypatch.delenv("SIGNALPROOF_OWNER_PASSWORD_HASH", raising=False)
        else:
            monkeypatch.setenv("SIGNALPROOF_OWNER_PASSWORD_HASH", password_hash)
        st.cache_data.clear()
        st.cache_resource.clear()
        return ok(AppTest.from_file(str(SITE / "app_pages" / f"{script}.py"), default_timeout=60).run())

    yield run
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def db(database_url: str) -> Iterator[Any]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, "\n".join(e.message for e in at.exception)
    return at


def texts(elements: Iterable[Any]) -> list[str]:
    """What the owner reads: the page escapes Markdown in messages that carry typed text."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def by_label(widgets: Iterable[Any], label: str) -> Any:
    found = [w for w in widgets if w.label == label]
    assert len(found) == 1, f"{label!r}: {[w.label for w in widgets]}"
    return found[0]


def button(at: AppTest, label: str) -> Any:
    return by_label(at.button, label)


def log_in(at: AppTest, password: str = PASSWORD) -> AppTest:
    by_label(at.text_input, "Owner password").input(password)
    return ok(button(at, "Log in").click().run())


def logged_in(at: AppTest) -> bool:
    return "Runtime settings" in texts(at.subheader)


def stored(db: Any) -> RuntimeSettings:
    with transaction(db) as session:
        return runtime.current(session=session)


def public_log(db: Any) -> list[tuple[str, str]]:
    with Session(db) as session:
        return [(e.actor, e.message) for e in session.exec(select(Event).order_by(Event.id))
                if e.kind == "settings.changed" or e.actor == "owner"]


def throttle(db: Any, client: str = "local") -> LoginThrottle | None:
    """The failure count of a client ("local": AppTest, like a browser on localhost, has no address)."""
    with Session(db) as session:
        return session.get(LoginThrottle, client)


# --- the gate -----------------------------------------------------------------------------------

def test_without_a_hash_the_page_is_locked_and_says_how_to_open_it(page: Page) -> None:
    at = page(password_hash=None)
    assert texts(at.warning) == ["**The settings page is locked:** no owner password is set."]
    assert "signalproof hash-password" in at.markdown[0].value
    assert "SIGNALPROOF_OWNER_PASSWORD_HASH" in at.markdown[0].value
    assert not at.text_input and not at.button  # no way in, not even a form to try


def test_a_hash_that_is_not_argon2_keeps_it_locked(page: Page) -> None:
    at = page(password_hash="$2b$12$notargon2butbcrypt")
    assert texts(at.warning) == ["**The settings page is locked:** SIGNALPROOF_OWNER_PASSWORD_HASH is not an argon2 hash."]
    assert not at.text_input


def test_wrong_password_is_refused_and_counted(page: Page, db: Any) -> None:
    at = log_in(page(), "guess")
    assert texts(at.error) == ["Wrong password."]
    assert not logged_in(at)
    assert throttle(db).failures == 1  # type: ignore[union-attr]


def test_right_password_opens_and_keeps_only_the_fact_in_the_session(page: Page, db: Any) -> None:
    at = log_in(page(), "guess")
    at = log_in(at)
    assert logged_in(at) and not at.error
    assert texts(at.subheader) == ["Status", "Kill switch", "Runtime settings", "Close or cancel a trade",
                                   "Recent changes (public)"]
    assert throttle(db).failures == 0  # type: ignore[union-attr]  # a success resets the count
    # The session holds when the owner last acted, and widget values; never the secret.
    assert isinstance(at.session_state[auth.SESSION_KEY], datetime)
    assert_no_secret_in(at)


def assert_no_secret_in(at: AppTest) -> None:
    """Neither the password nor the hash in the session state or in anything drawn."""
    values = [str(at.session_state[key]) for key in at.session_state]
    drawn = [str(getattr(node, "value", "")) + str(getattr(node, "label", "")) for root in (at.main, at.sidebar) for node in walk(root)]
    assert values and drawn
    for text in values + drawn:
        assert PASSWORD not in text and HASH not in text and "$argon2" not in text


def walk(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def test_an_empty_password_is_not_an_attempt(page: Page, db: Any) -> None:
    at = ok(button(page(), "Log in").click().run())
    assert texts(at.error) == ["Type the owner password."]
    assert throttle(db) is None


def test_log_out_locks_the_page_again(page: Page) -> None:
    at = log_in(page())
    at = ok(at.button(key="logout").click().run())
    assert not logged_in(at)
    assert auth.SESSION_KEY not in at.session_state
    assert by_label(at.text_input, "Owner password")


def test_a_session_expires_after_the_idle_time_and_a_late_action_is_dropped(page: Page, db: Any) -> None:
    at = log_in(page())
    by_label(at.text_input, "Stake per trade (USD)").input("250")
    at.session_state[auth.SESSION_KEY] = datetime.now(UTC) - timedelta(minutes=31)  # 30 min is the default
    at = ok(button(at, "Save trading").click().run())
    assert not logged_in(at)
    assert texts(at.info) == ["Your session ended after 30 min without activity: log in again."]
    assert stored(db).stake_usd == 100 and public_log(db) == []


def test_guessing_is_slowed_down_and_a_restart_does_not_reset_it(page: Page, db: Any) -> None:
    at = page()
    for attempt in range(1, auth.FREE_FAILURES + 1):
        at = log_in(at, f"guess {attempt}")
    assert texts(at.error) == ["Wrong password. After several failures each try must wait longer: the next one in 2 s."]

    # Even the right password is not checked during the wait, and a new site process knows it.
    at = log_in(page())
    assert not logged_in(at)
    assert texts(at.error)[0].startswith("Too many failed attempts: wait ")
    assert texts(at.error)[0].endswith(" s before the next try. This password was not checked.")
    assert throttle(db).failures == auth.FREE_FAILURES  # type: ignore[union-attr]  # refused tries are not counted

    # Once the wait is over, the owner gets in (the clock is moved by moving the last failure back).
    with transaction(db) as session:
        session.get(LoginThrottle, "local").last_failure_at -= timedelta(seconds=3)  # type: ignore[union-attr,operator]
    at = log_in(page())
    assert logged_in(at)
    assert throttle(db).failures == 0  # type: ignore[union-attr]


def test_one_address_guessing_does_not_lock_out_another_but_many_do(db: Any) -> None:
    moment = datetime.now(UTC)
    for _ in range(auth.FREE_FAILURES):
        assert auth.try_login(db, HASH, "guess", client="203.0.113.9", now=moment).outcome is auth.Outcome.WRONG
    assert auth.try_login(db, HASH, PASSWORD, client="203.0.113.9", now=moment).outcome is auth.Outcome.THROTTLED
    assert auth.try_login(db, HASH, PASSWORD, client="198.51.100.7", now=moment).outcome is auth.Outcome.OPENED

    # Spread over many addresses, the site-wide count slows down every address that has failed
    # (for up to a minute), though each failed only once; one without failures is still checked.
    for n in range(auth.SITE_FREE_FAILURES):
        auth.try_login(db, HASH, "guess", client=f"192.0.2.{n}", now=moment)
    refused = auth.try_login(db, HASH, PASSWORD, client="192.0.2.0", now=moment)
    assert refused.outcome is auth.Outcome.THROTTLED and refused.wait_seconds == 2
    assert auth.try_login(db, HASH, PASSWORD, client="198.51.100.7", now=moment).outcome is auth.Outcome.OPENED
    later = moment + timedelta(seconds=auth.SITE_MAX_WAIT_SECONDS)
    assert auth.try_login(db, HASH, PASSWORD, client="192.0.2.0", now=later).outcome is auth.Outcome.OPENED
    # An hour without failures and they are forgotten; a huge "password" is refused unhashed.
    assert auth.try_login(db, HASH, "x" * 10**6, client="203.0.113.9", now=moment + timedelta(hours=2)).outcome \
        is auth.Outcome.WRONG
    assert throttle(db, "203.0.113.9").failures == 1  # type: ignore[union-attr]


def test_a_sustained_attack_from_many_addresses_never_keeps_the_owner_out(db: Any) -> None:
    """Before: 0 of 12 correct tries passed during a 200 s attack. Now the site-wide wait slows
    every address that has failed, and the owner, from an address of their own, gets in."""
    start = datetime.now(UTC)
    opened = []
    for second in range(0, 200, 33):  # an attack of 200 s from ever new addresses; the owner tries 7 times
        moment = start + timedelta(seconds=second)
        guessers = [f"10.0.{second}.{n}" for n in range(auth.SITE_FREE_FAILURES + 1)]
        for guesser in guessers:
            assert auth.try_login(db, HASH, "guess", client=guesser, now=moment).outcome is auth.Outcome.WRONG
        # The site-wide wait is on: a guesser that has failed is refused unchecked …
        again = auth.try_login(db, HASH, PASSWORD, client=guessers[0], now=moment + timedelta(seconds=1))
        assert again.outcome is auth.Outcome.THROTTLED
        # … and the owner, from an address of their own, is checked and gets in.
        outcome = auth.try_login(db, HASH, PASSWORD, client="198.51.100.7", now=moment + timedelta(seconds=1)).outcome
        opened.append(outcome is auth.Outcome.OPENED)
    assert opened == [True] * 7


def test_the_throttle_table_stays_bounded(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "MAX_CLIENT_ROWS", 50)
    moment = datetime.now(UTC)
    for n in range(120):
        auth.try_login(db, HASH, "guess", client=f"192.0.2.{n}", now=moment + timedelta(seconds=n))
    with Session(db) as session:
        clients = [row.client for row in session.exec(select(LoginThrottle))]
    assert len(clients) == 51  # 50 clients and the site's row
    assert "192.0.2.119" in clients and "192.0.2.69" not in clients  # the oldest failures went first
    # Failures forgotten after an hour: their rows go with the next try.
    auth.try_login(db, HASH, PASSWORD, client="198.51.100.7", now=moment + auth.FORGET_AFTER + timedelta(hours=1))
    with Session(db) as session:
        assert [row.client for row in session.exec(select(LoginThrottle))] in (["*", "198.51.100.7"],
                                                                                ["198.51.100.7", "*"])


@pytest.mark.parametrize(("address", "key"), [
    (None, "local"), ("203.0.113.9", "203.0.113.9"), ("::ffff:203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
])
def test_an_address_counts_as_itself_and_an_ipv6_one_by_its_64(address: str | None, key: str) -> None:
    assert auth.throttle_key(address) == key


def test_owner_unlock_on_the_server_lifts_every_wait(cli: Any, engine: Any) -> None:
    moment = datetime.now(UTC)
    for _ in range(auth.FREE_FAILURES + 2):
        auth.try_login(engine, HASH, "guess", client=None, now=moment)
    assert auth.try_login(engine, HASH, PASSWORD, client=None, now=moment).outcome is auth.Outcome.THROTTLED
    assert cli("owner", "unlock").stdout.startswith("login waits lifted")
    assert auth.try_login(engine, HASH, PASSWORD, client=None, now=moment).outcome is auth.Outcome.OPENED


@pytest.mark.parametrize(("failures", "seconds_ago", "wait"), [
    (0, 0, 0), (2, 0, 0), (3, 0, 2), (3, 1.5, 0.5), (3, 2, 0), (4, 0, 4), (5, 1, 7), (10, 0, 256), (11, 0, 300),
    (50, 0, 300), (50, 301, 0),
])
def test_the_wait_doubles_after_the_free_failures_up_to_five_minutes(failures: int, seconds_ago: float,
                                                                      wait: float) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert auth.wait_seconds(failures, now - timedelta(seconds=seconds_ago), now) == wait


# --- settings -----------------------------------------------------------------------------------

def test_a_changed_setting_is_persisted_and_appears_in_the_public_log(page: Page, db: Any) -> None:
    at = log_in(page())
    by_label(at.text_input, "Stake per trade (USD)").input("250")
    by_label(at.selectbox, "Entry mode").select("limit")
    at = ok(button(at, "Save trading").click().run())
    assert texts(at.success) == ["Saved: stake_usd 100 → 250, entry_mode market → limit. The worker applies it "
                                 "from its next tick; the change is logged publicly."]
    assert (stored(db).stake_usd, stored(db).entry_mode) == (D(250), "limit")
    assert public_log(db) == [("owner", "stake_usd changed 100 → 250"), ("owner", "entry_mode changed market → limit")]
    # The form now shows the stored values.
    assert by_label(at.text_input, "Stake per trade (USD)").value == "250"

    methodology = page(script="methodology")
    log = next(d.value for d in methodology.dataframe if "label" in d.value.columns)
    assert list(log["label"]) == ["entry_mode changed market → limit", "stake_usd changed 100 → 250"]


@pytest.mark.parametrize(("group", "label", "value", "key", "expected"), [
    ("filters", "Minimum confidence", "0.6", "min_confidence", D("0.6")),
    ("filters", "Never these symbols", "dogeusdt, PEPE/USDT", "symbols_deny", "DOGEUSDT,PEPEUSDT"),
    ("filters", "Maximum open trades", "5", "max_open_trades", 5),
    ("signal feed", "Feed URL", "https://bot.example/signals?token=s3cret", "signal_feed_url",
     "https://bot.example/signals?token=s3cret"),
    ("presentation", "Site title", "Alpha Bot", "site_title", "Alpha Bot"),
    ("trading", "Fee rate, futures", "0.0004", "fee_rate_futures", D("0.0004")),
])
def test_each_form_saves_its_group(group: str, label: str, value: str, key: str, expected: object, page: Page,
                                   db: Any) -> None:
    at = log_in(page())
    by_label(at.text_input, label).input(value)
    at = ok(button(at, f"Save {group}").click().run())
    assert at.success and not at.error
    assert getattr(stored(db), key) == expected
    if key == "signal_feed_url":  # the public log shows the feed's host, never its token
        assert public_log(db) == [("owner", "signal_feed_url changed (empty) → set (bot.example)")]


def test_choices_and_switches_save_too(page: Page, db: Any) -> None:
    at = log_in(page())
    by_label(at.multiselect, "Markets").unselect("SPOT")
    by_label(at.checkbox, "One trade per symbol and side").check()
    at = ok(button(at, "Save filters").click().run())
    assert (stored(db).markets, stored(db).one_per_symbol_side) == ("FUTURES", True)
    by_label(at.text_area, "Site description").input("Trend signals, 4h.")
    at = ok(button(at, "Save presentation").click().run())
    assert stored(db).site_description == "Trend signals, 4h."


def test_invalid_values_are_refused_with_a_message_and_nothing_is_saved(page: Page, db: Any) -> None:
    at = log_in(page())
    by_label(at.text_input, "Stake per trade (USD)").input("-5")
    by_label(at.text_input, "Fee rate, spot").input("<b>abc</b>")
    by_label(at.text_input, "Maximum trade time (hours)").input("12")  # valid, but the form is all or nothing
    at = ok(button(at, "Save trading").click().run())
    (message,) = texts(at.error)
    assert message.startswith("Nothing was saved:")
    assert "- Stake per trade (USD): stake_usd: '-5' is out of range: must be above 0 and at most 1000000000" in message
    assert "- Fee rate, spot: fee_rate_spot: '<b>abc</b>' is not a number" in message
    assert "\\<b\\>abc\\</b\\>" in at.error[0].value  # on the page: escaped, never markup
    assert (stored(db).stake_usd, stored(db).max_trade_hours) == (D(100), D(0))
    assert public_log(db) == []

    by_label(at.multiselect, "Markets").unselect("SPOT")
    by_label(at.multiselect, "Markets").unselect("FUTURES")
    at = ok(button(at, "Save filters").click().run())
    assert "list one or both of SPOT, FUTURES" in texts(at.error)[0]
    assert stored(db).markets == "SPOT,FUTURES"


def test_every_runtime_setting_has_a_place_on_the_page(page: Page) -> None:
    in_forms = [key for keys in GROUPS.values() for key in keys]
    assert sorted(in_forms + ["paused"]) == sorted(runtime.SETTINGS)  # paused: the kill switch
    assert set(LABELS) == set(in_forms)
    at = log_in(page())
    shown = {w.label for kind in (at.text_input, at.selectbox, at.multiselect, at.checkbox, at.text_area) for w in kind}
    assert set(LABELS.values()) <= shown


# --- kill switch and manual actions ---------------------------------------------------------------

def test_pause_and_resume_need_confirmation(page: Page, db: Any) -> None:
    at = log_in(page())
    at = ok(button(at, "Pause auto-trading").click().run())
    assert texts(at.error) == ["Tick the confirmation first: nothing was changed."]
    assert stored(db).paused is False

    by_label(at.checkbox, "Yes, skip every new signal until I resume").check()
    at = ok(button(at, "Pause auto-trading").click().run())
    assert stored(db).paused is True
    assert dict((m.label, m.value) for m in at.metric)["Auto-trading"] == "Paused"

    by_label(at.checkbox, "Yes, turn new signals into trades again").check()
    at = ok(button(at, "Resume auto-trading").click().run())
    assert stored(db).paused is False
    assert public_log(db) == [("owner", "paused changed false → true"), ("owner", "paused changed true → false")]


def test_close_an_open_trade_at_the_latest_price_and_cancel_a_pending_one(seed: Any, page: Page, db: Any) -> None:
    moment = datetime.now(UTC) - timedelta(hours=2)
    checked = datetime.now(UTC) - timedelta(minutes=1)  # the worker is up to date with both
    open_trade = seed.trade(symbol="ETHUSDT", status="OPEN", signal_time=moment, entry_price="3000",
                            last_candle_time=checked)
    pending = seed.trade(symbol="SOLUSDT", status="PENDING", signal_time=moment, signal_entry=D("140"),
                         entry_mode="limit", last_candle_time=checked)
    seed.price("ETHUSDT", "3090")

    at = log_in(page())
    trades = by_label(at.selectbox, "Trade")
    assert trades.options == [f"#{pending.id} SOLUSDT LONG SPOT PENDING · entry 140 · no price stored yet",
                              f"#{open_trade.id} ETHUSDT LONG SPOT OPEN · entry 3000 · latest 3090"]
    at = ok(trades.select(open_trade.id).run())
    at = ok(button(at, "Close trade at the latest price").click().run())
    assert texts(at.error) == ["Tick the confirmation first: nothing was changed."]
    confirm = [c for c in at.checkbox if c.label.startswith(f"Yes, close trade {open_trade.id} at 3090")]
    confirm[0].check()
    at = ok(button(at, "Close trade at the latest price").click().run())

    with Session(db) as session:
        closed = session.get(Trade, open_trade.id)
    money = settle(side_sign=1, stake=D(100), leverage=1, fee_rate=D("0.001"), entry=D(3000), exit=D(3090))
    assert closed is not None
    assert (closed.status, closed.exit_price, closed.pnl_usd, closed.reason) == (
        TradeStatus.CLOSED_MANUAL.value, D(3090), money.pnl_usd, "closed by the owner")

    at = ok(by_label(at.selectbox, "Trade").select(pending.id).run())
    by_label(at.checkbox, f"Yes, cancel pending trade {pending.id}").check()
    at = ok(button(at, "Cancel pending trade").click().run())
    assert not at.error, texts(at.error)
    with Session(db) as session:
        assert session.get(Trade, pending.id).status == TradeStatus.CANCELLED.value  # type: ignore[union-attr]
    assert texts(at.info) == ["No open or pending trade."]
    assert [actor for actor, _ in public_log(db)] == ["owner", "owner"]
    assert public_log(db)[0][1].startswith(f"trade {open_trade.id} LONG ETHUSDT CLOSED_MANUAL at 3090, P/L $")

    # Publicly: in the Methodology log, and marked on the equity curve's event layer.
    methodology = page(script="methodology")
    log = next(d.value for d in methodology.dataframe if "label" in d.value.columns)
    assert list(log["label"]) == [f"trade {pending.id} LONG SOLUSDT cancelled: cancelled by the owner",
                                  public_log(db)[0][1]]


def test_an_open_trade_without_a_stored_price_cannot_be_closed(seed: Any, page: Page, db: Any) -> None:
    seed.trade(symbol="ETHUSDT", status="OPEN", signal_time=datetime.now(UTC) - timedelta(hours=1))
    at = log_in(page())
    assert texts(at.info) == ["No price for ETHUSDT is stored yet: it can be closed after the worker's next price update."]
    assert not [b for b in at.button if b.label == "Close trade at the latest price"]


def test_a_trade_the_worker_closed_meanwhile_is_left_alone(seed: Any, page: Page, db: Any) -> None:
    trade = seed.trade(symbol="ETHUSDT", status="OPEN", signal_time=datetime.now(UTC) - timedelta(hours=1))
    seed.price("ETHUSDT", "61000")
    at = log_in(page())
    [c for c in at.checkbox if c.label.startswith(f"Yes, close trade {trade.id}")][0].check()
    with transaction(db) as session:  # the worker records a take-profit while the owner looks
        row = session.get(Trade, trade.id)
        row.status, row.version = TradeStatus.CLOSED_TP.value, row.version + 1  # type: ignore[union-attr]
    at = ok(button(at, "Close trade at the latest price").click().run())
    assert texts(at.info) == ["No open or pending trade."]  # redrawn from the database before acting
    with Session(db) as session:
        assert session.get(Trade, trade.id).status == TradeStatus.CLOSED_TP.value  # type: ignore[union-attr]
    assert public_log(db) == []


# --- health -----------------------------------------------------------------------------------------

def test_worker_health_and_feed_status_are_shown(seed: Any, page: Page, db: Any) -> None:
    seed.settings(signal_feed_url="https://bot.example/feed")
    moment = datetime.now(UTC).replace(microsecond=0)
    with transaction(db) as session:
        session.merge(WorkerHeartbeat(id=1, started_at=moment - timedelta(hours=1), last_tick_at=moment - timedelta(minutes=2),
                                      last_success_at=moment - timedelta(minutes=2), pid=4242, hostname="box",
                                      last_error="<b>HTTP 503</b> from the exchange", last_error_at=moment - timedelta(hours=1),
                                      feed_last_poll_at=moment - timedelta(minutes=20), feed_received=17,
                                      feed_last_error="feed answered 500"))
    at = log_in(page())
    cards = {m.label: (m.value, m.delta) for m in at.metric}
    assert cards["Worker"] == ("2 min ago", "pid 4242 on box")  # whole minutes: no flakiness
    assert cards["Signal feed"] == ("17 signal(s) received", "last poll 20 min ago")
    assert cards["Auto-trading"] == ("Running", "new signals become trades")
    assert texts(at.text) == ["<b>HTTP 503</b> from the exchange", "feed answered 500"]  # st.text: never markup


# --- the public side ----------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["streamlit_app.py", "app_pages/overview.py", "app_pages/trades.py",
                                    "app_pages/analytics.py", "app_pages/methodology.py"])
def test_public_pages_have_no_way_to_write(script: str) -> None:
    """They reach the database only through the read-only loaders (whose connection refuses
    writes: test_pages.py proves it); the read-write engine and the writing modules are the
    settings page's alone."""
    source = (SITE / script).read_text()
    for writer in ("owner_engine", "make_engine", "transaction", "Session(", "shared.owner", "runtime.change",
                   "settings.change", "auth"):
        assert writer not in source, f"{script} mentions {writer}"


def test_a_close_happens_at_the_confirmed_price_or_not_at_all(seed: Any, page: Page, db: Any) -> None:
    checked = datetime.now(UTC) - timedelta(minutes=1)
    trade = seed.trade(symbol="ETHUSDT", status="OPEN", signal_time=datetime.now(UTC) - timedelta(hours=1),
                       entry_price="3000", last_candle_time=checked)
    seed.price("ETHUSDT", "3090")
    at = log_in(page())
    [c for c in at.checkbox if c.label.startswith(f"Yes, close trade {trade.id} at 3090")][0].check()
    seed.price("ETHUSDT", "2750")  # the price job stores a new price while the owner decides
    at = ok(button(at, "Close trade at the latest price").click().run())
    # Redrawn for the new price, unticked: the click confirmed 3090, which is gone.
    assert [c.value for c in at.checkbox if c.label.startswith(f"Yes, close trade {trade.id} at 2750")] == [False]
    assert not at.success
    with Session(db) as session:
        assert session.get(Trade, trade.id).status == TradeStatus.OPEN.value  # type: ignore[union-attr]
