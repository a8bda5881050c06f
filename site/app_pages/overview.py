"""Overview: the headline numbers, what they do and do not say, the equity curve, recent trades."""

from datetime import timedelta
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from shared.clock import utcnow

from track_record import charts, display, loaders, scope

URL = loaders.database_url()
MARK_TO_MARKET_GAP = timedelta(days=14)
TODAY = utcnow().date()
CHOSEN = scope.controls(TODAY)
SINCE, UNTIL = CHOSEN.bounds(TODAY)


# Charts and tables are drawn on a full run only; the fragment below refreshes the cards every
# 30 s and reruns the whole page when the data version moves. An idle visitor is not re-sent
# the same charts every 30 s.
VERSION = loaders.version(URL)


def signal_log_link(status: str, count: int) -> str:
    """A link to the signal log filtered by status, keeping the period shown."""
    query = urlencode({"status": status, **CHOSEN.params()})
    return f"[{count:,} {status.lower()}](signals?{query})"


@st.fragment(run_every="30s")
def cards() -> None:
    version = loaders.version(URL)
    if version != VERSION:
        st.rerun()  # new closes, an owner's change: redraw the whole page with them
    snap = loaders.snapshot(URL, version, CHOSEN.live_only, SINCE, UNTIL)
    positions = loaders.positions(URL, version, CHOSEN.live_only)
    stats = snap.stats
    honest = snap.honest
    display.header(snap.title, snap.description)
    scope.caption(CHOSEN)
    display.freshness(loaders.heartbeat(URL))
    display.paused_banner(snap.settings, snap.settings_changes)

    unrealized = float(positions["unrealized_usd"].fillna(0).sum()) if len(positions) else 0.0
    open_count = int((positions["status"] == "OPEN").sum()) if len(positions) else 0
    with st.container(key="cards"):
        row = st.columns(4)
        row[0].metric("Total P/L", display.usd(stats["total_pnl_usd"], signed=True),
                      f"{display.pct(stats['total_pnl_usd'] / snap.start_equity if snap.start_equity > 0 else None, signed=True)} "
                      f"of {display.usd(snap.start_equity).removesuffix('.00')}", border=True)
        row[1].metric("Win rate", display.pct(stats["win_rate"]),
                      f"{stats['wins']} W / {stats['losses']} L / {stats['breakeven']} B", delta_color="off",
                      delta_arrow="off", border=True)
        row[2].metric("Profit factor", display.number(stats["profit_factor"]),
                      "no losing trade yet" if stats["profit_factor"] is None and stats["closed_trades"] else None,
                      delta_color="off", delta_arrow="off", border=True)
        row[3].metric("Expectancy", display.usd(stats["expectancy_usd"], signed=True), "per closed trade",
                      delta_color="off", delta_arrow="off", border=True)
        row = st.columns(4)
        row[0].metric("Max drawdown", display.usd(-stats["max_drawdown_usd"]) if stats["max_drawdown_usd"] else "$0.00",
                      f"{display.pct(stats['max_drawdown_pct'])} from the peak", delta_color="off", delta_arrow="off",
                      border=True)
        row[1].metric("Open trades", f"{open_count}", f"{display.usd(unrealized, signed=True)} unrealized",
                      delta_color="normal" if unrealized else "off", border=True)
        row[2].metric("Closed trades", f"{stats['closed_trades']:,}",
                      f"{stats['pending_trades']} pending · {stats['cancelled_trades']} cancelled", delta_color="off",
                      delta_arrow="off", border=True)
        counts = snap.signal_counts
        row[3].metric("Signals", f"{counts.get('received', 0):,}",
                      f"{counts.get('accepted', 0):,} traded · {counts.get('rejected', 0) + counts.get('skipped', 0):,} not",
                      delta_color="off", delta_arrow="off", border=True,
                      help="Signals received; rejected = invalid (with a reason), skipped = filtered by a setting. "
                           "Every one is listed, with its reason, on the Signals page.")
        row = st.columns(4)
        row[0].metric("CAGR", display.pct(honest.cagr, signed=True) if honest.cagr is not None else "—",
                      f"over {display.days(honest.days)}" if honest.days else None, delta_color="off",
                      delta_arrow="off", border=True, help=display.CAGR_HELP)
        row[1].metric("Calmar", display.number(honest.calmar), "CAGR ÷ max drawdown", delta_color="off",
                      delta_arrow="off", border=True)
        row[2].metric("Payoff ratio", display.number(honest.payoff_ratio),
                      f"{display.usd(stats['avg_win_usd'], signed=True)} / {display.usd(stats['avg_loss_usd'])} avg",
                      delta_color="off", delta_arrow="off", border=True)
        row[3].metric("Trades per day", display.number(honest.trades_per_day),
                      f"{stats['closed_trades']:,} closed", delta_color="off", delta_arrow="off", border=True,
                      help=f"Best trade {display.usd(stats['best_trade_usd'], signed=True)}, worst "
                           f"{display.usd(stats['worst_trade_usd'], signed=True)} (more on the Analytics page).")
    st.markdown(f"Every signal is in the public signal log: {signal_log_link('REJECTED', counts.get('rejected', 0))} "
                f"and {signal_log_link('SKIPPED', counts.get('skipped', 0))}, each with its reason.")
    if stats["closed_trades"] == 0:
        display.empty(("No closed trades yet." if CHOSEN.is_all else "No closed trades in this period.")
                      + " The equity curve starts with the first closed trade"
                      + (f"; {open_count} trade(s) are open right now." if open_count else "."))
        return
    st.markdown(display.honest_words(honest.win_rate, honest.interval, honest.breakeven_win_rate,
                                     stats["avg_win_usd"], stats["avg_loss_usd"]))
    if honest.days and honest.days < display.SHORT_RECORD_DAYS:
        st.caption(f"CAGR and Calmar annualise {display.days(honest.days)}: over fewer than "
                   f"{display.SHORT_RECORD_DAYS} days they mostly multiply luck.")


def charts_and_tables() -> None:
    """The equity curve with its drawdown, the benchmark, period returns and recent trades."""
    snap = loaders.snapshot(URL, VERSION, CHOSEN.live_only, SINCE, UNTIL)
    if snap.stats["closed_trades"] == 0:
        return
    positions = loaders.positions(URL, VERSION, CHOSEN.live_only)
    unrealized = float(positions["unrealized_usd"].fillna(0).sum()) if len(positions) else 0.0
    st.subheader("Equity", anchor=False)
    mark = None
    now = utcnow()
    # The mark-to-market end point only where it reads as the curve's continuation: after a
    # long quiet spell (or a backfilled history) it would squash the whole curve into a corner.
    if len(positions) and UNTIL is None and now - snap.curve["time"].iloc[-1] < MARK_TO_MARKET_GAP:
        mark = (now, snap.last_equity + unrealized)
    end = mark[0] if mark else snap.curve["time"].iloc[-1]
    changes = snap.settings_changes
    changes = changes[(pd.to_datetime(changes["time"], utc=True) >= snap.curve["time"].iloc[0])
                      & (pd.to_datetime(changes["time"], utc=True) <= end)] if len(changes) else changes
    events = changes[["time", "label"]] if len(changes) else None
    st.altair_chart(charts.curve_chart(snap.curve, mark_to_market=mark, live_start=snap.live_start, events=events),
                    width="stretch")
    st.caption("Hover the curve for a point's date, equity and trade. Dashed amber lines mark settings changes "
               "and pauses (hover them for the change)."
               + (" One point per exit would be too many to draw: per UTC day the curve shows the day's highest "
                  "and lowest realized equity and its close. The cards above count every trade."
                  if snap.daily_curve else ""))

    st.subheader("Against buying BTC", anchor=False)
    st.markdown(display.benchmark_words(snap.honest, snap.stats["total_pnl_usd"], snap.start_equity))
    if snap.benchmark is not None and len(snap.benchmark) >= 2:
        st.altair_chart(charts.return_chart(snap.record_return, snap.benchmark), width="stretch")

    st.subheader("P/L per day", anchor=False)
    st.altair_chart(charts.daily_pnl_chart(snap.daily_pnl), width="stretch")

    st.subheader("Returns", anchor=False)
    with st.container(key="returns"):
        cols = st.columns(len(snap.period_pnl))
        for col, (name, pnl) in zip(cols, snap.period_pnl.items()):
            col.metric(name, display.usd(pnl, signed=True), display.pct(pnl / snap.starting_balance, signed=True),
                       delta_color="normal" if pnl else "off", delta_arrow="auto" if pnl else "off", border=True)
    st.caption(f"Realized P/L of the trades that closed in the last 7 and 30 days and ever, as a share of the "
               f"starting balance (\\${snap.starting_balance:,.0f}).")

    st.subheader("Recent closed trades", anchor=False)
    recent = snap.recent[["trade_id", "symbol", "side", "status", "pnl_usd", "pnl_pct"]
                         + (["targets_hit"] if snap.split_trades else [])
                         + ["origin", "entry_time", "exit_time", "ambiguous"]]
    display.table(recent)


cards()
charts_and_tables()
