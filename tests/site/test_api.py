"""The CSV download route beside the site (`GET /api/v1/trades.csv`, site/track_record/api.py),
against the real server that `signalproof site` starts (uvicorn, site/server.py).

What a visitor and a scraper rely on: the download is `signalproof trades export` byte for byte
(filtered like the Trades page), it is streamed (chunked, memory flat however large and however
many at once), bad parameters get a 400 with a JSON error, a broken database a 500 without
details, and no cell reaches a spreadsheet as a formula.
"""

import csv
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.site_load import fill
from conftest import Cli
from fake_exchange import FakeExchange
from shared.database import transaction, upgrade
from spreadsheet import formula_cells
import local_server
from local_server import free_port
from tests.worker.test_robustness import many_signals
from track_record.api import SIGNALS_CSV, TRADES_CSV, download_url, history_filter
from track_record.record import HistoryFilter

UTC = timezone.utc


def get(url: str | urllib.request.Request) -> tuple[int, Message, bytes]:
    """Status, headers (names in any case) and body."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.mark.parametrize("flt", [
    HistoryFilter(),
    HistoryFilter(symbols=("BTCUSDT", "ETHBTC"), sides=("LONG",), markets=("SPOT", "FUTURES"),
                  statuses=("CLOSED_TP", "OPEN"), since=datetime(2024, 1, 2, tzinfo=UTC),
                  until=datetime(2024, 2, 1, tzinfo=UTC), live_only=True),
])
def test_the_pages_filters_round_trip_through_the_download_address(flt: HistoryFilter) -> None:
    address = download_url(flt)
    assert address.startswith(TRADES_CSV)
    assert history_filter(parse_qsl(urlsplit(address).query)) == flt


HOSTILE_PARAMS = [
    "side=SIDEWAYS", "market=MOON", "status=closed_tp", "symbol=%3D1%2B1", "symbol=BTC%20USDT", "symbol=",
    "symbol=" + "A" * 31, "since=2024-13-01", "since=20240101", "until=yesterday", "since=2024-02-02&until=2024-02-01",
    "live_only=yes", "live_only=true&live_only=false", "limit=10", "%00=1", "side=LONG%00",
    "&".join(["symbol=BTCUSDT"] * 51), "since=%3Cscript%3E",
]


@contextmanager
def serving(cli: Cli, log_path: Path) -> Iterator[tuple[str, int]]:
    """`signalproof site` (as the browser tests start it): its URL and its process id."""
    port = free_port()
    command = cli.command("site", "--server.port", str(port), "--server.address", "127.0.0.1")
    with local_server.serving(command, port=port, cwd=cli.cwd, env=cli.env, log_path=log_path) as (url, process):
        yield url, process.pid


HOSTILE_TEXT = {"source": '=HYPERLINK("http://evil.example","x")', "signal_id": "@SUM(1)", "reason": "-1+1"}


@pytest.mark.slow
def test_the_route_streams_the_export_and_refuses_bad_parameters(cli: Cli, engine: Engine, candles_path: Path,
                                                                  tmp_path: Path) -> None:
    """Real trades, and hostile text written to the database directly (as a bot could)."""
    signals = tmp_path / "signals.csv"
    signals.write_text(many_signals(candles_path, 40, seed=5))
    cli("signals", "import", str(signals))
    cli("worker", "--once")
    with transaction(engine) as session:
        session.execute(sa.text("UPDATE trade SET source = :source, signal_id = :signal_id, reason = :reason "
                                "WHERE id = (SELECT min(id) FROM trade)"), HOSTILE_TEXT)
    export = cli("trades", "export").stdout
    rows = list(csv.reader(io.StringIO(export)))[1:]
    assert len(rows) > 10 and any(row[19].startswith("-") for row in rows)  # pnl_usd: losses are negative

    with serving(cli, tmp_path / "site.log") as (site, _):
        status, headers, body = get(site + TRADES_CSV)
        assert status == 200
        assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
        assert headers["Content-Type"].startswith("text/csv")
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert body.decode() == export  # byte for byte `signalproof trades export`
        assert formula_cells(body.decode()) == []
        assert "'=HYPERLINK" in body.decode()

        symbol = rows[0][4]
        status, _, body = get(site + download_url(HistoryFilter(symbols=(symbol,), statuses=("CLOSED_TP", "CLOSED_SL"))))
        assert status == 200
        assert list(csv.reader(io.StringIO(body.decode())))[1:] == [
            row for row in rows if row[4] == symbol and row[9] in ("CLOSED_TP", "CLOSED_SL")]

        for params in HOSTILE_PARAMS:
            status, headers, body = get(f"{site}{TRADES_CSV}?{params}")
            assert status == 400, params
            assert headers["Content-Type"] == "application/json"
            error = json.loads(body)["error"]
            assert isinstance(error, str) and "Traceback" not in error and "\n" not in error, params

        status, _, _ = get(urllib.request.Request(site + TRADES_CSV, method="POST", data=b""))
        assert status == 405

        # The signal log's download: `signalproof signals export` byte for byte, the same way.
        status, headers, body = get(site + SIGNALS_CSV)
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        assert body.decode() == cli("signals", "export").stdout
        status, headers, body = get(f"{site}{SIGNALS_CSV}?status=%3Cscript%3E")
        assert status == 400 and headers["Content-Type"] == "application/json"
        assert "status" in json.loads(body)["error"]


@pytest.mark.slow
def test_a_database_that_cannot_be_read_is_a_500_without_details(tmp_path: Path, exchange: FakeExchange) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    with serving(Cli(url, exchange.url, tmp_path), tmp_path / "site.log") as (site, _):
        (tmp_path / "db.sqlite").write_bytes(b"not a database" * 1000)
        status, headers, body = get(site + TRADES_CSV)
    assert status == 500
    assert json.loads(body) == {"error": "the trade history cannot be read right now"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


TRADES = 60_000  # enough: 4 downloads held in memory would add ~180 MiB (0.76 KiB per trade each)
DOWNLOADS = 4


@pytest.mark.postgres
@pytest.mark.slow
def test_large_concurrent_downloads_keep_the_site_memory_flat(postgres_url: str, exchange: FakeExchange,
                                                              tmp_path: Path) -> None:
    """4 visitors download 60k trades at once; before, each download was built in memory
    (4 × 300k trades: +911 MiB, 619 MiB still held afterwards)."""
    upgrade(postgres_url)
    fill(postgres_url, TRADES)
    cli = Cli(postgres_url, exchange.url, tmp_path)
    export = cli("trades", "export").stdout.encode()
    assert export.count(b"\n") > TRADES
    with serving(cli, tmp_path / "site.log") as (site, pid):
        get(site + download_url(HistoryFilter(symbols=("BTCUSDT",))))  # imports, engine, pool: warm
        before = rss_mib(pid)
        peak = before
        bodies: list[bytes] = []

        def download() -> None:
            with urllib.request.urlopen(site + TRADES_CSV, timeout=300) as response:
                parts = []
                while chunk := response.read(256 * 1024):
                    parts.append(chunk)
                    time.sleep(0.002)  # a visitor slower than the database
                bodies.append(b"".join(parts))

        threads = [threading.Thread(target=download) for _ in range(DOWNLOADS)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, rss_mib(pid))
            time.sleep(0.05)
        after = rss_mib(pid)
    assert len(bodies) == DOWNLOADS and all(body == export for body in bodies)
    print(f"site RSS: {before:.0f} MiB before, peak {peak:.0f} MiB, {after:.0f} MiB after")
    assert peak - before < 60, (before, peak, after)  # each file is ~{len(export) >> 20} MiB
