"""Shared fixtures: real databases (SQLite file and a fresh PostgreSQL database per test) and
the fake Binance exchange over real HTTP.

Outside CI a missing PostgreSQL or candle directory skips the tests that need it; in CI
(`CI=true`) it fails them, so a green CI run always means they ran.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fake_exchange import FakeExchange
from shared.database import upgrade

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def candles_path() -> Path:
    path = Path(os.environ.get("SIGNALPROOF_TEST_CANDLES", ROOT.parent / "shared" / "data" / "candles"))
    if not (path / "spot-ETHBTC-1m.json").is_file():
        unavailable(f"no test candles at {path} (set SIGNALPROOF_TEST_CANDLES)")
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL")
    if not url:
        unavailable("SIGNALPROOF_TEST_POSTGRES_URL is not set")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL at SIGNALPROOF_TEST_POSTGRES_URL is unusable: {exc.orig}")
    finally:
        engine.dispose()
    return url  # type: ignore[return-value]


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A brand-new database for this test, dropped afterwards (we never touch any other)."""
    name = f"signalproof_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: a SQLite file, then the same test on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'signalproof.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture
def exchange(candles_path: Path) -> Iterator[FakeExchange]:
    with FakeExchange(candles_path) as fake:
        yield fake


class Cli:
    """Runs `signalproof …` as a user would: a separate process configured by environment."""

    def __init__(self, database_url: str, exchange_url: str, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {
            **os.environ,
            "SIGNALPROOF_DATABASE_URL": database_url,
            "SIGNALPROOF_SPOT_API_URL": exchange_url,
            "SIGNALPROOF_FUTURES_API_URL": exchange_url,
            "SIGNALPROOF_HTTP_TIMEOUT_SECONDS": "0.5",
            "SIGNALPROOF_HTTP_BACKOFF_SECONDS": "0.01",
            "SIGNALPROOF_RETRY_AFTER_CAP_SECONDS": "1",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "worker.cli", *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*args), cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"signalproof {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*args), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def cli(database_url: str, exchange: FakeExchange, tmp_path: Path) -> Cli:
    return Cli(database_url, exchange.url, tmp_path)
