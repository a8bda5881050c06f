"""The owner's settings page in headless Chromium, with the real worker acting on what it sets.

The owner logs in (after one wrong try), sets the stake to 250 and pauses auto-trading;
`signalproof worker --once` then skips the new signals ("paused"); the owner resumes, and the
next signals open at $250. The public Methodology page lists the changes. Then an attacker's
guesses are slowed down, and neither the password nor its hash appears in any page or log.
"""

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session

from conftest import Cli
from fake_exchange import FakeExchange
from shared.database import make_engine, upgrade
from tests.site.test_browser import (CHROMIUM_ARGS, VIEWPORT, assert_no_error, chromium_path,  # noqa: F401
                                     running_site, screenshot, wait_until_rendered)
from tests.worker.test_robustness import many_signals
from track_record.record import public_changes

PASSWORD = "owner's long passphrase"
HASH = PasswordHasher().hash(PASSWORD)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def owner_cli(postgres_url: str, exchange: FakeExchange, tmp_path: Path) -> Cli:
    upgrade(postgres_url)
    cli = Cli(postgres_url, exchange.url, tmp_path)
    cli.env["SIGNALPROOF_OWNER_PASSWORD_HASH"] = HASH
    return cli


@pytest.fixture
def site(owner_cli: Cli, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log_path = tmp_path / "site.log"
    with running_site(owner_cli, log_path) as url:
        yield url, log_path


def import_signals(cli: Cli, candles: Path, source: str, seed: int, count: int = 8) -> None:
    path = cli.cwd / f"{source}.csv"
    path.write_text(many_signals(candles, count, seed=seed))
    assert f"accepted {count}" in cli("signals", "import", str(path), "--source", source).stdout


def rows(cli: Cli, *command: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(cli(*command).stdout)))


def log_in(page: Any, password: str) -> None:
    page.get_by_label("Owner password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_timeout(300)
    wait_until_rendered(page, "Owner settings")


def click_confirmed(page: Any, confirmation: str, button: str) -> None:
    page.get_by_text(confirmation, exact=True).click()  # the checkbox's label
    wait_until_rendered(page, "Owner settings")
    page.get_by_role("button", name=button).click()
    page.wait_for_timeout(300)
    wait_until_rendered(page, "Owner settings")


def test_owner_sets_the_stake_and_pauses_and_the_worker_follows(chromium_path: Path, site: tuple[str, Path],
                                                                 owner_cli: Cli, candles_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, site_log = site
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{url}/settings")
        wait_until_rendered(page, "Owner settings")
        screenshot(page, "settings-login")

        log_in(page, "not the password")
        expect(page.get_by_text("Wrong password.")).to_be_visible()
        log_in(page, PASSWORD)
        expect(page.get_by_role("heading", name="Runtime settings")).to_be_visible()

        # Stake 250 through the Trading form.
        page.get_by_role("textbox", name="Stake per trade (USD)", exact=True).fill("250")
        page.get_by_role("button", name="Save trading").click()
        page.wait_for_timeout(300)
        wait_until_rendered(page, "Owner settings")
        expect(page.get_by_text("Saved: stake_usd 100 → 250")).to_be_visible()

        # An invalid value is refused on the page, and nothing is saved.
        page.get_by_role("textbox", name="Stake per trade (USD)", exact=True).fill("lots")
        page.get_by_role("button", name="Save trading").click()
        page.wait_for_timeout(300)
        wait_until_rendered(page, "Owner settings")
        expect(page.get_by_text("'lots' is not a number")).to_be_visible()

        click_confirmed(page, "Yes, skip every new signal until I resume", "Pause auto-trading")
        expect(page.get_by_text("Auto-trading paused")).to_be_visible()
        screenshot(page, "settings-owner")

        # The worker skips new signals while paused.
        import_signals(owner_cli, candles_path, "while-paused", seed=21)
        owner_cli("worker", "--once")
        paused = [s for s in rows(owner_cli, "signals", "export") if s["source"] == "while-paused"]
        assert {(s["status"], s["reason"]) for s in paused} == {("SKIPPED", "paused")}
        assert rows(owner_cli, "trades", "export") == []

        click_confirmed(page, "Yes, turn new signals into trades again", "Resume auto-trading")
        expect(page.get_by_text("Auto-trading resumed")).to_be_visible()

        # After resume, new signals open at the stake set on the page.
        import_signals(owner_cli, candles_path, "after-resume", seed=22)
        owner_cli("worker", "--once")
        trades = rows(owner_cli, "trades", "export")
        assert len(trades) == 8 and {t["source"] for t in trades} == {"after-resume"}
        assert {t["stake_usd"] for t in trades} == {"250"}

        # The public sees every change with its time.
        page.goto(f"{url}/methodology")
        wait_until_rendered(page, "Methodology")
        assert_no_error(page, "methodology")
        expect(page.get_by_role("heading", name="Changes and owner actions")).to_be_visible()
        screenshot(page, "methodology-with-changes")  # the log is a canvas table: see the screenshot
        engine = make_engine(owner_cli.env["SIGNALPROOF_DATABASE_URL"], read_only=True)
        with Session(engine) as session:
            log = list(public_changes(session=session)["label"])
        engine.dispose()
        assert log == ["paused changed true → false", "paused changed false → true", "stake_usd changed 100 → 250"]

        # An attacker in another browser: guesses are slowed down.
        attacker = browser.new_page(viewport=VIEWPORT)
        attacker.goto(f"{url}/settings")
        wait_until_rendered(attacker, "Owner settings")
        for guess in ("123456", "password", "letmein", "qwerty"):
            log_in(attacker, guess)
        expect(attacker.get_by_text("Too many failed attempts")).to_be_visible()
        screenshot(attacker, "settings-throttled")
        expect(attacker.get_by_role("heading", name="Runtime settings")).to_have_count(0)

        pages = [p.content() for p in (page, attacker)]
        browser.close()

    for text in pages + [site_log.read_text()]:
        assert PASSWORD not in text and HASH not in text and "$argon2" not in text
    for command in (("settings", "show"), ("trades", "export"), ("signals", "export"), ("stats", "--json")):
        output = owner_cli(*command).stdout
        assert HASH not in output and PASSWORD not in output


def guess_from(browser: Any, url: str, forwarded_for: str) -> str:
    """One wrong password in a fresh browser whose every request (the page's websocket too)
    carries `X-Forwarded-For: forwarded_for`; what the page answered."""
    context = browser.new_context(viewport=VIEWPORT, extra_http_headers={"X-Forwarded-For": forwarded_for})
    try:
        page = context.new_page()
        page.goto(f"{url}/settings")
        wait_until_rendered(page, "Owner settings")
        log_in(page, "a guess")
        alert = page.locator('[data-testid="stAlertContentError"]')
        alert.wait_for()
        return str(alert.inner_text())
    finally:
        context.close()


def throttle_rows(url: str) -> dict[str, int]:
    from sqlmodel import select

    from shared.models import LoginThrottle

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {row.client: row.failures for row in session.exec(select(LoginThrottle))}
    finally:
        engine.dispose()


@pytest.mark.parametrize("trusted_proxies", ["", "127.0.0.1"])
def test_a_spoofed_forwarded_for_does_not_reset_the_wait(chromium_path: Path, owner_cli: Cli, postgres_url: str,
                                                         tmp_path: Path, trusted_proxies: str) -> None:
    """The site is bound to loopback, as behind a reverse proxy on the same host. Without trusted
    proxies (the default) each guess counts for the connection's own address whatever header it
    sends; with the operator's `SIGNALPROOF_TRUSTED_PROXIES=127.0.0.1`, the header names the client."""
    from playwright.sync_api import sync_playwright

    from track_record import auth

    owner_cli.env["SIGNALPROOF_TRUSTED_PROXIES"] = trusted_proxies
    addresses = [f"203.0.113.{n}" for n in range(auth.FREE_FAILURES + 1)]
    with running_site(owner_cli, tmp_path / "site.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            answers = [guess_from(browser, url, address) for address in addresses]
        finally:
            browser.close()
    counted = throttle_rows(postgres_url)
    wrong = [answer for answer in answers if "Wrong password." in answer]
    if trusted_proxies:  # each address its own count: none past its free failures
        assert len(wrong) == len(addresses) and not any("must wait" in answer for answer in wrong), answers
        assert counted == {"*": len(addresses), **{address: 1 for address in addresses}}
    else:  # one count for the one real address, and its wait grows (or the guess is refused)
        assert "must wait" in answers[auth.FREE_FAILURES - 1] or "Too many" in answers[auth.FREE_FAILURES - 1]
        assert counted == {"*": len(wrong), "local": len(wrong)}, (counted, answers)
