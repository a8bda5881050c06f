"""Trades rebuilt from ledger entries alone (shared.projection): the export row, the life
cycle rules, the money of a close recomputed from its terms, and the table comparison."""

from datetime import datetime, timedelta, timezone
from typing import Any

from shared.ledger import GENESIS_PREV, Entry, make_entry
from shared.projection import compare, project
from shared.trades import TRADE_COLUMNS

AT = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
OPENED = {"trade_id": 7, "signal_pk": 3, "source": "bot", "signal_id": "s1", "origin": "live", "symbol": "ETHBTC",
          "market": "SPOT", "side": "LONG", "leverage": 1, "stake_usd": "100", "signal_time": "2024-05-01T12:00:00.000000Z",
          "signal_entry": None, "take_profit": "0.0915", "stop_loss": "0.0890", "fee_rate": "0.001",
          "entry_mode": "market", "slippage_bps": "0", "maintenance_margin_rate": "0.004",
          "pending_expiry_hours": "24", "max_trade_hours": "0", "candle_interval": "1m", "status": "PENDING",
          "actor": "worker", "message": "opened"}
FILLED = {"trade_id": 7, "status": "OPEN", "entry_time": "2024-05-01T12:01:00.000000Z", "entry_price": "0.09",
          "actor": "worker", "message": "filled"}
# 100 × (0.0915 − 0.09)/0.09 − 0.001 × 100 × (1 + 0.0915/0.09)
CLOSED = {"trade_id": 7, "status": "CLOSED_TP", "entry_time": "2024-05-01T12:01:00.000000Z", "entry_price": "0.09",
          "exit_time": "2024-05-01T13:30:00.000000Z", "exit_price": "0.0915",
          "fees_usd": "0.2016666666666666666666666666666667", "pnl_usd": "1.464999999999999999999999999999999",
          "pnl_pct": "0.01464999999999999999999999999999999", "ambiguous": False, "actor": "worker",
          "message": "closed"}


def chain(*entries: tuple[str, dict[str, Any]]) -> list[Entry]:
    out, prev = [make_entry(seq=1, time=AT, kind="ledger.genesis", data={"settings": {}}, prev=GENESIS_PREV)], None
    for kind, data in entries:
        prev = out[-1].hash
        out.append(make_entry(seq=len(out) + 1, time=AT + timedelta(minutes=len(out)), kind=kind, data=data, prev=prev))
    return out


def test_a_trade_is_rebuilt_in_the_export_format() -> None:
    projection = project(chain(("trade.opened", OPENED), ("trade.filled", FILLED), ("trade.closed", CLOSED)))
    assert projection.problems == []
    row = projection.trades[7].row
    assert list(row) == list(TRADE_COLUMNS)
    assert row == {"trade_id": "7", "source": "bot", "signal_id": "s1", "origin": "live", "symbol": "ETHBTC",
                   "market": "SPOT", "side": "LONG", "leverage": "1", "stake_usd": "100", "status": "CLOSED_TP",
                   "reason": "", "signal_time": "2024-05-01T12:00:00Z", "entry_time": "2024-05-01T12:01:00Z",
                   "entry_price": "0.09", "take_profit": "0.0915", "stop_loss": "0.089",
                   "exit_time": "2024-05-01T13:30:00Z", "exit_price": "0.0915",
                   # as `trades export` writes them: 28 significant digits (shared.trades.plain_decimal)
                   "fees_usd": "0.2016666666666666666666666667", "pnl_usd": "1.465", "pnl_pct": "0.01465",
                   "ambiguous": "false", "targets_hit": "1", "funding_usd": "0"}
    assert projection.trades[7].decided_seq == 4


def test_a_close_whose_money_its_terms_do_not_give_is_a_problem() -> None:
    projection = project(chain(("trade.opened", OPENED), ("trade.filled", FILLED),
                               ("trade.closed", {**CLOSED, "pnl_usd": "80"})))
    assert [str(p) for p in projection.problems] == [
        "seq 4: trade 7: pnl_usd 80 is not what its terms and prices give (1.465)"]


def test_life_cycle_out_of_order_is_a_problem() -> None:
    projection = project(chain(("trade.opened", OPENED), ("trade.closed", CLOSED), ("trade.filled", FILLED),
                               ("trade.filled", FILLED), ("trade.opened", OPENED), ("trade.filled", {**FILLED, "trade_id": 9})))
    assert [str(p) for p in projection.problems] == [
        "seq 3: trade.closed: trade 7 closed while PENDING",
        "seq 5: trade.filled: trade 7 filled while OPEN",
        "seq 6: trade.opened: trade 7 opened again (first at seq 2)",
        "seq 7: trade.filled: trade 9 was never opened",
    ]


def test_the_table_is_compared_column_by_column() -> None:
    projection = project(chain(("trade.opened", OPENED), ("trade.filled", FILLED), ("trade.closed", CLOSED)))
    row = dict(projection.trades[7].row)
    assert list(compare(projection, [list(row.values())])) == []
    edited = {**row, "pnl_usd": "5", "stake_usd": "1000"}
    extra = {**row, "trade_id": "8"}
    assert list(compare(projection, [list(edited.values()), list(extra.values())])) == [
        "seq 2: trade 7 stake_usd is '1000' in the trade table, '100' in the ledger",
        "seq 4: trade 7 pnl_usd is '5' in the trade table, '1.465' in the ledger",
        "trade 8: in the trade table but no trade.opened in the ledger",
    ]
    assert list(compare(projection, [])) == ["seq 2: trade 7 is in the ledger but not in the trade table"]
