"""How fast the public site loads its data on large track records (a benchmark, not a test).

    python bench/site_load.py --trades 10000 [--trades 100000 --trades 1000000]
                              [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each N: a brand-new PostgreSQL database (signalproof_bench_<random>, dropped at the end) is
migrated with `shared.database.upgrade` and filled with COPY: N closed trades (+ their signals),
a few open ones with latest prices, and a few hundred events. Then a fresh Python process loads
it the way the Overview does — `track_record.record.build_snapshot` on a read-only engine — and
reports:

    summaries  `signalproof db rebuild-summaries` after the fill (the worker keeps them close by
            close; a COPY goes behind its back)
    cold    the first `track_record.loaders.snapshot` in a new process: build_snapshot on the
            read-only engine (new connections, nothing cached) + storing it in the cache
    warm    the same call again (Streamlit's cache_data hit, what later page runs get)
    version the `data_version` query every page run makes (ms, median of 5 after a first)
    stats   `queries.headline_stats`, i.e. `signalproof stats`: every headline metric (ms, median)
    metrics the same metrics alone (max drawdown, streaks, daily returns, Sharpe/Sortino, sums)
            combined from the day rows once they are read (ms, median)
    RSS     that process's peak resident memory (MiB), i.e. what one site process needs

`--profile` also prints the 30 hottest functions of the cold build (cProfile; adds ~25 %).
"""

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "site"):  # the project, and `track_record` (which lives in site/)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHUNK = 200_000
EVENTS = 300
OPEN_TRADES = 25
# Symbol → a typical price, so entries, levels and P/L look like the real thing.
SYMBOLS = {
    "BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "BNBUSDT": 550.0, "SOLUSDT": 150.0, "XRPUSDT": 0.6,
    "ADAUSDT": 0.45, "DOGEUSDT": 0.15, "AVAXUSDT": 35.0, "LINKUSDT": 15.0, "DOTUSDT": 7.0,
    "MATICUSDT": 0.7, "LTCUSDT": 80.0, "TRXUSDT": 0.12, "ATOMUSDT": 9.0, "NEARUSDT": 5.0,
    "APTUSDT": 9.0, "ARBUSDT": 1.1, "OPUSDT": 2.3, "FILUSDT": 5.5, "ETHBTC": 0.05,
    "LTCBTC": 0.0013, "ADABTC": 0.0000075, "XRPETH": 0.0002, "INJUSDT": 25.0,
}
SIGNAL_COLUMNS = ("id", "source", "signal_id", "time", "received_at", "symbol", "side", "market", "entry",
                  "take_profit", "stop_loss", "leverage", "confidence", "note", "status", "reason", "origin", "raw",
                  "processed_at")
TRADE_COLUMNS = ("id", "signal_pk", "source", "signal_id", "origin", "symbol", "market", "side", "leverage",
                 "signal_time", "signal_entry", "take_profit", "stop_loss", "stake_usd", "fee_rate", "entry_mode",
                 "slippage_bps", "maintenance_margin_rate", "pending_expiry_hours", "max_trade_hours",
                 "candle_interval", "status", "reason", "entry_time", "entry_price", "exit_time", "exit_price",
                 "fees_usd", "pnl_usd", "pnl_pct", "ambiguous", "last_candle_time", "created_at", "updated_at",
                 "version")


# --- databases ------------------------------------------------------------------------------


@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A new, migrated database; dropped afterwards whatever happens."""
    import sqlalchemy as sa

    from shared.database import upgrade

    name = f"signalproof_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- filling ----------------------------------------------------------------------------------


def trade_frames(first_id: int, count: int, now: datetime, rng: "np.random.Generator",
                 status: str | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """`count` trades (closed unless `status` says otherwise) and their ACCEPTED signals."""
    import numpy as np
    import pandas as pd

    ids = np.arange(first_id, first_id + count)
    names = np.array(list(SYMBOLS))
    which = rng.integers(0, len(names), count)
    symbol, base = names[which], np.array(list(SYMBOLS.values()))[which]
    futures = rng.random(count) < 0.3
    market = np.where(futures, "FUTURES", "SPOT")
    leverage = np.where(futures, rng.choice([2, 3, 5, 10, 20], count), 1)
    long = rng.random(count) < 0.55
    sign = np.where(long, 1.0, -1.0)
    entry = base * np.exp(rng.normal(0, 0.25, count))
    tp_dist = rng.uniform(0.005, 0.04, count)
    sl_dist = rng.uniform(0.005, 0.03, count)
    take_profit = entry * (1 + sign * tp_dist)
    stop_loss = entry * (1 - sign * sl_dist)

    year = 365 * 24 * 3600
    signal_time = pd.to_datetime(now.timestamp() - year + rng.uniform(0, year - 3 * 24 * 3600, count), unit="s",
                                 utc=True).round("ms")
    entry_time = signal_time.ceil("min")
    duration = pd.to_timedelta(np.minimum(rng.lognormal(np.log(3 * 3600), 1.6, count), 30 * 24 * 3600), unit="s")
    exit_time = (entry_time + duration).floor("min")
    received = (signal_time + pd.to_timedelta(rng.uniform(0.1, 5, count), unit="s")).round("us")
    backfill = rng.random(count) < 0.1
    received = received.where(~backfill, signal_time + pd.Timedelta(days=2))
    origin = np.where(backfill, "backfill", "live")

    fee_rate = np.where(futures, 0.0005, 0.001)
    stake = 100.0
    if status is None:
        outcome = rng.random(count)
        statuses = np.select([outcome < 0.5, outcome < 0.96, outcome < 0.99],
                             ["CLOSED_TP", "CLOSED_SL", "CLOSED_EXPIRED"], "CLOSED_MANUAL")
        statuses = np.where(futures & (leverage >= 10) & (rng.random(count) < 0.05), "LIQUIDATED", statuses)
        liquidation = entry * (1 - sign / leverage + sign * 0.004)
        exit_price = np.select(
            [statuses == "CLOSED_TP", statuses == "CLOSED_SL", statuses == "LIQUIDATED"],
            [take_profit, stop_loss, liquidation],
            entry * (1 + sign * rng.uniform(-0.01, 0.015, count)))
        notional = stake * leverage
        fees = fee_rate * notional * (1 + exit_price / entry)
        pnl = np.where(statuses == "LIQUIDATED", -stake - fee_rate * notional,
                       notional * sign * (exit_price - entry) / entry - fees)
        ambiguous = (statuses == "CLOSED_SL") & (rng.random(count) < 0.01)
        reason = np.where(statuses == "CLOSED_MANUAL", "closed by the owner", None)
        last_candle = exit_time
    else:
        statuses = np.full(count, status)
        exit_time = pd.DatetimeIndex([pd.NaT] * count, tz="UTC")
        exit_price = fees = pnl = np.full(count, np.nan)
        ambiguous = np.zeros(count, dtype=bool)
        reason = np.full(count, None)
        last_candle = entry_time

    trades = pd.DataFrame({
        "id": ids, "signal_pk": ids, "source": "bench", "signal_id": [f"b{i}" for i in ids], "origin": origin,
        "symbol": symbol, "market": market, "side": np.where(long, "LONG", "SHORT"), "leverage": leverage,
        "signal_time": signal_time, "signal_entry": np.nan, "take_profit": take_profit, "stop_loss": stop_loss,
        "stake_usd": stake, "fee_rate": fee_rate, "entry_mode": "market", "slippage_bps": 0.0,
        "maintenance_margin_rate": 0.004, "pending_expiry_hours": 24.0, "max_trade_hours": 0.0,
        "candle_interval": "1m", "status": statuses, "reason": reason, "entry_time": entry_time,
        "entry_price": entry, "exit_time": exit_time, "exit_price": exit_price, "fees_usd": fees,
        "pnl_usd": pnl, "pnl_pct": pnl / stake, "ambiguous": ambiguous, "last_candle_time": last_candle,
        "created_at": received, "updated_at": received, "version": 2,
    }, columns=TRADE_COLUMNS)
    signals = pd.DataFrame({
        "id": ids, "source": "bench", "signal_id": trades["signal_id"], "time": signal_time,
        "received_at": received, "symbol": symbol, "side": trades["side"], "market": market, "entry": np.nan,
        "take_profit": [f"{v:.8f}" for v in take_profit], "stop_loss": stop_loss, "leverage": leverage,
        "confidence": rng.uniform(0.5, 1, count).round(2), "note": None, "status": "ACCEPTED", "reason": None,
        "origin": origin, "raw": None, "processed_at": received,
    }, columns=SIGNAL_COLUMNS)
    return trades, signals


def copy_frame(cursor: "psycopg.Cursor", table: str, frame: "pd.DataFrame") -> None:
    """COPY a frame into `table`. Arrow writes the CSV (in C++, ~10x faster than pandas): strings
    quoted, nulls as bare empty fields (= NULL to COPY), times ISO 8601 with "Z"."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    buffer = io.BytesIO()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                     pa_csv.WriteOptions(include_header=False))
    with cursor.copy(f'COPY "{table}" ({", ".join(frame.columns)}) FROM STDIN WITH (FORMAT csv)') as copy:
        copy.write(buffer.getbuffer())


def fill(url: str, closed: int, *, seed: int = 1) -> None:
    """N closed trades and their signals, a few open trades, latest prices and events, by COPY."""
    import numpy as np
    import pandas as pd
    import psycopg

    from shared import events, settings as runtime
    from shared.database import make_engine, transaction

    now = datetime.now(timezone.utc)
    rng = np.random.default_rng(seed)
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        for start in range(0, closed, CHUNK):
            trades, signals = trade_frames(start + 1, min(CHUNK, closed - start), now, rng)
            copy_frame(cursor, "signal", signals)
            copy_frame(cursor, "trade", trades)
        trades, signals = trade_frames(closed + 1, OPEN_TRADES, now, rng, status="OPEN")
        copy_frame(cursor, "signal", signals)
        copy_frame(cursor, "trade", trades)
        prices = trades.groupby(["market", "symbol"], as_index=False)["entry_price"].first()
        prices = prices.assign(price=prices["entry_price"] * 1.003, updated_at=now)[["market", "symbol", "price",
                                                                                      "updated_at"]]
        copy_frame(cursor, "latest_price", prices)
        for table in ("signal", "trade"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM \"{table}\"))")
        cursor.execute("""INSERT INTO worker_heartbeat (id, started_at, last_tick_at, last_success_at, feed_received)
                          VALUES (1, %s, %s, %s, 0)""", (now, now, now))
        connection.commit()
        connection.autocommit = True
        cursor.execute("ANALYZE")  # as autovacuum would have done on a database that grew over a year
    picked = sorted(random.Random(seed).sample(range(1, closed + 1), min(EVENTS, closed)))
    engine = make_engine(url)
    try:
        with transaction(engine) as session:  # ledger entries (hash-chained: appended, not copied)
            events.record_many([events.Change("trade.closed", f"trade {i} closed",
                                                        now - timedelta(minutes=len(picked) - n), "worker",
                                                        signal_pk=i, trade_id=i) for n, i in enumerate(picked)], session=session)
        with transaction(engine) as session:  # a logged settings change, as on a real deployment
            runtime.change({"site_title": "signalproof bench"}, actor="bench", now=now, session=session)
    finally:
        engine.dispose()


def summarize(url: str) -> float:
    """The summary tables the worker keeps close by close, built at once (`db rebuild-summaries`)."""
    from shared import summaries
    from shared.database import make_engine, transaction

    engine = make_engine(url)
    started = time.perf_counter()
    try:
        with transaction(engine) as session:
            summaries.rebuild(session=session)
    finally:
        engine.dispose()
    return time.perf_counter() - started


# --- measuring (in a fresh process per database) --------------------------------------------


def measure(url: str, profile: bool) -> dict[str, float]:
    import logging
    import statistics

    from sqlmodel import Session
    from streamlit import logger as streamlit_logger

    # Caching works without a running server ("bare mode"); it only warns about it, every call.
    streamlit_logger.set_log_level(logging.ERROR)
    from decimal import Decimal

    from shared import queries, summaries
    from shared.database import make_engine
    from track_record import loaders, record

    # Cold: the first visitor's page run in a new site process. loaders.snapshot is exactly
    # build_snapshot on the read-only engine, plus storing a pickled copy in the cache.
    started = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    version = loaders.version(url)
    snapshot = loaders.snapshot(url, version, False)
    cold = time.perf_counter() - started
    if profile:
        profiler.disable()
        for order in ("cumulative", "tottime"):
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(order).print_stats(30)
    assert snapshot.stats["closed_trades"] > 0
    started = time.perf_counter()
    again = loaders.snapshot(url, version, False)  # the cache hit every later page run gets
    warm = time.perf_counter() - started
    assert again.stats == snapshot.stats

    engine = make_engine(url, read_only=True)
    versions, stats = [], []
    for _ in range(6):
        with Session(engine) as session:
            started = time.perf_counter()
            record.data_version(session=session)
            versions.append(time.perf_counter() - started)
            started = time.perf_counter()
            queries.headline_stats(session=session)  # `signalproof stats`: every metric, exact
            stats.append(time.perf_counter() - started)
        tables = summaries.load(session=session, with_bins=False)
    combined = []
    for _ in range(6):  # the metrics alone: drawdown, streaks, daily returns, Sharpe/Sortino from the days
        started = time.perf_counter()
        tables.stats(starting_balance=Decimal(1000), active={})
        combined.append(time.perf_counter() - started)
    engine.dispose()
    return {"cold_s": cold, "warm_s": warm, "version_ms": statistics.median(versions[1:]) * 1000,
            "stats_ms": statistics.median(stats[1:]) * 1000, "metrics_ms": statistics.median(combined[1:]) * 1000,
            "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    """This process's peak resident memory since its exec (VmHWM). Not getrusage's ru_maxrss:
    Linux keeps that across execve, so it would count the forking benchmark's own pages."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_in_new_process(url: str, profile: bool) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", url, *(["--profile"] if profile else [])]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"measuring failed:\n{result.stdout}\n{result.stderr}")
    if profile:
        print(result.stderr, file=sys.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, action="append", help="closed trades (repeatable; default 10000)")
    parser.add_argument("--postgres-url", default=os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
                        help="an admin URL of the server (a database is created and dropped there)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each cold build")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)  # internal: the fresh process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.profile)))
        return 0

    header = (f"{'trades':>10}  {'fill s':>7}  {'summaries s':>11}  {'cold load s':>11}  {'warm load s':>11}  "
              f"{'version ms':>10}  {'stats ms':>8}  {'metrics ms':>10}  {'peak RSS MiB':>12}")
    rows = []
    for count in args.trades or [10_000]:
        with bench_database(args.postgres_url) as url:
            started = time.perf_counter()
            fill(url, count)
            filled = time.perf_counter() - started
            summarized = summarize(url)
            result = measure_in_new_process(url, args.profile)
        rows.append(f"{count:>10,}  {filled:>7.1f}  {summarized:>11.1f}  {result['cold_s']:>11.2f}  "
                    f"{result['warm_s']:>11.4f}  {result['version_ms']:>10.1f}  {result['stats_ms']:>8.1f}  "
                    f"{result['metrics_ms']:>10.1f}  "
                    f"{result['peak_rss_mib']:>12.0f}")
        print(rows[-1] if len(rows) > 1 else f"{header}\n{rows[-1]}", flush=True)
    print("\nsummaries = `db rebuild-summaries` after the fill (the worker keeps them close by close); cold = "
          "first loaders.snapshot (build_snapshot, read-only engine) in a new process; warm = the cached repeat; "
          "version = data_version query; stats = `signalproof stats` (every headline metric, exact, with its reads); "
          "metrics = the same metrics combined from the day rows already read (medians); "
          "RSS = that process's peak.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
