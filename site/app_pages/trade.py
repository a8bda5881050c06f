"""One trade: the signal as received, the terms it was opened with, its fills, how it was
decided, and its life drawn on the candles the worker stored (`/trade?trade=ID`)."""

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from shared.candles import INTERVALS
from shared.models import TradeStatus
from track_record import display, loaders, record, trade_chart

URL = loaders.database_url()
TRADES_LINK = "[← All trades](trades)"  # relative: /trade?trade=… → /trades, whatever the base path
VALID_ID = re.compile(r"^[0-9]{1,18}$")
SHORT_STATUS = {TradeStatus.PENDING: "pending", TradeStatus.OPEN: "open", TradeStatus.CLOSED_TP: "take-profit",
                TradeStatus.CLOSED_SL: "stop-loss", TradeStatus.CLOSED_EXPIRED: "expired",
                TradeStatus.CLOSED_MANUAL: "by owner", TradeStatus.LIQUIDATED: "liquidated",
                TradeStatus.CANCELLED: "cancelled"}


def back_link() -> None:
    st.markdown(TRADES_LINK)


def requested_id() -> int | None:
    """The trade id in `?trade=…`, or None (with a message) when it is missing or not a trade id."""
    raw = st.query_params.get("trade")
    if raw is None or raw == "":
        st.title("Trade", anchor=False)
        st.info("No trade chosen: open one from the Trades page (each trade links here).", icon=":material/info:")
        return None
    if not VALID_ID.match(raw) or int(raw) < 1:
        st.title("Trade", anchor=False)
        # The value is not repeated: a link may carry anything.
        st.warning("That is not a trade number: a trade's page is /trade?trade= followed by its number (e.g. 12).",
                   icon=":material/warning:")
        return None
    return int(raw)


def text(value: Any) -> str:
    """A cell's text: decimals exactly as stored, times in UTC, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    return str(value)


def table(rows: list[tuple[str, Any]]) -> None:
    """Field/value pairs as a table: values are data, rendered as text (never Markdown or HTML)."""
    st.dataframe(pd.DataFrame({"field": [k for k, _ in rows], "value": [text(v) for _, v in rows]}),
                 hide_index=True, width="stretch", height="content",
                 column_config={"field": st.column_config.TextColumn("Field"),
                                "value": st.column_config.TextColumn("Value")})


def money(value: Decimal | None, *, signed: bool = False) -> str:
    return display.usd(None if value is None else float(value), signed=signed)


def show(detail: record.TradeDetail) -> None:
    trade = detail.trade
    status = TradeStatus(trade["status"])
    st.title(f"Trade {trade['id']}", anchor=False)
    st.caption(display.plain(f"{trade['symbol']} · {trade['side']} · {trade['market']} · {trade['leverage']}× · "
                             f"{trade['origin']} signal · {record.STATUS_WORDS.get(status, str(status))}"
                             + (" · same candle" if trade["ambiguous"] else "")))
    back_link()

    left, middle, right, last = st.columns(4)
    parts = record.portions_of(trade["tp_split"], trade["shares"])
    hit = record.targets_label(trade["targets_hit"], trade["tp_split"], trade["shares"], status) if parts > 1 else None
    # A split position: how many of its targets it reached ("2/3 targets hit"), under the outcome.
    left.metric("Outcome", SHORT_STATUS.get(status, str(status)), f"{hit} targets hit" if hit else None,
                delta_color="off", delta_arrow="off", help=record.STATUS_WORDS.get(status))
    if detail.unrealized_usd is not None:
        middle.metric("Unrealized P/L", money(detail.unrealized_usd, signed=True),
                      help="Marked to the latest price the worker stored, fees on both sides included")
    else:
        middle.metric("P/L", money(trade["pnl_usd"], signed=True))
    share = trade["pnl_pct"]
    if detail.unrealized_usd is not None:
        share = detail.unrealized_usd / trade["stake_usd"]
    right.metric("P/L of stake", display.pct(None if share is None else float(share), signed=True))
    last.metric("Fees", money(trade["fees_usd"]))

    st.subheader("How it was decided", anchor=False)
    for sentence in detail.decision:
        if trade["ambiguous"] and sentence.startswith("Same candle"):
            st.warning(display.plain(sentence), icon=":material/call_split:")
        else:
            st.markdown(display.plain(sentence))

    st.subheader("Its life on the candles", anchor=False)
    chart_of(detail)

    st.subheader("Fills", anchor=False)
    fills = pd.DataFrame([{"time": f.time, "kind": f.kind, "price": text(f.price), "share": float(f.share),
                           "fees_usd": "" if f.fees_usd is None else f"{f.fees_usd:.4f}",
                           "pnl_usd": "" if f.pnl_usd is None else display.usd(float(f.pnl_usd), signed=True)}
                          for f in detail.fills], columns=["time", "kind", "price", "share", "fees_usd", "pnl_usd"])
    if fills.empty:
        display.empty("No fills: the trade was never entered." if status is TradeStatus.CANCELLED
                      else "No fills yet.")
    else:
        st.dataframe(fills, hide_index=True, width="stretch", column_config={
            "time": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm"),
            "kind": st.column_config.TextColumn("Fill"), "price": st.column_config.TextColumn("Price"),
            "share": st.column_config.NumberColumn("Share of position", format="percent"),
            "fees_usd": st.column_config.TextColumn("Fees $"), "pnl_usd": st.column_config.TextColumn("P/L")})

    st.subheader("Terms it was opened with", anchor=False)
    table([("stake (USD margin)", trade["stake_usd"]), ("leverage", trade["leverage"]),
           ("fee rate per side", trade["fee_rate"]), ("entry mode", trade["entry_mode"]),
           ("slippage (bps)", trade["slippage_bps"]), ("maintenance margin rate", trade["maintenance_margin_rate"]),
           ("pending expiry (hours)", trade["pending_expiry_hours"]),
           ("maximum trade time (hours, 0 = none)", trade["max_trade_hours"]),
           ("candle interval", trade["candle_interval"])])

    st.subheader("The signal as received", anchor=False)
    signal = detail.signal
    if signal is None:
        display.empty("The signal of this trade is not in the database.")
    else:
        table([("ledger seq (signal.received)", signal["received_seq"]), ("source", signal["source"]),
               ("id", signal["id"]), ("time", signal["time"]), ("received at", signal["received_at"]),
               ("origin", signal["origin"]), ("symbol", signal["symbol"]), ("side", signal["side"]),
               ("market", signal["market"]), ("entry", signal["entry"]), ("take-profit target(s)", signal["take_profit"]),
               ("stop-loss", signal["stop_loss"]), ("leverage", signal["leverage"]),
               ("confidence", signal["confidence"])])
        st.caption("Note")
        st.text(signal["note"] or "—")  # the bot's own words, as plain text


def chart_of(detail: record.TradeDetail) -> None:
    trade = detail.trade
    drawn = detail.chart
    length = INTERVALS.get(trade["candle_interval"])
    # Drawn in the middle of the candle they happened in (a take-profit fills inside it).
    middle = length / 2 if length is not None else timedelta(0)
    markers: list[tuple[str, datetime, Decimal]] = []
    if trade["entry_time"] is not None and trade["entry_price"] is not None:
        markers.append(("entry", trade["entry_time"] + middle, trade["entry_price"]))
    exits = [f for f in detail.fills if f.kind != "entry"]
    if len(exits) > 1 or (exits and exits[0].share != 1):  # a split position: every part where it went out
        markers += [(f.kind, f.time + (timedelta(0) if f.kind == "owner's close" else middle), f.price) for f in exits]
    elif trade["exit_time"] is not None and trade["exit_price"] is not None:
        manual = trade["status"] == TradeStatus.CLOSED_MANUAL  # the owner's own moment, not a candle
        markers.append(("exit", trade["exit_time"] + (timedelta(0) if manual else middle), trade["exit_price"]))
    deciding = (detail.deciding_time, length) if detail.deciding_time is not None and length is not None else None
    if drawn.empty:
        display.empty("No candles of this trade's life are stored (the worker keeps the candles it fetched for a "
                      "trade, from the candle store's start on): the levels are listed below.")
    else:
        st.altair_chart(trade_chart.trade_chart(drawn, detail.levels, markers, deciding), width="stretch")
        st.caption(display.plain(drawn.describe()))
    if detail.deciding_time is not None:
        candle = detail.deciding_candle
        words = f"Highlighted: the deciding {trade['candle_interval']} candle, opening {detail.deciding_time:%Y-%m-%d %H:%M} UTC"
        if candle is None:
            words += " (not in the candle store)"
        st.caption(display.plain(words + "."))
    levels = pd.DataFrame({"level": [name for name, _ in detail.levels], "price": [text(p) for _, p in detail.levels]})
    if trade["exit_price"] is not None:
        levels.loc[len(levels)] = ["exit", text(trade["exit_price"])]
    st.dataframe(levels, hide_index=True, width="stretch", height="content",
                 column_config={"level": st.column_config.TextColumn("Level"),
                                "price": st.column_config.TextColumn("Price")})
    if TradeStatus(trade["status"]).is_active and detail.latest_price is not None:
        st.caption(f"Latest stored price {text(detail.latest_price)} ({text(detail.latest_price_time)}).")


trade_id = requested_id()
if trade_id is None:
    back_link()
    st.stop()
detail = loaders.trade_detail(URL, loaders.version(URL), trade_id)
if detail is None:
    st.title("Trade", anchor=False)
    st.warning(f"There is no trade {trade_id}.", icon=":material/search_off:")
    back_link()
    st.stop()
show(detail)
