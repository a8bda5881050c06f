"""Overview: the headline numbers, the equity curve and its drawdown, recent trades."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from shared.clock import utcnow

from track_record import charts, display, loaders

URL = loaders.database_url()
MARK_TO_MARKET_GAP = timedelta(days=14)
live_only = st.sidebar.toggle("Live signals only", help="Hide trades of signals that were imported after the fact (backfill).")


# Charts and tables are drawn on a full run only; the fragment below refreshes the cards every
# 30 s and reruns the whole page when the data version moves. An idle visitor is not re-sent
# the same charts every 30 s.
VERSION = loaders.version(URL)


@st.fragment(run_every="30s")
def cards() -> None:
    version = loaders.version(URL)
    if version != VERSION:
        st.rerun()  # new closes, an owner's change: redraw the whole page with them
    snap = loaders.snapshot(URL, version, live_only)
    positions = loaders.positions(URL, version, live_only)
    stats = snap.stats
    display.header(snap.title, snap.description)
    display.freshness(loaders.heartbeat(URL))
    display.paused_banner(snap.settings, snap.settings_changes)

    unrealized = float(positions["unrealized_usd"].fillna(0).sum()) if len(positions) else 0.0
    open_count = int((positions["status"] == "OPEN").sum()) if len(positions) else 0
    row = st.columns(4)
    row[0].metric("Total P/L", display.usd(stats["total_pnl_usd"], signed=True),
                  f"{display.pct(stats['total_pnl_usd'] / snap.starting_balance, signed=True)} of ${snap.starting_balance:,.0f}",
                  border=True)
    row[1].metric("Win rate", display.pct(stats["win_rate"]),
                  f"{stats['wins']} W / {stats['losses']} L / {stats['breakeven']} B", delta_color="off", delta_arrow="off", border=True)
    row[2].metric("Profit factor", display.number(stats["profit_factor"]),
                  "no losing trade yet" if stats["profit_factor"] is None and stats["closed_trades"] else None,
                  delta_color="off", delta_arrow="off", border=True)
    row[3].metric("Expectancy", display.usd(stats["expectancy_usd"], signed=True), "per closed trade",
                  delta_color="off", delta_arrow="off", border=True)
    row = st.columns(4)
    row[0].metric("Max drawdown", display.usd(-stats["max_drawdown_usd"]) if stats["max_drawdown_usd"] else "$0.00",
                  f"{display.pct(stats['max_drawdown_pct'])} from the peak", delta_color="off", delta_arrow="off", border=True)
    row[1].metric("Open trades", f"{open_count}", f"{display.usd(unrealized, signed=True)} unrealized",
                  delta_color="normal" if unrealized else "off", border=True)
    row[2].metric("Closed trades", f"{stats['closed_trades']:,}",
                  f"{stats['pending_trades']} pending · {stats['cancelled_trades']} cancelled", delta_color="off",
                  delta_arrow="off", border=True)
    counts = snap.signal_counts
    row[3].metric("Signals: traded / rejected / skipped", f"{counts.get('received', 0):,}",
                  f"{counts.get('accepted', 0):,} / {counts.get('rejected', 0):,} / {counts.get('skipped', 0):,}",
                  delta_color="off", delta_arrow="off", border=True,
                  help="Signals received; rejected = invalid (with a reason), skipped = filtered by a setting. "
                       "Every one is listed, with its reason, in the signal export.")
    if stats["closed_trades"] == 0:
        display.empty("No closed trades yet. The equity curve starts with the first closed trade"
                      + (f"; {open_count} trade(s) are open right now." if open_count else "."))


def charts_and_tables() -> None:
    """The equity curve with its drawdown, period returns and recent trades (full runs only)."""
    snap = loaders.snapshot(URL, VERSION, live_only)
    if snap.stats["closed_trades"] == 0:
        return
    positions = loaders.positions(URL, VERSION, live_only)
    unrealized = float(positions["unrealized_usd"].fillna(0).sum()) if len(positions) else 0.0
    st.subheader("Equity", anchor=False)
    mark = None
    now = utcnow()
    # The mark-to-market end point only where it reads as the curve's continuation: after a
    # long quiet spell (or a backfilled history) it would squash the whole curve into a corner.
    if len(positions) and now - snap.curve["time"].iloc[-1] < MARK_TO_MARKET_GAP:
        mark = (now, snap.last_equity + unrealized)
    end = mark[0] if mark else snap.curve["time"].iloc[-1]
    changes = snap.settings_changes
    changes = changes[(pd.to_datetime(changes["time"], utc=True) >= snap.curve["time"].iloc[0])
                      & (pd.to_datetime(changes["time"], utc=True) <= end)] if len(changes) else changes
    events = changes[["time", "label"]] if len(changes) else None
    st.altair_chart(charts.curve_chart(snap.curve, mark_to_market=mark, live_start=snap.live_start, events=events),
                    width="stretch")
    if snap.daily_curve:
        st.caption("One point per exit would be too many to draw: per UTC day the curve shows the day's highest "
                   "and lowest realized equity and its close. The cards above count every trade.")

    st.subheader("Returns", anchor=False)
    cols = st.columns(len(snap.period_pnl))
    for col, (name, pnl) in zip(cols, snap.period_pnl.items()):
        col.metric(name, display.usd(pnl, signed=True), display.pct(pnl / snap.starting_balance, signed=True),
                   delta_color="normal" if pnl else "off", delta_arrow="auto" if pnl else "off", border=True)

    st.subheader("Recent closed trades", anchor=False)
    recent = snap.recent[["trade_id", "symbol", "side", "status", "origin", "entry_time", "exit_time", "pnl_usd",
                          "pnl_pct", "ambiguous"]]
    st.dataframe(recent, hide_index=True, width="stretch", column_config=display.trade_columns(recent.columns))


cards()
charts_and_tables()
