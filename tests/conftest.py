"""Shared fixtures: real databases (SQLite file and a fresh PostgreSQL database per test) and
the fake Binance exchange over real HTTP.

PostgreSQL: the server named by $SIGNALPROOF_TEST_POSTGRES_URL, or else a throw-away server
this test session starts from the PostgreSQL binaries installed on the machine (see
`ThrowawayPostgres`). Outside CI, a machine without either skips the PostgreSQL tests (one
summary line says why); in CI (`CI=true`) they fail, so a green CI run always means they ran.
The recorded candles ship in tests/data/candles ($SIGNALPROOF_TEST_CANDLES overrides them).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlalchemy.engine import Engine

from fake_exchange import FakeExchange, candles_dir, series_files
from shared.database import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ENV = "SIGNALPROOF_TEST_POSTGRES_URL"


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message)


_UNAVAILABLE_LINE = unavailable.__code__.co_firstlineno + 3  # the pytest.skip line above


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Report every skip for a missing PostgreSQL, candles or browser at `unavailable` itself, so
    the summary (`-ra`) folds them into one line per reason instead of one line per test."""
    report: pytest.TestReport = yield
    if report.skipped and isinstance(report.longrepr, tuple) and call.excinfo is not None:
        if any(entry.frame.code.name == "unavailable" for entry in call.excinfo.traceback):
            report.longrepr = (str(Path(__file__)), _UNAVAILABLE_LINE, report.longrepr[2])
    return report


@pytest.fixture(scope="session")
def candles_path() -> Path:
    path = candles_dir()
    if not series_files(path):
        unavailable(f"no recorded candles in {path} (tests/data/candles, or $SIGNALPROOF_TEST_CANDLES)")
    return path


def postgres_binaries() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`: on PATH, else the newest
    /usr/lib/postgresql/*/bin (Debian and Ubuntu keep the server binaries off PATH)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0)
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").is_file() and (Path(directory) / "pg_ctl").is_file():
            return Path(directory)
    return None


class ThrowawayPostgres:
    """A private PostgreSQL server for one test session: a new cluster in a temporary directory,
    its own free port on 127.0.0.1, its unix socket in that directory, trust authentication for
    the superuser `postgres`; stopped and deleted at the end.

    PostgreSQL refuses to run as root, so as root (containers, CI) the cluster belongs to, and
    the server runs as, the unprivileged `postgres` user if the machine has one, else `nobody`
    (through `runuser`, or `setpriv` where there is no runuser).
    """

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.directory = Path(tempfile.mkdtemp(prefix="signalproof-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = _unprivileged_user()
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            if shutil.which("runuser"):
                self.prefix = ["runuser", "-u", user.pw_name, "--"]
            else:
                self.prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([*self.prefix, str(self.binaries / program), *args], capture_output=True, text=True,
                                timeout=120, cwd=self.directory)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self, *settings: str) -> None:
        """A new cluster (`initdb`: trust for every local connection, replication included),
        started with `settings` ("-c name=value") on top of the test defaults."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")
        self._serve(*settings)

    def start_standby_of(self, primary: "ThrowawayPostgres") -> None:
        """A hot standby of the running `primary`: `pg_basebackup -R` copies its cluster and
        writes standby.signal and the primary_conninfo to stream its WAL from, then the copy
        starts on this server's own port, answering read-only queries while it replays."""
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", str(self.data),
                  "-R", "--wal-method=stream", "--checkpoint=fast", "--no-sync")
        self._serve("-c hot_standby=on")

    def _serve(self, *settings: str) -> None:
        # A test server: durability buys nothing here, speed does.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.directory / "server.log"),
                  "-o", " ".join((options, *settings)))

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # never started, or already gone: the directory still goes
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


def _check_server(url: str, where: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL {where} is unusable: {exc.orig}")
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL URL allowed to create databases: $SIGNALPROOF_TEST_POSTGRES_URL, or else a
    throw-away server started from the binaries installed here (skipped when there are none)."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        _check_server(url, f"at {POSTGRES_ENV}")
        yield url
        return
    binaries = postgres_binaries()
    if binaries is None:
        unavailable(f"PostgreSQL tests: {POSTGRES_ENV} is not set and no PostgreSQL server binaries "
                    "(initdb, pg_ctl) are installed")
    server = ThrowawayPostgres(binaries)  # type: ignore[arg-type]
    try:
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"PostgreSQL tests: could not start a throw-away server from {binaries}: {exc}")
        _check_server(server.url, f"started from {binaries}")
        yield server.url
    finally:
        server.stop()


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


@dataclass(frozen=True)
class Replicated:
    """One database on a throw-away primary and the same database read on its hot standby."""

    primary_url: str
    standby_url: str
    primary: Engine  # AUTOCOMMIT engines on the two clusters' `postgres` databases
    standby: Engine

    def caught_up(self, timeout: float = 30) -> None:
        """Wait until the standby has replayed every transaction the primary has committed so far
        (pg_last_wal_replay_lsn() ≥ the primary's WAL position of now).

        The test server runs with synchronous_commit=off, so a commit may still sit in the
        primary's WAL buffers, which the standby is not sent yet. One small transaction committed
        synchronously flushes them (and everything before it); the position flushed then is the
        one to reach. (It must write WAL of its own, here a transactional message, or PostgreSQL
        commits it asynchronously all the same. Waiting for the insert position instead can take
        seconds: a background record after the last commit is not flushed until something else is.)"""
        with self.primary.connect() as connection:
            connection.execute(sa.text("SET synchronous_commit = on"))
            connection.execute(sa.text("SELECT pg_logical_emit_message(true, 'signalproof-test', 'caught up?')"))
            written = connection.execute(sa.text("SELECT pg_current_wal_flush_lsn()::text")).scalar_one()
        deadline = time.monotonic() + timeout
        with self.standby.connect() as connection:
            replayed = sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
            while not connection.execute(replayed, {"lsn": written}).scalar_one():
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby has not replayed the primary's WAL up to {written} "
                                         f"in {timeout:g} s")
                time.sleep(0.02)


@pytest.fixture(scope="session")
def hot_standby() -> Iterator[tuple[Engine, Engine]]:
    """A throw-away primary cluster and a streaming hot standby of it (`pg_basebackup -R`), each
    on its own port (see `ThrowawayPostgres`); both stopped and deleted at the end. Always
    started here, whatever $SIGNALPROOF_TEST_POSTGRES_URL names: a standby needs its primary's
    files. Yields AUTOCOMMIT engines on the primary and on the standby."""
    binaries = postgres_binaries()
    if binaries is None:
        unavailable("hot standby tests: no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are installed")
    primary, standby = ThrowawayPostgres(binaries), ThrowawayPostgres(binaries)  # type: ignore[arg-type]
    engines: list[Engine] = []
    try:
        try:
            # wal_level=replica is PostgreSQL's default; said here because the standby needs it.
            primary.start("-c wal_level=replica")
            standby.start_standby_of(primary)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"hot standby tests: could not start a primary and its standby from {binaries}: {exc}")
        engines = [sa.create_engine(url, isolation_level="AUTOCOMMIT") for url in (primary.url, standby.url)]
        yield engines[0], engines[1]
    finally:
        for engine in engines:
            engine.dispose()
        standby.stop()
        primary.stop()


@pytest.fixture
def replicated_database(hot_standby: tuple[Engine, Engine]) -> Iterator[Replicated]:
    """A new, empty database created on the primary, once the standby has it too."""
    primary, standby = hot_standby
    databases = PostgresDatabases(primary.url.render_as_string(hide_password=False))
    try:
        primary_url = databases.create()
        standby_url = sa.engine.make_url(primary_url).set(port=standby.url.port).render_as_string(hide_password=False)
        replicated = Replicated(primary_url, standby_url, primary, standby)
        replicated.caught_up()
        yield replicated
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
