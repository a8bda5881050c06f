"""The trade tape and futures funding through the real CLI, on SQLite and PostgreSQL, against the
fake exchange's `aggTrades` and `fundingRate` (tests/fake_exchange.py, demo/tape.py).

- Tight-stop signals on recorded 1m candles: many candles reach both the stop and a target. Every
  trade is compared with the independent rules (tests/reference_rules.py) told the order the
  fake exchange's trades take in each candle; a bad tape of every kind gives the stop-loss,
  flagged `assumed`; one exchange answer in five failing changes nothing.
- Futures trades over days: their funding is recomputed here from the funding history the
  exchange serves (read over HTTP), −s·(notional/entry)·markPrice·rate for entry < t ≤ exit.
"""

import json
import random
import urllib.request
from bisect import bisect_left
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Cli
from demo.tape import HIGH_FIRST, LOW_FIRST, natural_order
from fake_exchange import FakeExchange, read_candles
from shared.database import make_engine
from shared.kinds import Market
from tests.reference_rules import Setup, simulate
from tests.worker.test_multi_target_cli import close, exported

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note"
START = datetime(2018, 1, 20, 6, 0, tzinfo=timezone.utc)

pytestmark = pytest.mark.slow


def tight_signals(candles_dir: Path, count: int = 60, seed: int = 15) -> tuple[str, dict[str, dict]]:
    """ETHBTC/LTCBTC scalps around the start candle's open: targets 0.02–0.12 % away, stops
    0.02–0.08 %: many same-candle cases."""
    rng = random.Random(seed)
    lines, specs = [HEADER], {}
    series = {s: read_candles(Market.SPOT, s, "1m", candles_dir) for s in ("ETHBTC", "LTCBTC")}
    for n in range(count):
        symbol = rng.choice(sorted(series))
        when = START + timedelta(minutes=rng.randrange(8 * 24 * 60))
        candles = series[symbol]
        price = candles[min(len(candles) - 1, bisect_left([c.open_time for c in candles], when))].open
        side = rng.choice(("LONG", "SHORT"))
        s = 1 if side == "LONG" else -1
        steps = sorted(rng.sample(range(2, 12), rng.randint(1, 3)))
        targets = [(price * (1 + s * D(step) / 10000)).quantize(D("1e-8")) for step in steps]
        stop = (price * (1 - s * D(rng.randint(2, 8)) / 10000)).quantize(D("1e-8"))
        lines.append(f"t{n},{when.isoformat()},{symbol},{side},SPOT,,{';'.join(map(str, targets))},{stop},,,,")
        specs[f"t{n}"] = {"symbol": symbol, "side": side, "targets": targets, "stop": stop, "time": when}
    return "\n".join(lines) + "\n", specs


def resolutions(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        found = dict(connection.execute(sa.text("SELECT signal_id, resolution FROM trade")).all())
    engine.dispose()
    return found


def run_tape_scenario(cli: Cli, text: str, split: str) -> None:
    cli("settings", "set", "tp_split", split)
    (cli.cwd / "tight.csv").write_text(text)
    cli("signals", "import", str(cli.cwd / "tight.csv"))
    cli("worker", "--once")


def check_against_reference(cli: Cli, specs: dict[str, dict], candles_dir: Path, split: str,
                            order_of: Callable[[tuple], str | None] | None) -> list:
    trades = {row["signal_id"]: row for row in exported(cli, "trades", "export")}
    series = {s: [(c.open_time, c.open, c.high, c.low, c.close) for c in read_candles(Market.SPOT, s, "1m", candles_dir)]
              for s in ("ETHBTC", "LTCBTC")}
    outcomes = []
    for signal_id, spec in specs.items():
        want = simulate(Setup(side=spec["side"], targets=spec["targets"], stop_loss=spec["stop"],
                              signal_time=spec["time"], tp_split=split, tape=order_of),
                        series[spec["symbol"]], datetime.now(timezone.utc))
        row = trades[signal_id]
        got = (row["status"], row["ambiguous"], row["targets_hit"])
        assert got == (want.status, "true" if want.ambiguous else "false", str(want.targets_hit)), signal_id
        for column, value in (("exit_price", want.exit_price), ("fees_usd", want.fees), ("pnl_usd", want.pnl)):
            assert close(row[column], value), (signal_id, column, row[column], value)
        outcomes.append((signal_id, want))
    return outcomes


@pytest.mark.parametrize("order", [HIGH_FIRST, LOW_FIRST, "natural"])
def test_the_tape_settles_same_candle_cases_as_the_independent_rules(
        cli: Cli, exchange: FakeExchange, candles_path: Path, database_url: str, order: str) -> None:
    text, specs = tight_signals(candles_path)
    if order != "natural":
        exchange.tape_order = order
    order_of = (lambda c: natural_order((0, *c[1:], D(0)))) if order == "natural" else (lambda c: order)
    run_tape_scenario(cli, text, "even")
    outcomes = check_against_reference(cli, specs, candles_path, "even", order_of)
    settled = [signal_id for signal_id, want in outcomes if want.resolution == "trades"]
    assert len(settled) >= 5, "the scenario must have same-candle cases"
    found = resolutions(database_url)
    assert {s for s, r in found.items() if r == "trades"} == set(settled)
    assert not any(r == "assumed" for r in found.values())
    # One tape read per candle that needed one, whatever the number of trades in it.
    reads = [params for _, params in exchange.requests_to("aggTrades")]
    assert 0 < len({(p["symbol"], p.get("startTime")) for p in reads if "startTime" in p}) <= len(settled)
    # The ledger says how each was settled, and the replay agrees.
    engine = make_engine(database_url)
    with engine.connect() as connection:
        closes = [json.loads(d) for d in connection.execute(sa.text(
            "SELECT data FROM event WHERE kind = 'trade.closed'")).scalars()]
    engine.dispose()
    taped = [d for d in closes if d.get("resolution") == "trades"]
    assert len(taped) == len(settled) and all(d["tape"]["tape_adverse"] or d["status"] == "CLOSED_TP" for d in taped)
    verified = cli("verify", "db", "--replay", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("fault", ["empty", "truncated", "out_of_order", "outside"])
def test_a_bad_tape_changes_nothing_the_stop_loss_is_assumed(
        cli: Cli, exchange: FakeExchange, candles_path: Path, database_url: str, fault: str) -> None:
    text, specs = tight_signals(candles_path, count=25, seed=16)
    exchange.bad_tape = fault
    run_tape_scenario(cli, text, "single")
    outcomes = check_against_reference(cli, specs, candles_path, "single", None)
    assumed = {signal_id for signal_id, want in outcomes if want.resolution == "assumed"}
    assert assumed, "the scenario must have same-candle cases"
    assert {s for s, r in resolutions(database_url).items() if r == "assumed"} == assumed
    assert all(want.ambiguous for signal_id, want in outcomes if signal_id in assumed)


def test_failing_exchange_answers_change_nothing(cli: Cli, another_cli: Callable[[str], Cli], exchange: FakeExchange,
                                                 candles_path: Path) -> None:
    text, _ = tight_signals(candles_path, count=40, seed=17)
    run_tape_scenario(cli, text, "50,50")
    clean = {r["signal_id"]: {k: v for k, v in r.items() if k != "trade_id"} for r in exported(cli, "trades", "export")}
    faulty = another_cli("faulty")
    exchange.fault_rate = 0.2
    run_tape_scenario(faulty, text, "50,50")
    got = {r["signal_id"]: {k: v for k, v in r.items() if k != "trade_id"} for r in exported(faulty, "trades", "export")}
    assert got == clean


# --- funding -----------------------------------------------------------------------------------


FUTURES = HEADER + """
f-long,2021-11-15T01:00:00Z,XRPUSDT,LONG,FUTURES,,1.25,1.10,3,,,
f-short,2021-11-15T03:00:00Z,XRPUSDT,SHORT,FUTURES,,1.09,1.25,2,,,
f-split,2021-11-16T16:00:00Z,XRPUSDT,SHORT,FUTURES,,1.085;1.06,1.15,5,,,
f-split2,2021-11-17T00:00:00Z,XRPUSDT,LONG,FUTURES,,1.10;1.12,1.04,5,,,
f-quick,2021-11-16T00:00:00Z,XRPUSDT,LONG,FUTURES,,1.30,1.00,50,,,
f-open,2021-11-20T00:00:00Z,XRPUSDT,LONG,FUTURES,,2.00,0.50,2,,,
"""


def funding_history(exchange: FakeExchange) -> list[tuple[datetime, D, D]]:
    url = f"{exchange.url}/fapi/v1/fundingRate?symbol=XRPUSDT&startTime=0&limit=1000"
    with urllib.request.urlopen(url, timeout=10) as answer:
        events = json.load(answer)
    return [(datetime.fromtimestamp(e["fundingTime"] / 1000, timezone.utc), D(e["fundingRate"]), D(e["markPrice"]))
            for e in events]


@pytest.mark.parametrize("funding_on", [True, False])
def test_futures_trades_pay_the_funding_the_exchange_published(cli: Cli, exchange: FakeExchange,
                                                                database_url: str, funding_on: bool) -> None:
    for key, value in (("candle_interval", "5m"), ("tp_split", "even"), ("futures_funding", str(funding_on).lower())):
        cli("settings", "set", key, value)
    (cli.cwd / "futures.csv").write_text(FUTURES)
    assert cli("signals", "import", str(cli.cwd / "futures.csv")).stdout.startswith("accepted 6,")
    cli("worker", "--once")
    trades = {row["signal_id"]: row for row in exported(cli, "trades", "export")}
    fills: dict[str, list[dict[str, str]]] = {}
    for row in exported(cli, "trades", "fills"):
        fills.setdefault(row["trade_id"], []).append(row)
    events = funding_history(exchange)
    assert len(events) > 10
    paid_some = 0
    for signal_id, row in trades.items():
        if row["status"] in ("PENDING", "CANCELLED"):
            continue
        s = 1 if row["side"] == "LONG" else -1
        notional = D(row["stake_usd"]) * int(row["leverage"])
        entry, entered = D(row["entry_price"]), row["entry_time"]
        expected = D(0)
        for at, rate, mark in events:
            stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if entered < stamp and (row["status"] == "OPEN" or stamp <= row["exit_time"]):  # open: so far
                # What is still open at t: the parts that exited in candles opening before t are gone.
                gone = sum((D(f["share"]) for f in fills.get(row["trade_id"], []) if f["time"] < stamp), D(0))
                expected += -s * notional * (1 - gone) * mark * rate / entry
        if not funding_on:
            expected = D(0)
        assert close(row["funding_usd"], expected), (signal_id, row["funding_usd"], expected)
        if row["status"] != "OPEN":
            price_pnl = sum((D(f["pnl_usd"]) for f in fills[row["trade_id"]]), D(0))
            assert close(row["pnl_usd"], price_pnl + expected), signal_id
        paid_some += expected != 0
    # f-split and f-split2 pay on half their position between their two targets; f-open, still
    # open, shows what it has paid so far.
    assert trades["f-open"]["status"] == "OPEN"
    assert paid_some >= (4 if funding_on else 0), [(r["signal_id"], r["status"], r["entry_time"], r["exit_time"],
                                                    r["funding_usd"]) for r in trades.values()]
    verified = cli("verify", "db", "--replay", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_funding_history_with_missing_fields_leaves_the_trade_open(cli: Cli, exchange: FakeExchange) -> None:
    cli("settings", "set", "candle_interval", "5m")
    (cli.cwd / "futures.csv").write_text(HEADER + "\nq,2021-11-16T00:00:00Z,XRPUSDT,LONG,FUTURES,,1.30,1.00,50,,,\n")
    cli("signals", "import", str(cli.cwd / "futures.csv"))
    exchange.funding_faults = ["missing_field"] * 50
    first = cli("worker", "--once", check=False)
    assert first.returncode != 0 and "funding" in first.stdout + first.stderr
    row = exported(cli, "trades", "export")[0]
    assert row["status"] in ("PENDING", "OPEN") and row["exit_time"] == ""  # not decided on missing data
    engine = make_engine(cli.env["SIGNALPROOF_DATABASE_URL"])
    with engine.connect() as connection:
        errors = connection.execute(sa.text("SELECT last_error FROM worker_heartbeat")).scalar_one()
    engine.dispose()
    assert "funding" in str(errors)
    exchange.funding_faults = []
    cli("worker", "--once")
    row = exported(cli, "trades", "export")[0]
    assert row["status"] == "LIQUIDATED" and row["exit_time"] == "2021-11-16T00:10:00Z"
