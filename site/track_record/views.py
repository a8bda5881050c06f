"""Page furniture shared by the public pages: header, freshness, formatting, empty states.

Text that comes from data (titles, symbols, notes) is shown with `st.text`/dataframes or
escaped before it reaches Markdown: nothing a bot or an owner typed can become markup.
"""

import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from shared.clock import seconds_ago

STALE_AFTER_SECONDS = 180  # six missed monitor ticks
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


def freshness(beat: dict[str, object] | None) -> None:
    """"Worker last update 14 s ago", or a clear warning when it is stale or failing."""
    now = datetime.now(timezone.utc)
    if beat is None or beat.get("last_tick_at") is None:
        st.warning("The worker has not reported yet: trades are not being updated.", icon=":material/warning:")
        return
    last_tick = beat["last_tick_at"]
    last_success = beat.get("last_success_at")
    assert isinstance(last_tick, datetime)
    age = (now - last_tick).total_seconds()
    behind = beat.get("behind_seconds")
    line = f"Worker last update {ago(last_tick, now)}"
    if isinstance(behind, float) and behind > STALE_AFTER_SECONDS:
        line += f" · oldest open trade checked up to {ago(now - timedelta(seconds=behind), now)}"
    if isinstance(behind, float) and behind > BEHIND_WARNING_SECONDS:
        st.warning(f"{line} — some open trades have no recent candles (the exchange returned none), so they "
                   "cannot be updated.", icon=":material/warning:")
    elif age > STALE_AFTER_SECONDS:
        st.warning(f"{line} — the worker looks stopped; open trades are not being updated.", icon=":material/warning:")
    elif beat.get("last_error") and isinstance(last_success, datetime) and beat.get("last_error_at") and \
            beat["last_error_at"] > last_success:  # type: ignore[operator]
        st.warning(f"{line} — its last attempt failed (exchange or database error); it keeps retrying.", icon=":material/warning:")
    else:
        st.caption(f":green[:material/check_circle:] {line}")


def empty(message: str) -> None:
    st.info(message, icon=":material/info:")


def trade_columns(columns: "list[str] | pd.Index") -> dict[str, object]:
    """Labels and formats for the trade tables (Overview, Trades), for the columns present."""
    config: dict[str, object] = {
        "trade_id": st.column_config.NumberColumn("Trade", format="%d"),
        "id": st.column_config.NumberColumn("Trade", format="%d"),
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
