"""The public site in headless Chromium, on a PostgreSQL track record filled through the real CLI.

`signalproof signals import` + `worker --once` against the fake exchange fill a fresh database;
`signalproof site` serves it as a visitor would get it; Playwright opens every public page and
checks that it rendered without an error, that the Overview's headline cards say what
`signalproof stats --json` says, and that the Trades page's CSV download is byte for byte
`signalproof trades export`. Each page is saved as a full-page screenshot in tests/artifacts/
(git-ignored), and the Overview's becomes the README screenshot (docs/) when everything passed.
"""

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, Cli, unavailable
from fake_exchange import FakeExchange
from local_server import free_port, serving
from shared.database import upgrade
from tests.worker.test_robustness import many_signals

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
README_SCREENSHOT = ROOT / "docs" / "screenshot-overview.png"
VIEWPORT = {"width": 1280, "height": 900}
SIGNALS = 150
START_TIMEOUT_S = 30
PAGE_TIMEOUT_MS = 20_000

# URL path → the page's title heading. Streamlit's page URLs are the page titles lower-cased;
# the Overview is the default page and shows the site title (the `site_title` setting).
PAGES = {"": "signalproof", "trades": "Trades", "analytics": "Analytics", "methodology": "Methodology"}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        unavailable(f"no Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright (python) is not installed")
    return CHROMIUM


@pytest.fixture
def filled_cli(postgres_url: str, exchange: FakeExchange, tmp_path: Path, candles_path: Path) -> Cli:
    """A CLI on a PostgreSQL database holding a realistic, fully processed track record."""
    upgrade(postgres_url)
    cli = Cli(postgres_url, exchange.url, tmp_path)
    signals = tmp_path / "signals.csv"
    signals.write_text(many_signals(candles_path, SIGNALS, seed=11))
    assert f"accepted {SIGNALS}" in cli("signals", "import", str(signals)).stdout
    cli("worker", "--once")
    return cli


@contextmanager
def running_site(cli: Cli, log_path: Path) -> Iterator[str]:
    """`signalproof site` with `cli`'s configuration on a free local port; yields its base URL,
    stops it afterwards, and fails if the server log shows a traceback."""
    port = free_port()
    command = cli.command("site", "--server.port", str(port), "--server.address", "127.0.0.1")
    with serving(command, port=port, cwd=cli.cwd, env=cli.env, log_path=log_path,
                 start_timeout=START_TIMEOUT_S) as (url, _):
        yield url


@pytest.fixture
def site(filled_cli: Cli, tmp_path: Path) -> Iterator[str]:
    with running_site(filled_cli, tmp_path / "site.log") as url:
        yield url


def usd(value: float) -> str:
    """How the Overview writes a signed dollar amount: "+$12.34", "-$191.01" (ASCII minus), "$0.00"."""
    sign = "+" if value > 0 else "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def wait_until_rendered(page: Any, heading: str) -> None:
    """Streamlit has finished the script run: the title is shown, nothing is running, charts drew."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    # The status widget ("Running…") is shown while the script runs; it must be gone for a
    # moment in a row, as a page's fragments can start a run right after the first one ends.
    quiet_since = None
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0 or \
            page.locator('[data-testid="stSkeleton"], [data-testid="stSpinner"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.75:
            break
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"the {heading} page kept running for {PAGE_TIMEOUT_MS / 1000:.0f} s")
    # Vega-Lite charts draw asynchronously after the run; wait for every one to have its canvas/svg.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
                 .every(chart => chart.querySelector('canvas, svg'))""", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(300)


def assert_no_error(page: Any, name: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{name}: an exception is shown"
    text = page.locator("body").inner_text()
    for word in ("Traceback", "Error"):
        assert word not in text, f"{name}: {word!r} on the page:\n{text}"


def screenshot(page: Any, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its own container, so the viewport is grown to fit."""
    height = page.evaluate(
        """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]', 'section.main']
                 .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight),
                 document.documentElement.scrollHeight)""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], min(int(height), 12_000))})
    page.wait_for_timeout(500)  # charts re-layout to the new size
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def metric_value(page: Any, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    assert card.count() == 1, f"{card.count()} metric cards labelled {label!r}"
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_public_pages_render_and_agree_with_the_cli(chromium_path: Path, site: str, filled_cli: Cli,
                                                    tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    stats = json.loads(filled_cli("stats", "--json").stdout)
    assert stats["closed_trades"] > 50, stats
    exported = tmp_path / "export.csv"
    filled_cli("trades", "export", "--output", str(exported))

    shots: dict[str, Path] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            for path, heading in PAGES.items():
                name = path or "overview"
                page.goto(f"{site}/{path}", wait_until="domcontentloaded")
                wait_until_rendered(page, heading)
                assert_no_error(page, name)

                if name == "overview":
                    assert metric_value(page, "Win rate") == f"{stats['win_rate'] * 100:.1f}%"
                    assert metric_value(page, "Total P/L") == usd(stats["total_pnl_usd"])
                if name == "trades":
                    # A link to the streamed export (site/track_record/api.py), fetched as the
                    # browser would, with the page's cookies.
                    link = page.get_by_role("link", name=re.compile(r"^Download .* as CSV"))
                    response = page.request.get(site + link.get_attribute("href"))
                    assert response.status == 200
                    assert response.body() == exported.read_bytes()
                shots[name] = screenshot(page, name)
            context.close()
        finally:
            browser.close()

    assert set(shots) == {"overview", "trades", "analytics", "methodology"}
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shots["overview"], README_SCREENSHOT)
