"""The public pages, run headless with Streamlit's AppTest against SQLite and PostgreSQL
databases filled directly through the models (see conftest.py).

What a visitor must be able to rely on: no traceback on any page whatever the data, the numbers
shown are the numbers `signalproof stats` computes (`shared.queries.headline_stats`), nothing a
bot or an owner typed becomes markup, and the site's connection cannot write.
"""

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import streamlit as st
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from shared import settings as runtime
from shared.database import make_engine
from shared.money import settle
from shared.models import Event, Side, Signal, SignalStatus, Trade, TradeStatus
from shared.queries import headline_stats
from track_record import loaders

SITE = Path(__file__).resolve().parents[2] / "site"
PAGES = ("overview", "trades", "analytics", "signals", "methodology")
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
HOSTILE_TITLE = "<b>x</b> [link](http://evil)"
App = Callable[..., AppTest]


# --- formatting, written out here rather than imported from the site ------------------------

def usd(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}{abs(value) * 100:.1f}%"


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


# --- reading the pages --------------------------------------------------------------------

def ok(at: AppTest) -> AppTest:
    assert not at.exception, "\n".join(e.message for e in at.exception)
    return at


def metrics_of(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"expected one table with a {column!r} column, found {len(frames)}"
    return frames[0]


def link_ids(values: Iterable[Any]) -> list[int]:
    """Trade ids from a table's trade links (`trade?trade=ID`, the trade page's address)."""
    found = []
    for value in values:
        match = re.fullmatch(r"trade\?trade=(\d+)", str(value))
        assert match, f"not a trade link: {value!r}"
        found.append(int(match.group(1)))
    return found


def widget(widgets: Iterable[Any], label: str) -> Any:
    return next(w for w in widgets if w.label == label)


def texts(at: AppTest) -> list[str]:
    """Every piece of text on the page that Streamlit renders as Markdown."""
    found = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error",
                                  "success") for e in getattr(at, kind)]
    for m in at.metric:
        found += [m.label, m.value, m.delta or ""]
    return found


def charts(at: AppTest) -> list[Any]:
    return list(at.get("vega_lite_chart"))


def run_all(app: App) -> dict[str, AppTest]:
    return {page: ok(app(page)) for page in PAGES}


def stats_of(url: str) -> Any:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            stats = headline_stats(session=session)
            starting = runtime.current(session=session).starting_balance_usd
            signals = dict(session.exec(select(Signal.status, sa.func.count()).group_by(Signal.status)).all())
        return stats, float(starting), signals
    finally:
        engine.dispose()


def unrealized(trade: Trade, price: str) -> float:
    return float(settle(side_sign=Side(trade.side).sign, stake=trade.stake_usd, leverage=trade.leverage,
                        fee_rate=trade.fee_rate, entry=trade.entry_price, exit=D(price)).pnl_usd)


# --- scenarios: every page renders ----------------------------------------------------------

def one_closed(seed: Any) -> None:
    seed.trade(status="CLOSED_TP")


def only_open(seed: Any) -> None:
    seed.trade(symbol="BTCUSDT", status="OPEN", entry_price="60000")
    seed.trade(symbol="ETHUSDT", side="SHORT", leverage=10, status="OPEN", entry_price="3000")
    seed.trade(symbol="SOLUSDT", status="PENDING", signal_entry=D("140"))
    seed.price("BTCUSDT", "61000")  # ETHUSDT has no stored price yet: no unrealized P/L for it


def only_losses(seed: Any) -> None:
    start = datetime.now(timezone.utc) - timedelta(days=5)
    seed.trade(symbol="BTCUSDT", status="CLOSED_SL", signal_time=start)
    seed.trade(symbol="ETHUSDT", status="CLOSED_SL", signal_time=start + timedelta(days=1), entry_price="3000")
    seed.trade(symbol="XRPUSDT", leverage=25, status="LIQUIDATED", signal_time=start + timedelta(days=2),
               entry_price="0.5")


def rich_scenario(seed: Any, rich: Callable[[Any], Any]) -> None:
    rich(seed)


# name → fills the empty database (`rich` is conftest's `fill_rich`, which tests cannot import)
SCENARIOS: dict[str, Callable[[Any, Callable[[Any], Any]], None]] = {
    "empty": lambda seed, rich: None,
    "one closed trade": lambda seed, rich: one_closed(seed),
    "only open trades": lambda seed, rich: only_open(seed),
    "only losses": lambda seed, rich: only_losses(seed),
    "rich": rich_scenario,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_page_renders_without_an_exception(scenario: str, seed: Any, rich: Any, app: App,
                                                 database_url: str) -> None:
    SCENARIOS[scenario](seed, rich)
    pages = run_all(app)

    stats, _, _ = stats_of(database_url)
    assert metrics_of(pages["overview"])["Closed trades"][0] == f"{stats.closed_trades:,}"
    if stats.closed_trades == 0:
        assert not charts(pages["overview"]) and not charts(pages["analytics"])
        assert [i.value for i in pages["analytics"].info] == ["Analytics appear once trades have closed."]
    else:
        # equity above its drawdown (one chart), then P/L per day (no benchmark: no BTC candles stored)
        assert len(charts(pages["overview"])) == 2
        assert not pages["analytics"].info
    if scenario == "empty":
        assert [i.value for i in pages["overview"].info] == [
            "No closed trades yet. The equity curve starts with the first closed trade."]
        assert [i.value for i in pages["trades"].info] == ["No open or pending trades right now.", "No trades yet."]
        assert not pages["trades"].get("link_button")
        assert [w.value for w in pages["overview"].warning] == [
            "The worker has not reported yet: trades are not being updated."]
    if scenario == "only open trades":
        assert [i.value for i in pages["overview"].info] == [
            "No closed trades yet. The equity curve starts with the first closed trade; 2 trade(s) are open right now."]


def test_the_whole_app_navigates_to_every_page(seeded_database: Any, monkeypatch: pytest.MonkeyPatch,
                                                database_url: str) -> None:
    """Through `site/streamlit_app.py` and its `st.navigation`, as a visitor arrives."""
    monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", database_url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = ok(AppTest.from_file(str(SITE / "streamlit_app.py"), default_timeout=60).run())
    assert "Total P/L" in metrics_of(at)  # the default page is the Overview
    for page, title in (("trades", "Trades"), ("analytics", "Analytics"), ("signals", "Signals"),
                        ("methodology", "Methodology")):
        at = ok(at.switch_page(f"app_pages/{page}.py").run())
        assert at.title[0].value == title


# --- Overview ----------------------------------------------------------------------------------

def test_overview_cards_are_the_headline_stats(seeded_database: Any, app: App, database_url: str) -> None:
    seed = seeded_database
    at = ok(app("overview"))
    stats, starting, signals = stats_of(database_url)
    assert stats.closed_trades == 10 and stats.breakeven == 1 and stats.losses > 0  # the scenario is what we think

    open_trades = [t for t in seed.trades if t.status == TradeStatus.OPEN]
    marked = sum(unrealized(t, seed.prices[(t.market, t.symbol)]) for t in open_trades)
    total = float(stats.total_pnl_usd)
    shown = metrics_of(at)
    assert shown["Total P/L"] == (usd(total, signed=True), f"{pct(total / starting, signed=True)} of $1,000")
    assert shown["Win rate"] == (pct(float(stats.win_rate)), f"{stats.wins} W / {stats.losses} L / {stats.breakeven} B")
    assert shown["Profit factor"][0] == number(float(stats.profit_factor))
    assert shown["Expectancy"][0] == usd(float(stats.expectancy_usd), signed=True)
    assert shown["Max drawdown"] == (usd(-float(stats.max_drawdown_usd)),
                                     f"{pct(float(stats.max_drawdown_pct))} from the peak")
    assert shown["Closed trades"] == (f"{stats.closed_trades:,}",
                                      f"{stats.pending_trades} pending · {stats.cancelled_trades} cancelled")
    assert shown["Open trades"] == (f"{len(open_trades)}", f"{usd(marked, signed=True)} unrealized")
    assert shown["Signals"] == (
        f"{sum(signals.values())}",
        f"{signals['ACCEPTED']} traded · {signals['REJECTED'] + signals['SKIPPED']} not")
    assert (signals["ACCEPTED"], signals["REJECTED"], signals["SKIPPED"], signals["NEW"]) == (len(seed.trades), 2, 1, 1)
    assert shown["all time"][0] == usd(total, signed=True)
    assert "PAPER TRADING" in at.markdown[0].value
    assert any("Worker last update" in c.value for c in at.caption)


def test_overview_one_closed_trade(seed: Any, app: App, database_url: str) -> None:
    trade = seed.trade(status="CLOSED_TP", entry_price="60000")
    shown = metrics_of(ok(app("overview")))
    pnl = float(trade.pnl_usd)
    assert pnl > 0
    assert shown["Total P/L"][0] == usd(pnl, signed=True)
    assert shown["Win rate"] == ("100.0%", "1 W / 0 L / 0 B")
    assert shown["Profit factor"] == ("—", "no losing trade yet")
    assert shown["Expectancy"][0] == usd(pnl, signed=True)
    assert shown["Max drawdown"] == ("$0.00", "0.0% from the peak")


def test_overview_only_losses(seed: Any, app: App, database_url: str) -> None:
    only_losses(seed)
    shown = metrics_of(ok(app("overview")))
    stats, _, _ = stats_of(database_url)
    assert shown["Win rate"] == ("0.0%", "0 W / 3 L / 0 B")
    assert shown["Profit factor"][0] == "0.00"
    assert shown["Max drawdown"][0] == usd(-float(stats.max_drawdown_usd)) != "$0.00"


def test_overview_empty_database_is_a_friendly_empty_state(app: App) -> None:
    at = ok(app("overview"))
    shown = metrics_of(at)
    assert shown["Total P/L"][0] == "$0.00"
    assert shown["Win rate"][0] == shown["Profit factor"][0] == shown["Expectancy"][0] == "—"
    assert shown["Signals"] == ("0", "0 traded · 0 not")
    assert [i.value for i in at.info] == ["No closed trades yet. The equity curve starts with the first closed trade."]
    assert not charts(at) and not at.dataframe


# --- Trades -------------------------------------------------------------------------------------

def test_trades_open_positions_are_marked_to_the_latest_price(seeded_database: Any, app: App) -> None:
    seed = seeded_database
    positions = frame_with(ok(app("trades")), "unrealized_usd")
    positions = positions.set_index(pd.Index(link_ids(positions["trade_id"])))
    active = {t.id: t for t in seed.trades if t.status in (TradeStatus.OPEN, TradeStatus.PENDING)}
    assert set(positions.index) == set(active)
    for trade_id, trade in active.items():
        row = positions.loc[trade_id]
        price = seed.prices[(trade.market, trade.symbol)]
        assert row["price"] == pytest.approx(float(price))
        if trade.status == TradeStatus.OPEN:
            assert row["unrealized_usd"] == pytest.approx(unrealized(trade, price), abs=1e-9)
            assert row["entry_price"] == pytest.approx(float(trade.entry_price))
        else:  # a pending limit order has no P/L yet, only its limit price
            assert pd.isna(row["unrealized_usd"]) and pd.isna(row["entry_price"])
            assert row["limit_price"] == pytest.approx(float(trade.signal_entry))


def test_trades_open_position_without_a_stored_price(seed: Any, app: App) -> None:
    only_open(seed)
    positions = frame_with(ok(app("trades")), "unrealized_usd").set_index("symbol")
    assert positions.loc["BTCUSDT", "unrealized_usd"] == pytest.approx(unrealized(seed.trades[0], "61000"))
    assert pd.isna(positions.loc["ETHUSDT", "unrealized_usd"]) and pd.isna(positions.loc["ETHUSDT", "price"])


def test_trades_history_filters_change_the_rows(seeded_database: Any, app: App) -> None:
    trades = seeded_database.trades
    at = ok(app("trades"))

    def shown() -> set[int]:
        return set(link_ids(frame_with(at, "signal_id")["id"]))

    assert shown() == {t.id for t in trades}
    assert [b.proto.label for b in at.get("link_button")] == [f"Download {len(trades)} trade(s) as CSV"]

    widget(at.multiselect, "Symbol").set_value(["BTCUSDT"])
    ok(at.run())
    btc = {t.id for t in trades if t.symbol == "BTCUSDT"}
    assert shown() == btc and len(btc) == 4
    assert [b.proto.label for b in at.get("link_button")] == [f"Download {len(btc)} trade(s) as CSV"]

    widget(at.multiselect, "Outcome").set_value(["CLOSED_TP"])
    ok(at.run())
    assert shown() == {t.id for t in trades if t.symbol == "BTCUSDT" and t.status == "CLOSED_TP"}

    widget(at.multiselect, "Symbol").set_value([])
    widget(at.multiselect, "Outcome").set_value(["CLOSED_SL"])
    ok(at.run())
    assert shown() == {t.id for t in trades if t.status == "CLOSED_SL"} and len(shown()) == 3

    widget(at.toggle, "Live signals only").set_value(True)
    ok(at.run())
    assert shown() == {t.id for t in trades if t.status == "CLOSED_SL" and t.origin == "live"} and len(shown()) == 2

    widget(at.multiselect, "Outcome").set_value(["CLOSED_EXPIRED"])
    widget(at.multiselect, "Symbol").set_value(["ADABTC"])
    ok(at.run())
    assert "signal_id" not in {c for d in at.dataframe for c in d.value.columns}
    assert "No trade matches these filters." in [i.value for i in at.info]


def test_trades_download_links_to_the_streamed_export_with_the_pages_filters(seeded_database: Any,
                                                                            app: App) -> None:
    """The file itself is streamed by the route beside the app (tests/site/test_api.py): the
    page only links to it, with its filters; nothing is built in the page's memory."""
    at = ok(app("trades"))
    [button] = at.get("link_button")
    assert button.proto.url == "/api/v1/trades.csv"
    assert button.proto.label == f"Download {len(seeded_database.trades):,} trade(s) as CSV"
    widget(at.multiselect, "Symbol").set_value(["BTCUSDT"])
    widget(at.toggle, "Live signals only").set_value(True)
    [button] = ok(at.run()).get("link_button")
    assert button.proto.url == "/api/v1/trades.csv?symbol=BTCUSDT&live_only=true"


# --- Analytics ----------------------------------------------------------------------------------

def test_analytics_per_symbol_and_same_candle_count(seeded_database: Any, app: App) -> None:
    closed = [t for t in seeded_database.trades if TradeStatus(t.status).is_closed]
    at = ok(app("analytics"))
    table = frame_with(at, "symbol").set_index("symbol")
    assert set(table.index) == {t.symbol for t in closed}
    for symbol, row in table.iterrows():
        mine = [t for t in closed if t.symbol == symbol]
        wins, losses = sum(t.pnl_usd > 0 for t in mine), sum(t.pnl_usd < 0 for t in mine)
        assert (row["trades"], row["wins"], row["losses"]) == (len(mine), wins, losses)
        assert row["win_rate"] == pytest.approx(100 * wins / len(mine))  # shown in percentage points
        assert row["pnl_usd"] == pytest.approx(float(sum(t.pnl_usd for t in mine)), abs=1e-9)
    sides = frame_with(at, "side").set_index("side")
    assert sides.loc["Short", "trades"] == sum(t.side == "SHORT" for t in closed)

    ambiguous = sum(t.ambiguous for t in seeded_database.trades)
    assert ambiguous == 1
    assert any(c.value.startswith("Same-candle cases (a candle reaching both the stop-loss and a take-profit), all "
                                  f"time: 0 settled by the exchange's own trades") and
               f"{ambiguous} with the stop-loss assumed" in c.value for c in at.caption)

    widget(at.sidebar.toggle, "Live signals only").set_value(True)
    ok(at.run())
    live = frame_with(at, "symbol")
    assert "ADABTC" not in set(live["symbol"])  # backfilled only
    assert live["trades"].sum() == sum(t.origin == "live" for t in closed)


@pytest.mark.parametrize("closed", [29, 30])
def test_analytics_sharpe_and_sortino_only_from_30_closed_trades(closed: int, seed: Any, app: App,
                                                                 database_url: str) -> None:
    start = datetime.now(timezone.utc) - timedelta(days=60)
    for n in range(closed):  # one exit a day, wins and losses of varied size
        status = "CLOSED_TP" if n % 3 else "CLOSED_SL"
        seed.trade(status=status, signal_time=start + timedelta(days=n, hours=n % 5), entry_price=str(50000 + 100 * n))
    at = ok(app("analytics"))
    shown = metrics_of(at)
    stats, _, _ = stats_of(database_url)
    ratios = (shown["Sharpe (daily, annualised)"][0], shown["Sortino (daily, annualised)"][0])
    threshold = [c.value for c in at.caption if "Sharpe and Sortino are shown from 30 closed trades" in c.value]
    if closed < 30:
        assert ratios == ("—", "—")
        assert threshold and f"({closed} so far)" in threshold[0]
    else:
        assert stats.sharpe is not None and stats.sortino is not None
        assert ratios == (number(stats.sharpe), number(stats.sortino))
        assert not threshold


# --- Methodology --------------------------------------------------------------------------------

def test_methodology_settings_in_force_and_the_public_change_log(seeded_database: Any, app: App,
                                                                 database_url: str) -> None:
    seeded_database.settings(fee_rate_spot="0.00075", paused="true")
    at = ok(app("methodology"))
    in_force = dict(zip(*frame_with(at, "setting")[["setting", "value"]].T.values))
    engine = make_engine(database_url)
    with Session(engine) as session:
        assert in_force == runtime.as_dict(runtime.current(session=session))
    engine.dispose()
    assert (in_force["stake_usd"], in_force["fee_rate_spot"], in_force["paused"]) == ("250", "0.00075", "true")
    assert "**\\$250**" in at.markdown[0].value

    log = frame_with(at, "label")
    assert list(log["label"]) == ["paused changed false → true", "fee_rate_spot changed 0.001 → 0.00075",
                                  "stake_usd changed 100 → 250"]
    assert set(log["actor"]) == {"owner"}
    assert not at.info


def test_methodology_without_changes_says_the_defaults_always_applied(app: App) -> None:
    at = ok(app("methodology"))
    assert frame_with(at, "setting").set_index("setting").loc["stake_usd", "value"] == "100"
    assert [i.value for i in at.info] == [
        "No setting has been changed and no owner action taken since the start: the defaults above have always "
        "applied."]


# --- hostile data -------------------------------------------------------------------------------

# (The Overview's own links to the signal log, `](signals?…)`, carry only counts and enum values.)
UNESCAPED_MARKUP = re.compile(r"(?<!\\)<\s*/?\s*(script|img|b)\b|(?<!\\)\]\((?!\s|signals\?)", re.IGNORECASE)


def test_hostile_text_in_the_data_stays_text(seed: Any, rich: Any, app: App) -> None:
    rich(seed)
    moment = datetime.now(timezone.utc)
    seed.trade(symbol=SCRIPT, status="CLOSED_TP", note=IMAGE, signal_time=moment - timedelta(days=1))
    seed.trade(symbol=IMAGE, status="OPEN", note=SCRIPT, signal_time=moment - timedelta(hours=3))
    seed.price(IMAGE, "61000")
    seed.signal(SignalStatus.REJECTED, f"unknown symbol {SCRIPT}", symbol=IMAGE, note=SCRIPT, source=IMAGE)
    seed.settings(site_title=HOSTILE_TITLE, site_description=f"{IMAGE} **bold** [x](javascript:alert(1))")

    pages = run_all(app)
    for page, at in pages.items():
        for text in texts(at):
            assert not UNESCAPED_MARKUP.search(text), f"{page}: markup reaches Markdown unescaped: {text!r}"
        for element in (*at.markdown, *at.caption):
            assert not element.proto.allow_html, f"{page}: HTML allowed in {element.value!r}"

    title = pages["overview"].title[0].value
    assert markdown_text(title) == HOSTILE_TITLE  # shown as typed, as text
    assert markdown_text(pages["overview"].caption[0].value) == f"{IMAGE} **bold** [x](javascript:alert(1))"
    # Tables render text: the hostile symbol is there, as a value.
    assert SCRIPT in set(frame_with(pages["trades"], "signal_id")["symbol"])
    assert IMAGE in set(frame_with(pages["trades"], "unrealized_usd")["symbol"])
    assert SCRIPT in set(frame_with(pages["analytics"], "symbol")["symbol"])
    changes = set(frame_with(pages["methodology"], "label")["label"])
    assert f"site_title changed signalproof → {HOSTILE_TITLE}" in changes


def markdown_text(value: str) -> str:
    """What a Markdown backslash-escaped string reads as: every escaped character literally, and
    no unescaped Markdown/HTML syntax left (which would not read as itself)."""
    assert not re.search(r"(?<!\\)[<>\[\]()*_`]", value), f"unescaped markup in {value!r}"
    return re.sub(r"\\(.)", r"\1", value)


# --- the site cannot write ----------------------------------------------------------------------

WRITE_REFUSED = (sa.exc.OperationalError, sa.exc.InternalError)


@pytest.mark.parametrize("through", ["loaders.engine", "make_engine(read_only=True)"])
def test_the_site_connection_refuses_every_write(through: str, seeded_database: Any, app: App,
                                                 database_url: str) -> None:
    ok(app("overview"))  # the engine the pages use, now cached
    if through == "loaders.engine":
        read_only = loaders.engine(database_url)
    else:
        read_only = make_engine(database_url, read_only=True)
    trade = next(t for t in seeded_database.trades if t.status == TradeStatus.CLOSED_TP)
    events_before = count_events(database_url)

    with pytest.raises(WRITE_REFUSED, match=r"(?i)read-?only"):
        with Session(read_only) as session:
            session.add(Event(at=datetime.now(timezone.utc), kind="x", message="should never be stored"))
            session.commit()
    with pytest.raises(WRITE_REFUSED, match=r"(?i)read-?only"):
        with read_only.begin() as connection:
            connection.execute(sa.update(Trade).where(Trade.id == trade.id).values(pnl_usd=D("1000000")))
    with pytest.raises(WRITE_REFUSED, match=r"(?i)read-?only"):
        with read_only.begin() as connection:
            connection.execute(sa.delete(Trade).where(Trade.id == trade.id))

    writable = make_engine(database_url)
    with Session(writable) as session:
        stored = session.get(Trade, trade.id)
        assert stored is not None and stored.pnl_usd == trade.pnl_usd and stored.status == "CLOSED_TP"
    writable.dispose()
    assert count_events(database_url) == events_before
    if through != "loaders.engine":
        read_only.dispose()


def count_events(url: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.exec(select(sa.func.count()).select_from(Event)).one()
    finally:
        engine.dispose()


def test_a_missing_or_unmigrated_database_gets_a_message_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty_file = tmp_path / "not-migrated.db"
    empty_file.touch()
    for url in (f"sqlite:///{tmp_path / 'absent.db'}", f"sqlite:///{empty_file}"):
        monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", url)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(SITE / "streamlit_app.py"), default_timeout=60).run()
        assert not at.exception, url
        assert "not available right now" in at.error[0].value
    st.cache_resource.clear()


def test_the_public_never_sees_a_feed_token(seed: Any, app: Callable[..., AppTest]) -> None:
    seed.settings(signal_feed_url="https://bot.example/feed.json?key=SECRET123")
    at = app("methodology")
    shown = " ".join(str(df.value.to_dict()) for df in at.dataframe) + " ".join(m.value for m in at.markdown)
    assert "SECRET123" not in shown
    assert "set (bot.example)" in shown


# --- health and pause banners on the Overview (what `worker --check` says, in words) ----------

def beat(seed: Any, **fields: Any) -> None:
    from shared.database import transaction
    from shared.models import WorkerHeartbeat

    moment = datetime.now(timezone.utc)
    values = {"started_at": moment - timedelta(hours=1), "last_tick_at": moment - timedelta(seconds=10),
              "last_success_at": moment - timedelta(minutes=30), "pid": 1, "hostname": "test", **fields}
    with transaction(seed.engine) as session:
        session.merge(WorkerHeartbeat(id=1, **values))


def test_overview_warns_amber_while_the_exchange_fails(seed: Any, app: App) -> None:
    moment = datetime.now(timezone.utc)
    beat(seed, failing_since=moment - timedelta(minutes=3), waiting_signals=4, stuck_trades=1,
         last_error="SPOT BTCUSDT: user:secret@exchange.example refuses connections",
         last_error_at=moment - timedelta(seconds=5))
    at = ok(app("overview"))
    assert not at.error
    (warning,) = [w.value for w in at.warning]
    assert re.match(r"Worker last update \d+ s ago — the exchange has not been answering for 3 min: 4 new signals "
                    r"are waiting to be checked and 1 open trade is not being updated\. ", warning), warning
    assert "secret" not in warning  # the error itself may name a configured URL: the owner's page shows it
    assert not any("Worker last update" in c.value for c in at.caption)  # no green line


def test_overview_turns_red_after_ten_minutes_of_failing(seed: Any, app: App) -> None:
    beat(seed, failing_since=datetime.now(timezone.utc) - timedelta(minutes=11), waiting_signals=1)
    at = ok(app("overview"))
    assert not at.warning
    (error,) = [e.value for e in at.error]
    assert "the exchange has not been answering for 11 min: 1 new signal is waiting to be checked." in error


def test_overview_uses_the_one_stale_limit(seed: Any, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two minutes without a tick: stale by the default rule (3 × 30 s, at least 60 s), fresh
    under a deployment that says 600 s — the same setting `worker --check` reads."""
    beat(seed, last_tick_at=datetime.now(timezone.utc) - timedelta(minutes=2),
         last_success_at=datetime.now(timezone.utc) - timedelta(minutes=2))
    assert "the worker looks stopped" in ok(app("overview")).warning[0].value
    monkeypatch.setenv("SIGNALPROOF_WORKER_STALE_AFTER_SECONDS", "600")
    at = ok(app("overview"))
    assert not at.warning and any("Worker last update 2 min ago" in c.value for c in at.caption)


def test_overview_shows_since_when_auto_trading_is_paused(seed: Any, app: App) -> None:
    seed.heartbeat()
    paused_at = datetime(2026, 3, 4, 5, 6, tzinfo=timezone.utc)
    seed.settings(at=paused_at - timedelta(days=2), paused="true")
    seed.settings(at=paused_at - timedelta(days=1), paused="false")
    seed.settings(at=paused_at, paused="true")
    seed.settings(at=paused_at + timedelta(hours=1), stake_usd="50")
    at = ok(app("overview"))
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("Auto-trading is paused since 2026-03-04 05:06 UTC (")
    seed.settings(paused="false")
    assert not ok(app("overview")).warning


def test_the_methodology_shows_only_scheme_host_and_port_of_the_exchange_urls(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALPROOF_SPOT_API_URL", "https://alice:hunter2@spot.example:8443/v3/klines?key=SECRET123")
    monkeypatch.setenv("SIGNALPROOF_FUTURES_API_URL", "http://bob@futures.example/path#frag")
    at = ok(app("methodology"))
    shown = " ".join(m.value for m in at.markdown)
    for secret in ("alice", "hunter2", "SECRET123", "bob", "/v3/klines", "/path", "frag"):
        assert secret not in shown
    assert "spot from `https://spot.example:8443`, USDS-M futures from `http://futures.example`." in shown


def test_a_setting_changed_with_the_cli_is_logged_as_cli_not_the_servers_user(
        cli: Any, seed: Any, app: App) -> None:
    seed.settings(actor="cli:root", stake_usd="150")  # recorded by an older version: stays as it was
    cli("settings", "set", "stake_usd", "200")
    log = frame_with(ok(app("methodology")), "label")
    assert list(log["actor"]) == ["cli", "cli:root"]
    assert list(log["label"]) == ["stake_usd changed 150 → 200", "stake_usd changed 100 → 150"]
