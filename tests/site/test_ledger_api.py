"""The public read-only API (site/track_record/ledger_api.py) and the site's check of its own
ledger (self_check.py), against the real server `signalproof site` starts, on a database the
real CLI filled (`signals import`, `worker --once` against the fake exchange).

The hashing rule is implemented again HERE, from docs/ledger.md alone (the `rfc8785` package and
hashlib, nothing of shared.ledger), as an outside verifier would: every hash and link the API
serves must agree with it, and every closed trade of trades.csv must be rebuildable from the
entries. Then the database is tampered with directly, and the API and the pages must say so.
"""

import csv
import hashlib
import io
import json
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from conftest import Cli
from shared.database import transaction
from tests.site.conftest import SITE
from tests.site.test_api import get, serving
from shared import signing
from tests.worker.test_robustness import many_signals
from track_record import ledger_api, self_check

ZEROS = "0" * 64
ROUTES = ["/api/v1/head", "/api/v1/ledger", "/api/v1/summary", "/api/v1/open", "/badge.svg", "/api/v1/trades.csv"]
BAD_LEDGER_PARAMS = ["after=-1", "limit=0", "limit=10001", "after=abc", "limit=1e3", "limit=1&limit=2",
                     "after=1&after=2", "limit=", "after=1.5", "limit=%2B5", "after=" + "9" * 40, "page=2",
                     "limit=%EF%BC%95"]  # a full-width digit 5: str.isdigit says yes, we do not
HOSTILE_TITLE = "<script>alert('x')</script> & \"friends\""


# --- an independent verifier (docs/ledger.md) ---------------------------


def walk(site: str, page: int) -> list[dict[str, Any]]:
    """Every entry, read `page` at a time, each line checked byte for byte and by hash."""
    entries: list[dict[str, Any]] = []
    while True:
        status, headers, body = get(f"{site}/api/v1/ledger?after={len(entries)}&limit={page}")
        assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
        lines = body.split(b"\n")
        assert lines[-1] == b""  # every line ends with a newline
        if len(lines) == 1:
            return entries
        assert len(lines) - 1 <= page
        for line in lines[:-1]:
            entry = json.loads(line)
            assert line == rfc8785.dumps(entry)  # published: exactly the canonical bytes
            body_ = {key: value for key, value in entry.items() if key != "hash"}
            assert set(body_) == {"seq", "time", "kind", "data", "prev"}
            assert entry["hash"] == hashlib.sha256(rfc8785.dumps(body_)).hexdigest(), entry["seq"]
            assert entry["seq"] == len(entries) + 1
            assert entry["prev"] == (entries[-1]["hash"] if entries else ZEROS)
            datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            entries.append(entry)


def rebuilt_trades(entries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each trade's fields, merged from its entries in order (later entries win)."""
    trades: dict[int, dict[str, Any]] = {}
    for entry in entries:
        if entry["kind"].startswith("trade."):
            trades.setdefault(entry["data"]["trade_id"], {}).update(entry["data"])
    return trades


def same(column: str, csv_value: str, ledger_value: Any) -> bool:
    if column in ("funding_usd", "targets_hit") and ledger_value is None:
        ledger_value = "0"  # no entry says any: none paid, none reached (as shared/projection.py reads a ledger)
    if csv_value == "" or ledger_value is None:
        return csv_value == "" and ledger_value in (None, "")
    if column.endswith("_time"):
        return datetime.fromisoformat(csv_value) == datetime.fromisoformat(ledger_value)
    if column == "ambiguous":
        return csv_value == str(ledger_value).lower()
    if column in ("entry_price", "take_profit", "stop_loss", "exit_price", "fees_usd", "pnl_usd", "pnl_pct",
                  "stake_usd", "funding_usd"):
        return Decimal(csv_value) == Decimal(ledger_value)
    return csv_value == str(ledger_value)


def head(site: str) -> dict[str, Any]:
    status, headers, body = get(site + "/api/v1/head")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    return json.loads(body)


def head_becomes(site: str, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = head(site)
        if predicate(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.3)


def banner(monkeypatch: pytest.MonkeyPatch, url: str) -> list[str]:
    """The red banners of the whole app (site/streamlit_app.py), as a new visitor sees them."""
    monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", url)
    st.cache_data.clear()
    st.cache_resource.clear()
    self_check._checks.clear()  # a new site process: its first look walks the whole chain
    at = AppTest.from_file(str(SITE / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    return [error.value for error in at.error]


@pytest.mark.slow
def test_the_api_serves_a_ledger_an_outside_verifier_accepts_and_says_when_it_is_tampered_with(
        cli: Cli, engine: Engine, candles_path: Path, tmp_path: Path, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    signals = tmp_path / "signals.csv"
    signals.write_text(many_signals(candles_path, 30, seed=11))
    cli("signals", "import", str(signals))
    cli("settings", "set", "site_title", HOSTILE_TITLE)
    keys = signing.generate()
    cli.env["SIGNALPROOF_SIGNING_KEY"] = keys.private  # `worker --once` ends with a signed checkpoint
    cli("worker", "--once")
    del cli.env["SIGNALPROOF_SIGNING_KEY"]
    export = list(csv.DictReader(io.StringIO(cli("trades", "export").stdout)))
    closed = [row for row in export if row["status"].startswith("CLOSED") or row["status"] == "LIQUIDATED"]
    assert len(closed) > 10
    cli.env["SIGNALPROOF_SELF_CHECK_SECONDS"] = "1"  # the full re-walk, every second here

    with serving(cli, tmp_path / "site.log") as (site, _):
        entries = walk(site, 7)
        assert entries[0]["kind"] == "ledger.genesis"
        assert walk(site, 10_000) == entries
        assert {e["kind"] for e in entries} >= {"signal.received", "trade.opened", "trade.closed", "settings.changed"}

        # /head is the last entry, verified by the site itself
        top = head(site)
        assert top == {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"], "time": entries[-1]["time"],
                       "verified": True, "verified_through": entries[-1]["seq"], "problem": None}

        # every closed trade of trades.csv, every column, rebuilt from the entries alone
        status, _, body = get(site + "/api/v1/trades.csv")
        assert status == 200
        served = list(csv.DictReader(io.StringIO(body.decode())))
        assert served == export
        trades = rebuilt_trades(entries)
        received = {(e["data"]["source"], e["data"]["signal_id"]): e for e in entries if e["kind"] == "signal.received"}
        for row in closed:
            rebuilt = trades[int(row["trade_id"])]
            assert rebuilt["pnl_usd"] == row["pnl_usd"] or Decimal(rebuilt["pnl_usd"]) == Decimal(row["pnl_usd"])
            for column, value in row.items():
                assert same(column, value, rebuilt.get(column, "" if column == "reason" else None)), (column, row)
            # committed before the trade was opened
            assert received[(row["source"], row["signal_id"])]["seq"] < min(
                e["seq"] for e in entries if e["kind"] == "trade.opened" and e["data"]["trade_id"] == int(row["trade_id"]))

        # the checkpoints: the head the worker signed, in the chain, its signature valid under the key
        status, headers, body = get(site + "/api/v1/checkpoints")
        points = json.loads(body)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*" and points
        by_seq = {e["seq"]: e for e in entries}
        for point in points:
            assert by_seq[point["seq"]]["hash"] == point["hash"]
            assert point["public_key"] == keys.public and signing.signature_ok(point, point["signature"], keys.public)
        # … and `signalproof verify` accepts the site as served: chain, checkpoints, tables, a head
        verified = cli("verify", site, "--public-key", keys.public, "--head", f"{top['seq']}:{top['hash']}",
                       check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # summary = stats --json; open = the active trades, decimals as strings
        status, _, body = get(site + "/api/v1/summary")
        assert status == 200 and json.loads(body) == json.loads(cli("stats", "--json").stdout)
        status, _, body = get(site + "/api/v1/open")
        opened = json.loads(body)
        assert status == 200 and [t["trade_id"] for t in opened] == [
            int(r["trade_id"]) for r in export if r["status"] in ("OPEN", "PENDING")]
        for trade in opened:
            assert isinstance(trade["take_profit"], str) and Decimal(trade["take_profit"]) > 0
            assert trade["unrealized_pnl_usd"] is None or isinstance(trade["unrealized_pnl_usd"], str)

        # the badge: an SVG whose text is escaped (the title is the owner's)
        status, headers, body = get(site + "/badge.svg")
        assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
        svg = ElementTree.fromstring(body)
        texts = [el.text for el in svg.iter("{http://www.w3.org/2000/svg}text")]
        assert texts[0] == HOSTILE_TITLE[:ledger_api.BADGE_TITLE_CHARS]
        assert "closed" in texts[1] and "ledger verified ✓" in texts[1]
        assert b"<script>" not in body

        # bad parameters: 400 with one line of JSON; GET only; CORS everywhere
        for params in BAD_LEDGER_PARAMS:
            status, headers, body = get(f"{site}/api/v1/ledger?{params}")
            assert status == 400, params
            assert headers["Content-Type"] == "application/json"
            assert headers["Access-Control-Allow-Origin"] == "*"
            error = json.loads(body)["error"]
            assert isinstance(error, str) and "\n" not in error and "Traceback" not in error
        for route in ROUTES:
            status, headers, _ = get(site + route)
            assert status == 200 and headers["Access-Control-Allow-Origin"] == "*", route
            for method in ("POST", "PUT", "DELETE"):
                status, _, _ = get(urllib.request.Request(site + route, method=method, data=b""))
                assert status == 405, (route, method)

        # caching keyed on the data version: the same version is a 304, a new one is not
        for route in ROUTES[:5]:
            status, headers, _ = get(site + route)
            etag = headers["ETag"]
            assert etag and headers["Cache-Control"] == "public, max-age=5", route
            status, headers, body = get(urllib.request.Request(site + route, headers={"If-None-Match": etag}))
            assert (status, body) == (304, b""), route
        etags = {route: get(site + route)[1]["ETag"] for route in ROUTES[:5]}
        cli("settings", "set", "stake_usd", "50")  # a new entry: a new version
        for route in ROUTES[:5]:
            status, _, _ = get(urllib.request.Request(site + route, headers={"If-None-Match": etags[route]}))
            assert status == 200, route
        entries = walk(site, 1000)
        assert head_becomes(site, lambda h: h["seq"] == entries[-1]["seq"])["verified"] is True

        # --- tampering, directly in the database --------------------------------------
        victim = next(e for e in entries if e["kind"] == "trade.closed")
        stored = json.dumps(victim["data"], separators=(",", ":"), sort_keys=True)
        forged = dict(victim["data"], pnl_usd="1000")
        with transaction(engine) as session:
            session.execute(sa.text("UPDATE event SET data = :data WHERE id = :seq"),
                            {"data": json.dumps(forged, separators=(",", ":"), sort_keys=True), "seq": victim["seq"]})
        broken = head_becomes(site, lambda h: not h["verified"])
        assert broken["verified"] is False and broken["verified_through"] == victim["seq"] - 1
        assert broken["problem"].startswith(f"seq {victim['seq']}: hash does not match")
        errors = banner(monkeypatch, database_url)
        assert len(errors) == 1 and f"seq {victim['seq']}" in errors[0] and "does not verify" in errors[0]
        status, _, body = get(site + "/badge.svg")
        assert f"ledger broken at #{victim['seq']}".encode() in body

        with transaction(engine) as session:  # put back: the next full walk finds it whole again
            session.execute(sa.text("UPDATE event SET data = :data WHERE id = :seq"),
                            {"data": stored, "seq": victim["seq"]})
        assert head_becomes(site, lambda h: h["verified"])["problem"] is None
        assert banner(monkeypatch, database_url) == []

        # the newest entry deleted: the head moves back, seen at once (no full walk needed)
        last = entries[-1]
        with transaction(engine) as session:
            session.execute(sa.text("DELETE FROM event WHERE id = :seq"), {"seq": last["seq"]})
        answer = head(site)
        assert answer["verified"] is False and answer["problem"].startswith(f"seq {last['seq']}: entry missing")

        # an entry in the middle deleted
        with transaction(engine) as session:
            session.execute(sa.text("DELETE FROM event WHERE id = :seq"), {"seq": victim["seq"]})
        gone = head_becomes(site, lambda h: h["problem"] and h["problem"].startswith(f"seq {victim['seq']}:"))
        assert gone["verified"] is False and "missing" in gone["problem"], gone
        errors = banner(monkeypatch, database_url)
        assert len(errors) == 1 and f"seq {victim['seq']}" in errors[0]
    st.cache_resource.clear()


def test_the_badge_escapes_whatever_the_title_holds() -> None:
    state = self_check.State(self_check.Head(3, "a" * 64, "2024-01-01T00:00:00.000000Z"), 3, None, checking=False)
    stats = {"total_pnl_usd": 12.5, "closed_trades": 4, "win_rate": 0.5}
    svg = ledger_api.badge_svg('</text><script>alert(1)</script>&"', stats, state)
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script>" not in svg
    assert [el.text for el in root.iter("{http://www.w3.org/2000/svg}text")] == [
        '</text><script>alert(1)</script>&"', "+$12.50 · 50% win · 4 closed · ledger verified ✓"]


@pytest.mark.parametrize("query, expected", [
    ([], (0, 1000)), ([("after", "5")], (5, 1000)), ([("after", "0"), ("limit", "10000")], (0, 10_000)),
    ([("limit", "1")], (0, 1)),
])
def test_ledger_paging_parameters(query: list[tuple[str, str]], expected: tuple[int, int]) -> None:
    assert ledger_api.ledger_page(query) == expected


@pytest.mark.parametrize("data", [
    '{"actor":"worker","pnl_usd":"-1.5","trade_id":3,"ambiguous":false,"note":null,"t":["a",{"b":1}]}',
    '{ "b" : 1,  "a": "x\\ny\\t\\"q\\" \\\\ /" }',  # not canonical as stored: served canonical all the same
    '{"f":1.5,"g":1e21,"h":1E-7}', '{"big":9007199254740993}', '{"n":NaN}', '{"é":"ü","z":"\\u00e9"}',
    '{"lone":"\\ud800"}', '{"emoji":"\\ud83d\\ude00","k\\u0001":"\\u001f"}', '[1,2]', 'not json', "", None,
    '{"deep":' + "[" * 50 + "]" * 50 + "}",
])
@pytest.mark.parametrize("kind, prev", [("trade.closed", "a" * 64), ('tr"ade\\x', "é" * 64)])
def test_the_fast_published_line_is_the_entrys_canonical_line(data: str | None, kind: str, prev: str) -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=__import__("datetime").timezone.utc)
    row = (7, at, kind, data, prev, "b" * 64)
    assert ledger_api.published_line(row) == self_check.row_entry(row).line()  # type: ignore[arg-type]
