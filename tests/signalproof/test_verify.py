"""`signalproof verify` through the real CLI, on a database the real worker filled (import +
`worker --once` against the fake exchange serving recorded Binance candles), SQLite and
PostgreSQL: an honest record verifies (db, ledger file, site API, --replay), and every kind of
tampering done directly in the database or the file is caught, naming its seq.
"""

import http.server
import io
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from conftest import Cli
from shared import signing
from shared.database import make_engine, transaction
from shared.events import record, stored_entry
from shared.ledger import make_entry
from shared.models import Checkpoint, Event
from shared.trades import TRADE_COLUMNS, export_trades, write_csv
from worker.checkpoints import published

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"
# Market entries on the recorded candles: a stop-loss and take-profit in one candle
# (ambiguous), an SL after a gap, a short to its TP, a cancel (opens beyond the TP), one still
# open, one skipped by the confidence filter, and rejected ones.
SIGNALS = HEADER + """\
same-candle,2018-01-20T11:08:00Z,ETH/BTC,LONG,SPOT,,0.0915,0.08913001,1,0.9,,
gap,2019-10-11T00:17:00Z,xrp-eth,buy,spot,,0.00143,0.0014,,,,
ada-short,2018-01-21T00:00:00Z,ADABTC,SHORT,SPOT,,0.0000530,0.0000570,,,,
cancel,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,0.0891,0.088,,,,
still-open,2018-01-29T00:00:00Z,ADABTC,SHORT,SPOT,,0.00001,0.0001,,,,
timid,2018-01-22T00:00:00Z,LTCBTC,LONG,SPOT,,0.0170,0.0160,,0.1,,
unknown,2018-01-20T11:08:00Z,NOPECOIN,LONG,SPOT,,2,1,,,,
bad-levels,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,0.08,0.09,,,,
"""
KEYS = signing.generate()


@pytest.fixture
def filled(cli: Cli, tmp_path: Path) -> Cli:
    """A database filled by the real worker, with a signed checkpoint of its head."""
    cli.env["SIGNALPROOF_SIGNING_KEY"] = KEYS.private
    cli("settings", "set", "min_confidence", "0.5")
    (tmp_path / "signals.csv").write_text(SIGNALS)
    cli("signals", "import", str(tmp_path / "signals.csv"))
    cli("worker", "--once", check=False)  # NOPECOIN is refused by the exchange: still exit 0 or 1
    return cli


def verify(cli: Cli, *args: str) -> tuple[int, list[str], str]:
    result = cli("verify", *args, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines(), result.stderr


def execute(database_url: str, *statements: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def head_of(database_url: str) -> tuple[int, str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            seq, hash_ = connection.execute(sa.text("SELECT id, hash FROM event ORDER BY id DESC LIMIT 1")).one()
    finally:
        engine.dispose()
    return seq, hash_


def seq_of(database_url: str, kind: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT min(id) FROM event WHERE kind = :k"), {"k": kind}).scalar_one()
    finally:
        engine.dispose()


def ledger_lines(database_url: str) -> list[bytes]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return [stored_entry(row).line() for row in session.exec(select(Event).order_by(Event.id))]
    finally:
        engine.dispose()


# --- an honest record ----------------------------------------------------------------------


def test_an_honest_record_verifies_from_the_database(filled: Cli, database_url: str) -> None:
    status, lines, _ = verify(filled, "db", "--public-key", KEYS.public, "--head", "%d:%s" % head_of(database_url))
    assert status == 0, lines
    assert lines[-1].startswith("OK: the database:"), lines
    assert "1 checkpoint(s), signatures checked" in lines[-1]
    assert "5 trade(s) compared with the trade table" in lines[-1]


def test_an_honest_ledger_file_verifies(filled: Cli, database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"\n".join(ledger_lines(database_url)) + b"\n")
    status, lines, _ = verify(filled, str(path))
    assert status == 0 and lines[-1].startswith("OK: "), lines


def test_replay_on_recorded_candles_agrees_with_the_worker(filled: Cli, candles_path: Path) -> None:
    status, lines, _ = verify(filled, "db", "--replay", "--candles", str(candles_path))
    assert status == 0, lines
    assert "4 trade(s) and 6 admission(s) replayed" in lines[-1], lines  # 4 decided; 5 opened + 1 skipped
    replayed = json.loads(lines[0].removeprefix("stats (replayed): "))
    recorded = json.loads(filled("stats", "--json").stdout)
    assert replayed.keys() == recorded.keys()
    for key, value in recorded.items():
        assert replayed[key] == pytest.approx(value, abs=1e-9) if value is not None else replayed[key] is None, key


def test_replay_from_the_exchange_urls(filled: Cli) -> None:
    status, lines, _ = verify(filled, "db", "--replay")
    assert status == 0, lines


def test_replay_catches_terms_the_settings_did_not_give(filled: Cli, database_url: str, candles_path: Path) -> None:
    """A ledger rebuilt (consistent hashes) where a trade's stake differs from the settings in force."""
    rebuild_from(database_url, seq_of(database_url, "trade.opened"),
                 lambda data: {**data, "stake_usd": "1000"} if data.get("stake_usd") else data)
    status, lines, _ = verify(filled, "db", "--replay", "--candles", str(candles_path))
    assert status == 1
    assert any("stake_usd other than the signal and the settings in force give" in line for line in lines), lines


# --- tampering -------------------------------------------------------------------------------


def test_a_trade_pnl_edited_in_the_table_is_caught(filled: Cli, database_url: str) -> None:
    execute(database_url, "UPDATE trade SET pnl_usd = 5 WHERE status = 'CLOSED_SL'")
    status, lines, _ = verify(filled, "db")
    assert status == 1
    bad = [line for line in lines if "pnl_usd is '5' in the trade table" in line]
    assert bad and all(line.startswith("seq ") for line in bad), lines
    assert lines[-1].startswith("FAILED")


def test_an_entry_edited_is_caught(filled: Cli, database_url: str) -> None:
    seq = seq_of(database_url, "trade.closed")
    execute(database_url, f"UPDATE event SET data = replace(data, '\"pnl_usd\":\"', '\"pnl_usd\":\"1') WHERE id = {seq}")
    status, lines, _ = verify(filled, "db")
    assert status == 1
    assert f"seq {seq}: hash does not match the entry's content (the entry was changed)" in lines, lines


def test_an_entry_deleted_is_caught(filled: Cli, database_url: str) -> None:
    seq = seq_of(database_url, "trade.filled")
    execute(database_url, f"DELETE FROM event WHERE id = {seq}")
    status, lines, _ = verify(filled, "db")
    assert status == 1
    assert any(line.startswith(f"seq {seq}: expected seq {seq}") for line in lines), lines


def test_entries_reordered_are_caught(filled: Cli, database_url: str) -> None:
    seq = seq_of(database_url, "trade.opened")
    execute(database_url, f"UPDATE event SET id = -1 WHERE id = {seq}",
            f"UPDATE event SET id = {seq} WHERE id = {seq + 1}", f"UPDATE event SET id = {seq + 1} WHERE id = -1")
    status, lines, _ = verify(filled, "db")
    assert status == 1
    assert any(line.startswith(f"seq {seq}: ") for line in lines), lines


def test_a_forged_entry_appended_with_a_recomputed_hash_is_caught(filled: Cli, database_url: str) -> None:
    """A trade.closed for the still-open trade, appended by the real append code (valid hash and
    link), with a P/L its terms and prices give: the chain holds, the trade table does not agree."""
    engine = make_engine(database_url)
    try:
        with transaction(engine) as session:
            trade_id = session.execute(sa.text("SELECT id FROM trade WHERE status = 'OPEN'")).scalar_one()
            record(kind="trade.closed", at=datetime.now(timezone.utc), trade_id=trade_id, message="forged",
                   data={"status": "CLOSED_TP", "entry_time": "2018-01-29T00:00:00.000000Z",
                         "entry_price": "0.00005083", "exit_time": "2018-01-29T01:00:00.000000Z",
                         "exit_price": "0.00001", "fees_usd": "0.1", "pnl_usd": "80", "pnl_pct": "0.8",
                         "ambiguous": False}, session=session)
    finally:
        engine.dispose()
    status, lines, _ = verify(filled, "db")
    assert status == 1
    forged = head_of(database_url)[0]
    assert f"seq {forged}: trade {trade_id} status is 'OPEN' in the trade table, 'CLOSED_TP' in the ledger" in lines
    # … and its money is not what its terms give, which a ledger file alone shows too.
    assert any(line.startswith(f"seq {forged}: trade {trade_id}: pnl_usd 80 is not what") for line in lines), lines


def rebuild_from(database_url: str, seq: int, change: "callable") -> None:  # type: ignore[valid-type]
    """Rewrite the entry at `seq` and recompute every hash after it: a consistent, rewritten chain."""
    engine = make_engine(database_url)
    try:
        with transaction(engine) as session:
            rows = list(session.exec(select(Event).order_by(Event.id)))
            prev = None
            for row in rows:
                entry = stored_entry(row)
                if row.id < seq:
                    prev = entry.hash
                    continue
                data = change(entry.data) if row.id == seq else entry.data
                new = make_entry(seq=entry.seq, time=row.at, kind=entry.kind, data=data, prev=prev)
                session.execute(sa.update(Event).where(Event.id == row.id).values(
                    data=json.dumps(new.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                    prev=new.prev, hash=new.hash))
                prev = new.hash
    finally:
        engine.dispose()


def test_a_rebuilt_chain_is_caught_by_a_published_head_and_by_checkpoints(filled: Cli, database_url: str) -> None:
    published_head = "%d:%s" % head_of(database_url)
    seq = seq_of(database_url, "trade.closed")
    rebuild_from(database_url, seq, lambda data: {**data, "message": data["message"] + " (rewritten)"})
    # The rebuilt chain is consistent: the chain alone cannot tell.
    engine = make_engine(database_url)
    try:
        with transaction(engine) as session:  # …but the stored checkpoint names the old head.
            checkpoint = session.exec(select(Checkpoint)).one()
    finally:
        engine.dispose()
    status, lines, _ = verify(filled, "db", "--head", published_head)
    assert status == 1
    old_seq = int(published_head.split(":")[0])
    assert any(line.startswith(f"seq {old_seq}: the head published earlier had hash") for line in lines), lines
    assert any(line.startswith(f"seq {checkpoint.seq}: checkpoint of") and "history was rewritten" in line
               for line in lines), lines
    # The forger rewrites the checkpoint too, but cannot sign it without the owner's key.
    execute(database_url, f"UPDATE checkpoint SET hash = (SELECT hash FROM event WHERE id = {checkpoint.seq})")
    status, lines, _ = verify(filled, "db", "--public-key", KEYS.public)
    assert status == 1
    assert f"seq {checkpoint.seq}: checkpoint of {published(checkpoint)['time']}: the signature does not match the public key" in lines


# --- unusable input: exit 2, one line ---------------------------------------------------------


@pytest.mark.parametrize("content", [b"not json\n", b'{"seq": 1}\n', b"[1,2,3]\n", b"\xff\xfe\n", b""])
def test_a_malformed_ledger_file_is_exit_2_in_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(content)
    result = Cli("sqlite:///nowhere.db", "http://127.0.0.1:9", tmp_path)("verify", str(path), check=False)
    assert result.returncode == 2, result
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("signalproof: "), result.stderr
    assert result.stdout == ""


def test_a_missing_file_and_a_bad_head_or_key_are_exit_2(tmp_path: Path) -> None:
    cli = Cli("sqlite:///nowhere.db", "http://127.0.0.1:9", tmp_path)
    for args in (["verify", str(tmp_path / "none.jsonl")], ["verify", "db"], ["verify", "x", "--head", "12:abc"],
                 ["verify", "x", "--public-key", "bad"]):
        result = cli(*args, check=False)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, (args, result.stderr)


class _Site(http.server.BaseHTTPRequestHandler):
    """A tiny stand-in for the site's API: the three routes verify reads, from a real database —
    or garbage, when `garbage` is set."""

    database_url = ""
    garbage: bytes | None = None

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if self.garbage is not None:
            return self._answer(200, "text/html", self.garbage)
        engine = make_engine(self.database_url, read_only=True)
        try:
            with Session(engine) as session:
                if url.path == "/api/v1/ledger":
                    query = parse_qs(url.query)
                    after, limit = int(query.get("after", ["0"])[0]), int(query.get("limit", ["1000"])[0])
                    rows = session.exec(select(Event).where(Event.id > after).order_by(Event.id).limit(limit))
                    body = b"".join(stored_entry(row).line() + b"\n" for row in rows)
                    return self._answer(200, "application/x-ndjson", body)
                if url.path == "/api/v1/checkpoints":
                    points = [published(row) for row in session.exec(select(Checkpoint).order_by(Checkpoint.id))]
                    return self._answer(200, "application/json", json.dumps(points).encode())
                if url.path == "/api/v1/trades.csv":
                    handle = io.StringIO()
                    write_csv(handle, TRADE_COLUMNS, export_trades(session=session))
                    return self._answer(200, "text/csv", handle.getvalue().encode())
        finally:
            engine.dispose()
        self._answer(404, "application/json", b'{"error": "not found"}')

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(database_url: str) -> Iterator[type[_Site]]:
    handler = type("Site", (_Site,), {"database_url": database_url, "garbage": None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_site_verifies_through_its_api_and_its_tampering_is_caught(filled: Cli, site: type[_Site],
                                                                      database_url: str) -> None:
    status, lines, _ = verify(filled, site.url, "--public-key", KEYS.public)  # type: ignore[attr-defined]
    assert status == 0, lines
    assert "5 trade(s) compared with the trade table" in lines[-1]
    execute(database_url, "UPDATE trade SET exit_price = 1 WHERE status = 'CLOSED_TP'")
    status, lines, _ = verify(filled, site.url)  # type: ignore[attr-defined]
    assert status == 1 and any("exit_price is '1' in the trade table" in line for line in lines), lines


@pytest.mark.parametrize("garbage", [b"<html>hello</html>", b'{"seq": 1, "time": 5}\n'])
def test_a_site_answering_garbage_is_exit_2_in_one_line(filled: Cli, site: type[_Site], garbage: bytes) -> None:
    site.garbage = garbage
    result = filled("verify", site.url, check=False)  # type: ignore[attr-defined]
    assert result.returncode == 2, result
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


def test_an_unreachable_site_is_exit_2(tmp_path: Path) -> None:
    result = Cli("sqlite:///nowhere.db", "http://127.0.0.1:9", tmp_path)("verify", "http://127.0.0.1:9", check=False)
    assert result.returncode == 2 and result.stderr.startswith("signalproof: cannot reach http://127.0.0.1:9")


def test_keygen_prints_a_working_pair(tmp_path: Path) -> None:
    out = Cli("sqlite:///nowhere.db", "http://127.0.0.1:9", tmp_path)("keygen").stdout.splitlines()
    assert len(out) == 2 and out[0].startswith("SIGNALPROOF_SIGNING_KEY='")
    private, public = out[0].split("'")[1], out[1].rsplit(" ", 1)[1]
    point = signing.checkpoint(3, "a" * 64, datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert signing.signature_ok(point, signing.sign(point, private), public)
