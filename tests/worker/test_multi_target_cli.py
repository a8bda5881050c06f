"""Multi-target signals through the real CLI, on SQLite and PostgreSQL: `settings set`, `signals
import`, `worker --once`, `trades export`, `trades fills`, `verify db --replay`, compared trade by
trade and fill by fill with the independent implementation of the rules (tests/reference_rules.py)
on the same recorded Binance candles the fake exchange serves.

Each batch of signals is imported and processed under one combination of `tp_split` and
`stop_after_tp` (and entry mode), so every trade is opened with the rules of its batch; the
batches run far behind real time, so the worker's coarse-to-fine catch-up decides them.
"""

import csv
import io
import json
import random
from bisect import bisect_left
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Cli
from fake_exchange import read_candles
from shared.database import make_engine
from shared.kinds import Market
from tests.reference_rules import Setup, simulate

SYMBOLS = ("ETHBTC", "LTCBTC", "ADABTC")
START = datetime(2018, 1, 20, 6, 0, tzinfo=timezone.utc)
HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note"
# (tp_split, stop_after_tp, entry_mode) per batch.
BATCHES = [
    ("single", "none", "market"), ("even", "none", "market"), ("50,30,20", "breakeven", "market"),
    ("even", "trailing", "market"), ("60,40", "trailing", "limit"), ("single", "trailing", "market"),
]
TOLERANCE = D("1e-9")


def signals(batch: int, candles_dir: Path, count: int, rng: random.Random) -> tuple[str, dict[str, dict]]:
    """Tight multi-target signals (targets 0.3–2.4 % away, stops 0.4–2 %) spread over eight days."""
    lines, specs = [HEADER], {}
    for n in range(count):
        symbol = rng.choice(SYMBOLS)
        when = START + timedelta(seconds=rng.randrange(8 * 24 * 3600))
        series = read_candles(Market.SPOT, symbol, "1m", candles_dir)
        price = series[max(0, bisect_left([c.open_time for c in series], when) - 1)].close
        side = rng.choice(("LONG", "SHORT"))
        s = 1 if side == "LONG" else -1
        steps = sorted(rng.sample(range(3, 25), rng.randint(1, 4)))
        targets = [(price * (1 + s * D(step) / 1000)).quantize(D("1e-8")) for step in steps]
        stop = (price * (1 - s * D(rng.randint(4, 20)) / 1000)).quantize(D("1e-8"))
        entry = (price * (1 - s * D(rng.randint(0, 3)) / 1000)).quantize(D("1e-8"))
        signal_id = f"b{batch}-{n}"
        lines.append(f"{signal_id},{when.isoformat()},{symbol},{side},SPOT,{entry},"
                     f"{';'.join(format(t, 'f') for t in targets)},{stop},,,,")
        specs[signal_id] = {"symbol": symbol, "side": side, "targets": targets, "stop": stop, "entry": entry,
                            "time": when}
    return "\n".join(lines) + "\n", specs


def exported(cli: Cli, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(cli(*args).stdout)))


def close(mine: str, theirs: object) -> bool:
    if theirs is None:
        return mine == ""
    return mine != "" and abs(D(mine) - D(theirs)) <= TOLERANCE  # type: ignore[arg-type]


@pytest.mark.slow
def test_every_trade_and_fill_agrees_with_the_independent_rules(cli: Cli, candles_path: Path, database_url: str) -> None:
    rng = random.Random(14)
    specs: dict[str, dict] = {}
    for number, (split, stop_after, mode) in enumerate(BATCHES):
        for key, value in (("tp_split", split), ("stop_after_tp", stop_after), ("entry_mode", mode),
                           ("take_profit_target", "2" if number == 5 else "1")):
            cli("settings", "set", key, value)
        text, batch = signals(number, candles_path, 25, rng)
        for spec in batch.values():
            spec.update(split=split, stop_after=stop_after, mode=mode, tpt=2 if number == 5 else 1)
        specs.update(batch)
        (cli.cwd / f"batch{number}.csv").write_text(text)
        assert cli("signals", "import", str(cli.cwd / f"batch{number}.csv")).stdout.startswith("accepted 25,")
        cli("worker", "--once")

    trades = {row["signal_id"]: row for row in exported(cli, "trades", "export")}
    fills: dict[str, list[dict[str, str]]] = {}
    for row in exported(cli, "trades", "fills"):
        fills.setdefault(row["trade_id"], []).append(row)
    assert len(trades) == len(specs)
    series = {symbol: [(c.open_time, c.open, c.high, c.low, c.close)
                       for c in read_candles(Market.SPOT, symbol, "1m", candles_path)] for symbol in SYMBOLS}

    seen_partial_then_stop = seen_split_tp = 0
    for signal_id, spec in specs.items():
        row = trades[signal_id]
        setup = Setup(side=spec["side"], targets=spec["targets"], stop_loss=spec["stop"], signal_time=spec["time"],
                      entry=spec["entry"], entry_mode=spec["mode"], tp_split=spec["split"],
                      take_profit_target=spec["tpt"], stop_after_tp=spec["stop_after"])
        want = simulate(setup, series[spec["symbol"]], datetime.now(timezone.utc))
        got_fills = fills.get(row["trade_id"], [])
        where = f"{signal_id} ({spec['split']}, {spec['stop_after']}, {spec['mode']})"
        assert row["status"] == want.status, where
        assert row["ambiguous"] == ("true" if want.ambiguous else "false"), where
        assert row["targets_hit"] == str(want.targets_hit), where
        assert row["funding_usd"] == "0", where
        for column, value in (("entry_price", want.entry_price), ("exit_price", want.exit_price),
                              ("fees_usd", want.fees), ("pnl_usd", want.pnl)):
            assert close(row[column], value), (where, column, row[column], value)
        assert [(f["time"], f["kind"]) for f in got_fills] == [
            (t.strftime("%Y-%m-%dT%H:%M:%SZ"), kind) for t, kind, *_ in want.fills], where
        for got, (_, _, price, share, fees, pnl) in zip(got_fills, want.fills):
            assert all(close(got[c], v) for c, v in (("price", price), ("share", share), ("fees_usd", fees),
                                                     ("pnl_usd", pnl))), (where, got)
        seen_partial_then_stop += want.status == "CLOSED_SL" and want.targets_hit > 0
        seen_split_tp += want.status == "CLOSED_TP" and len(want.fills) > 1
    # The scenario really exercises partial exits, moved stops and scaled-out take-profits.
    assert seen_partial_then_stop >= 3 and seen_split_tp >= 3, (seen_partial_then_stop, seen_split_tp)

    # The ledger tells every partial exit, and the verifier rebuilds trades and fills from it.
    engine = make_engine(database_url)
    with engine.connect() as connection:
        partials = connection.execute(sa.text("SELECT data FROM event WHERE kind = 'trade.partial'")).scalars().all()
    engine.dispose()
    split_fills = sum(len(fills.get(trades[i]["trade_id"], [])) for i, s in specs.items() if s["split"] != "single")
    assert len(partials) == split_fills > 0
    assert {json.loads(p)["kind"] for p in partials} >= {"tp1", "tp2", "sl"}
    verified = cli("verify", "db", "--replay", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_bad_multi_target_input_changes_nothing(cli: Cli) -> None:
    """A split that does not sum to 100, a stop rule that does not exist, targets out of order."""
    before = cli("settings", "show").stdout
    for key, value, problem in (("tp_split", "50,30", "sum to 100"), ("tp_split", "120,-20", "above 0"),
                                ("tp_split", ",".join(["5"] * 20), "at most 10"),
                                ("stop_after_tp", "moon", "not one of none, breakeven, trailing")):
        refused = cli("settings", "set", key, value, check=False)
        assert refused.returncode != 0 and problem in refused.stderr + refused.stdout, refused
    assert cli("settings", "show").stdout == before
    (cli.cwd / "bad.csv").write_text(HEADER + "\nup,2018-01-21T00:00:00Z,ETHBTC,LONG,SPOT,,0.095;0.094,0.085,,,,"
                                              "\nok,2018-01-21T00:00:00Z,ETHBTC,LONG,SPOT,,0.094;0.095,0.085,,,,\n")
    out = cli("signals", "import", str(cli.cwd / "bad.csv")).stdout
    assert out.startswith("accepted 1, rejected 1") and "targets must increase for a LONG" in out
