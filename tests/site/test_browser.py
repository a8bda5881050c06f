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
PHONE_SCREENSHOT = ROOT / "docs" / "screenshot-phone.png"
VIEWPORT = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
SIGNALS = 150
START_TIMEOUT_S = 30
PAGE_TIMEOUT_MS = 20_000

# URL path → the page's title heading. Streamlit's page URLs are the page titles lower-cased;
# the Overview is the default page and shows the site title (the `site_title` setting).
PAGES = {"": "signalproof", "trades": "Trades", "analytics": "Analytics", "signals": "Signals",
         "methodology": "Methodology"}
# The columns a trader reads first, by their headers, in the tables that show trades.
KEY_HEADERS = {"": ("Trade", "Symbol", "Side", "P/L", "Outcome", "P/L of stake"),
               "trades": ("Trade", "Symbol", "Side", "Unrealized", "Outcome"),  # open positions come first
               "signals": ("Trade", "Signal (UTC)", "Status", "Reason")}

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
    insert_hostile_signal(postgres_url)  # as a bot writing to the table directly could
    cli("worker", "--once")
    store_btc_days(postgres_url)
    return cli


def insert_hostile_signal(url: str) -> None:
    """A NEW row with markup and a formula in its id, source, symbol and note: the worker rejects it."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from shared.database import make_engine, transaction
    from shared.models import Signal

    engine = make_engine(url)
    with transaction(engine) as session:
        session.add(Signal(source='=HYPERLINK("http://evil","x")', signal_id="<script>alert(1)</script>",
                           time=datetime(2018, 1, 21, 10, tzinfo=timezone.utc), symbol="NOPE<b>", side="LONG",
                           market="SPOT", take_profit="2", stop_loss=Decimal(1), note="**bold** [x](javascript:alert(1))"))
    engine.dispose()


def store_btc_days(url: str) -> None:
    """BTCUSDT daily candles over the record's days, as the worker's candle store keeps them
    (the recorded candles here have no BTCUSDT; these are made up, one a day)."""
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from shared.database import make_engine, transaction
    from shared.models import StoredCandle

    engine = make_engine(url)
    with transaction(engine) as session:
        for day in range(-3, 14):
            at = datetime(2018, 1, 20, tzinfo=timezone.utc) + timedelta(days=day)
            close = Decimal(11000 + 180 * day - (day % 4) * 260)
            session.add(StoredCandle(market="SPOT", symbol="BTCUSDT", interval="1d", open_time=at, open=close,
                                     high=close, low=close, close=close))
    engine.dispose()


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


def screenshot(page: Any, name: str, viewport: dict[str, int] = VIEWPORT) -> Path:
    """The whole page: Streamlit scrolls inside its own container, so the viewport is grown to fit."""
    height = page.evaluate(
        """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]', 'section.main']
                 .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight),
                 document.documentElement.scrollHeight)""")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], min(int(height), 12_000))})
    page.wait_for_timeout(500)  # charts re-layout to the new size
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def metric_value(page: Any, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    assert card.count() == 1, f"{card.count()} metric cards labelled {label!r}"
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def key_columns_visible(page: Any, headers: tuple[str, ...], widths: tuple[int, ...]) -> None:
    """The first table starts with the columns `headers`, and they fit its visible width (their
    fixed `widths`, set in the site's column configuration): no horizontal scrolling to read them.
    The grid draws on a canvas; its accessible table gives the column order, its scroller the
    visible width and the width of all columns together."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    order = [(cell.text_content() or "").strip() for cell in grid.locator('[role="columnheader"]').all()]
    assert tuple(order[:len(headers)]) == headers, order
    visible = grid.locator(".dvn-scroller").evaluate("e => e.clientWidth")
    assert sum(widths) <= visible, f"{headers} need {sum(widths)} px of {visible}"


def cards_two_per_row(page: Any) -> None:
    cards = page.locator('.st-key-cards [data-testid="stMetric"]')
    assert cards.count() >= 8
    boxes = [cards.nth(n).bounding_box() for n in range(4)]
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[2]["y"] > boxes[0]["y"] + boxes[0]["height"] - 2
    assert abs(boxes[2]["y"] - boxes[3]["y"]) < 2
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"] + 1 for b in boxes), boxes


def test_public_pages_render_and_agree_with_the_cli(chromium_path: Path, site: str, filled_cli: Cli,
                                                    tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    stats = json.loads(filled_cli("stats", "--json").stdout)
    assert stats["closed_trades"] > 50, stats
    exported = tmp_path / "export.csv"
    filled_cli("trades", "export", "--output", str(exported))
    signals_export = filled_cli("signals", "export").stdout
    assert "'=HYPERLINK" in signals_export

    shots: dict[str, Path] = {}
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            for viewport in (VIEWPORT, PHONE):
                context = browser.new_context(viewport=viewport, accept_downloads=True)
                page = context.new_page()
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                for path, heading in PAGES.items():
                    name = f"{path or 'overview'}-{viewport['width']}"
                    page.goto(f"{site}/{path}", wait_until="domcontentloaded")
                    wait_until_rendered(page, heading)
                    assert_no_error(page, name)
                    if viewport is VIEWPORT:
                        check_desktop(page, path, site, stats, exported, signals_export)
                    elif path == "":
                        cards_two_per_row(page)
                    shots[name] = screenshot(page, name, viewport)
                context.close()
            check_scope_survives_navigation(browser, site)
        finally:
            browser.close()

    assert not dialogs, f"hostile text ran as script: {dialogs}"
    assert {"overview-1400", "signals-1400", "overview-390", "trades-390"} <= set(shots)
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shots["overview-1400"], README_SCREENSHOT)
    shutil.copyfile(shots["overview-390"], PHONE_SCREENSHOT)


def check_desktop(page: Any, path: str, site: str, stats: dict[str, Any], exported: Path,
                  signals_export: str) -> None:
    if path == "":
        assert metric_value(page, "Win rate") == f"{stats['win_rate'] * 100:.1f}%"
        assert metric_value(page, "Total P/L") == usd(stats["total_pnl_usd"])
        assert "buying BTCUSDT and holding it returned" in page.locator("body").inner_text()
        # The crosshair: hovering the curve shows the nearest point's date, equity and trade.
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        for fraction in (0.5, 0.55, 0.6):
            page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.3, steps=5)
            page.wait_for_timeout(300)
        tooltip = page.locator("#vg-tooltip-element")
        page.wait_for_function("() => (document.querySelector('#vg-tooltip-element') || {}).innerText",
                               timeout=PAGE_TIMEOUT_MS)
        words = tooltip.inner_text()
        assert "time" in words and "equity" in words and "trade" in words, words
        page.mouse.move(0, 0)
    if path in KEY_HEADERS:
        from track_record.display import KEY_WIDTHS

        widths = {"": ("trade_id", "symbol", "side", "pnl_usd", "status", "pnl_pct"),
                  "trades": ("trade_id", "symbol", "side", "unrealized_usd", "status")}
        key_columns_visible(page, KEY_HEADERS[path], tuple(KEY_WIDTHS[c] for c in widths[path]) if path in widths
                            else (64, 150, 80, 320))
    if path == "trades":
        # A link to the streamed export (site/track_record/api.py), fetched as the
        # browser would, with the page's cookies.
        link = page.get_by_role("link", name=re.compile(r"^Download .* as CSV"))
        response = page.request.get(site + link.get_attribute("href"))
        assert response.status == 200
        assert response.body() == exported.read_bytes()
    if path == "signals":
        link = page.get_by_role("link", name=re.compile(r"^Download .* signal\(s\) as CSV"))
        response = page.request.get(site + link.get_attribute("href"))
        assert response.status == 200
        assert response.body().decode() == signals_export  # byte for byte `signals export`
        assert page.locator("script:not([src])").filter(has_text="alert(1)").count() == 0
    assert page.locator('[data-testid="stDataFrame"] [data-testid="stElementToolbarButton"] '
                        'button[aria-label*="ownload"]').count() == 0, "a second CSV download (the table's own)"


def check_scope_survives_navigation(browser: Any, site: str) -> None:
    """A period and the live-only switch set in the URL stay in it when the visitor moves on."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(f"{site}/?range=custom&from=2018-01-22&to=2018-01-25&live=0", wait_until="domcontentloaded")
    wait_until_rendered(page, "signalproof")
    assert "2018-01-22 to 2018-01-25" in page.locator("body").inner_text()
    for path, heading in (("analytics", "Analytics"), ("trades", "Trades"), ("signals", "Signals")):
        page.locator('[data-testid="stSidebarNav"] a', has_text=heading).first.click()
        wait_until_rendered(page, heading)
        page.wait_for_function("() => location.search.includes('range=custom')", timeout=PAGE_TIMEOUT_MS)
        assert page.url.startswith(f"{site}/{path}?") and "from=2018-01-22" in page.url and "to=2018-01-25" in page.url
        assert "2018-01-22 to 2018-01-25" in page.locator("body").inner_text()
    context.close()
