"""How fast the public API serves the ledger, and what the site's self-check costs per new
data version (a benchmark, not a test).

    python bench/api.py [--entries 20000] [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A new database (a SQLite file in a temporary directory; with --postgres-url also a brand-new
PostgreSQL database, dropped at the end) is migrated and filled with real ledger entries
through `shared.events.record_many` (trade.closed-like data). Then, for each database:

    ledger fn    `ledger_api.ledger_lines` for 10,000 entries (what the route does; median of 5)
    ledger HTTP  GET /api/v1/ledger?limit=10000 from a real `signalproof site` (median of 5)
    full walk    the self-check's walk of the whole chain (what runs at start and every 10 min)
    per version  `SelfCheck.state()` after 3 new entries were appended (median and max of 20)
    idle         `SelfCheck.state()` when nothing changed (median of 20)

Goals (issue 11): 10,000 entries ≤ 300 ms; the incremental check ≤ 50 ms per new version.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "site"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

PAGE = 10_000


def ms(work: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return times


def append(url: str, count: int, start: int) -> None:
    from shared import events
    from shared.database import make_engine, transaction

    engine = make_engine(url)
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    try:
        for first in range(start, start + count, 5000):
            with transaction(engine) as session:
                events.record_many([events.Change(
                    "trade.closed", f"trade {n} LONG BTCUSDT CLOSED_TP", at + timedelta(minutes=n), trade_id=n,
                    data={"status": "CLOSED_TP", "exit_time": at + timedelta(minutes=n, seconds=30),
                          "exit_price": Decimal("61234.5") + n, "entry_price": Decimal("60000.25"),
                          "entry_time": at + timedelta(minutes=n), "fees_usd": Decimal("0.2012345"),
                          "pnl_usd": Decimal("1.8765") + Decimal(n) / 1000, "pnl_pct": Decimal("0.018765"),
                          "ambiguous": False})
                    for n in range(first, min(first + 5000, start + count))], session=session)
    finally:
        engine.dispose()


@contextmanager
def site(url: str) -> Iterator[str]:
    import socket

    def healthy(address: str) -> bool:
        try:
            with urllib.request.urlopen(f"{address}/_stcore/health", timeout=1) as response:
                return response.read() == b"ok"
        except OSError:
            return False

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SIGNALPROOF_DATABASE_URL": url}
    process = subprocess.Popen([sys.executable, "-m", "signalproof", "site", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(address):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the site did not start")
            time.sleep(0.2)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=15)


def measure(url: str, entries: int) -> None:
    from shared.database import make_engine
    from track_record import ledger_api, self_check

    append(url, entries, 1)
    engine = make_engine(url, read_only=True)
    lines = ledger_api.ledger_lines(engine, 0, PAGE)
    assert lines.count(b"\n") == PAGE
    function = ms(lambda: ledger_api.ledger_lines(engine, 0, PAGE), 5)
    with site(url) as address:
        def fetch() -> None:
            with urllib.request.urlopen(f"{address}/api/v1/ledger?after=0&limit={PAGE}", timeout=60) as response:
                assert response.read().count(b"\n") == PAGE

        fetch()  # imports, engine, pool: warm
        http = ms(fetch, 5)

    check = self_check.SelfCheck(engine, full_every=3600)
    full = ms(check.full_check_now, 1)[0]
    state = check.state()
    assert state.verified and state.head is not None, state
    per_version, idle = [], []
    seq = walked = state.head.seq
    for _ in range(20):
        append(url, 3, seq)  # (record_many gives the seqs; this only varies the data)
        seq += 3
        start = time.perf_counter()
        state = check.state()
        per_version.append((time.perf_counter() - start) * 1000)
        assert state.verified and state.head is not None and state.head.seq == seq, state
        idle.extend(ms(check.state, 1))
    engine.dispose()
    print(f"  ledger fn    {statistics.median(function):7.1f} ms for {PAGE:,} entries (goal ≤ 300)")
    print(f"  ledger HTTP  {statistics.median(http):7.1f} ms for {PAGE:,} entries, {len(lines) / 1e6:.1f} MB")
    print(f"  full walk    {full:7.1f} ms for {walked:,} entries")
    print(f"  per version  {statistics.median(per_version):7.1f} ms median, {max(per_version):.1f} ms max "
          "(3 new entries; goal ≤ 50)")
    print(f"  idle         {statistics.median(idle):7.1f} ms (nothing new: one indexed read)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--postgres-url", help="an admin URL: a fresh database is created there and dropped")
    args = parser.parse_args()
    from shared.database import upgrade

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/bench.db"
        upgrade(url)
        print(f"SQLite, {args.entries:,} entries")
        measure(url, args.entries)
    if args.postgres_url:
        from bench.site_load import bench_database

        with bench_database(args.postgres_url) as url:
            print(f"PostgreSQL, {args.entries:,} entries")
            measure(url, args.entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
