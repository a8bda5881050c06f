"""Import → `worker --once` → `trades export`, through the real CLI, real database and a real
HTTP exchange serving the recorded Binance candles — on SQLite and PostgreSQL.

Every expected value below was read off the candle files by hand; the candle that decides is
quoted in the comment. P/L is recomputed here from the P/L formula of docs/trade-rules.md, independently of
shared.money.
"""

import csv
from collections.abc import Callable
import io
import json
import socket
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

import sqlalchemy as sa

from conftest import Cli
from demo.tape import LOW_FIRST
from fake_exchange import FakeExchange
from shared.database import make_engine

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"

# Phase 1 — settings: entry_mode market, candle_interval 1m, fees 0.001 spot.
MARKET_1M = HEADER + """\
same-candle,2018-01-20T11:08:00Z,ETH/BTC,LONG,SPOT,,0.0915,0.08913001,1,0.9,,"<script>alert(1)</script>"
gap,2019-10-11T00:17:00Z,xrp-eth,buy,spot,,0.00143,0.0014,,,,
ada-short,2018-01-21T00:00:00Z,ADABTC,SHORT,SPOT,,0.0000530,0.0000570,,,,
cancel,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,0.0891,0.088,,,,
still-open,2018-01-29T00:00:00Z,ADABTC,SHORT,SPOT,,0.00001,0.0001,,,,
unknown,2018-01-20T11:08:00Z,NOPECOIN,LONG,SPOT,,2,1,,,,
bad-levels,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,0.08,0.09,,,,
spot-leverage,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,0.095,0.085,5,,,
future,2999-01-01T00:00:00Z,ETHBTC,LONG,SPOT,,0.095,0.085,,,,
not-a-price,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,abc,0.085,,,,
gap,2019-10-11T00:18:00Z,XRPETH,SHORT,SPOT,,0.001,0.002,,,,"duplicate id: the first version stands"
"""
# Phase 2 — entry_mode limit.
LIMIT_1M = HEADER + """\
limit-fill,2018-01-22T00:00:30Z,LTCBTC,LONG,SPOT,0.0163,0.0170,0.0160,,,,
limit-expire,2018-01-23T00:00:00Z,LTCBTC,LONG,SPOT,0.0100,0.0200,0.0090,,,,
limit-no-entry,2018-01-23T00:00:00Z,LTCBTC,LONG,SPOT,,0.0200,0.0090,,,,
"""
# Phase 3 — entry_mode signal, slippage 10 bps, max_trade_hours 1.
SIGNAL_1M = '{"id": "expire", "time": 1516708800000, "symbol": "ETHBTC", "side": "LONG", "entry": "0.0900", "take_profit": [0.095, 0.099], "stop_loss": 0.085}\n'
# Phase 4 — entry_mode market, candle_interval 5m, futures fee 0.0005.
FUTURES_5M = HEADER + "liquidated,2021-11-16T00:00:00Z,XRPUSDT,LONG,FUTURES,,1.30,1.00,50,,,\n"

# signal id → (status, entry_time, entry_price, exit_time, exit_price, ambiguous, stake, fee, leverage, side)
EXPECTED = {
    # 11:08 candle o 0.08913002 h 0.0919 l 0.08913: low <= SL and high >= TP → stop-loss wins, at
    # min(open, SL) = SL. The exchange's trade tape of that candle (the fake's, made to dip
    # first: SAME_CANDLE_ORDER) says the stop was reached first: settled, not ambiguous.
    "same-candle": ("CLOSED_SL", "2018-01-20T11:08:00Z", "0.08913002", "2018-01-20T11:08:00Z", "0.08913001", False),
    # 00:17 and 00:18 are missing: the start candle is 00:19 (open 0.00141536); first touch of
    # a level is the 04:46 candle (o 0.00140274 l 0.00139676) → SL at 0.0014.
    "gap": ("CLOSED_SL", "2019-10-11T00:19:00Z", "0.00141536", "2019-10-11T04:46:00Z", "0.0014", False),
    # SHORT from the 00:00 open 0.00005542; 07:32 candle low 0.000053 <= TP → exactly TP.
    "ada-short": ("CLOSED_TP", "2018-01-21T00:00:00Z", "0.00005542", "2018-01-21T07:32:00Z", "0.000053", False),
    # 11:08 opens at 0.08913002, already above the TP 0.0891 → cancelled, never entered.
    "cancel": ("CANCELLED", "", "", "", "", False),
    # opens 2018-01-29 00:00 at 0.00005083 (ADABTC), never reaches 0.00001 or 0.0001.
    "still-open": ("OPEN", "2018-01-29T00:00:00Z", None, "", "", False),
    # limit 0.0163 from the 00:01 candle: first low <= 0.0163 is 13:34 (o 0.01641439) → fill at
    # 0.0163; SL 0.016 first crossed 2018-01-24 14:28 (o 0.0160363 l 0.01599846) → 0.016.
    "limit-fill": ("CLOSED_SL", "2018-01-22T13:34:00Z", "0.0163", "2018-01-24T14:28:00Z", "0.016", False),
    # 0.0100 is never reached within 24 h.
    "limit-expire": ("CANCELLED", "", "", "", "", False),
    # signal entry 0.0900 at 12:00; nothing touched before the 13:00 candle, which opens at
    # 0.091198 → expired at 0.091198 × (1 − 0.001) = 0.091106802.
    "expire": ("CLOSED_EXPIRED", "2018-01-23T12:00:00Z", "0.09", "2018-01-23T13:00:00Z", "0.091106802", False),
    # 50x LONG from the 00:00 open 1.1728: liquidation 1.1728 × (1 − 0.02 + 0.004) = 1.1540352,
    # nearer than SL 1.00; the 00:10 candle (o 1.1588 l 1.125) reaches it.
    "liquidated": ("LIQUIDATED", "2021-11-16T00:00:00Z", "1.1728", "2021-11-16T00:10:00Z", "1.1540352", False),
}
# The 11:08 candle's trades: down to its low first, then up to its high.
SAME_CANDLE_ORDER = {int(datetime(2018, 1, 20, 11, 8, tzinfo=timezone.utc).timestamp() * 1000): LOW_FIRST}
REJECTED = {
    "unknown": "unknown symbol", "bad-levels": "take_profit", "spot-leverage": "leverage",
    "future": "future", "not-a-price": "take_profit", "limit-no-entry": "entry",
}


def expected_pnl(side: str, stake: D, leverage: int, fee: D, entry: D, exit_: D, status: str) -> D:
    notional = stake * leverage
    if status == "LIQUIDATED":
        return -stake - fee * notional
    s = 1 if side == "LONG" else -1
    return notional * s * (exit_ - entry) / entry - fee * notional * (1 + exit_ / entry)


def run_scenario(cli: Cli, tmp: Path) -> None:
    phases = [
        ({"entry_mode": "market"}, "market.csv", MARKET_1M),
        ({"entry_mode": "limit"}, "limit.csv", LIMIT_1M),
        ({"entry_mode": "signal", "slippage_bps": "10", "max_trade_hours": "1"}, "signal.jsonl", SIGNAL_1M),
        ({"entry_mode": "market", "slippage_bps": "0", "max_trade_hours": "0", "candle_interval": "5m"},
         "futures.csv", FUTURES_5M),
    ]
    for settings, name, content in phases:
        for key, value in settings.items():
            cli("settings", "set", key, value)
        (tmp / name).write_text(content)
        cli("signals", "import", str(tmp / name))
        cli("worker", "--once")


def exported_trades(cli: Cli) -> dict[str, dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(cli("trades", "export").stdout)))
    return {row["signal_id"]: row for row in rows}


def test_scenario_on_real_candles(cli: Cli, database_url: str, tmp_path: Path, exchange: FakeExchange) -> None:
    exchange.tape_orders = SAME_CANDLE_ORDER
    (tmp_path / "market.csv").write_text(MARKET_1M)
    first = cli("signals", "import", str(tmp_path / "market.csv")).stdout
    assert first.splitlines()[0] == "accepted 6, rejected 4, duplicate 1", first
    cli("db", "upgrade")  # idempotent
    cli("worker", "--once")
    run_scenario(cli, tmp_path)  # phase 1 again: all duplicates, nothing changes

    trades = exported_trades(cli)
    assert set(trades) == set(EXPECTED)
    for signal_id, (status, entry_time, entry, exit_time, exit_, ambiguous) in EXPECTED.items():
        row = trades[signal_id]
        got = (row["status"], row["entry_time"], row["entry_price"] or "", row["exit_time"], row["exit_price"],
               row["ambiguous"])
        want = (status, entry_time, row["entry_price"] if entry is None else entry, exit_time, exit_,
                "true" if ambiguous else "false")
        assert got == want, signal_id
        if exit_:
            pnl = expected_pnl(row["side"], D(row["stake_usd"]), int(row["leverage"]),
                               D("0.0005") if row["market"] == "FUTURES" else D("0.001"), D(entry or "0"), D(exit_), status)
            assert abs(D(row["pnl_usd"]) - pnl) <= abs(pnl) * D("1e-12"), signal_id
            assert abs(D(row["pnl_pct"]) - pnl / D(row["stake_usd"])) <= D("1e-12")
    assert D(trades["liquidated"]["pnl_usd"]) == D("-102.5")  # −100 − 0.0005 × 5000
    assert trades["liquidated"]["fees_usd"] == "2.5"
    assert trades["cancel"]["reason"] == "entry beyond stop-loss/take-profit"
    assert trades["limit-expire"]["reason"] == "entry not reached"

    signals = {row["id"]: row for row in csv.DictReader(io.StringIO(cli("signals", "export").stdout))}
    for signal_id, words in REJECTED.items():
        assert signals[signal_id]["status"] == "REJECTED", signal_id
        assert words in signals[signal_id]["reason"], (signal_id, signals[signal_id]["reason"])
    assert signals["gap"]["symbol"] == "XRPETH" and signals["gap"]["side"] == "LONG"  # the first version stood
    assert all(signals[s]["origin"] == "backfill" for s in EXPECTED)

    stats = json.loads(cli("stats", "--json").stdout)
    closed = [t for t in trades.values() if t["status"].startswith("CLOSED_") or t["status"] == "LIQUIDATED"]
    assert stats["closed_trades"] == len(closed) == 6
    assert stats["wins"] == sum(D(t["pnl_usd"]) > 0 for t in closed)
    assert abs(D(str(stats["total_pnl_usd"])) - sum(D(t["pnl_usd"]) for t in closed)) < D("1e-9")
    assert (stats["open_trades"], stats["cancelled_trades"], stats["ambiguous_trades"]) == (1, 2, 0)
    assert_event_sequences(database_url)


def expected_events(status: str) -> list[str]:
    """The exact event history of a trade, from its final state."""
    if status == "PENDING":
        return ["trade.opened"]
    if status == "CANCELLED":
        return ["trade.opened", "trade.cancelled"]
    if status == "OPEN":
        return ["trade.opened", "trade.filled"]
    return ["trade.opened", "trade.filled", "trade.closed"]


def assert_event_sequences(database_url: str) -> None:
    """Every state change has its one event, in order: the entered-and-closed-in-one-pass
    market entry ("same-candle", "ada-short"), the limit fill, the signal-mode entry, the
    cancels, and the one still open."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            statuses = dict(connection.execute(sa.text("SELECT t.id, s.signal_id FROM trade t JOIN signal s ON s.id = t.signal_pk")).all())
            final = dict(connection.execute(sa.text("SELECT id, status FROM trade")).all())
            history: dict[int, list[str]] = {trade_id: [] for trade_id in final}
            for trade_id, kind in connection.execute(sa.text(
                    "SELECT trade_id, kind FROM event WHERE trade_id IS NOT NULL ORDER BY id")):
                history[trade_id].append(kind)
    finally:
        engine.dispose()
    got = {statuses[trade_id]: kinds for trade_id, kinds in history.items()}
    want = {statuses[trade_id]: expected_events(status) for trade_id, status in final.items()}
    assert got == want
    assert got["same-candle"] == ["trade.opened", "trade.filled", "trade.closed"]
    assert got["limit-fill"] == ["trade.opened", "trade.filled", "trade.closed"]


def test_exchange_faults_change_nothing(cli: Cli, another_cli: Callable[[str], Cli], exchange: FakeExchange,
                                        tmp_path: Path) -> None:
    """The same scenario with one response in five failing (5xx, 429, timeouts, garbage) ends
    with exactly the trades of the clean run."""
    exchange.tape_orders = SAME_CANDLE_ORDER
    run_scenario(cli, tmp_path)
    clean = exported_trades(cli)
    faulty = another_cli("faulty")
    exchange.fault_rate = 0.2
    run_scenario(faulty, faulty.cwd)
    assert len(exchange.requests) > 0
    strip = lambda rows: {k: {c: v for c, v in r.items() if c != "trade_id"} for k, r in rows.items()}  # noqa: E731
    assert strip(exported_trades(faulty)) == strip(clean)


def test_db_upgrade_on_an_unreachable_server_is_one_line_and_status_2(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = Cli(f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing", "http://127.0.0.1:9", tmp_path)(
        "db", "upgrade", check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("signalproof: cannot open the database: connection failed")
    assert "Traceback" not in result.stderr
