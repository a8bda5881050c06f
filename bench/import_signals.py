"""How fast `signalproof signals import` stores a large file (a benchmark, not a test).

    python bench/import_signals.py [--signals 10000 --signals 100000] [--format csv --format jsonl --format json]
                                   [--database postgresql --database sqlite] [--verify] [--profile]
                                   [--checkout DIR] [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each size, file format and database: a file of N realistic signals is written (CSV with a
header, JSON lines, or a JSON array; about 1 % invalid rows and 1 % ids repeated inside the file),
a brand-new database is migrated (PostgreSQL: signalproof_bench_<random>, created on the server of
--postgres-url and dropped at the end; SQLite: a file in a temporary directory), and
`python -m signalproof signals import FILE` runs in a child process. Printed per run:

    wall s   the child's wall-clock seconds (interpreter start-up included)
    CPU s    its user + system CPU seconds
    PG CPU s the CPU seconds of the PostgreSQL backends serving it (a server on this machine):
             on a busy machine wall time mostly measures the wait for a core, CPU + PG CPU does not
    RSS MiB  its peak resident memory (as /usr/bin/time reports it)
    summary  its "accepted …, rejected …, duplicate …" line, checked against what the file holds

`--verify` also runs `signalproof verify db` after each import (the chain and the tables).
`--checkout DIR` runs another checkout's code (e.g. `git archive COMMIT | tar -x -C /tmp/before`)
for before/after figures; the database is still migrated by this checkout.
`--profile` prints the 25 functions with the most own time in each import (cProfile; slower).
"""

import argparse
import json
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.site_load import DEFAULT_ADMIN_URL, SYMBOLS, bench_database  # noqa: E402

FIELDS = ("id", "time", "symbol", "side", "market", "entry", "take_profit", "stop_loss", "leverage", "confidence",
          "source", "note")
INVALID_EVERY = 97  # about 1 % of the rows break a rule (a different one each time)
REPEAT_EVERY = 101  # about 1 % repeat an earlier id (the first version stands)
NOTES = ("breakout retest", "range low bounce", "trend continuation", "", "", "", "RSI divergence on 4h")


@dataclass(frozen=True)
class SignalFile:
    path: Path
    accepted: int
    rejected: int
    duplicate: int

    def summary(self) -> str:
        return f"accepted {self.accepted}, rejected {self.rejected}, duplicate {self.duplicate}"


# --- the file -------------------------------------------------------------------------------


def _valid(number: int, rng: random.Random, now: datetime) -> dict[str, str]:
    symbol = rng.choice(list(SYMBOLS))
    price = SYMBOLS[symbol] * rng.uniform(0.8, 1.2)
    long = rng.random() < 0.6
    futures = symbol.endswith("USDT") and rng.random() < 0.3
    step = price * rng.uniform(0.01, 0.05)
    direction = 1 if long else -1
    targets = [price + direction * step * (k + 1) for k in range(rng.choice((1, 1, 1, 2, 3)))]
    moment = now - timedelta(days=rng.uniform(0.01, 700))
    return {
        "id": f"sig-{number}",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if rng.random() < 0.8
        else str(int(moment.timestamp() * 1000)),
        "symbol": symbol if rng.random() < 0.9 else symbol[:-4] + "/" + symbol[-4:],
        "side": ("LONG" if long else "SHORT") if rng.random() < 0.8 else ("buy" if long else "sell"),
        "market": "FUTURES" if futures else rng.choice(("SPOT", "")),
        "entry": f"{price:.6g}" if rng.random() < 0.7 else "",
        "take_profit": ";".join(f"{target:.6g}" for target in targets),
        "stop_loss": f"{price - direction * step:.6g}",
        "leverage": str(rng.choice((2, 5, 10, 20))) if futures else "",
        "confidence": f"{rng.uniform(0.3, 0.95):.2f}" if rng.random() < 0.5 else "",
        "source": rng.choice(("", "", "alpha-bot", "beta-bot")),
        "note": rng.choice(NOTES),
    }


def _invalid(row: dict[str, str], number: int) -> dict[str, str]:
    """One broken rule per invalid row, in turn."""
    kind = (number // INVALID_EVERY) % 5
    if kind == 0:
        return row | {"side": "SIDEWAYS"}
    if kind == 1:
        return row | {"stop_loss": row["take_profit"].split(";")[0]}
    if kind == 2:
        return row | {"symbol": ""}
    if kind == 3:
        return row | {"time": "yesterday"}
    return row | {"leverage": "500", "market": "FUTURES"}


def write_signals(path: Path, count: int, file_format: str, *, now: datetime, seed: int = 1) -> SignalFile:
    """`count` records (repeats included), written as they are made (this process stays small:
    the child's peak memory is what is measured): the file and the summary its import must print."""
    import csv

    rng = random.Random(seed)
    recent: list[dict[str, str]] = []  # what a repeat repeats: one of the last RECENT rows
    accepted = rejected = duplicate = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if file_format == "csv":
            writer.writerow(FIELDS)
        elif file_format == "json":
            handle.write("[\n")
        for number in range(count):
            if number % REPEAT_EVERY == REPEAT_EVERY - 1:
                row = rng.choice(recent) | {"note": "sent twice"}  # same id and source: the first one stands
                duplicate += 1
            else:
                row = _valid(number, rng, now)
                if number % INVALID_EVERY == INVALID_EVERY - 1:
                    row = _invalid(row, number)
                    rejected += 1
                else:
                    accepted += 1
                recent = [*recent[-RECENT + 1:], row]
            if file_format == "csv":
                writer.writerow([row[name] for name in FIELDS])
            else:
                handle.write(("" if number == 0 or file_format == "jsonl" else ",\n") + json.dumps(_json_record(row))
                             + ("\n" if file_format == "jsonl" else ""))
        if file_format == "json":
            handle.write("\n]\n")
    return SignalFile(path, accepted, rejected, duplicate)


RECENT = 1500  # a repeat comes from the same batch of 1000 or the one before


def _json_record(row: dict[str, str]) -> dict[str, object]:
    """What a bot writes as JSON: missing values left out, targets as a list, numbers as numbers."""
    record: dict[str, object] = {key: value for key, value in row.items() if value != ""}
    if "take_profit" in record:
        record["take_profit"] = [_number(target) for target in row["take_profit"].split(";")]
    for key in ("entry", "stop_loss", "leverage", "confidence"):
        if key in record:
            record[key] = _number(row[key])
    return record


def _number(text: str) -> object:
    try:
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        return text


# --- running ----------------------------------------------------------------------------------


@contextmanager
def database(kind: str, admin_url: str, directory: Path) -> Iterator[str]:
    if kind == "postgresql":
        with bench_database(admin_url) as url:
            yield url
        return
    from shared.database import upgrade

    path = directory / f"bench-{time.monotonic_ns()}.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    try:
        yield url
    finally:
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    server_cpu_s: float | None
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


class ServerCpu:
    """CPU seconds of the PostgreSQL backends serving one database, when the server runs on this
    machine: their process titles name the database, /proc has their CPU times. On a busy
    machine wall time mostly measures waiting for a core; client CPU + server CPU is what the
    import costs."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.marker = f" {sa.engine.make_url(url).database} ".encode()
        self.seen: dict[int, float] = {}

    def poll(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if self.marker not in (entry / "cmdline").read_bytes():
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            self.seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def total(self) -> float | None:
        return sum(self.seen.values()) if self.seen else None


def run_cli(arguments: list[str], *, url: str, checkout: Path, profile: Path | None = None) -> Run:
    """`python -m signalproof ARGUMENTS` in a child process, with its own wall time, CPU and peak
    RSS (and on a local PostgreSQL, the CPU of the server's backends for it).

    The child is started by /usr/bin/time, whose report is the child's alone: rusage from this
    process would count the pages a fork shares with its parent before exec."""
    env = {**os.environ, "SIGNALPROOF_DATABASE_URL": url, "PYTHONPATH": str(checkout)}
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    server = ServerCpu(url) if url.startswith("postgresql") else None
    with tempfile.TemporaryDirectory() as directory:
        report, out, err = (Path(directory) / name for name in ("time", "out", "err"))
        command = ["/usr/bin/time", "-o", str(report), "-f", "%M %U %S", sys.executable, *profiler, "-m", "signalproof",
                   *arguments]
        started = time.perf_counter()
        with out.open("w") as stdout, err.open("w") as stderr:
            child = subprocess.Popen(command, cwd=checkout, env=env, stdout=stdout, stderr=stderr)
            while child.poll() is None:
                if server is not None:
                    server.poll()
                time.sleep(0.05)
        wall = time.perf_counter() - started
        peak_kib, user, system = report.read_text().split()[-3:]
        return Run(wall, float(user) + float(system), server.total() if server else None, int(peak_kib) / 1024,
                   child.returncode, out.read_text(), err.read_text())


def print_profile(path: Path) -> None:
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, action="append", help="records per file (repeatable; default 10000 "
                                                                     "and 100000)")
    parser.add_argument("--format", action="append", choices=("csv", "jsonl", "json"),
                        help="file format (repeatable; default csv, jsonl and json)")
    parser.add_argument("--database", action="append", choices=("postgresql", "sqlite"),
                        help="database (repeatable; default both)")
    parser.add_argument("--postgres-url", default=os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
                        help="an admin URL of the server (a database is created and dropped there)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout whose code runs the import")
    parser.add_argument("--verify", action="store_true", help="run `signalproof verify db` after each import")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each import (on stderr)")
    args = parser.parse_args()
    checkout = args.checkout.resolve()

    print(f"code: {checkout}")
    print(f"{'signals':>8}  {'format':>6}  {'database':>10}  {'wall s':>7}  {'CPU s':>6}  {'PG CPU s':>8}  "
          f"{'RSS MiB':>7}  {'verify s':>8}  summary")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="signalproof-bench-") as temporary:
        directory = Path(temporary)
        for count in args.signals or [10_000, 100_000]:
            for file_format in args.format or ["csv", "jsonl", "json"]:
                expected = write_signals(directory / f"signals-{count}.{file_format}", count, file_format,
                                         now=datetime.now(timezone.utc))
                for kind in args.database or ["postgresql", "sqlite"]:
                    with database(kind, args.postgres_url, directory) as url:
                        profile = directory / "import.prof" if args.profile else None
                        run = run_cli(["signals", "import", str(expected.path)], url=url, checkout=checkout,
                                      profile=profile)
                        verified = run_cli(["verify", "db"], url=url, checkout=checkout) if args.verify else None
                    summary = run.stdout.splitlines()[0] if run.stdout else run.stderr.strip()[-300:]
                    problems = []
                    if run.returncode != 0 or summary != expected.summary():
                        problems.append(f"expected {expected.summary()!r} (exit {run.returncode})")
                    if verified is not None and verified.returncode != 0:
                        problems.append(f"verify failed: {(verified.stdout + verified.stderr).strip()[-300:]}")
                    failures += bool(problems)
                    verify_s = f"{verified.wall_s:>8.2f}" if verified else f"{'-':>8}"
                    server_s = f"{run.server_cpu_s:>8.2f}" if run.server_cpu_s is not None else f"{'-':>8}"
                    print(f"{count:>8,}  {file_format:>6}  {kind:>10}  {run.wall_s:>7.2f}  {run.cpu_s:>6.2f}  "
                          f"{server_s}  {run.peak_rss_mib:>7.0f}  {verify_s}  {summary}"
                          + "".join(f"\n    !! {problem}" for problem in problems), flush=True)
                    if profile is not None:
                        print_profile(profile)
                expected.path.unlink()
    print("\nwall = the child process from start to exit (interpreter start-up included); CPU = its user + system "
          "time; PG CPU = the server's backends for it (local server); RSS = its peak.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
