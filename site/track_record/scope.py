"""What part of the record every public page shows: a date range and the live-only switch.

Read from the query parameters (`range` = all | 30d | 7d | custom, `from`/`to` = YYYY-MM-DD for
a custom range, `live` = 0 | 1), so a link says what it shows, and kept in the session so that
it survives the sidebar's navigation (Streamlit drops query parameters when it switches pages;
every page puts them back). Anything malformed or hostile falls back to the default quietly.

`parse` and `Scope` are plain (tested without Streamlit); `current` and `controls` are the
Streamlit side.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

RANGES = {"all": "All time", "30d": "Last 30 days", "7d": "Last 7 days", "custom": "Custom dates"}
KEYS = ("range", "from", "to", "live")
_SESSION_KEY = "signalproof.scope"
_DAY_COUNT = {"30d": 30, "7d": 7}
_EARLIEST = date(2000, 1, 1)


@dataclass(frozen=True)
class Scope:
    range: str = "all"
    start: date | None = None  # custom range only, inclusive
    end: date | None = None  # custom range only, inclusive
    live_only: bool = False

    def days(self, today: date) -> tuple[date | None, date | None]:
        """The first and last UTC day shown, both inclusive (None: open-ended). "Last 30 days"
        is today and the 29 days before it."""
        if self.range in _DAY_COUNT:
            return today - timedelta(days=_DAY_COUNT[self.range] - 1), None
        if self.range == "custom":
            return self.start, self.end
        return None, None

    def bounds(self, today: date) -> tuple[datetime | None, datetime | None]:
        """[since, until) in UTC: midnight of the first day, midnight after the last day."""
        first, last = self.days(today)
        return (_midnight(first) if first else None, _midnight(last + timedelta(days=1)) if last else None)

    @property
    def is_all(self) -> bool:
        return self.range == "all"

    def label(self) -> str:
        if self.range == "custom" and self.start and self.end:
            words = f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} (UTC)"
        else:
            words = RANGES[self.range].lower()
        return words + (" · live signals only" if self.live_only else "")

    def params(self) -> dict[str, str]:
        """The query parameters that say this scope (defaults are left out)."""
        found: dict[str, str] = {}
        if self.range != "all":
            found["range"] = self.range
        if self.range == "custom" and self.start and self.end:
            found |= {"from": self.start.isoformat(), "to": self.end.isoformat()}
        if self.live_only:
            found["live"] = "1"
        return found


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:  # fromisoformat also reads "20240101", weeks…
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if _EARLIEST <= day <= date(2100, 1, 1) else None


def parse(params: Mapping[str, Any]) -> Scope:
    """The scope these query parameters ask for; what cannot be read is the default."""
    chosen = params.get("range", "all")
    chosen = chosen if isinstance(chosen, str) and chosen in RANGES else "all"
    live = params.get("live") == "1"
    if chosen != "custom":
        return Scope(chosen, live_only=live)
    start, end = _day(params.get("from")), _day(params.get("to"))
    if start is None or end is None or end < start:
        return Scope("all", live_only=live)
    return Scope("custom", start, end, live)


def has_scope(params: Mapping[str, Any]) -> bool:
    return any(key in params for key in KEYS)


# --- the Streamlit side ----------------------------------------------------------------------


def current() -> Scope:
    """The scope of this page run: the URL's when it says one, else the one chosen earlier in
    this session (page switches drop the URL's); the URL is then set to match."""
    import streamlit as st

    params = {key: st.query_params.get(key) for key in KEYS if key in st.query_params}
    if params:
        chosen = parse(params)
    else:
        chosen = st.session_state.get(_SESSION_KEY, Scope())
    _remember(chosen)
    return chosen


def _remember(chosen: Scope) -> None:
    import streamlit as st

    st.session_state[_SESSION_KEY] = chosen
    wanted = chosen.params()
    for key in KEYS:
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]


def controls(today: date) -> Scope:
    """The period and live-only controls in the sidebar (collapsed on a phone), for every page;
    returns the scope they set, kept in the URL."""
    import streamlit as st

    chosen = current()
    bar = st.sidebar
    bar.markdown("**Show**")
    picked = bar.selectbox("Period", list(RANGES), index=list(RANGES).index(chosen.range),
                           format_func=RANGES.__getitem__, help="UTC days, by the day a trade closed")
    start, end = chosen.start, chosen.end
    if picked == "custom":
        default = (start or today - timedelta(days=29), end or today)
        dates = bar.date_input("From – to (UTC)", value=default, min_value=_EARLIEST, max_value=today)
        if isinstance(dates, tuple) and len(dates) == 2:
            start, end = dates
        else:  # one date picked so far: keep the last full range until the second one is chosen
            start, end = default
    live = bar.toggle("Live signals only", value=chosen.live_only,
                      help="Hide trades of signals that were imported after the fact (backfill).")
    updated = replace(chosen, range=picked, start=start if picked == "custom" else None,
                      end=end if picked == "custom" else None, live_only=live)
    if updated != chosen:
        _remember(updated)
    return updated


def caption(chosen: Scope) -> None:
    """One line under a page's title: what it shows (the sidebar is hidden on a phone)."""
    import streamlit as st

    st.caption(f"Showing: {chosen.label()}. Change it in the sidebar (☰ on a phone).")
