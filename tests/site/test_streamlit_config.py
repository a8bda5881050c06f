"""site/.streamlit/config.toml: `streamlit run site/streamlit_app.py`, from any directory, serves
the site as `signalproof site` does, and no visitor ever sees an exception's details.

Streamlit's `client.showErrorDetails = false` means "stacktrace", which showed visitors server
paths and source lines; the site needs "none".
"""

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.database import upgrade
from signalproof import cli
from local_server import free_port, serving
from tests.site.test_browser import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, chromium_path  # noqa: F401

# What a visitor must not see, whatever fails: the exception, where the code lives, its lines.
LEAKS = ("Traceback", "no such table", "OperationalError", "SELECT", ".py", "site/", "track_record", "sqlalchemy")

# Read through Streamlit's own loader, as `streamlit run SCRIPT` does (script-level config),
# in a clean process whose home and working directory hold no other Streamlit config.
READ_CONFIG = """
import json, sys
from streamlit import config
config._main_script_path = sys.argv[1]
options = config.get_config_options(force_reparse=True)
print(json.dumps({key: options[key].value for key in sys.argv[2:]}))
"""
EXPECTED = {
    "client.showErrorDetails": "none",
    "client.toolbarMode": "viewer",
    "browser.gatherUsageStats": False,
    "server.headless": True,
    "server.runOnSave": False,
    "server.address": "127.0.0.1",
    "server.port": 8501,
    "theme.base": "light",
}


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STREAMLIT_", "SIGNALPROOF_"))}
    return {**env, "HOME": str(tmp_path), **extra}


def test_streamlit_reads_the_sites_options_for_the_script_from_any_directory(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", READ_CONFIG, str(cli.SITE_APP), *EXPECTED], cwd=tmp_path,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == EXPECTED


def test_signalproof_site_forces_only_what_protects_visitors() -> None:
    command = cli.site_command("--server.port", "9999")
    assert command[-2:] == ["--server.port", "9999"]
    assert "--client.showErrorDetails=none" in command
    assert not any("showErrorDetails=false" in arg for arg in command)


@contextmanager
def streamlit_run_directly(tmp_path: Path, database_url: str) -> Iterator[str]:
    """`streamlit run <checkout>/site/streamlit_app.py --server.port N`, nothing else, from an
    unrelated directory: every other option must come from the site's config file."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(cli.SITE_APP), "--server.port", str(port)]
    with serving(command, port=port, cwd=tmp_path, env=clean_env(tmp_path, SIGNALPROOF_DATABASE_URL=database_url),
                 log_path=tmp_path / "streamlit.log", check_log=False) as (url, _):  # the config's address: loopback
        yield url


@pytest.mark.slow
def test_a_failing_page_shows_visitors_no_path_or_source_line(tmp_path: Path, chromium_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    # A database that passes the schema check but breaks every query of the trades: the
    # Overview raises inside the site's code.
    database = tmp_path / "broken.db"
    upgrade(f"sqlite:///{database}")
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE trade")

    with streamlit_run_directly(tmp_path, f"sqlite:///{database}") as url:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                page.goto(url, wait_until="domcontentloaded")
                page.locator('[data-testid="stException"]').first.wait_for(state="visible")
                page.wait_for_timeout(1000)  # anything else the run would still draw
                text = page.locator("body").inner_text()
                html = page.locator('[data-testid="stMain"]').inner_html()
            finally:
                browser.close()

    assert "This app has encountered an error" in text
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} shown to a visitor:\n{text}"
        assert leak not in html, f"{leak!r} in the page's HTML"
    # The details went to the operator's log instead: the page really did raise.
    assert "no such table: trade" in (tmp_path / "streamlit.log").read_text()
