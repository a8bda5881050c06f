"""The Verify page and the Trades page's "Ledger #" column, run headless (AppTest) on a
database the real CLI filled: live and backfilled signals through `signals import`, trades
through `worker --once` against the fake exchange."""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from conftest import Cli
from tests.worker.test_robustness import many_signals
from track_record import self_check

App = Callable[..., AppTest]


def fill(cli: Cli, candles_path: Path, tmp_path: Path) -> None:
    backfill = tmp_path / "backfill.csv"
    backfill.write_text(many_signals(candles_path, 12, seed=3))
    cli("signals", "import", str(backfill))
    cli("worker", "--once")
    # live: signals a few seconds old when they arrive (their trades wait for candles: none yet)
    at = (datetime.now(timezone.utc) - timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    live = tmp_path / "live.csv"
    live.write_text("id,time,symbol,side,market,take_profit,stop_loss\n"
                    f"live-1,{at},BTCUSDT,LONG,SPOT,200000,1000\nlive-2,{at},ETHUSDT,SHORT,SPOT,10,100000\n")
    cli("signals", "import", str(live))


def test_the_verify_page_shows_the_head_the_receipt_delays_and_how_to_verify(
        cli: Cli, engine: Engine, candles_path: Path, tmp_path: Path, app: App) -> None:
    fill(cli, candles_path, tmp_path)
    with engine.connect() as connection:
        seq, hash_ = connection.execute(sa.text("SELECT id, hash FROM event ORDER BY id DESC LIMIT 1")).one()
    self_check._checks.clear()
    at = app("verify")
    assert not at.exception
    assert at.title[0].value == "Verify"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Head (seq)"] == f"{seq:,}" and metrics["Verified through (seq)"] == f"{seq:,}"
    codes = [c.value for c in at.code]
    assert hash_ in codes
    assert any(f"signalproof verify https://<this site> --head {seq}:{hash_}" in c for c in codes)
    assert any("pip install signalproof" in c for c in codes)
    assert [s.value for s in at.success] and "verified every entry" in at.success[0].value
    assert any(h.value == "Checkpoints" for h in at.subheader)
    # `worker --once` ends with a checkpoint of the head it left (no signing key here: unsigned)
    (points,) = [d.value for d in at.dataframe if "signature" in d.value.columns]
    assert list(points["signature"]) == ["unsigned"] and int(points["seq"].iloc[0]) <= seq

    delays = at.dataframe[0].value.set_index("origin")
    assert delays.loc["live", "signals"] == 2 and delays.loc["backfill", "signals"] == 12
    live_median = delays.loc["live", "median"]
    assert live_median.endswith(" s") and float(live_median.removesuffix(" s")) < 60, live_median
    assert delays.loc["backfill", "median"].endswith("days")


def test_the_verify_page_names_a_broken_chain(cli: Cli, engine: Engine, candles_path: Path, tmp_path: Path,
                                              app: App) -> None:
    fill(cli, candles_path, tmp_path)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE event SET kind = 'trade.forged' WHERE id = 5"))
    self_check._checks.clear()
    at = app("verify")
    assert not at.exception
    assert any("fails at seq 5" in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}["Verified through (seq)"] == "4"


def test_each_trade_shows_the_seq_of_its_signal_received(cli: Cli, engine: Engine, candles_path: Path,
                                                        tmp_path: Path, app: App) -> None:
    fill(cli, candles_path, tmp_path)
    at = app("trades")
    assert not at.exception
    history = next(frame.value for frame in at.dataframe if "ledger_seq" in frame.value.columns)
    with engine.connect() as connection:
        expected = dict(connection.execute(sa.text(
            "SELECT trade.id, signal.received_seq FROM trade JOIN signal ON signal.id = trade.signal_pk")).all())
        kinds = dict(connection.execute(sa.text("SELECT id, kind FROM event")).all())
    assert len(history) == len(expected) > 0
    ids = [int(str(link).removeprefix("trade?trade=")) for link in history["id"]]  # links to the trade page
    assert dict(zip(ids, history["ledger_seq"])) == expected
    assert all(kinds[seq] == "signal.received" for seq in history["ledger_seq"])
    assert pd.api.types.is_integer_dtype(history["ledger_seq"])
