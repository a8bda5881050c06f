"""The CSV exports (`signalproof trades export`, `signalproof signals export`, and the site's
download, which share one writer): hostile text never reaches a spreadsheet as a formula, and
numbers are never touched."""

import csv
import io
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from conftest import Cli
from fake_exchange import FakeExchange
from shared.database import transaction
from shared.trades import text_cell
from spreadsheet import formula_cells
from tests.worker.test_cli_end_to_end import SAME_CANDLE_ORDER

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"
# Real candles (see tests/worker/test_cli_end_to_end.py): the first closes at its take-profit,
# the second at its stop-loss (a loss: a negative P/L), the third is an unknown symbol.
HOSTILE = HEADER + """\
"=HYPERLINK(""http://evil.example"",""x"")",2018-01-21T00:00:00Z,ADABTC,SHORT,SPOT,,0.0000530,0.0000570,,,"+cmd|' /C calc'!A0","=1+1"
-2+3,2018-01-20T11:08:00Z,ETHBTC,LONG,SPOT,,0.0915,0.08913001,,,@SUM(1),-note
x,2018-01-20T11:08:00Z,=1+2,LONG,SPOT,,2,1,,,,
"""


def export(cli: Cli, what: str) -> str:
    return cli(what, "export").stdout


@pytest.mark.parametrize("value, shown", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(1)", "'@SUM(1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("  =x", "'  =x"), ("\uff1dx", "'\uff1dx"), ("BTCUSDT", "BTCUSDT"), ("a=b", "a=b"), ("", ""), (None, ""),
])
def test_a_text_cell_that_starts_like_a_formula_gets_a_quote(value: str | None, shown: str) -> None:
    assert text_cell(value) == shown


def test_hostile_text_reaches_no_spreadsheet_as_a_formula_and_numbers_stay_numbers(
        cli: Cli, engine: Engine, tmp_path: Path, exchange: FakeExchange) -> None:
    exchange.tape_orders = SAME_CANDLE_ORDER  # the second's candle goes down to its stop first
    (tmp_path / "hostile.csv").write_text(HOSTILE)
    cli("signals", "import", str(tmp_path / "hostile.csv"))
    cli("worker", "--once")
    # A bot writing to the database directly: a reason is text too.
    with transaction(engine) as session:
        session.execute(sa.text("UPDATE signal SET reason = '-1+1' WHERE signal_id = '-2+3'"))
        session.execute(sa.text("UPDATE trade SET reason = '@A1' WHERE signal_id = '-2+3'"))
        # (the import strips spaces, tabs and line breaks around a value; a direct insert does not)
        session.execute(sa.text("UPDATE signal SET signal_id = :id, source = :source WHERE signal_id = 'x'"),
                        {"id": "\tx", "source": "  =spaced"})

    trades_csv, signals_csv = export(cli, "trades"), export(cli, "signals")
    assert formula_cells(trades_csv) == []
    assert formula_cells(signals_csv) == []

    trades = {row["signal_id"]: row for row in csv.DictReader(io.StringIO(trades_csv))}
    assert set(trades) == {"'=HYPERLINK(\"http://evil.example\",\"x\")", "'-2+3"}
    win, loss = trades["'=HYPERLINK(\"http://evil.example\",\"x\")"], trades["'-2+3"]
    assert (win["source"], win["status"], loss["source"], loss["status"], loss["reason"]) == (
        "'+cmd|' /C calc'!A0", "CLOSED_TP", "'@SUM(1)", "CLOSED_SL", "'@A1")
    # Numbers are numbers: the loss's negative P/L is exported as is, not quoted.
    assert D(loss["pnl_usd"]) < 0 and D(loss["pnl_pct"]) < 0 and loss["pnl_usd"].startswith("-")
    assert loss["exit_price"] == "0.08913001" and loss["trade_id"].isdigit() and loss["entry_time"][0].isdigit()

    signals = {row["id"]: row for row in csv.DictReader(io.StringIO(signals_csv))}
    assert signals["'\tx"]["symbol"] == "'=1+2"
    assert signals["'\tx"]["source"] == "'  =spaced"
    assert signals["'\tx"]["status"] == "REJECTED"
    assert signals["'-2+3"]["reason"] == "'-1+1"
