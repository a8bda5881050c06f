"""Trades: open positions at the latest price, and the full history with filters and CSV."""

from datetime import datetime, time, timezone

import pandas as pd
import streamlit as st

from shared.models import Market, Side, TradeStatus
from track_record import display, loaders
from track_record.record import HISTORY_ORDER, HistoryFilter

URL = loaders.database_url()
PAGE_SIZE = 100
HISTORY_COLUMNS = ["id", "ledger_seq", "symbol", "side", "market", "leverage", "status", "reason", "origin", "signal_time",
                   "entry_time", "entry_price", "take_profit", "stop_loss", "exit_time", "exit_price", "fees_usd",
                   "pnl_usd", "pnl_pct", "ambiguous", "source", "signal_id"]

st.title("Trades", anchor=False)


@st.fragment(run_every="30s")
def open_positions() -> None:
    """Refreshes on its own: prices move while the visitor reads."""
    display.freshness(loaders.heartbeat(URL))
    st.subheader("Open positions", anchor=False)
    positions = loaders.positions(URL, loaders.version(URL), False)
    if positions.empty:
        display.empty("No open or pending trades right now.")
        return
    columns = ["trade_id", "symbol", "side", "market", "leverage", "status", "origin", "entry_time", "entry_price",
               "limit_price", "price", "take_profit", "to_tp_pct", "stop_loss", "to_sl_pct", "unrealized_usd", "age_hours"]
    if positions["limit_price"].isna().all():
        columns.remove("limit_price")  # only pending limit orders have one
    st.dataframe(positions[columns],
                 hide_index=True, width="stretch", column_config=display.trade_columns(positions[columns].columns))
    st.caption("Unrealized P/L is marked to the latest price the worker stored, fees on both sides included.")



open_positions()
version = loaders.version(URL)
st.subheader("History", anchor=False)
with st.container(border=True):
    first, second = st.columns(2)
    chosen_symbols = first.multiselect("Symbol", loaders.symbols(URL, version))
    chosen_sides = second.multiselect("Side", [s.value for s in Side])
    chosen_markets = first.multiselect("Market", [m.value for m in Market])
    chosen_statuses = second.multiselect("Status", [s.value for s in TradeStatus])
    period = first.date_input("Signal date (UTC)", value=(), help="From – to, inclusive")
    live_only = second.toggle("Live signals only", help="Hide signals imported after the fact (backfill)")
    order = second.selectbox("Order", list(HISTORY_ORDER))

since = until = None
if isinstance(period, tuple) and len(period) == 2:
    since = datetime.combine(period[0], time(0), timezone.utc)
    until = datetime.combine(period[1], time(0), timezone.utc) + pd.Timedelta(days=1)
flt = HistoryFilter(symbols=tuple(chosen_symbols), sides=tuple(chosen_sides), markets=tuple(chosen_markets),
                    statuses=tuple(chosen_statuses), since=since, until=until, live_only=live_only)
_, total = loaders.history(URL, version, flt, order, 0, 1)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1) if pages > 1 else 1
rows, total = loaders.history(URL, version, flt, order, int(page) - 1, PAGE_SIZE)
if not rows:
    display.empty("No trade matches these filters." if total == 0 and any(
        (flt.symbols, flt.sides, flt.markets, flt.statuses, flt.since, flt.live_only)) else "No trades yet.")
else:
    frame = pd.DataFrame(rows)[HISTORY_COLUMNS]
    frame["reason"] = frame["reason"].fillna("")  # an empty cell, not the word "None"
    for column in ("entry_price", "take_profit", "stop_loss", "exit_price", "fees_usd", "pnl_usd", "pnl_pct"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    st.caption(f"{total:,} trade(s); showing {len(frame)} — sort any column by clicking its header.")
    st.dataframe(frame, hide_index=True, width="stretch", column_config=display.trade_columns(frame.columns))
    # Streamed by the server as the browser reads it (track_record/api.py): no file is built here.
    st.link_button(f"Download {total:,} trade(s) as CSV", loaders.history_csv_url(flt), icon=":material/download:")
