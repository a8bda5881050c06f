"""How fast the ledger verifies and appends (a benchmark, not a test).

    python bench/ledger.py [--entries 1000000] [--signals 10000]

1. Writes a ledger file of N entries (a realistic mix: signal.received, trade.opened,
   trade.filled, trade.closed, each with its whole data) to a temporary directory, then times
   - chain: reading the JSON lines and checking seq, prev and hash of every entry
     (shared.verification.read_checked + ChainVerifier), the goal being ≤ 10 s for 1M entries;
   - verify: the whole `signalproof verify FILE` in-process (chain + projections).
2. Imports M signals with `signalproof signals import` (a subprocess, a fresh SQLite file),
   each appending its `signal.received` entry in the import's transaction, and prints the
   import time and entries per second.
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.ledger import GENESIS_PREV, ChainVerifier, make_entry  # noqa: E402
from shared.verification import read_checked  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def write_ledger(path: Path, count: int) -> None:
    prev, seq = GENESIS_PREV, 0
    with open(path, "wb") as handle:
        def put(kind: str, data: dict[str, object]) -> None:
            nonlocal prev, seq
            seq += 1
            entry = make_entry(seq=seq, time=START + timedelta(seconds=seq), kind=kind, data=data, prev=prev)
            handle.write(entry.line() + b"\n")
            prev = entry.hash

        put("ledger.genesis", {"actor": "system", "message": "the ledger starts here", "migrated_events": 0,
                               "settings": {"stake_usd": "100"}})
        trade = 0
        while seq < count:
            trade += 1
            at = START + timedelta(minutes=trade)
            common = {"source": "bench", "signal_id": f"s{trade}", "symbol": "ETHBTC", "side": "LONG",
                      "market": "SPOT", "leverage": 1, "origin": "backfill", "signal_time": at, "stop_loss": "0.0891"}
            put("signal.received", {**common, "actor": "import", "message": f"signal bench/s{trade} received",
                                    "signal_pk": trade, "entry": None, "take_profit": ["0.0915", "0.093"],
                                    "confidence": "0.9", "note": None, "received_at": at})
            put("trade.opened", {**common, "actor": "worker", "message": "opened", "trade_id": trade,
                                 "signal_pk": trade, "stake_usd": "100", "signal_entry": None,
                                 "take_profit": "0.0915", "fee_rate": "0.001", "entry_mode": "market",
                                 "slippage_bps": "0", "maintenance_margin_rate": "0.004",
                                 "pending_expiry_hours": "24", "max_trade_hours": "0", "candle_interval": "1m",
                                 "status": "PENDING"})
            put("trade.filled", {"actor": "worker", "message": "filled", "trade_id": trade, "status": "OPEN",
                                 "entry_time": at, "entry_price": "0.09"})
            put("trade.closed", {"actor": "worker", "message": "closed", "trade_id": trade, "status": "CLOSED_TP",
                                 "entry_time": at, "entry_price": "0.09", "exit_time": at + timedelta(hours=1),
                                 "exit_price": "0.0915", "fees_usd": "0.2016666666666666666666666666666667",
                                 "pnl_usd": "1.464999999999999999999999999999999",
                                 "pnl_pct": "0.01464999999999999999999999999999999", "ambiguous": False})


def bench_verify(count: int, directory: Path) -> None:
    path = directory / "ledger.jsonl"
    started = time.perf_counter()
    write_ledger(path, count)
    print(f"wrote {count:,} entries ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    verifier = ChainVerifier()
    with open(path, "rb") as handle:
        verifier.feed(read_checked(handle))
    elapsed = time.perf_counter() - started
    assert verifier.problem is None and verifier.verified_through >= count, verifier.problem
    print(f"chain:  {verifier.verified_through:,} entries verified in {elapsed:.2f} s "
          f"({verifier.verified_through / elapsed:,.0f}/s; goal for 1M: ≤ 10 s)")

    from shared.config import Config
    from signalproof.verify import Options, run

    out = io.StringIO()
    started = time.perf_counter()
    status = run(str(path), Options(), config=Config(), open_database=lambda: None,  # type: ignore[arg-type,return-value]
                 out=out, err=io.StringIO())
    elapsed = time.perf_counter() - started
    print(f"verify: `signalproof verify FILE` (chain + projections) in {elapsed:.2f} s, exit {status}: "
          f"{out.getvalue().splitlines()[-1][:100]}")


def bench_import(count: int, directory: Path) -> None:
    csv = directory / "signals.csv"
    with open(csv, "w") as handle:
        handle.write("id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n")
        for number in range(count):
            at = (START + timedelta(minutes=number)).strftime("%Y-%m-%dT%H:%M:%SZ")
            handle.write(f"b{number},{at},ETHBTC,LONG,SPOT,,0.0915;0.093,0.0891,1,0.9,bench,\n")
    env = {**os.environ, "SIGNALPROOF_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}"}
    command = [sys.executable, "-m", "signalproof"]
    subprocess.run([*command, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=ROOT)
    started = time.perf_counter()
    result = subprocess.run([*command, "signals", "import", str(csv)], env=env, check=True, capture_output=True,
                            text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    print(f"import: {count:,} signals ({count:,} signal.received entries appended) in {elapsed:.2f} s "
          f"({count / elapsed:,.0f} entries/s, process start included): {result.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--signals", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signalproof-bench-") as directory:
        bench_verify(args.entries, Path(directory))
        bench_import(args.signals, Path(directory))


if __name__ == "__main__":
    main()
