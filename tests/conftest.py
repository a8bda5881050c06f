"""Shared fixtures: real databases (SQLite file and a fresh PostgreSQL database per test) and
the fake Binance exchange over real HTTP.

Outside CI a missing PostgreSQL or candle directory skips the tests that need it; in CI
(`CI=true`) it fails them, so a green CI run always means they ran.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlalchemy.engine import Engine

from fake_exchange import FakeExchange
from shared.database import make_engine, upgrade

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


class PostgresDatabases:
    """Creates brand-new databases and drops them afterwards (we never touch any other)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self) -> str:
        name = f"signalproof_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return sa.engine.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.created:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture
def postgres_databases(postgres_admin_url: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    return postgres_databases.create()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_database(database_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes empty, migrated databases of this test's kind (a SQLite file or PostgreSQL)."""
    count = iter(range(1000))

    def make() -> str:
        if database_kind == "sqlite":
            url = f"sqlite:///{tmp_path / f'signalproof-{next(count)}.db'}"
        else:
            url = request.getfixturevalue("postgres_databases").create()
        upgrade(url)
        return url

    return make


@pytest.fixture
def database_url(new_database: Callable[[], str]) -> str:
    """An empty, migrated database: a SQLite file, then the same test on PostgreSQL."""
    return new_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


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
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "signalproof", *args]

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


@pytest.fixture
def another_cli(new_database: Callable[[], str], exchange: FakeExchange, tmp_path: Path) -> Callable[[str], Cli]:
    """A CLI on a second, empty database of the same kind (for comparing two runs)."""
    def make(name: str) -> Cli:
        (tmp_path / name).mkdir()
        return Cli(new_database(), exchange.url, tmp_path / name)
    return make
