"""`signalproof demo` as a newcomer runs it: it comes up with a month of trades on its own (no
network, no configuration), the Overview shows them under the DEMO banner in headless
Chromium, and SIGTERM stops the worker and the site cleanly.

The Overview is saved as tests/artifacts/demo-overview.png (look at it: a page that renders
but looks broken is broken).
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.run import site_healthy
from local_server import free_port
from tests.site.test_browser import (  # noqa: F401 - chromium_path is a fixture
    CHROMIUM_ARGS, PAGE_TIMEOUT_MS, VIEWPORT, assert_no_error, chromium_path, metric_value, screenshot,
    wait_until_rendered,
)

pytestmark = pytest.mark.slow

READY_WITHIN_S = 90  # the issue promises a populated site within a minute; CI machines are slower
A_MONTH_OF_TRADES = 100
STOP_WITHIN_S = 20


class Demo:
    def __init__(self, process: "subprocess.Popen[str]", port: int, database: Path, log: Path) -> None:
        self.process, self.port, self.database, self.log = process, port, database, log
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, Any]:
        """`signalproof stats --json` on the demo's database; empty while it has no schema yet."""
        env = {**os.environ, "SIGNALPROOF_DATABASE_URL": f"sqlite:///{self.database}"}
        result = subprocess.run([sys.executable, "-m", "signalproof", "stats", "--json"], env=env,
                                cwd=self.database.parent, capture_output=True, text=True, timeout=60)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def healthy(self) -> bool:
        return site_healthy(self.port)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port, database, log_path = free_port(), tmp_path / "demo.db", tmp_path / "demo.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "signalproof", "demo", "--port", str(port), "--database", str(database)],
            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT, text=True)
    running = Demo(process, port, database, log_path)
    try:
        yield running
    finally:
        if process.poll() is None:  # the test failed before stopping it
            process.kill()
            process.wait(timeout=10)
            for child in running.children():
                os.kill(child, signal.SIGKILL)


def test_the_demo_shows_a_month_of_trades_and_stops_cleanly(demo: Demo, chromium_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    stats: dict[str, Any] = {}
    while not (stats.get("closed_trades", 0) >= A_MONTH_OF_TRADES and demo.healthy()):
        if demo.process.poll() is not None or time.monotonic() - started > READY_WITHIN_S:
            pytest.fail(f"no populated demo after {time.monotonic() - started:.0f} s (exit {demo.process.poll()}, "
                        f"stats {stats}):\n{demo.output()}")
        time.sleep(1)
        stats = demo.stats()
    ready_after = time.monotonic() - started
    print(f"demo populated after {ready_after:.1f} s: {stats}")
    output = demo.output()
    assert f"DEMO — simulated market (no network). Site: http://localhost:{demo.port}" in output
    assert "owner settings password: demo" in output

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(demo.url, wait_until="domcontentloaded")
            wait_until_rendered(page, "signalproof")
            assert_no_error(page, "demo overview")
            assert page.get_by_text("DEMO — simulated market.").first.is_visible()
            assert "on simulated candles" in page.locator("body").inner_text()
            shown = int(metric_value(page, "Closed trades").replace(",", ""))
            assert shown >= stats["closed_trades"]
            screenshot(page, "demo-overview")
            page.goto(f"{demo.url}/methodology", wait_until="domcontentloaded")  # the banner is on every page
            wait_until_rendered(page, "Methodology")
            assert page.get_by_text("DEMO — simulated market.").first.is_visible()
            assert "a simulated exchange's klines" in page.locator("body").inner_text()
        finally:
            browser.close()

    site = demo.children()
    assert site, "the site is not a child process of the demo"
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=STOP_WITHIN_S) == 0, demo.output()
    for pid in site:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not demo.healthy()
    output = demo.output()
    assert "demo stopped" in output and "Traceback" not in output, output
