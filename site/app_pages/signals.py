"""Signals: every signal the bot sent and what became of it, rejected and skipped ones included.

The public signal log: the columns of `signalproof signals export`, filtered and paged in SQL,
its download byte for byte that export for the same filter. Query parameters pre-set the
filters (`?status=REJECTED`, as the Overview's counts link), so a filtered log can be shared.
"""

import pandas as pd
import streamlit as st

from shared.clock import utcnow
from track_record import display, loaders, scope
from track_record.signal_log import ORIGINS, STATUS_WORDS, STATUSES, SignalFilter

URL = loaders.database_url()
PAGE_SIZE = 100
COLUMNS = ["trade", "time", "status", "reason", "symbol", "side", "market", "origin", "source", "id", "received_at"]

today = utcnow().date()
chosen = scope.controls(today)
version = loaders.version(URL)
st.title("Signals", anchor=False)
scope.caption(chosen)
st.caption("Every signal received, with what became of it: accepted (it became a trade), rejected (invalid, with "
           "the reason) or skipped "
           "(filtered by a setting, with the reason). Nothing is ever dropped. The period selects signals by their "
           "own time (UTC).")


def _asked(name: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """Values of a repeatable query parameter that are among the choices (anything else is ignored)."""
    try:
        given = st.query_params.get_all(name)
    except Exception:  # a malformed URL is the default, never a traceback
        return []
    return [value for value in dict.fromkeys(given) if value in allowed][:50]


choices = loaders.signal_choices(URL, version)
asked_statuses = _asked("status", STATUSES)
asked_symbols = _asked("symbol", choices["symbols"])
asked_sources = _asked("source", choices["sources"])
asked_origins = _asked("origin", ORIGINS)
active = sum(map(bool, (asked_statuses, asked_symbols, asked_sources, asked_origins)))
with st.expander(f"Filters ({active} set)" if active else "Filters", icon=":material/filter_list:",
                 expanded=bool(active)):
    first, second = st.columns(2)
    statuses = first.multiselect("Status", STATUSES, default=asked_statuses, format_func=STATUS_WORDS.get)
    symbols = second.multiselect("Symbol", choices["symbols"], default=asked_symbols)
    sources = first.multiselect("Source", choices["sources"], default=asked_sources)
    origins = second.multiselect("Origin", ORIGINS, default=asked_origins,
                                 help="backfill = imported more than 10 minutes after the signal's own time")

# The filters stay in the URL (a filtered log can be shared), beside the period's parameters.
for name, values in (("status", statuses), ("symbol", symbols), ("source", sources), ("origin", origins)):
    if st.query_params.get_all(name) != values:
        if values:
            st.query_params[name] = values  # type: ignore[assignment]
        elif name in st.query_params:
            del st.query_params[name]

first_day, last_day = chosen.days(today)
flt = SignalFilter(statuses=tuple(statuses), symbols=tuple(symbols), sources=tuple(sources), origins=tuple(origins),
                   first_day=first_day, last_day=last_day)
if chosen.live_only and not origins:
    flt = SignalFilter(flt.statuses, flt.symbols, flt.sources, ("live",), flt.first_day, flt.last_day)

_, total = loaders.signal_log(URL, version, flt, 0, 1)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1) if pages > 1 else 1
rows, total = loaders.signal_log(URL, version, flt, int(page) - 1, PAGE_SIZE)
if not rows:
    display.empty("No signal matches these filters." if not flt.empty else "No signals yet.")
else:
    frame = pd.DataFrame(rows)
    frame["trade"] = [display.trade_link(t) if pd.notna(t) else None for t in frame["trade_id"]]
    frame["status"] = [STATUS_WORDS.get(str(s), str(s)) for s in frame["status"]]
    frame["reason"] = frame["reason"].fillna("")
    frame["side"] = [display.SIDE_WORDS.get(str(v), v) for v in frame["side"]]
    for name in ("time", "received_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True, errors="coerce")
    st.caption(f"{total:,} signal(s); showing {len(frame)}, newest first.")
    st.dataframe(frame[COLUMNS], hide_index=True, width="stretch", placeholder=display.PLACEHOLDER,
                 on_select="rerun", selection_mode="single-column", key="signal_log", column_config={
                     "trade": st.column_config.LinkColumn("Trade", display_text=r"trade\?trade=(\d+)", width=64,
                                                          help="the trade an accepted signal became"),
                     "time": st.column_config.DatetimeColumn("Signal (UTC)", format="YYYY-MM-DD HH:mm:ss", width=150),
                     "received_at": st.column_config.DatetimeColumn("Received (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                     "status": st.column_config.TextColumn("Status", width=80),
                     "reason": st.column_config.TextColumn("Reason", width=320),
                     "symbol": "Symbol", "side": "Side", "market": "Market", "origin": "Origin",
                     "source": "Source", "id": "Signal id",
                 })
    st.link_button(f"Download {total:,} signal(s) as CSV", loaders.signals_csv_url(flt), icon=":material/download:",
                   help="The same file as `signalproof signals export` (for these filters).")
