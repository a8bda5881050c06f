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


def trade_columns(columns: "list[str] | pd.Index") -> dict[str, object]:
    """Labels and formats for the trade tables (Overview, Trades), for the columns present."""
    config: dict[str, object] = {
        "trade_id": st.column_config.NumberColumn("Trade", format="%d"),
        "id": st.column_config.NumberColumn("Trade", format="%d"),
        "ledger_seq": st.column_config.NumberColumn(
            "Ledger #", format="%d", help="seq of the signal's signal.received entry in the public ledger "
                                          "(committed before any candle was looked at)"),
        "symbol": "Symbol", "side": "Side", "market": "Market", "leverage": "Leverage", "status": "Status",
        "reason": "Reason", "source": "Source", "signal_id": "Signal id",
        "origin": st.column_config.TextColumn("Origin", help="backfill = signal imported after the fact"),
        "signal_time": st.column_config.DatetimeColumn("Signal (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "entry_time": st.column_config.DatetimeColumn("Entry (UTC)", format="YYYY-MM-DD HH:mm"),
        "exit_time": st.column_config.DatetimeColumn("Exit (UTC)", format="YYYY-MM-DD HH:mm"),
        "entry_price": st.column_config.NumberColumn("Entry", format="%.8g"),
        "exit_price": st.column_config.NumberColumn("Exit", format="%.8g"),
        "limit_price": st.column_config.NumberColumn("Limit (pending)", format="%.8g"),
        "price": st.column_config.NumberColumn("Latest price", format="%.8g"),
        "take_profit": st.column_config.NumberColumn("Take-profit", format="%.8g"),
        "stop_loss": st.column_config.NumberColumn("Stop-loss", format="%.8g"),
        "to_tp_pct": st.column_config.NumberColumn("To TP", format="percent"),
        "to_sl_pct": st.column_config.NumberColumn("To SL", format="percent"),
        "fees_usd": st.column_config.NumberColumn("Fees $", format="%.4f"),
        "pnl_usd": st.column_config.NumberColumn("P/L $", format="%.2f"),
        "pnl_pct": st.column_config.NumberColumn("P/L of stake", format="percent"),
        "unrealized_usd": st.column_config.NumberColumn("Unrealized $", format="%.2f"),
        "age_hours": st.column_config.NumberColumn("Age (h)", format="%.1f"),
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
