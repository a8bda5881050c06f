"""Analytics: where the results come from — symbols, sides, exit reasons, months, distributions."""

import pandas as pd
import streamlit as st

from shared.clock import utcnow
from shared.metrics import MIN_TRADES_FOR_RATIOS
from track_record import charts, display, loaders, scope

URL = loaders.database_url()
RATIO_MINIMUM = MIN_TRADES_FOR_RATIOS

today = utcnow().date()
chosen = scope.controls(today)
since, until = chosen.bounds(today)
snap = loaders.snapshot(URL, loaders.version(URL), chosen.live_only, since, until)
stats = snap.stats
honest = snap.honest
st.title("Analytics", anchor=False)
scope.caption(chosen)

if stats["closed_trades"] == 0:
    display.empty("Analytics appear once trades have closed." if chosen.is_all else
                  "Analytics appear once trades have closed: none closed in this period.")
    st.stop()

st.subheader("What the numbers say", anchor=False)
st.markdown(display.honest_words(honest.win_rate, honest.interval, honest.breakeven_win_rate,
                                 stats["avg_win_usd"], stats["avg_loss_usd"]))
with st.container(key="cards"):
    row = st.columns(4)
    row[0].metric("Break-even win rate", display.pct(honest.breakeven_win_rate), "what this payoff needs",
                  delta_color="off", delta_arrow="off", border=True)
    row[1].metric("Payoff ratio", display.number(honest.payoff_ratio), "avg win ÷ |avg loss|", delta_color="off",
                  delta_arrow="off", border=True)
    row[2].metric("CAGR", display.pct(honest.cagr, signed=True) if honest.cagr is not None else "—",
                  f"over {display.days(honest.days)}" if honest.days else None, delta_color="off", delta_arrow="off",
                  border=True, help=display.CAGR_HELP)
    row[3].metric("Calmar", display.number(honest.calmar), "CAGR ÷ max drawdown", delta_color="off",
                  delta_arrow="off", border=True)
    row = st.columns(4)
    row[0].metric("Average win", display.usd(stats["avg_win_usd"], signed=True), border=True)
    row[1].metric("Average loss", display.usd(stats["avg_loss_usd"], signed=True), border=True)
    row[2].metric("Best trade", display.usd(stats["best_trade_usd"], signed=True), border=True)
    row[3].metric("Worst trade", display.usd(stats["worst_trade_usd"], signed=True), border=True)
    row = st.columns(4)
    win_streak, loss_streak = snap.streaks
    row[0].metric("Longest winning streak", f"{win_streak} trade{'' if win_streak == 1 else 's'}", border=True)
    row[1].metric("Longest losing streak", f"{loss_streak} trade{'' if loss_streak == 1 else 's'}", border=True)
    enough = stats["closed_trades"] >= RATIO_MINIMUM
    row[2].metric("Sharpe (daily, annualised)", display.number(stats["sharpe"]) if enough else "—", border=True,
                  help="mean / standard deviation of daily returns × √365")
    row[3].metric("Sortino (daily, annualised)", display.number(stats["sortino"]) if enough else "—", border=True,
                  help="mean / downside deviation of daily returns × √365")
st.caption("Sharpe and Sortino use one return per UTC day (the day's realized P/L ÷ the equity at the end of the "
           "day before, 0 on days without exits), annualised with √365 and a risk-free rate of 0. "
           f"Trades per day: {display.number(honest.trades_per_day)}.")
if not enough:
    st.caption(f"Sharpe and Sortino are shown from {RATIO_MINIMUM} closed trades on "
               f"({stats['closed_trades']} so far): below that they say more about luck than about the signals.")
same = loaders.same_candle_counts(URL, loaders.version(URL))
st.caption(f"Same-candle cases (a candle reaching both the stop-loss and a take-profit), all time: "
           f"{same['trades']:,} settled by the exchange's own trades inside the candle (the first trade at or beyond "
           f"a level decides), {same['assumed']:,} with the stop-loss assumed because those trades could not be had "
           "(the pessimistic outcome, flagged ambiguous).")



def breakdown(title: str, frame: pd.DataFrame, category: str, chart_title: str) -> None:
    st.subheader(title, anchor=False)
    left, right = st.columns([3, 2])
    shown = frame.assign(win_rate=frame["win_rate"] * 100)
    if category == "side":
        shown["side"] = [display.SIDE_WORDS.get(str(v), str(v)) for v in shown["side"]]
    left.dataframe(display.styled(shown), hide_index=True, width="stretch", placeholder=display.PLACEHOLDER,
                   column_config={
        category: category.capitalize(), "trades": "Trades", "wins": "Wins", "losses": "Losses",
        "win_rate": st.column_config.NumberColumn("Win rate", format="%.1f%%"),
        "pnl_usd": st.column_config.NumberColumn("P/L", format="dollar"),
        "profit_factor": st.column_config.NumberColumn("Profit factor", format="%.2f"),
        "expectancy_usd": st.column_config.NumberColumn("Expectancy", format="dollar"),
    })
    right.altair_chart(charts.bar_by(shown, category=category, value="pnl_usd", title=chart_title), width="stretch")


breakdown("Per symbol", snap.per_symbol, "symbol", "P/L by symbol")
breakdown("Long vs short", snap.by_side, "side", "P/L by side")

st.subheader("How trades ended", anchor=False)
ended = snap.exit_reasons[~snap.exit_reasons["status"].isin(["OPEN", "PENDING"])]
if ended.empty:
    display.empty("No trade has ended yet.")
else:
    reasons = ended.assign(reason=[display.status_word(s) for s in ended["status"]])
    st.altair_chart(charts.bar_by(reasons, category="reason", value="trades", title="Trades by outcome",
                                  value_format=",d", colours=charts.OUTCOME_BAR_COLOURS), width="stretch")

hits = snap.target_hits
if hits is not None and len(hits) > 1:  # only when some trade of the period was split over several targets
    st.subheader("Targets reached", anchor=False)
    st.markdown("How often each target was reached, of the closed trades whose position was split over at least "
                "that many targets. **This is not the win rate**: a trade can reach its first target and still "
                "lose overall, when the stop closes the rest of the position.")
    shown = hits.assign(target=[f"Target {k}" for k in hits["target"]], rate=hits["rate"] * 100)
    st.dataframe(shown[["target", "trades", "reached", "rate", "reached_lost"]], hide_index=True, width="stretch",
                 placeholder=display.PLACEHOLDER, column_config={
        "target": st.column_config.TextColumn("Target"),
        "trades": st.column_config.NumberColumn("Trades with it", format="%d",
                                                help="closed trades with at least this many targets"),
        "reached": st.column_config.NumberColumn("Reached", format="%d"),
        "rate": st.column_config.NumberColumn("Hit rate", format="%.1f%%"),
        "reached_lost": st.column_config.NumberColumn(
            "Reached, still lost", format="%d", help="trades that reached this target and still lost money overall"),
    })
    first = hits.iloc[0]
    st.caption(f"Target 1 was reached by {display.pct(first['rate'])} of {int(first['trades']):,} trades; the win "
               f"rate of the period is {display.pct(honest.win_rate)}. Targets count in each trade's own order "
               "(with the split *single*, its one target is target 1). Rules: Methodology, *Several targets*.")

st.subheader("Monthly returns", anchor=False)
st.altair_chart(charts.monthly_heatmap(snap.monthly), width="stretch")
st.caption("Colour and text: the month's return = its P/L ÷ the equity at the end of the month before "
           f"(\\${snap.start_equity:,.2f} at the start of this period); hover a month for its P/L in \\$.")

st.subheader("P/L per day", anchor=False)
st.altair_chart(charts.daily_pnl_chart(snap.daily_pnl), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("P/L per trade", anchor=False)
    st.altair_chart(charts.pnl_histogram(snap.pnl_bins), width="stretch")
with right:
    st.subheader("Time in trade", anchor=False)
    st.altair_chart(charts.duration_histogram(snap.duration_bins), width="stretch")
st.caption("Every closed trade is counted, in fine bins (10 cents of P/L; 20 per power of ten of hours) "
           "regrouped into the bars above."
           + (" **These two charts are of the whole record (all time)**, whatever the period chosen: their bins "
              "are kept for all trades, not per day." if snap.distributions_all_time else ""))
