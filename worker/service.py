"""The worker service: APScheduler wiring around plain job functions.

Each tick reads as the narrative: load settings → take new signals → open trades → fetch
candles → decide exits → write. Jobs are plain methods that tests call directly.

A *tick* is one pass of the monitor, the job that follows every open trade (the other jobs
only feed it). It succeeds when the pass returns without an exception AND the heartbeat write
after it commits: the worker is not hung, its core job works, and the database accepts its
writes. Only then does `worker_heartbeat.last_tick_at` move on. An exchange outage is not a
failed tick (the monitor keeps the trades unchanged, records the error and retries; restarting
the worker would not fix the exchange); an exception, or a database that refuses the write, is.
Any other job that fails records its error, which the site and `--check` show.

`last_tick_at` is what the site's "worker last update" and `signalproof worker --check` judge
the worker by (shared/heartbeat.py, the row's one home, with the one `health()`); the systemd
watchdog uses the same ticks kept in memory, plus each symbol a long monitor pass finishes.
What the exchange refused reaches the row too: the signals waiting for a symbol check, the
trades the monitor could not update, the last error and since when it keeps failing.
"""

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import date, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.engine import Engine

from shared import candle_store, heartbeat, settings as runtime
from shared.clock import Clock, monotonic, utcnow
from shared.database import ensure_summaries, transaction
from shared.kinds import Market
from worker.checkpoints import CheckpointPolicy, checkpoint_job
from worker.feed import poll_feed
from worker.funding import FundingState, refresh_funding
from worker.intake import process_new_signals
from worker.market_data import ExchangeError, ExchangeUnreachable, MarketData, UnknownSymbol
from worker.monitor import MonitorReport, monitor_trades, store_prices
from worker.notify import Systemd

log = logging.getLogger("signalproof.worker")


class _NoRunSkippedLines(logging.Filter):
    """APScheduler warns at every interval while a job is still running ("skipped: maximum
    number of running instances reached", "was missed by"): with one job at a time, a long
    monitor pass would log a line every few seconds. That is the design here, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "maximum number of running instances" not in message and "was missed by" not in message


class Worker:
    def __init__(self, engine: Engine, market_data: MarketData, *, clock: Clock = utcnow, http_timeout: float = 10.0,
                 systemd: Systemd = Systemd(), checkpoints: CheckpointPolicy | None = None) -> None:
        self.engine = engine
        self.checkpoints = checkpoints
        self.market_data = market_data
        self.clock = clock
        self.http_timeout = http_timeout
        self.systemd = systemd
        self.known_symbols: dict[tuple[str, str], bool] = {}
        self.stop = threading.Event()
        self.last_tick: float | None = None  # monotonic() of the last successful tick
        self.last_progress: float | None = None  # … and of the last symbol a monitor pass finished
        self.intake_errors: list[ExchangeError] = []  # what the exchange answered the last intake
        self._intake_reported: tuple[int, str] | None = None  # (waiting, error) last written
        self.benchmark_day: date | None = None  # the UTC day of the last benchmark request answered
        self.benchmark_behind = False  # … which was a full page: more days to read at the next run
        self.funding_state = FundingState()  # how far each futures symbol's funding history is known

    # --- jobs ------------------------------------------------------------------------

    def process_signals(self) -> int:
        """Decide NEW signals; returns how many are still waiting (their symbol could not be checked)."""
        errors: list[ExchangeError] = []
        decided, left = process_new_signals(self.engine, self.market_data, now=self.clock(),
                                            known_symbols=self.known_symbols, errors=errors)
        if decided:
            log.info("signals: %d decided, %d waiting for the exchange", decided, left)
        self.intake_errors = errors
        self.record_intake(left, "; ".join(map(str, errors)))
        return left

    def poll_feed(self) -> None:
        with transaction(self.engine) as session:
            url = runtime.load(session=session).signal_feed_url
        if url:
            poll_feed(self.engine, url, now=self.clock(), timeout=self.http_timeout, stop=self.stop)

    def monitor(self) -> MonitorReport:
        """The funding history of active futures symbols first (a futures trade closes with its
        funding, so only once that is known through its exit), then every active trade."""
        now = self.clock()
        funding = refresh_funding(self.engine, self.market_data, now=now, state=self.funding_state)
        report = monitor_trades(self.engine, self.market_data, now=now, stop=self.stop, progress=self._working,
                                funding_known=funding.known_through)
        if funding.message:
            report.funding_problems.append(funding.message)
        if report.waiting_funding:
            report.funding_problems.append(f"{report.waiting_funding} futures trade(s) reached their exit but stay "
                                           "open until their funding history is known")
        if report.changed or report.failed:
            log.info("monitor: %d trade(s) changed, %d request(s), %d tape read(s), %d problem(s)",
                     report.changed, report.requests, report.tape_reads, len(report.failed))
        return report

    def checkpoint(self) -> None:
        """Note (sign, anchor) the ledger's head if it moved (worker/checkpoints.py)."""
        if self.checkpoints is not None:
            checkpoint_job(self.engine, self.checkpoints, now=self.clock())

    def store_prices(self) -> None:
        try:
            store_prices(self.engine, self.market_data, now=self.clock())
        except ExchangeError as exc:  # like the monitor: an exchange outage is not a failed tick
            log.warning("latest prices: %s (will retry)", exc)

    def store_benchmark(self) -> int:
        """BTCUSDT spot daily candles for the Overview's buy-and-hold line (shared.candle_store):
        one klines request, at most one a day (another only after a full page, while far behind),
        from the first trade's signal day or the day after the newest stored one. An exchange
        failure is logged and retried at the next run; it never fails the worker. Returns the
        candles stored."""
        now = self.clock()
        if self.benchmark_day == now.date() and not self.benchmark_behind:
            return 0
        with transaction(self.engine) as session:
            wanted = candle_store.benchmark_request(session=session, now=now)
        if wanted is None:
            return 0
        market = Market(candle_store.BENCHMARK_MARKET)
        try:
            days = self.market_data.klines(market, candle_store.BENCHMARK_SYMBOL, candle_store.BENCHMARK_INTERVAL,
                                           start=wanted.start, now=now)
        except ExchangeError as exc:
            log.warning("benchmark candles: %s (will retry at the next run)", exc)
            return 0
        except UnknownSymbol as exc:  # an exchange without it (a test's, a demo's): ask again tomorrow
            log.info("benchmark candles: %s", exc)
            self.benchmark_day, self.benchmark_behind = now.date(), False
            return 0
        self.benchmark_day = now.date()
        self.benchmark_behind = len(days) >= self.market_data.page_limit(market)
        with transaction(self.engine) as session:
            return candle_store.store([(market.value, candle_store.BENCHMARK_SYMBOL, candle_store.BENCHMARK_INTERVAL,
                                        day) for day in days], session=session)

    def retain_candles(self) -> int:
        """Delete the stored candles no trade's life needs any more (shared.candle_store.retain)."""
        with transaction(self.engine) as session:
            deleted = candle_store.retain(session=session)
        if deleted:
            log.info("candle store: %d candle(s) no trade needs deleted", deleted)
        return deleted

    # --- the heartbeat row (shared.heartbeat) -------------------------------------------------

    def record_start(self) -> None:
        """Who runs, since when. Writing it proves the database accepts writes: the first tick."""
        with transaction(self.engine) as session:
            heartbeat.record_start(now=self.clock(), pid=os.getpid(), hostname=socket.gethostname(), session=session)
        with transaction(self.engine) as session:
            rebuilt = ensure_summaries(session=session)
        if rebuilt is not None:
            log.warning("the summary tables did not match the trades: rebuilt from %d ended trades", rebuilt)
        self.last_tick = monotonic()

    def record_tick(self, report: MonitorReport | None = None) -> None:
        """A successful tick (see the module docstring); a monitor report adds what the exchange did."""
        with transaction(self.engine) as session:
            if report is None:
                heartbeat.record_tick(now=self.clock(), session=session)
            else:
                heartbeat.record_tick(now=self.clock(), behind_seconds=report.behind_seconds,
                                      monitor_errors=report.failed + report.funding_problems, stuck_trades=report.stuck,
                                      session=session)
        self.last_tick = monotonic()

    def record_intake(self, waiting: int, error: str) -> None:
        """Signals waiting for the exchange, and why. Written when that changes or while it fails
        (not every 5 s when all is well: the row is the site's too)."""
        if (waiting, error) == self._intake_reported == (0, ""):
            return
        with transaction(self.engine) as session:
            heartbeat.record_intake(now=self.clock(), waiting_signals=waiting, error=error or None, session=session)
        self._intake_reported = (waiting, error)

    def record_failure(self, error: str) -> None:
        """A failed tick: the error is kept, `last_tick_at` is not moved (so it goes stale)."""
        with transaction(self.engine) as session:
            heartbeat.record_failure(now=self.clock(), error=error, session=session)

    def _working(self) -> None:
        """A long monitor pass finished one more symbol (even one the exchange refused)."""
        self.last_progress = monotonic()

    def ticked_within(self, seconds: float) -> bool:
        """Whether the last successful tick, or progress inside a running monitor pass, is
        younger than `seconds`. A pass retrying through an exchange outage symbol by symbol is
        alive; a hung job or a database that refuses writes is not."""
        latest = max((t for t in (self.last_tick, self.last_progress) if t is not None), default=None)
        return latest is not None and monotonic() - latest < seconds

    def watchdog(self, interval: float) -> None:
        """Tell systemd the worker is alive, only while its ticks succeed; silence gets it restarted."""
        if self.ticked_within(interval):
            self.systemd.notify("WATCHDOG=1")

    # --- the two ways to run -----------------------------------------------------------

    def catch_up(self, *, max_rounds: int = 10) -> list[str]:
        """`worker --once`: all new signals, then every active trade as far as closed candles allow.

        An exchange failure that outlives the client's own retries leaves the work for the next
        round; problems still left after `max_rounds` are returned (and the exit status says so).
        """
        self.record_start()
        self.poll_feed()
        problems: list[str] = []
        for _ in range(max_rounds):
            waiting = self.process_signals()
            report = self.monitor()
            self.record_tick(report)
            why = "; ".join(map(str, self.intake_errors))
            problems = report.failed + ([f"{waiting} signal(s) whose symbol could not be checked"
                                         + (f" ({why})" if why else "")] if waiting else [])
            if not problems:
                break
            # A host that does not resolve or refuses connections will not in the next second either.
            if report.unreachable or any(isinstance(e, ExchangeUnreachable) for e in self.intake_errors):
                break
        problems += report.funding_problems  # not retried here: the next run asks again
        try:
            self.store_prices()
        except Exception as exc:  # prices only mark open trades to market; never fail the pass for them
            log.warning("latest prices: %s", exc)
        for name, job in (("benchmark candles", self.store_benchmark), ("candle store", self.retain_candles)):
            try:  # the site's charts only: never fail the pass for them
                job()
            except Exception as exc:
                log.warning("%s: %s", name, exc)
        try:
            self.checkpoint()  # the head this pass moved, noted (and anchored) before exiting
        except Exception as exc:  # a checkpoint never fails the pass: the next run notes the head
            log.warning("checkpoint: %s", exc)
        return problems

    def tick(self, name: str, function: Callable[[], object]) -> None:
        """Run one job; a monitor pass is then recorded as a tick (see the module docstring)."""
        try:
            result = function()
            if isinstance(result, MonitorReport):
                self.record_tick(result)
        except Exception as exc:  # a job must never kill the scheduler; the next tick retries
            log.exception("%s failed", name)
            try:
                self.record_failure(f"{name}: {type(exc).__name__}: {exc}")
            except Exception as again:  # most likely the same database error: one line is enough
                log.error("heartbeat failed too: %s: %s", type(again).__name__, again)

    def run_forever(self, *, monitor_seconds: int = 30) -> None:
        """The service: jobs on a BlockingScheduler, one at a time, until SIGTERM/SIGINT.

        Under systemd (`Type=notify`): READY=1 once started, WATCHDOG=1 every half watchdog
        interval while the last successful tick is younger than the interval (so `WatchdogSec=`
        must exceed the longest job, e.g. a monitor catch-up after downtime), STOPPING=1 on
        SIGTERM/SIGINT.
        """
        scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(1),  # one job at a time: they share the database
                       "feed": ThreadPoolExecutor(1),  # somebody else's server: never queues the monitor behind it
                       "control": ThreadPoolExecutor(1),  # watchdog and stop: never queued behind a long job
                       "checkpoints": ThreadPoolExecutor(1)},  # an anchor may hang up to its time limit: alone
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=timezone.utc,
        )
        logging.getLogger("apscheduler.scheduler").addFilter(_NoRunSkippedLines())
        now = utcnow()  # the scheduler's own clock, not the (maybe simulated) market's
        jobs = [("signals", self.process_signals, 5), ("feed", self.poll_feed, 30),
                ("monitor", self.monitor, monitor_seconds), ("prices", self.store_prices, 60),
                ("benchmark", self.store_benchmark, 3600), ("candles", self.retain_candles, 3600)]
        for name, function, seconds in jobs:
            scheduler.add_job(self.tick, "interval", args=(name, function), seconds=seconds, id=name, name=name,
                              next_run_time=now, executor="feed" if name == "feed" else "default")
        if self.checkpoints is not None:
            scheduler.add_job(self.tick, "interval", args=("checkpoint", self.checkpoint), id="checkpoint",
                              name="checkpoint", seconds=self.checkpoints.minutes * 60, next_run_time=now,
                              executor="checkpoints")
        interval = self.systemd.watchdog_seconds
        if interval is not None:
            scheduler.add_job(self.watchdog, "interval", args=(interval,), seconds=interval / 2, id="watchdog",
                              name="watchdog", executor="control", next_run_time=now)

        # A signal handler runs in the main thread between two bytecodes, possibly while that
        # thread holds one of the scheduler's locks: taking a lock there can deadlock. So the
        # handler only notes the signal, and a job acts on it within half a second.
        signalled: list[str] = []

        def note(signum: int, _frame: object) -> None:
            signalled.append(signal.Signals(signum).name)

        def stop_when_signalled() -> None:
            if signalled and not self.stop.is_set():
                log.info("%s received: finishing the current job", signalled[0])
                self.systemd.notify("STOPPING=1", "STATUS=finishing the current job")
                self.stop.set()  # a monitor pass stops between two symbols
                scheduler.shutdown(wait=False)  # the running job ends; the process waits for it

        scheduler.add_job(stop_when_signalled, "interval", seconds=0.5, id="stop", name="stop", executor="control",
                          next_run_time=now)
        signal.signal(signal.SIGTERM, note)
        signal.signal(signal.SIGINT, note)
        self.record_start()
        log.info("worker started (monitor every %d s%s)", monitor_seconds,
                 f", systemd watchdog every {interval:g} s" if interval is not None else "")
        self.systemd.notify("READY=1", f"STATUS=running: monitor every {monitor_seconds} s")
        scheduler.start()
        log.info("worker stopped")

