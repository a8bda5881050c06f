"""Methodology: the rules every trade follows, the settings in force, and every change to them."""

from urllib.parse import urlsplit

import streamlit as st

from track_record import display, loaders

URL = loaders.database_url()
snap = loaders.snapshot(URL, loaders.version(URL), False)
settings = {key: display.plain(value) for key, value in snap.settings.items()}  # into Markdown: escaped
config = loaders.config()


def origin(url: str) -> str:
    """Scheme, host and port only: an API URL may carry a user, a password or a key."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(not shown)"
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname  # IPv6
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "(not shown)"


source = "a simulated exchange's klines (this is the offline demo)" if config.demo else "Binance's own klines"

st.title("Methodology", anchor=False)
st.markdown(f"""
Every signal the bot publishes becomes one **paper trade** with a fixed stake
(**\\${settings['stake_usd']}** of margin now). Nothing is traded for real, and nothing is
chosen after the fact: the rules below are applied by the worker to every signal, and the
settings a trade was opened with stay with it.

**Candles.** Trades are decided on {source} ({settings['candle_interval']} now) —
spot from `{origin(config.spot_api_url)}`, USDS-M futures from `{origin(config.futures_api_url)}`. Only
**closed** candles decide. A missing candle (an exchange gap) is simply absent; the next one
decides. The **start candle** is the first candle opening at or after the signal's time.

**Entry** (mode now: **{settings['entry_mode']}**).
- *market*: at the start candle's open, worsened by the slippage ({settings['slippage_bps']} bps
  now). If that price is already at or beyond the stop-loss or the take-profit, the trade is
  cancelled.
- *signal*: at the signal's own entry price, at the signal's time.
- *limit*: waits at the signal's entry price; it fills in the first candle that trades through
  it (at the open if the candle opens beyond it), and is cancelled if not filled within
  {settings['pending_expiry_hours']} hours. In the fill candle only the stop-loss can close it.

**Exit**, checked candle by candle in this order:
1. *Expiry*: with a maximum trade time ({settings['max_trade_hours']} h now; 0 = none), the first
   candle opening after it closes the trade at its open (with slippage).
2. *Stop-loss or liquidation*: with leverage, the liquidation price
   entry × (1 ∓ 1/leverage ± {settings['maintenance_margin_rate']}) counts if it is nearer than the
   stop-loss. A candle that opens through the level fills at its open. Liquidation loses the
   whole stake plus the entry fee.
3. *Take-profit*: at exactly the take-profit price (target {settings['take_profit_target']} of a
   multi-target signal, or its last).
4. **If one candle reaches both the stop-loss and a take-profit, the exchange's own trades inside
   that candle decide**: the first trade at or beyond either level wins (a take-profit at exactly
   its price; the stop as in 2). Only when those trades cannot be had is the stop-loss recorded,
   the pessimistic outcome, and the trade marked "same-candle"
   ({snap.stats['ambiguous_trades']} so far).

**Funding.** Futures trades pay or receive funding every 8 hours
(`futures_funding` = {settings.get('futures_funding', 'true')}): for each funding event after the
entry and up to the exit, −side × (open notional ÷ entry) × mark price × funding rate, from the
exchange's funding-rate history. It is part of the P/L and shown on its own.

**Money.** With stake S, leverage L, fee rate f per side ({settings['fee_rate_spot']} spot,
{settings['fee_rate_futures']} futures) and notional N = S·L:
P/L = N·(exit − entry)/entry (sign flipped for shorts) − f·N·(1 + exit/entry).
Returns and drawdowns are measured on a notional bankroll of \\${settings['starting_balance_usd']}.
Open trades are marked to the latest price the worker stored.

**Charts.** Each trade's page draws its life on the candles the worker fetched to decide it, kept
from 60 candles before the signal to 60 after the exit (and daily BTCUSDT candles for the
buy-and-hold comparison): the site itself never calls the exchange.

**Backfill.** A signal that reaches us more than 10 minutes after its own time is labelled
*backfill*: its outcome is computed the same way, but it was not published live. The Overview
and Analytics can show live signals only.

**The owner** can pause auto-trading (new signals are then skipped, open trades run on), close
an open trade by hand at the latest stored price (*closed manually*) or cancel a pending one.
Each of these, like every settings change, is listed below with its time.

**Signals** that break the format are recorded as *rejected* with the reason; signals the
settings filter out (pause, markets, symbol lists, confidence, open-trade limits) as *skipped*.
Nothing is dropped silently, and no setting can edit or delete a recorded signal or trade.
""")
SPLIT_NOW = {"single": "*single*: one exit, at one target", "even": "*even*: split equally over all the targets"}
split_now = SPLIT_NOW.get(snap.settings.get("tp_split", "single"),
                          f"the percentages {settings.get('tp_split', '')} over the first targets")
st.subheader("Several targets", anchor=False)
st.markdown(f"""
A signal may give several take-profit targets. How the position is split over them is the setting
`tp_split` (now **{split_now}**):
- *single* (the default): the whole position exits at target {settings['take_profit_target']} (the
  `take_profit_target` setting), or at the signal's last target when it has fewer.
- *even*: the position is split equally over all the signal's targets.
- percentages such as *50,30,20* (summing to 100): parts over the first targets, in order; a signal
  with fewer targets gives the rest to its last one.

Each part closes at exactly its target in the first candle whose high (low for a short) reaches it;
several targets can fill in one candle. In each candle: expiry first, then the stop-loss (or
liquidation) for everything still open, then the targets — a stop-loss and a target not yet filled
in one candle is the same-candle case above, for all that is still open. A market entry already at or
beyond the stop-loss or the *first* target is cancelled; a limit entry's fill candle fills no target.

Where the stop goes once a target has filled is the setting `stop_after_tp` (now
**{settings['stop_after_tp']}**):
- *none* (the default): it stays where the signal put it;
- *breakeven*: after the first target fills, the stop moves to the entry price;
- *trailing*: after target k fills, the stop moves to target k − 1 (the entry price for k = 1).

A moved stop applies from the next candle on; liquidation stays computed from the entry.
**With *single*, `stop_after_tp` does nothing**: nothing is left open after the one target.
Fees are charged per fill on its part, and the P/L is the sum over the parts. A trade ends as
*take-profit* when its last part closed at a target, *stop-loss* when the rest closed at the (possibly
moved) stop. The trade tables say how many targets a split trade reached ("2/3"), and the Analytics
page how often each target was reached — which is not the win rate: a trade can reach its first
target and still lose when the stop closes the rest.
""")
st.caption("The complete rules, word for word, are in the project's repository: `docs/trade-rules.md` (with `docs/signals.md`, `docs/metrics.md` and `docs/export-schema.md` beside it).")

st.subheader("Statistics", anchor=False)
st.markdown("""
- **95% interval of the win rate** — the Wilson score interval: with *p* = wins ÷ trades and *z* = 1.96,
  centre = (*p* + *z*²/2*n*) ÷ (1 + *z*²/*n*), half-width = *z* ÷ (1 + *z*²/*n*) × √(*p*(1 − *p*)/*n* + *z*²/4*n*²).
  It says how far the true win rate may be from the observed one; ten wins in ten trades is 72–100%, not 100%.
- **Break-even win rate** = |average loss| ÷ (average win + |average loss|): the win rate at which this payoff
  makes nothing. The Overview says whether the observed win rate — and its whole interval — is above or below it.
- **Payoff ratio** = average win ÷ |average loss|. **Trades per day** = closed trades ÷ the record's days.
- **CAGR** = (equity at the end ÷ equity at the start)^(365 ÷ days) − 1 over the record's days (first entry to last
  exit, or to now while trades are open). Over a few weeks it mostly multiplies luck.
- **Calmar** = CAGR ÷ maximum drawdown (as a fraction of its peak).
- **Sharpe / Sortino** — from one return per UTC day (that day's realized P/L ÷ the equity at the end of the day
  before, 0 on days without exits), × √365, risk-free rate 0; shown from 30 closed trades on.
- **Benchmark** — BTCUSDT bought at the daily close just before the record's first entry (midnight UTC) and held
  to the last daily close before its end, from daily candles the worker stores (the site never calls the
  exchange).
- **Periods** (sidebar, kept in the page address): a period counts the trades that *closed* in it, and its
  equity starts from the equity at its start. "Last 30 days" is today (UTC) and the 29 days before.
""")

st.subheader("Settings in force", anchor=False)
st.dataframe([{"setting": key, "value": value} for key, value in snap.settings.items()], hide_index=True, width="stretch",
             height="content")  # every row visible: no scrolling inside the table

st.subheader("Changes and owner actions", anchor=False)
st.caption("Every change of a setting (stake, fees, filters, the pause switch…) and every trade the owner closed or "
           "cancelled by hand, as recorded when it happened. The equity curve on the Overview marks them too.")
if snap.settings_changes.empty:
    st.info("No setting has been changed and no owner action taken since the start: the defaults above have always "
            "applied.", icon=":material/info:")
else:
    st.dataframe(snap.settings_changes, hide_index=True, width="stretch", column_config={
        "time": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "actor": st.column_config.TextColumn("By"),
        "label": st.column_config.TextColumn("Change"),
    })
