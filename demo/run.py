"""`signalproof demo`: the whole product on a simulated market — offline, no configuration.

In this process: the simulated exchange (a thread serving the random walk over HTTP on
127.0.0.1), the simulated bot's live calls (a thread), and the real worker in the main thread
(its scheduler and its SIGTERM/SIGINT handling need it). Beside it, as a child process: the
real site (`signalproof site`) on the demo's own SQLite file, with the demo banner and an
owner password everyone knows. Stopping the worker (Ctrl-C, SIGTERM) stops everything.

At start the bot's month of history is imported through the real intake (as backfill), and
the worker's first pass resolves it; a live call then follows every minute or so.
"""

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from demo import DEFAULT_SEED
from demo.bot import SOURCE, SignalBot, json_lines
from demo.exchange import SimulatedExchange
from demo.market import RandomWalkMarket
from shared import settings as runtime
from shared.clock import Clock, utcnow
from shared.config import Config
from shared.database import make_engine, transaction, upgrade
from shared.signal_files import read_rows
from worker.intake import store_rows
from worker.market_data import BinanceClient
from worker.service import Worker

log = logging.getLogger("signalproof.demo")

HISTORY = timedelta(days=30)
# The newest backfilled call is older than the 10 minutes after which a signal counts as backfill.
BACKFILL_UNTIL = timedelta(minutes=15)
MONITOR_SECONDS = 10  # livelier than production's 30 s: a demo is watched
DEMO_ACTOR = "demo"
# Trades that neither hit a level within a day close at market: the demo shows expiries too.
DEMO_SETTINGS = {"max_trade_hours": "24"}
OWNER_PASSWORD = "demo"
SITE_READY_SECONDS = 60
SITE_STOP_SECONDS = 10


class DemoUnavailable(Exception):
    """The demo cannot start as asked (port taken, database path holding real data)."""


SiteCommand = Callable[..., list[str]]  # streamlit arguments in, the command that serves the site out


def run_demo(config: Config, *, port: int, database: Path, site_command: SiteCommand, seed: int | None = None,
             clock: Clock = utcnow) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop. `site_command` is how the product serves
    its site (the CLI passes it in: the demo does not know where the site lives)."""
    seed = DEFAULT_SEED if seed is None else seed
    _port_free(port)
    # Until the worker installs its own handlers, SIGTERM unwinds the start-up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    print("DEMO — simulated market (no network): starting…", flush=True)
    url = fresh_database(database)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    # The month's catch-up is one long job; "job skipped: already running" lines would only alarm.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    now = clock()
    market = RandomWalkMarket(seed=seed, start=now - HISTORY)
    bot = SignalBot(market, seed=seed)
    engine = make_engine(url)
    site: subprocess.Popen[bytes] | None = None
    live: LiveSignals | None = None
    try:
        with transaction(engine) as session:
            runtime.change(DEMO_SETTINGS, actor=DEMO_ACTOR, now=now, session=session)
        imported = import_history(engine, bot, start=market.start, end=now - BACKFILL_UNTIL, now=now)
        log.info("imported %d backfilled signals of the simulated bot (%s)", imported, SOURCE)
        # The exchange thread is a daemon and is not stopped explicitly: the worker's last job
        # may still be reading from it while the process winds down.
        exchange = SimulatedExchange(market, clock=clock)
        exchange.keep_requests = False  # it serves for hours: no request log
        exchange.start()
        site = start_site(site_command, database_url=url, port=port, exchange_url=exchange.url)
        live = LiveSignals(engine, bot, clock=clock)
        live.start()
        worker = Worker(engine, BinanceClient(
            spot_url=exchange.url, futures_url=exchange.url, timeout=config.http_timeout_seconds,
            retries=config.http_retries, retry_after_cap=config.retry_after_cap_seconds,
            backoff_base=config.http_backoff_seconds), clock=clock)
        SiteWatcher(site, port, database, stopping=worker.stop).start()
        worker.run_forever(monitor_seconds=MONITOR_SECONDS)
    finally:
        if live is not None:
            live.stop()
        if site is not None:
            stop_site(site)
        engine.dispose()
    print("demo stopped", flush=True)
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise DemoUnavailable(f"port {port} is in use: choose another with --port") from None


# --- the database ----------------------------------------------------------------------


def fresh_database(path: Path) -> str:
    """An empty, migrated SQLite file at `path` (a previous demo's is deleted); its URL."""
    if path.exists() and not made_by_demo(path):
        raise DemoUnavailable(f"{path} is not a demo database; the demo recreates its database at every start, "
                              "so give it a path of its own with --database (or delete that file if it is a demo "
                              "database whose first start was cut short)")
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{path.resolve()}"
    upgrade(url)
    return url


def made_by_demo(path: Path) -> bool:
    """An empty file, or one the demo set up (its settings change is logged by the demo) holding
    only the simulated bot's signals: safe to delete. Anything else may be someone's record."""
    try:
        with closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return True
            if not {"event", "signal"} <= tables:
                return False
            by_demo = db.execute("SELECT count(*) FROM event WHERE actor = ?", (DEMO_ACTOR,)).fetchone()[0]
            others = db.execute("SELECT count(*) FROM signal WHERE source != ?", (SOURCE,)).fetchone()[0]
            return by_demo > 0 and others == 0
    except sqlite3.DatabaseError:
        return False


def import_history(engine: Engine, bot: SignalBot, *, start: datetime, end: datetime, now: datetime) -> int:
    """The bot's past calls, through the intake `signalproof signals import` uses."""
    with transaction(engine) as session:
        report = store_rows(read_rows(json_lines(bot.backfill(start, end))), default_source=SOURCE,
                            received_at=now, actor="import", session=session)
    if report.rejected:  # the bot makes valid signals; a rejection here is a bug worth seeing
        log.warning("%d backfilled signal(s) rejected: %s", report.rejected, report.rejections[:3])
    return report.accepted


class LiveSignals(threading.Thread):
    """The simulated bot's live calls, one every minute or so, stored as soon as they are made."""

    def __init__(self, engine: Engine, bot: SignalBot, *, clock: Clock = utcnow) -> None:
        super().__init__(name="demo-bot", daemon=True)
        self.engine = engine
        self.bot = bot
        self.clock = clock
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.bot.pause()):
            now = self.clock()
            try:
                with transaction(self.engine) as session:
                    store_rows(read_rows(json_lines([self.bot.signal_at(now)])), default_source=SOURCE,
                               received_at=now, actor=SOURCE, session=session)
            except Exception:  # a database hiccup must not end the stream; the next call comes anyway
                log.exception("the simulated bot could not store its signal")

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


# --- the site --------------------------------------------------------------------------


def start_site(site_command: SiteCommand, *, database_url: str, port: int,
               exchange_url: str) -> "subprocess.Popen[bytes]":
    """The real site on the demo database, as a child process, in demo mode."""
    env = {
        **os.environ,
        "SIGNALPROOF_DATABASE_URL": database_url,
        "SIGNALPROOF_SITE_DATABASE_URL": "",  # the demo's file, never a replica set for the real site
        "SIGNALPROOF_DEMO": "true",
        "SIGNALPROOF_OWNER_PASSWORD_HASH": PasswordHasher().hash(OWNER_PASSWORD),
        # The Methodology page names the candle source: here, the simulated exchange.
        "SIGNALPROOF_SPOT_API_URL": exchange_url,
        "SIGNALPROOF_FUTURES_API_URL": exchange_url,
    }
    return subprocess.Popen(site_command("--server.port", str(port), "--server.address", "127.0.0.1"), env=env)


def stop_site(site: "subprocess.Popen[bytes]") -> None:
    if site.poll() is None:
        site.terminate()
    try:
        site.wait(timeout=SITE_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        site.kill()
        site.wait()


def site_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
            return bool(response.read().decode().strip() == "ok")
    except OSError:
        return False


class SiteWatcher(threading.Thread):
    """Says where the site is once it answers; stops the demo if the site dies on its own."""

    def __init__(self, site: "subprocess.Popen[bytes]", port: int, database: Path, *,
                 stopping: threading.Event) -> None:
        super().__init__(name="demo-site-watcher", daemon=True)
        self.site, self.port, self.database, self.stopping = site, port, database, stopping

    def run(self) -> None:
        deadline = time.monotonic() + SITE_READY_SECONDS
        while not site_healthy(self.port) and self.site.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
        if self.site.poll() is None and not self.stopping.is_set():
            if site_healthy(self.port):
                print(banner(self.port, self.database), flush=True)
            else:
                log.warning("the site is not answering on port %d after %d s", self.port, SITE_READY_SECONDS)
        self.site.wait()
        if not self.stopping.wait(2):  # Ctrl-C reaches the site first; give the worker a moment
            log.error("the site stopped (exit status %s): stopping the demo", self.site.returncode)
            os.kill(os.getpid(), signal.SIGTERM)


def banner(port: int, database: Path) -> str:
    return "\n".join((
        "",
        f"DEMO — simulated market (no network). Site: http://localhost:{port}",
        f"  owner settings password: {OWNER_PASSWORD}",
        f"  database: {database} (recreated at every start)",
        "  a month of simulated signals is being resolved; a new live one follows every minute or so",
        "  stop with Ctrl-C",
        "",
    ))
