"""The statistics a trader expects, the period and live-only scope, and the public signal log,
run headless with AppTest on SQLite and PostgreSQL (conftest.py's `seed`).

Every figure a page writes in words is recomputed here from the seeded trades with the
formulas written out again (not imported from the site), and the signal log is compared with
`signalproof signals export` itself.
"""

import csv
import io
import math
import re
from urllib.parse import parse_qsl, urlsplit
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import Cli
from shared.database import make_engine, transaction
from shared.models import SignalStatus, StoredCandle
from track_record import api, scope
from track_record.signal_log import SignalFilter

UTC = timezone.utc
SITE = Path(__file__).resolve().parents[2] / "site"
Z = 1.959963984540054
HOSTILE = ("<script>alert(1)</script>", "=HYPERLINK(\"http://evil\",\"x\")", "**bold** [x](javascript:alert(1))")
Run = Callable[..., AppTest]


# --- formatting and reading, written out here rather than imported from the site -------------------

def usd(value: float, *, signed: bool = False) -> str:
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def pct(value: float, *, signed: bool = False) -> str:
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}{abs(value) * 100:.1f}%"


def ok(at: AppTest) -> AppTest:
    assert not at.exception, "\n".join(e.message for e in at.exception)
    return at


def metrics_of(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def texts(at: AppTest) -> list[str]:
    found = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error")
             for e in getattr(at, kind)]
    for m in at.metric:
        found += [m.label, m.value, m.delta or ""]
    return found


def link_ids(values: Any) -> list[int]:
    found = []
    for value in values:
        match = re.fullmatch(r"trade\?trade=(\d+)", str(value))
        assert match, f"not a trade link: {value!r}"
        found.append(int(match.group(1)))
    return found


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Run]:
    """Runs one public page with these query parameters (as a visitor's link would carry)."""
    def run(name: str, **params: str | list[str]) -> AppTest:
        monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", database_url)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(SITE / "app_pages" / f"{name}.py"), default_timeout=60)
        for key, value in params.items():
            at.query_params[key] = value
        return ok(at.run())

    yield run
    st.cache_data.clear()
    st.cache_resource.clear()


def today() -> date:
    return datetime.now(UTC).date()


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def closed_only(seed: Any) -> list[Any]:
    """Ten closed trades over twenty days ending three days ago (nothing open): a fixed record."""
    start = midnight(today()) - timedelta(days=23)
    trades = []
    for n in range(10):
        status = ("CLOSED_TP", "CLOSED_SL", "CLOSED_TP", "CLOSED_SL", "CLOSED_SL")[n % 5]
        trades.append(seed.trade(status=status, signal_time=start + timedelta(days=2 * n, hours=3),
                                 entry_price=str(60000 + 500 * n), origin="backfill" if n < 2 else "live"))
    return trades


# --- the scope's query parameters, pure -------------------------------------------------------

@pytest.mark.parametrize(("params", "expected"), [
    ({}, scope.Scope()),
    ({"range": "7d"}, scope.Scope("7d")),
    ({"range": "30d", "live": "1"}, scope.Scope("30d", live_only=True)),
    ({"range": "custom", "from": "2024-01-02", "to": "2024-02-01"},
     scope.Scope("custom", date(2024, 1, 2), date(2024, 2, 1))),
    ({"range": "custom", "from": "2024-02-01", "to": "2024-01-02"}, scope.Scope()),  # backwards
    ({"range": "custom", "from": "20240101", "to": "2024-02-01"}, scope.Scope()),  # not YYYY-MM-DD
    ({"range": "custom"}, scope.Scope()),
    ({"range": "<script>alert(1)</script>", "live": "yes"}, scope.Scope()),
    ({"range": "7d' OR 1=1 --", "live": "1"}, scope.Scope(live_only=True)),
    ({"range": "custom", "from": "9999-99-99", "to": "2024-01-01"}, scope.Scope()),
])
def test_scope_reads_its_query_parameters_and_falls_back_quietly(params: dict[str, str],
                                                                  expected: scope.Scope) -> None:
    assert scope.parse(params) == expected
    assert scope.parse(expected.params()) == expected  # what it writes back reads the same


def test_scope_bounds_are_whole_utc_days() -> None:
    day = date(2024, 3, 10)
    assert scope.Scope("7d").bounds(day) == (datetime(2024, 3, 4, tzinfo=UTC), None)
    assert scope.Scope("30d").days(day) == (date(2024, 2, 10), None)
    assert scope.Scope("custom", date(2024, 1, 1), date(2024, 1, 31)).bounds(day) == (
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))


# --- the honest statistics, recomputed ------------------------------------------------------------

def test_overview_says_the_win_rate_its_interval_and_the_break_even_it_needs(seed: Any, page: Run) -> None:
    trades = closed_only(seed)
    at = page("overview")
    pnls = [float(t.pnl_usd) for t in trades]
    wins, losses = [p for p in pnls if p > 0], [p for p in pnls if p < 0]
    n, p = len(pnls), len(wins) / len(pnls)
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    avg_win, avg_loss = sum(wins) / len(wins), sum(losses) / len(losses)
    breakeven = -avg_loss / (avg_win - avg_loss)
    [sentence] = [m.value for m in at.markdown if m.value.startswith("The observed win rate")]
    assert f"**{pct(p)}** (95% interval {pct(centre - half)}–{pct(centre + half)})" in sentence
    assert f"the **{pct(breakeven)}** this payoff needs to break even" in sentence
    assert usd(avg_win).replace("$", "\\$") in sentence and usd(avg_loss).replace("$", "\\$") in sentence
    verdict = ("above" if centre - half > breakeven else "below" if centre + half < breakeven else "includes it")
    assert verdict in sentence

    # CAGR over the record's days (first entry to last exit: nothing is open), Calmar, payoff
    first = min(t.entry_time for t in trades)
    last = max(t.exit_time for t in trades)
    days = (last - first).total_seconds() / 86400
    total = sum(pnls)
    cagr = (1 + total / 1000) ** (365 / days) - 1
    shown = metrics_of(at)
    assert shown["CAGR"][0] == pct(cagr, signed=True)
    assert shown["Payoff ratio"][0] == f"{avg_win / -avg_loss:,.2f}"
    assert shown["Trades per day"][0] == f"{n / days:,.2f}"
    equity = peak = 1000.0
    fall = fall_peak = 0.0
    for trade in sorted(trades, key=lambda t: (t.exit_time, t.id)):
        equity += float(trade.pnl_usd)
        peak = max(peak, equity)
        if peak - equity > fall:
            fall, fall_peak = peak - equity, peak
    assert shown["Calmar"][0] == f"{cagr / (fall / fall_peak):,.2f}"


def store_btc(seed: Any, closes: dict[date, str]) -> None:
    with transaction(seed.engine) as session:
        for day, close in closes.items():
            session.add(StoredCandle(market="SPOT", symbol="BTCUSDT", interval="1d", open_time=midnight(day),
                                     open=D(close), high=D(close), low=D(close), close=D(close)))


def test_the_benchmark_is_btc_bought_the_day_before_and_held_to_the_last_close(seed: Any, page: Run) -> None:
    trades = closed_only(seed)
    first_day = min(t.entry_time for t in trades).date()
    last_exit = max(t.exit_time for t in trades)
    # A close every day from a week before the record to today; only some fall inside it.
    closes = {first_day + timedelta(days=d): str(40000 + 250 * d + (d % 3) * 100) for d in range(-7, 24)}
    store_btc(seed, closes)
    at = page("overview")
    # Bought at the close of the candle opening the day before the first entry (it closes at
    # midnight of the first day), held to the last candle that closed by the last exit.
    bought = D(closes[first_day - timedelta(days=1)])
    last_open = max(day for day in closes if midnight(day) + timedelta(days=1) <= last_exit)
    expected = float(D(closes[last_open]) / bought - 1)
    [sentence] = [m.value for m in at.markdown if "buying BTCUSDT and holding it" in m.value]
    assert f"returned **{pct(expected, signed=True)}**" in sentence
    assert f"From {first_day:%Y-%m-%d} to {last_open + timedelta(days=1):%Y-%m-%d}" in sentence
    total = sum(float(t.pnl_usd) for t in trades)
    assert f"**{pct(total / 1000, signed=True)}** of its bankroll" in sentence
    assert len(list(at.get("vega_lite_chart"))) == 3  # the curve, the record vs BTC, P/L per day


def test_no_stored_btc_candles_is_said_not_drawn(seed: Any, page: Run) -> None:
    closed_only(seed)
    at = page("overview")
    assert any("No BTCUSDT daily candles are stored" in m.value for m in at.markdown)


# --- the period and the live-only switch ---------------------------------------------------------

def test_a_period_counts_only_the_trades_that_closed_in_it(seed: Any, page: Run) -> None:
    trades = closed_only(seed)
    for params, first in (({"range": "7d"}, midnight(today()) - timedelta(days=6)),
                          ({"range": "30d"}, midnight(today()) - timedelta(days=29)),
                          ({"range": "custom", "from": (today() - timedelta(days=12)).isoformat(),
                            "to": (today() - timedelta(days=5)).isoformat()}, midnight(today()) - timedelta(days=12))):
        end = midnight(today()) + timedelta(days=1) if params["range"] != "custom" else \
            midnight(today()) - timedelta(days=4)
        inside = [t for t in trades if first <= t.exit_time < end]
        before = sum(float(t.pnl_usd) for t in trades if t.exit_time < first)
        at = page("overview", **params)
        shown = metrics_of(at)
        assert shown["Closed trades"][0] == f"{len(inside):,}", params
        total = sum(float(t.pnl_usd) for t in inside)
        start = 1000 + before
        assert shown["Total P/L"][0] == usd(total, signed=True), params
        assert shown["Total P/L"][1].endswith(f"of {usd(start).removesuffix('.00')}"), params
        assert any(c.value.startswith("Showing: ") for c in at.caption)


def test_live_only_from_the_url_hides_backfilled_trades_everywhere(seed: Any, page: Run) -> None:
    trades = closed_only(seed)
    live = [t for t in trades if t.origin == "live"]
    assert metrics_of(page("overview", live="1"))["Closed trades"][0] == str(len(live))
    analytics = page("analytics", live="1")
    [table] = [d.value for d in analytics.dataframe if "symbol" in d.value.columns]
    assert table["trades"].sum() == len(live)
    history = page("trades", live="1")
    [frame] = [d.value for d in history.dataframe if "signal_id" in d.value.columns]
    assert set(link_ids(frame["id"])) == {t.id for t in live}


@pytest.mark.parametrize("params", [
    {"range": "<script>alert(1)</script>"}, {"range": "custom", "from": "x", "to": "y"}, {"live": "=cmd()"},
    {"range": ["7d", "30d"]}, {"status": "<img src=x onerror=alert(1)>"},
])
def test_hostile_query_parameters_fall_back_to_the_default(seed: Any, page: Run, params: dict[str, Any]) -> None:
    trades = closed_only(seed)
    for name in ("overview", "analytics", "trades", "signals"):
        at = page(name, **params)
        if name == "overview":
            assert metrics_of(at)["Closed trades"][0] in (str(len(trades)),
                                                          str(sum(t.exit_time >= midnight(today()) - timedelta(days=6)
                                                                  for t in trades)))
        for text in texts(at):
            assert "<script" not in text and "<img" not in text


# --- the public signal log -----------------------------------------------------------------------

def hostile_signals(seed: Any) -> None:
    seed.trade(status="CLOSED_TP")
    seed.trade(status="CLOSED_SL", symbol="ETHUSDT", entry_price="3000", origin="backfill")
    for n, text in enumerate(HOSTILE):
        seed.signal(SignalStatus.REJECTED, text, source=text[:40], signal_id=f"{text}-{n}", note=text)
    seed.signal(SignalStatus.SKIPPED, "paused", symbol="SOLUSDT")
    seed.signal(SignalStatus.NEW)


def export_rows(cli: Cli) -> list[list[str]]:
    return list(csv.reader(io.StringIO(cli("signals", "export").stdout)))


def test_the_signal_log_is_the_signal_export(seed: Any, page: Run, cli: Cli) -> None:
    hostile_signals(seed)
    rows = export_rows(cli)
    header, body = rows[0], rows[1:]
    at = page("signals")
    [frame] = [d.value for d in at.dataframe]
    assert len(frame) == len(body) == 7
    # Newest first on the page; the export is by id.
    assert list(frame["id"]) == [row[header.index("id")].removeprefix("'") for row in reversed(body)]
    words = {"ACCEPTED": "Accepted", "REJECTED": "Rejected", "SKIPPED": "Skipped", "NEW": "New"}
    assert list(frame["status"]) == [words[row[header.index("status")]] for row in reversed(body)]
    assert list(frame["reason"]) == [row[header.index("reason")].removeprefix("'") for row in reversed(body)]
    traded = frame[frame["status"] == "Accepted"]
    assert sorted(link_ids(traded["trade"])) == sorted(t.id for t in seed.trades)
    assert frame[frame["status"] != "Accepted"]["trade"].isna().all()
    [button] = at.get("link_button")
    assert button.proto.url == api.SIGNALS_CSV and button.proto.label == "Download 7 signal(s) as CSV"

    # The download route's file, for no filter and for "rejected only", is the export's.
    engine = make_engine(seed.url, read_only=True)
    try:
        whole = "".join(api.signal_csv_chunks(engine, SignalFilter(), rows_per_chunk=2))
        assert whole == cli("signals", "export").stdout
        rejected = "".join(api.signal_csv_chunks(engine, SignalFilter(statuses=("REJECTED",))))
        assert list(csv.reader(io.StringIO(rejected))) == [header] + [
            row for row in body if row[header.index("status")] == "REJECTED"]
    finally:
        engine.dispose()


def test_the_overviews_rejected_count_links_to_the_filtered_log(seed: Any, page: Run) -> None:
    hostile_signals(seed)
    overview = page("overview")
    assert any("[3 rejected](signals?status=REJECTED)" in m.value for m in overview.markdown)
    at = page("signals", status="REJECTED")
    [frame] = [d.value for d in at.dataframe]
    assert set(frame["status"]) == {"Rejected"} and len(frame) == 3
    [button] = at.get("link_button")
    assert button.proto.url == api.SIGNALS_CSV + "?status=REJECTED"
    live = page("signals", live="1")
    [frame] = [d.value for d in live.dataframe]
    assert set(frame["origin"]) == {"live"}


def test_hostile_text_in_the_signal_log_stays_text(seed: Any, page: Run) -> None:
    hostile_signals(seed)
    at = page("signals")
    [frame] = [d.value for d in at.dataframe]
    for text in HOSTILE:  # shown as written, in cells (never Markdown or HTML)
        assert text in set(frame["reason"])
        assert text[:40] in set(frame["source"])
    for text in texts(at):
        assert "<script" not in text and "HYPERLINK" not in text and "javascript:" not in text
    engine = make_engine(seed.url, read_only=True)
    try:
        body = "".join(api.signal_csv_chunks(engine, SignalFilter(statuses=("REJECTED",))))
    finally:
        engine.dispose()
    assert "'=HYPERLINK" in body and "\n=HYPERLINK" not in body and ",=HYPERLINK" not in body


@pytest.mark.parametrize("query", [
    [("status", "DROP TABLE")], [("origin", "<script>")], [("since", "2024-13-01")], [("since", "2024-02-01"),
                                                                                       ("until", "2024-01-01")],
    [("symbol", "X" * 100)], [("nope", "1")], [("since", "2024-01-01"), ("since", "2024-01-02")],
])
def test_the_signal_download_refuses_bad_parameters_with_a_message(query: list[tuple[str, str]]) -> None:
    with pytest.raises(api.BadRequest) as bad:
        api.signal_filter(query)
    assert "Traceback" not in str(bad.value) and "\n" not in str(bad.value)


def test_the_signal_download_address_round_trips() -> None:
    flt = SignalFilter(statuses=("REJECTED", "SKIPPED"), symbols=("BTCUSDT",), sources=("my bot & co",),
                       origins=("live",), first_day=date(2024, 1, 1), last_day=date(2024, 1, 31))
    url = api.signals_download_url(flt)
    assert api.signal_filter(parse_qsl(urlsplit(url).query)) == flt
    assert api.signals_download_url(SignalFilter()) == api.SIGNALS_CSV



def test_choosing_a_period_in_the_sidebar_puts_it_in_the_url(seed: Any, page: Run) -> None:
    trades = closed_only(seed)
    at = page("overview")
    assert metrics_of(at)["Closed trades"][0] == str(len(trades))
    [period] = [s for s in at.sidebar.selectbox if s.label == "Period"]
    ok(period.set_value("7d").run())
    week = [t for t in trades if t.exit_time >= midnight(today()) - timedelta(days=6)]
    assert metrics_of(at)["Closed trades"][0] == str(len(week))
    assert at.query_params["range"] == "7d"
    [live] = [t for t in at.sidebar.toggle if t.label == "Live signals only"]
    ok(live.set_value(True).run())
    assert at.query_params["live"] == "1" and at.query_params["range"] == "7d"
    [period] = [s for s in at.sidebar.selectbox if s.label == "Period"]
    ok(period.set_value("all").run())
    assert "range" not in at.query_params and at.query_params["live"] == "1"
    assert metrics_of(at)["Closed trades"][0] == str(sum(t.origin == "live" for t in trades))


def test_tables_read_as_a_trader_reads_them() -> None:
    """Key columns first, outcomes and sides in words, ids as trade links, prices to six
    significant digits without an exponent, percentages in points."""
    from track_record import display

    frame = display.readable(pd.DataFrame({
        "entry_time": [None], "entry_price": [0.00000551234567], "status": ["CLOSED_TP"], "pnl_pct": [0.0123],
        "side": ["SHORT"], "symbol": ["ADABTC"], "pnl_usd": [1.23], "trade_id": [7]}))
    assert list(frame.columns)[:6] == ["trade_id", "symbol", "side", "pnl_usd", "status", "pnl_pct"]
    row = frame.iloc[0]
    assert (row["trade_id"], row["side"], row["status"]) == ("trade?trade=7", "Short", "Take-profit")
    assert row["entry_price"] == 0.00000551235 and row["pnl_pct"] == pytest.approx(1.23)
    config = display.trade_columns(frame.columns)
    assert config["entry_price"]["type_config"]["format"] == "plain"  # type: ignore[index]
    assert config["pnl_usd"]["type_config"]["format"] == "dollar"  # type: ignore[index]
