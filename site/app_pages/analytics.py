"""Analytics: where the results come from — symbols, sides, exit reasons, months, distributions."""

import pandas as pd
import streamlit as st

from shared.metrics import MIN_TRADES_FOR_RATIOS
from track_record import charts, display, loaders

URL = loaders.database_url()
RATIO_MINIMUM = MIN_TRADES_FOR_RATIOS
REASON_NAMES = {"CLOSED_TP": "take-profit", "CLOSED_SL": "stop-loss", "CLOSED_EXPIRED": "expired",
                "LIQUIDATED": "liquidated", "CLOSED_MANUAL": "closed by the owner", "CANCELLED": "cancelled",
                "OPEN": "still open", "PENDING": "pending"}

live_only = st.sidebar.toggle("Live signals only", help="Hide trades of signals that were imported after the fact (backfill).")
snap = loaders.snapshot(URL, loaders.version(URL), live_only)
stats = snap.stats
st.title("Analytics", anchor=False)

if stats["closed_trades"] == 0:
    display.empty("Analytics appear once trades have closed.")
    st.stop()

row = st.columns(4)
win_streak, loss_streak = snap.streaks
row[0].metric("Longest winning streak", f"{win_streak} trade{'' if win_streak == 1 else 's'}", border=True)
row[1].metric("Longest losing streak", f"{loss_streak} trade{'' if loss_streak == 1 else 's'}", border=True)
enough = stats["closed_trades"] >= RATIO_MINIMUM
row[2].metric("Sharpe (daily, annualised)", display.number(stats["sharpe"]) if enough else "—", border=True,
              help="mean / standard deviation of daily returns × √365")
row[3].metric("Sortino (daily, annualised)", display.number(stats["sortino"]) if enough else "—", border=True,
              help="mean / downside deviation of daily returns × √365")
if not enough:
    st.caption(f"Sharpe and Sortino are shown from {RATIO_MINIMUM} closed trades on "
               f"({stats['closed_trades']} so far): below that they say more about luck than about the signals.")
st.caption(f"{stats['ambiguous_trades']} trade(s) hit the stop-loss and the take-profit inside the same candle; the "
           "order inside a candle is unknown, so the stop-loss was recorded (the pessimistic outcome).")



def breakdown(title: str, frame: pd.DataFrame, category: str, chart_title: str) -> None:
    st.subheader(title, anchor=False)
    left, right = st.columns([3, 2])
    left.dataframe(frame, hide_index=True, width="stretch", column_config={
        "win_rate": st.column_config.NumberColumn("Win rate", format="percent"),
        "pnl_usd": st.column_config.NumberColumn("P/L $", format="%.2f"),
        "profit_factor": st.column_config.NumberColumn("Profit factor", format="%.2f"),
        "expectancy_usd": st.column_config.NumberColumn("Expectancy $", format="%.2f"),
    })
    right.altair_chart(charts.bar_by(frame, category=category, value="pnl_usd", title=chart_title), width="stretch")


breakdown("Per symbol", snap.per_symbol, "symbol", "P/L by symbol")
breakdown("Long vs short", snap.by_side, "side", "P/L by side")

st.subheader("How trades ended", anchor=False)
ended = snap.exit_reasons[~snap.exit_reasons["status"].isin(["OPEN", "PENDING"])]
if ended.empty:
    display.empty("No trade has ended yet.")
else:
    reasons = ended.assign(reason=lambda f: f["status"].map(REASON_NAMES).fillna(f["status"]))
    st.altair_chart(charts.bar_by(reasons, category="reason", value="trades", title="Trades by outcome",
                                  value_format=",d", colour_by_sign=False), width="stretch")

st.subheader("Monthly returns", anchor=False)
st.altair_chart(charts.monthly_heatmap(snap.monthly), width="stretch")
st.caption("Return = the month's P/L ÷ equity at the end of the month before (starting balance "
           f"\\${snap.starting_balance:,.0f}).")

left, right = st.columns(2)
with left:
    st.subheader("P/L per trade", anchor=False)
    st.altair_chart(charts.pnl_histogram(snap.pnl_bins), width="stretch")
with right:
    st.subheader("Time in trade", anchor=False)
    st.altair_chart(charts.duration_histogram(snap.duration_bins), width="stretch")
st.caption("Every closed trade is counted, in fine bins (10 cents of P/L; 20 per power of ten of hours) "
           "regrouped into the bars above.")
