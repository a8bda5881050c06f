"""A worker killed at any instant and restarted, or two workers at once, end with exactly one
trade per signal and the same outcomes as one clean run (docs/trade-rules.md "idempotent by construction")."""

import csv
import io
import random
import signal
import subprocess
import time
from bisect import bisect_left
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Cli
from fake_exchange import FakeExchange, read_candles
from shared.database import make_engine
from shared.kinds import Market

SYMBOLS = ("ETHBTC", "LTCBTC", "ADABTC")
START = datetime(2018, 1, 20, 6, 0, tzinfo=timezone.utc)


def many_signals(candles_dir: Path, count: int = 120, seed: int = 7) -> str:
    """Signals spread over nine days, levels 0.5–3 % around the price of the minute before."""
    rng = random.Random(seed)
    lines = ["id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note"]
    series = {s: read_candles(Market.SPOT, s, "1m", candles_dir) for s in SYMBOLS}
    for n in range(count):
        symbol = rng.choice(SYMBOLS)
        when = START + timedelta(seconds=rng.randrange(9 * 24 * 3600))
        candles = series[symbol]
        price = candles[max(0, bisect_left([c.open_time for c in candles], when) - 1)].close
        up, down = D(1) + D(rng.randint(5, 30)) / 1000, D(1) - D(rng.randint(5, 30)) / 1000
        side = rng.choice(("LONG", "SHORT"))
        tp, sl = (price * up, price * down) if side == "LONG" else (price * down, price * up)
        lines.append(f"s{n},{when.isoformat()},{symbol},{side},SPOT,,{tp:.8f},{sl:.8f},,,,")
    return "\n".join(lines) + "\n"


def trades_by_signal(cli: Cli) -> dict[str, dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(cli("trades", "export").stdout)))
    by_signal = {row["signal_id"]: {k: v for k, v in row.items() if k != "trade_id"} for row in rows}
    assert len(by_signal) == len(rows), "a signal has two trades"
    return by_signal


def closed_events_per_trade(database_url: str) -> list[int]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        counts = connection.execute(sa.text(
            "SELECT count(*) FROM event WHERE kind IN ('trade.closed', 'trade.cancelled') GROUP BY trade_id")).scalars()
        result = list(counts)
    engine.dispose()
    return result


def with_signals(cli: Cli, signals: str) -> Cli:
    (cli.cwd / "signals.csv").write_text(signals)
    cli("signals", "import", str(cli.cwd / "signals.csv"))
    return cli


@pytest.fixture
def baseline(cli: Cli, tmp_path: Path, candles_path: Path) -> tuple[str, dict[str, dict[str, str]]]:
    signals = many_signals(candles_path)
    with_signals(cli, signals)("worker", "--once")
    trades = trades_by_signal(cli)
    assert len(trades) > 100 and {t["status"] for t in trades.values()} >= {"CLOSED_TP", "CLOSED_SL"}
    return signals, trades


def kill_when(process: subprocess.Popen[str], marker: str | None, delay: float) -> None:
    """SIGKILL the worker `delay` seconds after it prints `marker` (or after start)."""
    if marker is not None:
        assert process.stdout is not None
        for line in process.stdout:
            if marker in line:
                break
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_killed_and_restarted_worker_records_every_trade_once(
    another_cli: Callable[[str], Cli], exchange: FakeExchange, baseline: tuple[str, dict[str, dict[str, str]]]
) -> None:
    signals, expected = baseline
    other = with_signals(another_cli("killed"), signals)
    exchange.latency_seconds = 0.05  # seconds of paging: room to kill it mid-way
    interrupted = 0
    for marker, delay in [("signals:", 0.3), (None, 1.3), (None, 1.6), (None, 2.0)]:
        kill_when(other.popen("worker", "--once"), marker, delay)
        interrupted += trades_by_signal(other) != expected
    assert interrupted >= 2, "the kills came too late to interrupt anything"
    exchange.latency_seconds = 0.0
    other("worker", "--once")
    assert trades_by_signal(other) == expected
    assert all(count == 1 for count in closed_events_per_trade(other.env["SIGNALPROOF_DATABASE_URL"]))


def test_two_workers_at_once_agree_with_one(
    another_cli: Callable[[str], Cli], exchange: FakeExchange, baseline: tuple[str, dict[str, dict[str, str]]]
) -> None:
    signals, expected = baseline
    other = with_signals(another_cli("pair"), signals)
    exchange.latency_seconds = 0.005
    workers = [other.popen("worker", "--once") for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert trades_by_signal(other) == expected
    assert all(count == 1 for count in closed_events_per_trade(other.env["SIGNALPROOF_DATABASE_URL"]))
