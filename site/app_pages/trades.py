"""Trades: open positions at the latest price, and the full history with filters and CSV."""

import pandas as pd
import streamlit as st

from shared.clock import utcnow
from shared.models import Market, Side, TradeStatus
from track_record import display, loaders, record, scope
from track_record.record import HISTORY_ORDER, HistoryFilter

URL = loaders.database_url()
PAGE_SIZE = 100
# The columns a trader reads first lead (display.readable puts trade, symbol, side, outcome, P/L first).
HISTORY_COLUMNS = ["id", "symbol", "side", "status", "pnl_usd", "pnl_pct", "targets_hit", "reason", "market", "leverage", "origin",
                   "signal_time", "entry_time", "entry_price", "take_profit", "stop_loss", "exit_time", "exit_price",
                   "fees_usd", "ambiguous", "ledger_seq", "source", "signal_id"]

today = utcnow().date()
chosen = scope.controls(today)
st.title("Trades", anchor=False)
scope.caption(chosen)


@st.fragment(run_every="30s")
def open_positions() -> None:
    """Refreshes on its own: prices move while the visitor reads."""
    display.freshness(loaders.heartbeat(URL))
    st.subheader("Open positions", anchor=False)
    positions = loaders.positions(URL, loaders.version(URL), chosen.live_only)
    if positions.empty:
        display.empty("No open or pending trades right now.")
        return
    columns = ["trade_id", "symbol", "side", "status", "unrealized_usd", "price", "entry_price", "limit_price",
               "take_profit", "to_tp_pct", "stop_loss", "to_sl_pct", "market", "leverage", "origin", "entry_time",
               "age_hours"]
    if positions["limit_price"].isna().all():
        columns.remove("limit_price")  # only pending limit orders have one
    if loaders.split_trades(URL, loaders.version(URL)):
        columns.insert(columns.index("take_profit"), "targets_hit")  # "1/3": targets reached / parts
    display.table(positions[columns])
    st.caption("Unrealized P/L is marked to the latest price the worker stored, fees on both sides included.")



open_positions()
version = loaders.version(URL)
st.subheader("History", anchor=False)
with st.expander("Filters", icon=":material/filter_list:"):
    first, second = st.columns(2)
    chosen_symbols = first.multiselect("Symbol", loaders.symbols(URL, version))
    chosen_sides = second.multiselect("Side", [s.value for s in Side])
    chosen_markets = first.multiselect("Market", [m.value for m in Market])
    chosen_statuses = second.multiselect("Outcome", [s.value for s in TradeStatus], format_func=display.status_word)
    order = first.selectbox("Order (all matching trades)", list(HISTORY_ORDER))

# The period (sidebar) selects trades by their signal's UTC day here: a trade belongs to the day its
# signal came, whether or not it has closed.
since, until = chosen.bounds(today)
flt = HistoryFilter(symbols=tuple(chosen_symbols), sides=tuple(chosen_sides), markets=tuple(chosen_markets),
                    statuses=tuple(chosen_statuses), since=since, until=until, live_only=chosen.live_only)
_, total = loaders.history(URL, version, flt, order, 0, 1)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1) if pages > 1 else 1
rows, total = loaders.history(URL, version, flt, order, int(page) - 1, PAGE_SIZE)
if not rows:
    display.empty("No trade matches these filters." if total == 0 and any(
        (flt.symbols, flt.sides, flt.markets, flt.statuses, flt.since, flt.live_only)) else "No trades yet.")
else:
    frame = pd.DataFrame(rows)
    frame["targets_hit"] = [record.targets_label(hit, split, shares, status) for hit, split, shares, status
                            in zip(frame["targets_hit"], frame["tp_split"], frame["shares"], frame["status"])]
    # "2/3" only for a record that ever split a position: with one target per trade it says nothing.
    frame = frame[[c for c in HISTORY_COLUMNS if c != "targets_hit" or loaders.split_trades(URL, version)]]
    frame["reason"] = frame["reason"].fillna("")  # an empty cell, not the word "None"
    for column in ("entry_price", "take_profit", "stop_loss", "exit_price", "fees_usd", "pnl_usd", "pnl_pct"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    st.caption(f"{total:,} trade(s) with signals in this period; showing {len(frame)}, "
               f"{order} (choose the order under Filters: it applies to all {total:,}).")
    # Column headers select rather than sort: sorting one page of a paged table would mislead.
    display.table(frame, on_select="rerun", selection_mode="single-column", key="history")
    # Streamed by the server as the browser reads it (track_record/api.py): no file is built here.
    st.link_button(f"Download {total:,} trade(s) as CSV", loaders.history_csv_url(flt), icon=":material/download:")
