"""The public site on a PostgreSQL read replica (SIGNALPROOF_SITE_DATABASE_URL) while the worker and
the CLI write to the primary (SIGNALPROOF_DATABASE_URL).

The replica is a real hot standby: a throw-away primary cluster and a `pg_basebackup -R` copy of
it streaming its WAL (tests/conftest.py, `hot_standby`). The CLI imports signals and runs the
worker against the fake exchange on the primary; once the standby has replayed everything,
`signalproof site` configured with both URLs serves the primary's track record from the standby
(the API over HTTP, the Overview in headless Chromium). Replication lag is made visible by
pausing the standby's replay: the site shows what the standby has, the owner's settings page
what the primary has. Writes through the standby's URL are refused by the server.
"""

import json
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import streamlit as st
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from conftest import Cli, Replicated
from fake_exchange import FakeExchange
from shared import heartbeat, settings as runtime
from shared.database import make_engine, transaction, upgrade
from tests.site.test_browser import (CHROMIUM_ARGS, PAGE_TIMEOUT_MS, VIEWPORT, chromium_path,  # noqa: F401
                                     metric_value, running_site, usd, wait_until_rendered)
from tests.site.test_settings_page import HASH, SITE, button, by_label, log_in, logged_in, ok, texts, throttle
from tests.worker.test_robustness import many_signals
from track_record import record

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SIGNALS = 24


@pytest.fixture
def migrated(replicated_database: Replicated) -> Replicated:
    """The replicated database with the schema (`db upgrade` on the primary, replayed)."""
    upgrade(replicated_database.primary_url)
    replicated_database.caught_up()
    return replicated_database


@pytest.fixture
def replica_cli(migrated: Replicated, exchange: FakeExchange, tmp_path: Path, candles_path: Path) -> Cli:
    """The CLI on the primary, after importing signals and one worker pass there; its environment
    also points the site at the standby, which has replayed all of it."""
    cli = Cli(migrated.primary_url, exchange.url, tmp_path)
    signals = tmp_path / "signals.csv"
    signals.write_text(many_signals(candles_path, SIGNALS, seed=5))
    assert f"accepted {SIGNALS}" in cli("signals", "import", str(signals)).stdout
    cli("worker", "--once")
    cli.env["SIGNALPROOF_SITE_DATABASE_URL"] = migrated.standby_url
    migrated.caught_up()
    return cli


class ReplayPaused:
    """While inside, the standby receives the primary's WAL but applies none of it: the replication
    lag of a busy replica, made to last as long as a test needs."""

    def __init__(self, replicated: Replicated) -> None:
        self.replicated = replicated

    def __enter__(self) -> None:
        with self.replicated.standby.connect() as connection:
            connection.execute(sa.text("SELECT pg_wal_replay_pause()"))

    def __exit__(self, *_exc: object) -> None:
        with self.replicated.standby.connect() as connection:
            connection.execute(sa.text("SELECT pg_wal_replay_resume()"))


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def data_version(url: str) -> tuple[int, str]:
    """What the pages key their caches on, read as the site reads it (read-only)."""
    engine = make_engine(url, read_only=True)
    try:
        with Session(engine) as session:
            return record.data_version(session=session)
    finally:
        engine.dispose()


def test_the_site_on_a_standby_serves_what_the_worker_wrote_on_the_primary(
        replica_cli: Cli, replicated_database: Replicated, tmp_path: Path,
        chromium_path: Path) -> None:  # noqa: F811 (the fixture imported above)
    from playwright.sync_api import sync_playwright

    stats = json.loads(replica_cli("stats", "--json").stdout)  # the CLI reads the primary
    assert stats["closed_trades"] > 5, stats
    exported = tmp_path / "export.csv"
    replica_cli("trades", "export", "--output", str(exported))

    # The site's data functions on the standby's read-only connection see the primary's data.
    primary, standby = replicated_database.primary_url, replicated_database.standby_url
    assert data_version(standby) == data_version(primary)
    assert data_version(standby)[0] > SIGNALS  # one event at least per signal
    engines = [make_engine(url, read_only=True) for url in (primary, standby)]
    try:
        beats = []
        for engine in engines:
            with Session(engine) as session:
                beat = heartbeat.read(session=session)
                assert beat is not None and beat.last_success_at is not None
                beats.append(beat.model_dump())
        assert beats[0] == beats[1]
    finally:
        for engine in engines:
            engine.dispose()

    with running_site(replica_cli, tmp_path / "site.log") as site:
        assert get_json(f"{site}/api/v1/summary") == stats
        head = get_json(f"{site}/api/v1/head")
        assert head["seq"] == data_version(primary)[0] and head["verified"], head
        assert get_bytes(f"{site}/api/v1/trades.csv") == exported.read_bytes()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                page.goto(site, wait_until="domcontentloaded")
                wait_until_rendered(page, "signalproof")
                assert metric_value(page, "Win rate") == f"{stats['win_rate'] * 100:.1f}%"
                assert metric_value(page, "Total P/L") == usd(stats["total_pnl_usd"])
            finally:
                browser.close()

        # Replication lag: a change on the primary reaches the site once the standby replays it.
        with ReplayPaused(replicated_database):
            replica_cli("settings", "set", "stake_usd", "250")
            assert data_version(primary)[0] == head["seq"] + 1
            assert data_version(standby)[0] == head["seq"]
            assert get_json(f"{site}/api/v1/head")["seq"] == head["seq"]  # what the standby has
        replicated_database.caught_up()
        assert get_json(f"{site}/api/v1/head")["seq"] == head["seq"] + 1


def stake(url: str) -> object:
    """The stake setting as stored at `url` (read-only)."""
    engine = make_engine(url, read_only=True)
    try:
        with Session(engine) as session:
            return runtime.current(session=session).stake_usd
    finally:
        engine.dispose()


def refusal(url: str, *, read_only: bool) -> BaseException:
    """What the server says to a settings change written through `url`."""
    engine = make_engine(url, read_only=read_only)
    try:
        with transaction(engine) as session:
            runtime.change({"stake_usd": "300"}, actor="test", now=datetime.now(timezone.utc), session=session)
    except sa.exc.DBAPIError as exc:
        return exc.orig  # type: ignore[return-value]
    finally:
        engine.dispose()
    raise AssertionError(f"a write through {url} was accepted")


def test_the_standby_refuses_writes_and_the_site_stays_read_only(migrated: Replicated, tmp_path: Path) -> None:
    standby, primary = migrated.standby_url, migrated.primary_url
    # The standby itself refuses, whatever the connection asks for ...
    assert isinstance(refusal(standby, read_only=False), psycopg.errors.ReadOnlySqlTransaction)
    # ... and the site's read-only connections refuse on their own, even on the primary.
    assert isinstance(refusal(primary, read_only=True), psycopg.errors.ReadOnlySqlTransaction)
    # The CLI pointed at the standby as if it were the primary fails instead of losing the change.
    on_standby = Cli(standby, "http://127.0.0.1:9", tmp_path)  # (no exchange needed)
    result = on_standby("settings", "set", "stake_usd", "300", check=False)
    assert result.returncode != 0 and "read-only transaction" in result.stderr
    migrated.caught_up()
    assert stake(standby) == stake(primary) == 100


@pytest.fixture
def settings_page(monkeypatch: pytest.MonkeyPatch, migrated: Replicated) -> Iterator[AppTest]:
    """The owner's settings page of a site whose public pages read the standby."""
    monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", migrated.primary_url)
    monkeypatch.setenv("SIGNALPROOF_SITE_DATABASE_URL", migrated.standby_url)
    monkeypatch.setenv("SIGNALPROOF_OWNER_PASSWORD_HASH", HASH)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield ok(AppTest.from_file(str(SITE / "app_pages" / "settings.py"), default_timeout=60).run())
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_owner_page_writes_to_the_primary_and_reads_its_own_writes_at_once(
        settings_page: AppTest, replicated_database: Replicated) -> None:
    primary = make_engine(replicated_database.primary_url)
    try:
        with ReplayPaused(replicated_database):
            at = log_in(settings_page, "a guess")
            assert throttle(primary).failures == 1  # type: ignore[union-attr]  # the login throttle: on the primary
            at = log_in(at)
            assert logged_in(at)
            by_label(at.text_input, "Stake per trade (USD)").input("250")
            at = ok(button(at, "Save trading").click().run())
            # The owner sees the change at once, though the standby has not replayed it yet.
            assert texts(at.success)[0].startswith("Saved: stake_usd 100 → 250.")
            assert by_label(at.text_input, "Stake per trade (USD)").value == "250"
            assert stake(replicated_database.primary_url) == 250
            assert stake(replicated_database.standby_url) == 100  # what the public pages read: not yet
        replicated_database.caught_up()
        assert stake(replicated_database.standby_url) == 250
    finally:
        primary.dispose()
