"""The trade page (`/trade?trade=ID`), run headless with AppTest on SQLite and PostgreSQL, and once in
Chromium at desktop and phone widths.

What a visitor relies on: the levels drawn are the trade's own columns, the highlighted candle is the
one that decided it (its open time is the exit time), the same-candle case is said in words, text a
bot sent stays text, and a bad link gets a message and a way back, never a traceback.
"""

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from shared import candle_store
from shared.candles import Candle
from shared.database import transaction
from shared.models import Trade

UTC = timezone.utc
SITE = Path(__file__).resolve().parents[2] / "site"
T = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
FORMULA = "=cmd()|' /C calc'!A0"
UNESCAPED_MARKUP = re.compile(r"(?<!\\)<\s*/?\s*(script|img|b)\b|(?<!\\)\]\((?!trades\))", re.IGNORECASE)

Page = Callable[..., AppTest]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Page]:
    """Runs the trade page with `?trade=<value>` (or without it) against this test's database."""
    def run(trade: Any = None) -> AppTest:
        monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", database_url)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(SITE / "app_pages" / "trade.py"), default_timeout=60)
        if trade is not None:
            at.query_params["trade"] = str(trade)
        at.run()
        assert not at.exception, "\n".join(e.message for e in at.exception)
        return at

    yield run
    st.cache_data.clear()
    st.cache_resource.clear()


def walk(start: datetime, count: int, price: D, *, interval: timedelta = MINUTE,
         special: dict[datetime, tuple[D, D]] | None = None) -> list[Candle]:
    """A gentle series from `start`; `special` sets (high, low) of chosen candles."""
    candles = []
    for i in range(count):
        at = start + i * interval
        high, low = (special or {}).get(at, (price * D("1.001"), price * D("0.999")))
        candles.append(Candle(at, price, max(high, price), min(low, price), price))
    return candles


def store(seed: Any, symbol: str, interval: str, candles: list[Candle], market: str = "SPOT") -> None:
    with transaction(seed.engine) as session:
        candle_store.store([(market, symbol, interval, c) for c in candles], session=session)


def datasets(at: AppTest) -> list[pd.DataFrame]:
    (chart,) = at.get("vega_lite_chart")
    return [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]


def frame_with(frames: list[pd.DataFrame], column: str) -> pd.DataFrame | None:
    found = [f for f in frames if column in f.columns]
    assert len(found) <= 1
    return found[0] if found else None


def levels_drawn(at: AppTest) -> dict[str, float]:
    levels = frame_with(datasets(at), "level")
    assert levels is not None
    return dict(zip(levels["level"], levels["price"]))


def levels_table(at: AppTest) -> dict[str, str]:
    (table,) = [d.value for d in at.dataframe if list(d.value.columns) == ["level", "price"]]
    return dict(zip(table["level"], table["price"]))


def highlighted(at: AppTest) -> pd.Series | None:
    frame = frame_with(datasets(at), "drawn_open_time")
    return None if frame is None else frame.iloc[0]


def all_text(at: AppTest) -> list[str]:
    return [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error")
            for e in getattr(at, kind)] + [m.label for m in at.metric] + [m.value for m in at.metric]


def plain(value: D) -> str:
    return format(value.normalize(), "f")


def liquidation(trade: Trade) -> D:
    sign = 1 if trade.side == "LONG" else -1
    return trade.entry_price * (1 - sign * (D(1) / trade.leverage - trade.maintenance_margin_rate))


# --- every kind of trade: levels and the deciding candle -------------------------------------------

def closed_tp(seed: Any) -> Trade:
    trade = seed.trade(status="CLOSED_TP", signal_time=T, entry_price="60000", exit_time=T + 3 * HOUR)
    store(seed, "BTCUSDT", "1m", walk(T - 30 * MINUTE, 240, D(60000),
                                      special={T + 3 * HOUR: (D(63500), D(60100))}))
    return trade


def closed_sl(seed: Any) -> Trade:
    trade = seed.trade(status="CLOSED_SL", symbol="ETHUSDT", signal_time=T, entry_price="3000",
                       exit_time=T + 2 * HOUR)
    store(seed, "ETHUSDT", "1m", walk(T, 150, D(3000), special={T + 2 * HOUR: (D(3001), D(2900))}))
    return trade


def ambiguous(seed: Any) -> Trade:
    trade = seed.trade(status="CLOSED_SL", ambiguous=True, symbol="ETHBTC", signal_time=T, entry_price="0.05",
                       exit_time=T + 40 * MINUTE)
    store(seed, "ETHBTC", "1m", walk(T, 60, D("0.05"), special={T + 40 * MINUTE: (D("0.06"), D("0.04"))}))
    return trade


def liquidated(seed: Any) -> Trade:
    trade = seed.trade(status="LIQUIDATED", symbol="XRPUSDT", leverage=20, signal_time=T, entry_price="0.52",
                       exit_time=T + 90 * MINUTE)
    store(seed, "XRPUSDT", "1m", walk(T, 100, D("0.52"), special={T + 90 * MINUTE: (D("0.521"), D("0.49"))}),
          market="FUTURES")
    return trade


def cancelled(seed: Any) -> Trade:
    trade = seed.trade(status="CANCELLED", symbol="SOLUSDT", reason="entry beyond stop-loss/take-profit",
                       signal_time=T + 20 * MINUTE - timedelta(seconds=30), last_candle_time=T + 20 * MINUTE,
                       take_profit=D(155), stop_loss=D(145))  # the start candle opens at 160: beyond the target
    store(seed, "SOLUSDT", "1m", walk(T, 40, D(160)))
    return trade


def open_trade(seed: Any) -> Trade:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - 6 * HOUR
    trade = seed.trade(status="OPEN", symbol="BNBUSDT", signal_time=start, entry_price="600",
                       last_candle_time=start + 6 * HOUR - 2 * MINUTE)
    store(seed, "BNBUSDT", "1m", walk(start, 359, D(600)))
    seed.price("BNBUSDT", "612.5")
    return trade


def pending(seed: Any) -> Trade:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - 2 * HOUR
    trade = seed.trade(status="PENDING", symbol="ADAUSDT", signal_time=start, signal_entry=D("0.40"))
    store(seed, "ADAUSDT", "1m", walk(start, 100, D("0.45")))
    return trade


KINDS = {"take-profit": closed_tp, "stop-loss": closed_sl, "ambiguous": ambiguous, "liquidated": liquidated,
         "cancelled": cancelled, "open": open_trade, "pending": pending}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_chart_draws_the_trades_own_levels_and_deciding_candle(kind: str, seed: Any, page: Page) -> None:
    trade = KINDS[kind](seed)
    at = page(trade.id)
    assert at.title[0].value == f"Trade {trade.id}"

    expected: dict[str, D] = {"take-profit": trade.take_profit, "stop-loss": trade.stop_loss}
    if trade.entry_price is not None:
        expected["entry"] = trade.entry_price
    elif trade.signal_entry is not None:
        expected["limit entry"] = trade.signal_entry
    if trade.leverage > 1:
        expected["liquidation"] = liquidation(trade)
    if kind == "open":
        expected["latest price"] = D("612.5")
    assert levels_drawn(at) == pytest.approx({name: float(price) for name, price in expected.items()})
    table = levels_table(at)  # exact, as stored
    assert {k: v for k, v in table.items() if k != "exit"} == {name: plain(p) for name, p in expected.items()}
    if trade.exit_price is not None:
        assert table["exit"] == plain(trade.exit_price)

    mark = highlighted(at)
    deciding = trade.exit_time if trade.exit_time is not None else (
        trade.last_candle_time if kind == "cancelled" else None)
    if deciding is None:
        assert mark is None
    else:
        assert mark is not None and mark["open_time"] == pd.Timestamp(deciding)
        assert mark["close_time"] - mark["open_time"] == pd.Timedelta(minutes=1)
        candles = frame_with(datasets(at), "direction")
        assert candles is not None and pd.Timestamp(deciding) in set(candles["open_time"])

    markers = frame_with(datasets(at), "marker")
    shown = {} if markers is None else dict(zip(markers["marker"], markers["price"]))
    assert shown == pytest.approx({name: float(value) for name, value in
                                   (("entry", trade.entry_price), ("exit", trade.exit_price)) if value is not None})


def test_the_same_candle_case_is_said_in_words(seed: Any, page: Page) -> None:
    trade = ambiguous(seed)
    at = page(trade.id)
    (warning,) = at.warning
    words = re.sub(r"\\(.)", r"\1", warning.value)
    assert ("both the stop-loss and the take-profit were inside this candle, and the exchange's trades inside it "
            "could not be had: the order is unknown, so the stop-loss was recorded") in words
    decided = re.sub(r"\\(.)", r"\1", " ".join(m.value for m in at.markdown))
    assert "the 1m candle opening 2024-05-01 10:40 UTC (open 0.05, high 0.06, low 0.04, close 0.05)" in decided


def test_a_take_profit_names_its_candle_and_the_page_shows_the_outcome(seed: Any, page: Page) -> None:
    trade = closed_tp(seed)
    at = page(trade.id)
    text = re.sub(r"\\(.)", r"\1", " ".join(all_text(at)))
    assert "Take-profit: the 1m candle opening 2024-05-01 13:00 UTC" in text
    assert f"reached the take-profit {plain(trade.take_profit)}" in text
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Outcome"] == "take-profit"
    assert any("closed at the take-profit" in re.sub(r"\\(.)", r"\1", c.value) for c in at.caption)
    assert metrics["P/L"] == f"+${float(trade.pnl_usd):,.2f}"
    fills = [d.value for d in at.dataframe if "kind" in d.value.columns][0]
    assert list(fills["kind"]) == ["entry", "take-profit"]
    assert list(fills["price"]) == [plain(trade.entry_price), plain(trade.exit_price)]
    assert fills["fees_usd"].astype(float).sum() == pytest.approx(float(trade.fees_usd), abs=1e-4)
    assert list(fills["pnl_usd"]) == ["", f"+${float(trade.pnl_usd):,.2f}"]


def test_an_open_trade_is_marked_to_the_latest_stored_price(seed: Any, page: Page) -> None:
    trade = open_trade(seed)
    at = page(trade.id)
    metrics = {m.label: m.value for m in at.metric}
    fee = D("0.001") * 100
    unrealized = 100 * (D("612.5") - D(600)) / D(600) - fee * (1 + D("612.5") / D(600))
    assert metrics["Unrealized P/L"] == f"+${float(unrealized):,.2f}"
    assert metrics["P/L of stake"] == f"+{float(unrealized):.1f}%"
    assert any("612.5" in c.value for c in at.caption)  # "Latest stored price 612.5 (…)"
    candles = frame_with(datasets(at), "direction")
    assert candles is not None and candles["close_time"].max() >= pd.Timestamp(trade.signal_time + 5 * HOUR)


def test_a_catch_up_trade_is_drawn_on_its_coarse_candles_with_the_exact_candle_marked(seed: Any, page: Page) -> None:
    """Three days: the worker read 1h candles and 1m ones only in the hours where a level was near."""
    exit_time = T + timedelta(days=3, minutes=37)
    trade = seed.trade(status="CLOSED_TP", signal_time=T, entry_price="60000", exit_time=exit_time)
    store(seed, "BTCUSDT", "1h", walk(T, 80, D(60000), interval=HOUR, special={T + 72 * HOUR: (D(63500), D(59900))}))
    store(seed, "BTCUSDT", "1m", walk(T, 60, D(60000)) + walk(T + 72 * HOUR, 60, D(60000),
                                                               special={exit_time: (D(63500), D(60000))}))
    at = page(trade.id)
    candles = frame_with(datasets(at), "direction")
    assert candles is not None and set(candles["close_time"] - candles["open_time"]) == {pd.Timedelta(hours=1)}
    mark = highlighted(at)
    assert mark is not None and mark["open_time"] == pd.Timestamp(exit_time)
    assert (mark["drawn_open_time"], mark["drawn_close_time"]) == (pd.Timestamp(T + 72 * HOUR),
                                                                   pd.Timestamp(T + 73 * HOUR))
    assert any("1h candles" in c.value and "1m" in c.value for c in at.caption)


def test_a_long_life_is_aggregated_to_at_most_a_few_hundred_candles(seed: Any, page: Page) -> None:
    trade = seed.trade(status="CLOSED_SL", signal_time=T, entry_price="60000", exit_time=T + 30 * HOUR)
    minutes = walk(T, 30 * 60 + 1, D(60000), special={T + 30 * HOUR: (D(60001), D(58000))})
    store(seed, "BTCUSDT", "1m", minutes)
    at = page(trade.id)
    candles = frame_with(datasets(at), "direction")
    assert candles is not None and 50 <= len(candles) <= 240
    length = (candles["close_time"] - candles["open_time"]).iloc[0]
    assert length > pd.Timedelta(minutes=1)
    assert candles["high"].max() == pytest.approx(max(float(c.high) for c in minutes))
    assert candles["low"].min() == pytest.approx(58000)
    assert highlighted(at)["open_time"] == pd.Timestamp(trade.exit_time)


def test_no_candles_stored_says_so_and_still_lists_the_levels(seed: Any, page: Page) -> None:
    trade = seed.trade(status="CLOSED_TP", signal_time=T, entry_price="60000", exit_time=T + HOUR)
    at = page(trade.id)
    assert not list(at.get("vega_lite_chart"))
    assert any("No candles of this trade's life are stored" in i.value for i in at.info)
    assert levels_table(at) == {"entry": "60000", "take-profit": plain(trade.take_profit),
                                "stop-loss": plain(trade.stop_loss), "exit": plain(trade.exit_price)}


# --- hostile text and bad links --------------------------------------------------------------------

def test_hostile_note_source_and_id_stay_text(seed: Any, page: Page) -> None:
    trade = seed.trade(status="CLOSED_TP", signal_time=T, entry_price="60000", exit_time=T + HOUR, note=SCRIPT,
                       source=IMAGE, signal_id=FORMULA + " **bold** [x](javascript:alert(1))")
    store(seed, "BTCUSDT", "1m", walk(T, 70, D(60000)))
    at = page(trade.id)
    for value in all_text(at):
        assert not UNESCAPED_MARKUP.search(value), f"markup reaches Markdown unescaped: {value!r}"
    for element in (*at.markdown, *at.caption):
        assert not element.proto.allow_html
    assert [t.value for t in at.text] == [SCRIPT]  # the note, as plain text
    signal = [d.value for d in at.dataframe if "field" in d.value.columns and "source" in set(d.value["field"])][0]
    values = dict(zip(signal["field"], signal["value"]))
    assert values["source"] == IMAGE and values["id"] == trade.signal_id


@pytest.mark.parametrize("value", ["abc", "-1", "0", SCRIPT, "1e3", "1.5", " 1", "9" * 40, "１２", ""])
def test_a_malformed_id_gets_a_message_and_a_way_back(value: str, seed: Any, page: Page) -> None:
    closed_tp(seed)
    at = page(value)
    assert at.title[0].value == "Trade"
    messages = [w.value for w in (*at.warning, *at.info)]
    assert messages and all(SCRIPT not in m for m in messages)
    assert "[← All trades](trades)" in [m.value for m in at.markdown]
    assert not list(at.get("vega_lite_chart"))


def test_an_unknown_or_missing_id_gets_a_message_and_a_way_back(seed: Any, page: Page) -> None:
    closed_tp(seed)
    for at in (page(999_999), page()):
        assert at.title[0].value == "Trade"
        assert at.warning or at.info
        assert "[← All trades](trades)" in [m.value for m in at.markdown]
    assert "There is no trade 999999." in [w.value for w in page(999_999).warning]


def test_the_whole_app_serves_the_page(seed: Any, monkeypatch: pytest.MonkeyPatch,
                                                          database_url: str) -> None:
    trade = closed_tp(seed)
    monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", database_url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(SITE / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    at.query_params["trade"] = str(trade.id)
    at = at.switch_page("app_pages/trade.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == f"Trade {trade.id}"
    assert levels_drawn(at)["take-profit"] == pytest.approx(float(trade.take_profit))


# --- in Chromium, on a track record the worker filled -------------------------------------------------

WIDTHS = {"desktop": 1400, "phone": 390}


from tests.site.test_browser import chromium_path  # noqa: E402,F401  (the one Chromium fixture)


@pytest.mark.postgres
@pytest.mark.slow
def test_trade_pages_in_chromium_at_desktop_and_phone_width(chromium_path: Path, postgres_url: str,
                                                             exchange: Any, tmp_path: Path, candles_path: Path) -> None:
    """`signals import` + `worker --once` on the fake exchange fill the candle store; a take-profit, a
    stop-loss and (when there is one) a same-candle trade are opened at 1400 px and 390 px: the page
    renders without an error, the chart fits the screen, the menu does not list the page, and a
    hostile id gets a message. Screenshots: tests/artifacts/trade-*.png."""
    import csv
    import io

    from playwright.sync_api import sync_playwright

    from conftest import Cli
    from shared.database import upgrade
    from tests.site.test_browser import ARTIFACTS, CHROMIUM_ARGS, assert_no_error, running_site, wait_until_rendered
    from tests.worker.test_robustness import many_signals

    upgrade(postgres_url)
    cli = Cli(postgres_url, exchange.url, tmp_path)
    signals = tmp_path / "signals.csv"
    signals.write_text(many_signals(candles_path, 60, seed=5))
    cli("signals", "import", str(signals))
    cli("worker", "--once")
    exported = list(csv.DictReader(io.StringIO(cli("trades", "export").stdout)))
    chosen: dict[str, str] = {}
    for name, match in (("tp", lambda r: r["status"] == "CLOSED_TP"), ("sl", lambda r: r["status"] == "CLOSED_SL"
                                                                        and r["ambiguous"] == "false"),
                        ("same-candle", lambda r: r["ambiguous"] == "true")):
        found = next((r["trade_id"] for r in exported if match(r)), None)
        if found is not None:
            chosen[name] = found
    assert {"tp", "sl"} <= set(chosen), exported[:3]

    with running_site(cli, tmp_path / "site.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            for device, width in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": 900})
                page = context.new_page()
                page.set_default_timeout(20_000)
                for name, trade_id in chosen.items():
                    page.goto(f"{url}/trade?trade={trade_id}", wait_until="domcontentloaded")
                    wait_until_rendered(page, f"Trade {trade_id}")
                    assert_no_error(page, f"trade {trade_id} ({device})")
                    chart = page.locator('[data-testid="stVegaLiteChart"]')
                    assert chart.count() == 1
                    box = chart.bounding_box()
                    column = page.locator('[data-testid="stMainBlockContainer"] [data-testid="stVerticalBlock"]').first
                    content = column.bounding_box()
                    assert box is not None and content is not None
                    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, box  # nothing off the screen
                    assert box["width"] >= content["width"] - 2, f"the chart is narrower than the page: {box} {content}"
                    nav = page.locator('[data-testid="stSidebarNav"], [data-testid="stSidebarNavItems"]')
                    if nav.count():
                        items = [t.split("\n")[-1].strip() for t in nav.first.locator("a").all_inner_texts()]
                        assert "Trades" in items and "Trade" not in items, items
                    height = page.evaluate("""() => Math.max(...['[data-testid="stMain"]',
                        '[data-testid="stAppViewContainer"]'].map(s => document.querySelector(s))
                        .filter(Boolean).map(e => e.scrollHeight), document.documentElement.scrollHeight)""")
                    page.set_viewport_size({"width": width, "height": min(int(height), 8000)})
                    page.wait_for_timeout(600)
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / f"trade-{name}-{device}.png"), full_page=True)
                    page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{url}/trade?trade=%3Cscript%3Ealert(1)%3C%2Fscript%3E", wait_until="domcontentloaded")
                wait_until_rendered(page, "Trade")
                assert_no_error(page, f"hostile id ({device})")
                assert "not a trade number" in page.locator("body").inner_text()
                context.close()
        finally:
            browser.close()


# --- the chart's pure parts ----------------------------------------------------------------------------

from track_record import trade_chart  # noqa: E402


@pytest.mark.parametrize("counts,life,expected", [
    ({"1m": 60, "1h": 2}, 59 * MINUTE, "1m"),  # every minute stored: the trade's own interval
    ({"1m": 120, "1h": 73}, 72 * HOUR, "1h"),  # a catch-up: minutes only around entry and exit
    ({"1m": 10}, 72 * HOUR, "1m"),  # nothing better: what there is
    ({"1m": 10, "1h": 20}, 72 * HOUR, "1h"),  # the one covering most
    ({"5m": 100}, 72 * HOUR, "5m"),  # no 1m at all
    ({}, HOUR, None),
])
def test_which_stored_interval_is_drawn(counts: dict[str, int], life: timedelta, expected: str | None) -> None:
    assert trade_chart.choose_interval("1m", counts, T, T + life) == expected


def test_aggregated_candles_are_the_exchanges_buckets() -> None:
    minutes = walk(T + 58 * MINUTE, 5, D(10), special={T + 59 * MINUTE: (D(12), D(9)), T + 61 * MINUTE: (D(11), D(8))})
    hours = trade_chart.aggregate(minutes, "1h")
    assert [(c.open_time, c.high, c.low) for c in hours] == [(T, D(12), D(9)), (T + HOUR, D(11), D(8))]
    assert trade_chart.display_interval("1m", 30 * HOUR) == "15m"  # 120 candles, the first within 240
    assert trade_chart.display_interval("1m", 3 * HOUR) == "1m"


def test_the_chart_serializes_with_and_without_candles() -> None:
    levels = [("entry", D(100)), ("take-profit", D(110)), ("stop-loss", D(95)), ("liquidation", D(90))]
    drawn = trade_chart.series(walk(T, 30, D(100)), "1m", "1m", T, T + 29 * MINUTE)
    spec = trade_chart.trade_chart(drawn, levels, [("entry", T, D(100)), ("exit", T + 20 * MINUTE, D(110))],
                                   (T + 20 * MINUTE, MINUTE)).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rect", "rule", "rule", "bar", "rule", "text", "point"]
    empty = trade_chart.series([], None, "1m", T, T)
    assert empty.empty and "No candles" in empty.describe()
    assert trade_chart.trade_chart(empty, levels).to_dict()["layer"]
