"""A regular install works anywhere: `pip install .` (not -e) into a fresh virtual environment,
then `signalproof db upgrade`, `worker --once` and `site` from a directory that has nothing to
do with the checkout. Also: `alembic` by hand follows SIGNALPROOF_DATABASE_URL, and the
Makefile's `PORT=`.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from conftest import ROOT
from fake_exchange import FakeExchange
from local_server import free_port, healthy as _healthy
from tests.site.test_browser import (CHROMIUM_ARGS, PAGE_TIMEOUT_MS, assert_no_error,  # noqa: F401
                                     chromium_path, wait_until_rendered)

# What a checkout holds that an install must not need (and must not copy: it may be large).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                    ".pytest_cache", ".hypothesis", "artifacts", "tests", "docs", "bench")
SIGNALS = """id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note
1,2018-01-22T10:00:00Z,ETHBTC,LONG,SPOT,,0.0925,0.0890,1,0.7,pkg,
2,2018-01-22T10:00:00Z,LTCBTC,SHORT,SPOT,,0.0160,0.0172,1,0.7,pkg,
"""


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SIGNALPROOF_", "STREAMLIT_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "HOME": str(home), **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv holding a regular (non-editable) install of a copy of
    this checkout. pip may take the dependencies from its cache, or from PyPI."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / "bin"
    result = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             str(source)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(source)  # the install must not need the checkout any more
    return bin_dir


@pytest.mark.slow
def test_a_regular_install_upgrades_works_and_serves_from_any_directory(
        installed: Path, exchange: FakeExchange, tmp_path: Path, chromium_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(tmp_path, SIGNALPROOF_DATABASE_URL=f"sqlite:///{tmp_path / 'record.db'}",
                    SIGNALPROOF_SPOT_API_URL=exchange.url, SIGNALPROOF_FUTURES_API_URL=exchange.url,
                    SIGNALPROOF_HTTP_TIMEOUT_SECONDS="2", SIGNALPROOF_HTTP_BACKOFF_SECONDS="0.01")

    def signalproof(*args: str) -> str:
        result = subprocess.run([str(installed / "signalproof"), *args], cwd=elsewhere, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"signalproof {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    where = subprocess.run([str(installed / "python"), "-c",
                            "import signalproof.cli as c, shared.database as d; print(c.SITE_APP); print(d.MIGRATIONS_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(str(installed.parent) in path for path in where), where  # inside the venv, not the checkout

    assert "up to date" in signalproof("db", "upgrade")
    (elsewhere / "signals.csv").write_text(SIGNALS)
    assert "accepted 2, rejected 0, duplicate 0" in signalproof("signals", "import", "signals.csv")
    signalproof("worker", "--once")
    assert signalproof("trades", "export").count("CLOSED_") == 2

    port = free_port()
    log_path = tmp_path / "site.log"
    with open(log_path, "w") as log:
        site = subprocess.Popen([str(installed / "signalproof"), "site", "--server.port", str(port)], cwd=elsewhere,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            assert site.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                page.goto(f"{url}/trades", wait_until="domcontentloaded")
                wait_until_rendered(page, "Trades")
                assert_no_error(page, "trades")
                assert "2 trade(s)" in page.locator("body").inner_text()  # the table is a canvas grid
            finally:
                browser.close()
    finally:
        site.terminate()
        site.wait(timeout=15)
    assert "Traceback" not in log_path.read_text()


def test_alembic_by_hand_follows_signalproof_database_url(tmp_path: Path) -> None:
    database = tmp_path / "by-hand.db"
    result = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", str(ROOT / "alembic.ini"), "upgrade",
                             "head"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=clean_env(tmp_path, SIGNALPROOF_DATABASE_URL=f"sqlite:///{database}"))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"signal", "trade", "event", "alembic_version"} <= tables
    assert not (tmp_path / "var").exists()  # not the default file


def make(*args: str) -> list[str]:
    """`make` in the checkout with this interpreter's venv, without reinstalling it."""
    return ["make", "--no-print-directory", "-C", str(ROOT), "-o", "install", f"BIN={Path(sys.executable).parent}",
            *args]


@pytest.mark.slow
def test_make_run_serves_the_site_on_the_port_given(exchange: FakeExchange, tmp_path: Path) -> None:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    port = free_port()
    env = clean_env(tmp_path, SIGNALPROOF_DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}",
                    SIGNALPROOF_SPOT_API_URL=exchange.url, SIGNALPROOF_FUTURES_API_URL=exchange.url)
    log_path = tmp_path / "make-run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(make("run", f"PORT={port}"), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(f"http://127.0.0.1:{port}"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_make_demo_passes_the_port_on() -> None:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    dry = subprocess.run(make("-n", "demo", "PORT=8765"), capture_output=True, text=True, check=True).stdout
    assert dry.split()[-3:] == [f"{Path(sys.executable).parent}/signalproof", "demo", "--port", "8765"][-3:]
    assert "--port 8501" in subprocess.run(make("-n", "demo"), capture_output=True, text=True, check=True).stdout
