"""`signalproof verify SOURCE`: the wiring around the pure checks (docs/ledger.md).

SOURCE is a site (read through its public API exactly as the table of docs/configuration.md says), a ledger
file (JSON lines, as /api/v1/ledger serves them), or `db` (the configured database, through a
read-only connection, in one snapshot so the ledger and the trade table agree in time). The
checks themselves are pure and live in shared/: the chain (shared.ledger), the projections
(shared.projection), heads and checkpoints (shared.verification), the replay (shared.replay).

Output: one line per failure, naming its seq, on stdout; progress on stderr; a last one-line
summary. Exit status 0 when everything holds, 1 at a mismatch, 2 (raised as `Unusable`) when
the input cannot be read at all.
"""

import csv
import gzip
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy.engine import Engine

from shared import signing
from shared.candles import Candle, interval_length
from shared.config import Config
from shared.ledger import ChainVerifier, Entry, LedgerFormatError, format_time
from shared.projection import Projection, compare, compare_fills
from shared.replay import ReplayResult, replay
from shared.trades import TRADE_COLUMNS
from shared.verification import (Head, PublishedCheckpoint, check_checkpoint, check_head, parse_checkpoint, parse_head,
                                  checked, read_checked)

__all__ = ["Options", "Unusable", "parse_head", "run"]

PAGE = 10_000  # /api/v1/ledger's largest page
PROGRESS_EVERY = 200_000
REPLAY_KINDS = frozenset({"ledger.genesis", "settings.changed", "signal.received", "signal.skipped", "trade.opened",
                          "trade.closed", "trade.cancelled"})


class Unusable(Exception):
    """The input cannot be verified at all (unreadable, not a ledger, unreachable): exit 2."""


@dataclass(frozen=True)
class Options:
    public_key: str | None = None
    heads: list[Head] = field(default_factory=list)
    replay: bool = False
    candles: Path | None = None


class Source(Protocol):
    name: str

    def checkpoints(self) -> list[PublishedCheckpoint]: ...

    def entries(self) -> Iterator[Entry]: ...

    def trades(self) -> Iterator[list[str]] | None: ...

    def close(self) -> None: ...


# --- sources ------------------------------------------------------------------------------


class SiteSource:
    """A signalproof site, through /api/v1/ledger, /api/v1/checkpoints and /api/v1/trades.csv."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        import requests

        self.name = url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        import requests

        url = f"{self.name}{path}"
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unusable(f"cannot reach {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise Unusable(f"{url} answered HTTP {response.status_code}, not the signalproof API")
        return response

    def checkpoints(self) -> list[PublishedCheckpoint]:
        response = self._get("/api/v1/checkpoints")
        try:
            body = response.json()
        except ValueError:
            raise Unusable(f"{self.name}/api/v1/checkpoints did not answer JSON") from None
        if not isinstance(body, list):
            raise Unusable(f"{self.name}/api/v1/checkpoints did not answer a JSON array")
        try:
            return [parse_checkpoint(item) for item in body]
        except LedgerFormatError as exc:
            raise Unusable(f"{self.name}/api/v1/checkpoints: {exc}") from None

    def entries(self) -> Iterator[Entry]:
        after = 0
        while True:
            response = self._get("/api/v1/ledger", {"after": str(after), "limit": str(PAGE)})
            try:
                page = list(read_checked(response.content.splitlines()))
            except LedgerFormatError as exc:
                raise Unusable(f"{self.name}/api/v1/ledger?after={after}: {exc}") from None
            if not page:
                return
            yield from page
            if page[-1].seq <= after:  # a page that does not move on: the chain check has said why
                return
            after = page[-1].seq

    def trades(self) -> Iterator[list[str]]:
        text = self._get("/api/v1/trades.csv").content.decode("utf-8", "replace")
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or any(column not in header for column in TRADE_COLUMNS):
            raise Unusable(f"{self.name}/api/v1/trades.csv is not the trades export")
        index = [header.index(column) for column in TRADE_COLUMNS]
        rows = []
        for row in reader:
            if len(row) != len(header) or not row[index[0]].isdigit():
                raise Unusable(f"{self.name}/api/v1/trades.csv line {reader.line_num} is not a trade")
            rows.append([row[i] for i in index])
        return iter(rows)

    def close(self) -> None:
        self.session.close()


class FileSource:
    """A ledger file: JSON lines, one published entry each (what /api/v1/ledger serves)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        try:
            self.handle = open(path, "rb")
        except OSError as exc:
            raise Unusable(f"cannot read {path}: {exc.strerror}") from None

    def checkpoints(self) -> list[PublishedCheckpoint]:
        return []

    def entries(self) -> Iterator[Entry]:
        try:
            yield from read_checked(self.handle)
        except LedgerFormatError as exc:
            raise Unusable(f"{self.name} is not a ledger file: {exc}") from None
        except OSError as exc:
            raise Unusable(f"cannot read {self.name}: {exc.strerror}") from None

    def trades(self) -> None:
        return None

    def close(self) -> None:
        self.handle.close()


class DatabaseSource:
    """The configured database, read-only, in one snapshot (REPEATABLE READ on PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        from sqlmodel import Session

        self.name = "the database"
        bind = engine.execution_options(isolation_level="REPEATABLE READ") if engine.dialect.name == "postgresql" \
            else engine
        self.session = Session(bind)
        self.session.begin()

    def checkpoints(self) -> list[PublishedCheckpoint]:
        from sqlmodel import select

        from shared.models import Checkpoint

        rows = self.session.exec(select(Checkpoint).order_by(Checkpoint.id)).all()  # type: ignore[arg-type]
        return [PublishedCheckpoint(r.seq, r.hash, format_time(r.time), r.signature) for r in rows]

    def entries(self) -> Iterator[Entry]:
        from sqlmodel import select

        from shared.models import Event

        for row in self.session.exec(select(Event).order_by(Event.id).execution_options(yield_per=5000)):
            yield _stored(row)

    def trades(self) -> Iterator[list[str]]:
        from shared.trades import export_trades

        return export_trades(session=self.session)

    def fills(self) -> Iterator[list[str]]:
        from shared.trades import export_fills

        return export_fills(session=self.session)

    def close(self) -> None:
        self.session.rollback()
        self.session.close()


def _stored(row: Any) -> Entry:
    """The entry a row holds; data that is not even JSON any more is kept as text (its hash fails)."""
    try:
        data = json.loads(row.data or "{}")
    except ValueError:
        data = {"(unreadable data)": row.data}
    if not isinstance(data, dict):
        data = {"(not an object)": row.data}
    return checked(Entry(seq=row.id, time=format_time(row.at), kind=row.kind, data=data, prev=row.prev or "",
                         hash=row.hash or ""))


def open_source(text: str, open_database: Callable[[], Engine]) -> Source:
    if text.startswith(("http://", "https://")):
        return SiteSource(text)
    if text == "db":
        return DatabaseSource(open_database())
    return FileSource(Path(text))


# --- candles for --replay -------------------------------------------------------------------


class DirectoryCandles:
    """`<spot|futures>-<SYMBOL>-<interval>.json[.gz]`, rows `[open_ms, open, high, low, close, …]`."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise Unusable(f"--candles {directory}: not a directory")
        self.directory = directory
        self.loaded: dict[tuple[str, str, str], list[Candle]] = {}

    def __call__(self, market: str, symbol: str, interval: str, start: datetime, end: datetime) -> list[Candle]:
        key = (market.lower(), symbol, interval)
        if key not in self.loaded:
            self.loaded[key] = self._load(*key)
        length = interval_length(interval)
        return [c for c in self.loaded[key] if c.open_time >= start and c.open_time + length <= end]

    def _load(self, market: str, symbol: str, interval: str) -> list[Candle]:
        for name in (f"{market}-{symbol}-{interval}.json", f"{market}-{symbol}-{interval}.json.gz"):
            path = self.directory / name
            if path.is_file():
                try:
                    opener = gzip.open if name.endswith(".gz") else open
                    with opener(path, "rt", encoding="utf-8") as handle:
                        rows = json.load(handle, parse_float=Decimal)
                    candles = [Candle(open_time=datetime.fromtimestamp(r[0] / 1000, timezone.utc),
                                      open=Decimal(str(r[1])), high=Decimal(str(r[2])), low=Decimal(str(r[3])),
                                      close=Decimal(str(r[4]))) for r in rows]
                except (OSError, ValueError, TypeError, IndexError, ArithmeticError) as exc:
                    raise Unusable(f"{path}: not a candle file ({type(exc).__name__})") from None
                return sorted(candles, key=lambda c: c.open_time)
        raise Unusable(f"--candles {self.directory}: no {market}-{symbol}-{interval}.json or .json.gz for the replay")


class ExchangeCandles:
    """Closed candles from the exchange URLs of the configuration, paged like the worker's monitor."""

    def __init__(self, config: Config) -> None:
        from worker.market_data import BinanceClient

        self.client = BinanceClient(spot_url=config.spot_api_url, futures_url=config.futures_api_url,
                                    timeout=config.http_timeout_seconds, retries=config.http_retries,
                                    retry_after_cap=config.retry_after_cap_seconds,
                                    backoff_base=config.http_backoff_seconds)

    def __call__(self, market: str, symbol: str, interval: str, start: datetime, end: datetime) -> list[Candle]:
        from shared.kinds import Market
        from worker.market_data import ExchangeError, UnknownSymbol

        length, candles, cursor = interval_length(interval), [], start
        while True:
            try:
                page = self.client.klines(Market(market), symbol, interval, start=cursor, now=end)
            except (ExchangeError, UnknownSymbol) as exc:
                raise Unusable(f"candles for {market} {symbol} {interval}: {exc}") from None
            candles.extend(page)
            if not page or page[-1].open_time + 2 * length > end:
                return candles
            cursor = page[-1].open_time + length


# --- the run ------------------------------------------------------------------------------


def run(source_text: str, options: Options, *, config: Config, open_database: Callable[[], Engine],
        out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    if options.public_key is not None:
        try:
            signing.public_key(options.public_key)
        except signing.BadKey as exc:
            raise Unusable(f"--public-key: {exc}") from None
    candles = None
    if options.replay:
        candles = DirectoryCandles(options.candles) if options.candles else ExchangeCandles(config)
    source = open_source(source_text, open_database)
    try:
        return _verify(source, options, candles, out=out, err=err)
    finally:
        source.close()


def _verify(source: Source, options: Options, candles: Any, *, out: IO[str], err: IO[str]) -> int:
    started = time.monotonic()
    problems: list[str] = []
    checkpoints = source.checkpoints()
    wanted = {point.seq for point in checkpoints} | {head.seq for head in options.heads}
    hashes: dict[int, str] = {}
    chain, projection = ChainVerifier(), Projection()
    kept: list[Entry] = []
    count = last_seq = 0
    for entry in source.entries():
        count += 1
        last_seq = max(last_seq, entry.seq)
        chain.feed((entry,))
        projection.feed((entry,))
        if entry.seq in wanted and entry.seq not in hashes:
            hashes[entry.seq] = entry.hash
        if options.replay and entry.kind in REPLAY_KINDS:
            kept.append(entry)
        if count % PROGRESS_EVERY == 0:
            print(f"verify: {count:,} entries read ({time.monotonic() - started:.1f} s)", file=err, flush=True)
    if count == 0:
        raise Unusable(f"{source.name} holds no ledger entries")
    if chain.problem is not None:
        problems.append(str(chain.problem))
    problems += [str(problem) for problem in projection.problems]
    for point in checkpoints:
        problems += check_checkpoint(point, hashes.get(point.seq), options.public_key)
    for head in options.heads:
        line = check_head(head, hashes.get(head.seq), last_seq)
        if line is not None:
            problems.append(line)
    compared = None
    table = source.trades()
    if table is not None:
        rows = list(table)
        problems += list(compare(projection, rows))
        compared = len(rows)
    if isinstance(source, DatabaseSource):
        problems += list(compare_fills(projection, source.fills()))
    replayed: ReplayResult | None = None
    if options.replay:
        replayed = replay(kept, projection, candles, progress=lambda line: print(line, file=err, flush=True))
        problems += [str(problem) for problem in replayed.problems]
        stats = replayed.stats().to_json_dict()
        print("stats (replayed): " + json.dumps(stats), file=out)
    for line in problems:
        print(line, file=out)
    out.flush()
    print(_summary(source, chain, count, checkpoints, options, compared, replayed, problems), file=out)
    return 1 if problems else 0


def _summary(source: Source, chain: ChainVerifier, count: int, checkpoints: list[PublishedCheckpoint],
             options: Options, compared: int | None, replayed: ReplayResult | None, problems: list[str]) -> str:
    parts = [f"{count:,} entries, chain verified through seq {chain.verified_through}"
             + (f" (head {chain.head_hash[:16]}…)" if chain.problem is None else "")]
    if checkpoints:
        signed = "signatures checked" if options.public_key else "signatures not checked: no --public-key"
        parts.append(f"{len(checkpoints)} checkpoint(s), {signed}")
    if options.heads:
        parts.append(f"{len(options.heads)} published head(s) checked")
    if compared is not None:
        parts.append(f"{compared} trade(s) compared with the trade table")
    if replayed is not None:
        parts.append(f"{replayed.replayed_trades} trade(s) and {replayed.checked_admissions} admission(s) replayed")
    verdict = "OK" if not problems else f"FAILED ({len(problems)} problem(s))"
    return f"{verdict}: {source.name}: " + "; ".join(parts)
