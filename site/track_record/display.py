"""Page furniture shared by the public pages: header, freshness, formatting, empty states.

Text that comes from data (titles, symbols, notes) is shown with `st.text`/dataframes or
escaped before it reaches Markdown: nothing a bot or an owner typed can become markup.
"""

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from shared import heartbeat
from shared.clock import seconds_ago, utcnow
from shared.models import WorkerHeartbeat

if TYPE_CHECKING:
    from track_record import self_check

BEHIND_WARNING_SECONDS = 24 * 3600

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def plain(text: str) -> str:
    """Escape Markdown (and the HTML Streamlit would otherwise escape anyway)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def usd(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    # ASCII "-": st.metric reads a delta's sign from it to pick the arrow and colour.
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def pct(value: float | None, *, signed: bool = False, digits: int = 1) -> str:
    if value is None:
        return "—"
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}{abs(value) * 100:.{digits}f}%"


def number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return seconds_ago((now - moment).total_seconds())


def header(title: str, description: str) -> None:
    from track_record.loaders import demo_mode  # a deployment flag, read once per process

    demo = demo_mode()  # (the DEMO banner itself is drawn on every page by streamlit_app.py)
    st.title(plain(title), anchor=False)
    if description:
        st.caption(plain(description))
    candles = "simulated candles" if demo else "real Binance candles"
    st.markdown(":orange-badge[PAPER TRADING] &nbsp; every signal becomes a simulated fixed-stake trade "
                f"on {candles} — no real orders are placed.")


def freshness(beat: dict[str, object] | None, *, stale_after: float | None = None) -> None:
    """"Worker last update 14 s ago", or a clear warning when it is stale or the exchange fails.

    The judgement is `shared.heartbeat.health`, the one `worker --check` prints; `stale_after`
    defaults to the deployment's (SIGNALPROOF_WORKER_STALE_AFTER_SECONDS or its default rule).
    """
    if stale_after is None:
        from track_record.loaders import stale_after_seconds

        stale_after = stale_after_seconds()
    now = utcnow()
    verdict = heartbeat.health(WorkerHeartbeat(**beat) if beat is not None else None, now=now,
                               stale_after=stale_after)
    if verdict.state is heartbeat.State.NEVER:
        st.warning("The worker has not reported yet: trades are not being updated.", icon=":material/warning:")
        return
    line = f"Worker last update {ago(verdict.last_tick_at, now)}"
    behind = beat.get("behind_seconds") if beat else None
    if isinstance(behind, float) and behind > stale_after:
        line += f" · oldest open trade checked up to {ago(now - timedelta(seconds=behind), now)}"
    if verdict.state is heartbeat.State.STALE:
        st.warning(f"{line} — the worker looks stopped; open trades are not being updated.", icon=":material/warning:")
    elif verdict.state is heartbeat.State.EXCHANGE_FAILING:
        # Not the error itself: it may name a configured URL. The owner's page shows it.
        assert verdict.failing_for is not None
        waiting = _waiting_words(verdict)
        text = (f"{line} — the exchange has not been answering for "
                f"{seconds_ago(verdict.failing_for.total_seconds()).removesuffix(' ago')}"
                + (f": {waiting}" if waiting else "") + ". The worker keeps retrying; nothing is lost.")
        if verdict.severe:
            st.error(text, icon=":material/error:")
        else:
            st.warning(text, icon=":material/warning:")
    elif isinstance(behind, float) and behind > BEHIND_WARNING_SECONDS:
        st.warning(f"{line} — some open trades have no recent candles (the exchange returned none), so they "
                   "cannot be updated.", icon=":material/warning:")
    elif verdict.last_error:
        st.warning(f"{line} — its last attempt failed (exchange or database error); it keeps retrying.", icon=":material/warning:")
    else:
        st.caption(f":green[:material/check_circle:] {line}")


def _waiting_words(verdict: heartbeat.Health) -> str:
    parts = []
    if verdict.waiting_signals:
        parts.append(f"{verdict.waiting_signals} new signal{'s are' if verdict.waiting_signals != 1 else ' is'} "
                     "waiting to be checked")
    if verdict.stuck_trades:
        parts.append(f"{verdict.stuck_trades} open trade{'s are' if verdict.stuck_trades != 1 else ' is'} "
                     "not being updated")
    return " and ".join(parts)


def paused_banner(settings: dict[str, str], changes: pd.DataFrame) -> None:
    """"Auto-trading is paused since …" (the settings page promises the pause is public)."""
    if settings.get("paused") != "true":
        return
    since = None
    if len(changes):
        pauses = changes[changes["label"].astype(str).str.startswith("paused changed") &
                         changes["label"].astype(str).str.endswith("→ true")]
        if len(pauses):  # newest first: the change that paused it
            at = pd.Timestamp(pauses["time"].iloc[0])
            since = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    when = f" since {since:%Y-%m-%d %H:%M} UTC ({ago(since.to_pydatetime(), utcnow())})" \
        if since is not None else ""
    st.warning(f"Auto-trading is paused{when}: new signals are recorded as skipped, not traded. "
               "Open trades are still followed to their exit.", icon=":material/pause_circle:")


def empty(message: str) -> None:
    st.info(message, icon=":material/info:")


STATUS_WORDS = {
    "CLOSED_TP": "Take-profit", "CLOSED_SL": "Stop-loss", "CLOSED_EXPIRED": "Expired", "LIQUIDATED": "Liquidated",
    "CLOSED_MANUAL": "Closed by the owner", "CANCELLED": "Cancelled", "OPEN": "Open", "PENDING": "Pending",
}
SIDE_WORDS = {"LONG": "Long", "SHORT": "Short"}
# What a trader reads first: these lead every trade table, in this order.
# P/L before the outcome's words: on a phone the first four columns are what fits.
KEY_COLUMNS = ("trade_id", "id", "symbol", "side", "pnl_usd", "unrealized_usd", "status", "pnl_pct")
# Fixed pixel widths for the key columns: together about 550 px, so they show without scrolling
# in the narrowest desktop table (the page is ~940 px wide at 1400 px; a phone scrolls the rest).
KEY_WIDTHS = {"trade_id": 60, "id": 60, "symbol": 88, "side": 52, "status": 116, "pnl_usd": 88, "pnl_pct": 96,
              "unrealized_usd": 96}
PNL_COLUMNS = ("pnl_usd", "pnl_pct", "unrealized_usd")
PERCENT_COLUMNS = ("pnl_pct", "to_tp_pct", "to_sl_pct")
PRICE_COLUMNS = ("entry_price", "exit_price", "limit_price", "price", "take_profit", "stop_loss")


def _significant(value: float, digits: int = 6) -> float:
    """A price rounded to `digits` significant digits (the grid then shows it plainly)."""
    return float(f"{value:.{digits}g}") if pd.notna(value) else float("nan")
PLACEHOLDER = "—"  # a missing value: never the word "None"


def trade_link(trade_id: object) -> str | None:
    """The trade page's address (relative: it works behind any proxy prefix)."""
    try:
        return f"trade?trade={int(trade_id)}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def status_word(status: object) -> str:
    return STATUS_WORDS.get(str(status), str(status).replace("_", " ").capitalize())


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A trade table as a trader reads it: key columns first, statuses and sides in words, trade
    ids as links to their page. (Formats come from `trade_columns`; colours from `styled`.)"""
    frame = frame.copy()
    for name in ("trade_id", "id"):
        if name in frame:
            frame[name] = [trade_link(v) for v in frame[name]]
    if "status" in frame:
        frame["status"] = [status_word(v) for v in frame["status"]]
    if "side" in frame:
        frame["side"] = [SIDE_WORDS.get(str(v), str(v)) for v in frame["side"]]
    for name in PRICE_COLUMNS:  # six significant digits, never an exponent ("0.0000055", "64321.5")
        if name in frame:
            frame[name] = [_significant(v) for v in pd.to_numeric(frame[name], errors="coerce")]
    for name in PERCENT_COLUMNS:  # fractions → percentage points, shown with two decimals
        if name in frame:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float) * 100
    first = [c for c in KEY_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def styled(frame: pd.DataFrame) -> "pd.io.formats.style.Styler":
    """P/L cells coloured by sign (green gain, red loss), nothing else touched."""
    def colour(value: object) -> str:
        if not isinstance(value, (int, float)) or pd.isna(value) or value == 0:
            return ""
        return "color: #2f9e6e" if value > 0 else "color: #d0505c"

    return frame.style.map(colour, subset=[c for c in PNL_COLUMNS if c in frame.columns])


def table(frame: pd.DataFrame, **options: object) -> None:
    """One readable trade table (see `readable`), P/L coloured, empty cells as a dash."""
    shown = readable(frame)
    st.dataframe(styled(shown), hide_index=True, width="stretch", placeholder=PLACEHOLDER,
                 column_config=trade_columns(shown.columns), **options)  # type: ignore[arg-type]


def trade_columns(columns: "list[str] | pd.Index") -> dict[str, object]:
    """Labels and formats for the trade tables (Overview, Trades), for the columns present."""
    width = KEY_WIDTHS
    link = st.column_config.LinkColumn("Trade", display_text=r"trade\?trade=(\d+)", width=width["trade_id"],
                                       help="open the trade's page: its candles, entry and exit")
    config: dict[str, object] = {
        "trade_id": link,
        "id": link,
        "ledger_seq": st.column_config.NumberColumn(
            "Ledger #", format="%d", help="seq of the signal's signal.received entry in the public ledger "
                                          "(committed before any candle was looked at)"),
        "symbol": st.column_config.TextColumn("Symbol", width=width["symbol"]),
        "side": st.column_config.TextColumn("Side", width=width["side"]), "market": "Market",
        "leverage": st.column_config.NumberColumn("Leverage", format="%dx"),
        "status": st.column_config.TextColumn("Outcome", width=width["status"]),
        "reason": "Reason", "source": "Source", "signal_id": "Signal id",
        "origin": st.column_config.TextColumn("Origin", help="backfill = signal imported after the fact"),
        "signal_time": st.column_config.DatetimeColumn("Signal (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "entry_time": st.column_config.DatetimeColumn("Entry (UTC)", format="YYYY-MM-DD HH:mm"),
        "exit_time": st.column_config.DatetimeColumn("Exit (UTC)", format="YYYY-MM-DD HH:mm"),
        "entry_price": st.column_config.NumberColumn("Entry", format="plain"),
        "exit_price": st.column_config.NumberColumn("Exit", format="plain"),
        "limit_price": st.column_config.NumberColumn("Limit (pending)", format="plain"),
        "price": st.column_config.NumberColumn("Latest price", format="plain"),
        "take_profit": st.column_config.NumberColumn("Take-profit", format="plain"),
        "stop_loss": st.column_config.NumberColumn("Stop-loss", format="plain"),
        "to_tp_pct": st.column_config.NumberColumn("To TP", format="%.2f%%"),
        "to_sl_pct": st.column_config.NumberColumn("To SL", format="%.2f%%"),
        "fees_usd": st.column_config.NumberColumn("Fees", format="dollar"),
        "pnl_usd": st.column_config.NumberColumn("P/L", format="dollar", width=width["pnl_usd"]),
        "pnl_pct": st.column_config.NumberColumn("P/L of stake", format="%.2f%%", width=width["pnl_pct"]),
        "unrealized_usd": st.column_config.NumberColumn("Unrealized", format="dollar", width=width["unrealized_usd"]),
        "stake_usd": st.column_config.NumberColumn("Stake", format="dollar"),
        "age_hours": st.column_config.NumberColumn("Age (h)", format="%.1f"),
        "targets_hit": st.column_config.TextColumn(
            "Targets hit", help="targets reached / parts the position was split into (Methodology: Several targets)"),
        "ambiguous": st.column_config.CheckboxColumn(
            "Same-candle", help="stop-loss and take-profit in one candle: stop-loss recorded"),
    }
    return {name: config[name] for name in columns if name in config}


def ledger_banner(state: "self_check.State | None") -> None:
    """The red banner every page shows while the site's own check of its ledger fails."""
    if state is None or state.problem is None:
        return
    st.error(f"**The ledger does not verify** — first bad entry: seq {state.problem.seq}: "
             f"{plain(state.problem.message)}. Nothing from seq {state.problem.seq} on can be trusted until the "
             "owner explains it; the Verify page shows how to check it yourself.", icon=":material/gpp_bad:")


# --- the honest statistics, in words -----------------------------------------------------------

SHORT_RECORD_DAYS = 90
CAGR_HELP = ("Compound annual growth of the bankroll: (equity at the end ÷ equity at the start)^(365 ÷ days) − 1, "
             "over the record's days (first entry to last exit, or to now while trades are open).")


def days(value: float) -> str:
    """A length in days as people say it: "5.5 days", "1 day", "18 hours"."""
    if value < 1:
        hours = value * 24
        return f"{hours:.0f} hour{'' if round(hours) == 1 else 's'}"
    return f"{value:,.0f} day{'' if round(value) == 1 else 's'}" if value >= 10 else f"{value:.1f} days"


def _money_md(value: float | None) -> str:
    return usd(value).replace("$", "\\$")  # a lone "$" pair would start LaTeX in Markdown


def honest_words(win_rate: float | None, interval: tuple[float, float] | None, breakeven: float | None,
                 avg_win: float | None, avg_loss: float | None) -> str:
    """"The observed 52.0% (95% interval 45.1–59.3%) is above the 41.0% this payoff needs…"."""
    if win_rate is None or interval is None:
        return "No closed trade yet: no win rate to judge."
    observed = f"The observed win rate of **{pct(win_rate)}** (95% interval {pct(interval[0])}–{pct(interval[1])})"
    if breakeven is None:
        missing = "losing" if avg_loss is None else "winning"
        return f"{observed} cannot be compared with a break-even win rate yet: there is no {missing} trade."
    need = (f"the **{pct(breakeven)}** this payoff needs to break even (average win {_money_md(avg_win)}, "
            f"average loss {_money_md(avg_loss)})")
    if interval[0] > breakeven:
        return f"{observed} is above {need}; even the interval's low end is above it."
    if interval[1] < breakeven:
        return f"{observed} is below {need}; even the interval's high end is below it."
    side = "above" if win_rate > breakeven else "below" if win_rate < breakeven else "at"
    return (f"{observed} is {side} {need}, but the interval includes it: so far the record cannot be told "
            "apart from breaking even.")


def benchmark_words(honest: object, total_pnl: float, start_equity: float) -> str:
    """The record's return beside BTCUSDT buy-and-hold over the same days, or why there is none."""
    points = getattr(honest, "benchmark", [])
    ours = pct(total_pnl / start_equity, signed=True) if start_equity > 0 else "—"
    if len(points) < 2:
        return ("No BTCUSDT daily candles are stored for this period yet (the worker stores one a day), so there is "
                f"no benchmark to compare with. This record returned {ours} of its bankroll.")
    first, last = points[0][0], points[-1][0]
    return (f"From {first:%Y-%m-%d} to {last:%Y-%m-%d} (daily closes, UTC), buying BTCUSDT and holding it returned "
            f"**{pct(points[-1][1], signed=True)}**; over the same period this record's realized P/L came to "
            f"**{ours}** of its bankroll.")


# Phone layout (≤ 640 px): Streamlit stacks every column one per row; the headline cards read
# better two per row, and charts need their full width. The one place the site adds CSS.
PHONE_CSS = """
<style>
@media (max-width: 640px) {
  .st-key-cards [data-testid="stHorizontalBlock"], .st-key-returns [data-testid="stHorizontalBlock"] {
    flex-direction: row !important; flex-wrap: wrap !important; gap: 0.5rem !important;
  }
  .st-key-cards [data-testid="stColumn"], .st-key-returns [data-testid="stColumn"] {
    flex: 0 0 calc(50% - 0.25rem) !important; width: calc(50% - 0.25rem) !important; min-width: 0 !important;
  }
  .st-key-cards [data-testid="stMetricValue"], .st-key-returns [data-testid="stMetricValue"] {
    font-size: 1.35rem !important;
  }
  .st-key-cards [data-testid="stMetricLabel"] p { font-size: 0.8rem !important; }
  [data-testid="stMainBlockContainer"] { padding-left: 0.75rem !important; padding-right: 0.75rem !important; }
}
</style>
"""


def phone_layout() -> None:
    st.html(PHONE_CSS)
