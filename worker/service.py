"""The worker service: APScheduler wiring around plain job functions.

Each tick reads as the narrative: load settings → take new signals → open trades → fetch
candles → decide exits → write. Jobs are plain methods that tests call directly.
"""

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timezone

import requests
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.engine import Engine

from shared import settings as runtime
from shared.clock import Clock, utcnow
from shared.database import single_row, transaction
from shared.models import WorkerHeartbeat
from worker.feed import poll_feed
from worker.intake import process_new_signals
from worker.market_data import MarketData
from worker.monitor import MonitorReport, monitor_trades, store_prices

log = logging.getLogger("signalproof.worker")


class Worker:
    def __init__(self, engine: Engine, market_data: MarketData, *, clock: Clock = utcnow, http_timeout: float = 10.0) -> None:
        self.engine = engine
        self.market_data = market_data
        self.clock = clock
        self.http_timeout = http_timeout
        self.known_symbols: dict[tuple[str, str], bool] = {}
        self.stop = threading.Event()
        self.http = requests.Session()

    # --- jobs ------------------------------------------------------------------------

    def process_signals(self) -> int:
        """Decide NEW signals; returns how many are still waiting (their symbol could not be checked)."""
        decided, left = process_new_signals(self.engine, self.market_data, now=self.clock(),
                                            known_symbols=self.known_symbols)
        if decided:
            log.info("signals: %d decided, %d waiting for the exchange", decided, left)
        return left

    def poll_feed(self) -> None:
        with transaction(self.engine) as session:
            url = runtime.load(session).signal_feed_url
        if url:
            poll_feed(self.engine, url, http=self.http, now=self.clock(), timeout=self.http_timeout)

    def monitor(self) -> MonitorReport:
        report = monitor_trades(self.engine, self.market_data, now=self.clock(), stop=self.stop)
        if report.changed or report.failed:
            log.info("monitor: %d trade(s) changed, %d request(s), %d symbol(s) failed",
                     report.changed, report.requests, len(report.failed))
        self.beat(error="; ".join(report.failed) or None, behind=report.behind_seconds, success=not report.failed)
        return report

    def store_prices(self) -> None:
        store_prices(self.engine, self.market_data, now=self.clock())

    def beat(self, *, error: str | None = None, behind: float | None = None, success: bool = True,
             started: bool = False) -> None:
        now = self.clock()
        with transaction(self.engine) as session:
            row = single_row(session, WorkerHeartbeat)
            row.last_tick_at = now
            if started:
                row.started_at, row.pid, row.hostname = now, os.getpid(), socket.gethostname()
            if success:
                row.last_success_at = now
            if error:
                row.last_error, row.last_error_at = error[:1000], now
            if behind is not None or success:
                row.behind_seconds = behind

    # --- the two ways to run -----------------------------------------------------------

    def catch_up(self, *, max_rounds: int = 10) -> list[str]:
        """`worker --once`: all new signals, then every active trade as far as closed candles allow.

        An exchange failure that outlives the client's own retries leaves the work for the next
        round; problems still left after `max_rounds` are returned (and the exit status says so).
        """
        self.beat(started=True)
        self.poll_feed()
        problems: list[str] = []
        for _ in range(max_rounds):
            waiting = self.process_signals()
            report = self.monitor()
            problems = report.failed + ([f"{waiting} signal(s) whose symbol could not be checked"] if waiting else [])
            if not problems:
                break
        try:
            self.store_prices()
        except Exception as exc:  # prices only mark open trades to market; never fail the pass for them
            log.warning("latest prices: %s", exc)
        return problems

    def _job(self, name: str, function: Callable[[], object]) -> None:
        try:
            function()
        except Exception as exc:  # a job must never kill the scheduler; the next tick retries
            log.exception("%s failed", name)
            try:
                self.beat(error=f"{name}: {type(exc).__name__}: {exc}", success=False)
            except Exception:
                log.exception("heartbeat failed too")

    def run_forever(self, *, monitor_seconds: int = 30) -> None:
        """The service: jobs on a BlockingScheduler, one at a time, until SIGTERM/SIGINT."""
        scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(1)},  # one job at a time: they share the database
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=timezone.utc,
        )
        now = datetime.now(timezone.utc)
        jobs = [("signals", self.process_signals, 5), ("feed", self.poll_feed, 30),
                ("monitor", self.monitor, monitor_seconds), ("prices", self.store_prices, 60)]
        for name, function, seconds in jobs:
            scheduler.add_job(self._job, "interval", args=(name, function), seconds=seconds, id=name, name=name,
                              next_run_time=now)

        def shutdown(signum: int, _frame: object) -> None:
            log.info("%s received: finishing the current job", signal.Signals(signum).name)
            self.stop.set()
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        self.beat(started=True)
        log.info("worker started (monitor every %d s)", monitor_seconds)
        scheduler.start()
        log.info("worker stopped")
