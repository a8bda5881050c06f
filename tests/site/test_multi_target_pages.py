"""Multi-target trades on the public site (issue #14), run headless with AppTest on SQLite and
PostgreSQL: "targets hit" per trade ("2/3") in every trade table and the trade page, the hit rate
of each target on Analytics (for the period and the live-only switch), and the Methodology's
"Several targets" section with the settings in force.

The expected numbers are recomputed here from what the test seeded (the exits it gave each
trade), not read back through the site's queries.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

UTC = timezone.utc
SITE = Path(__file__).resolve().parents[2] / "site"
Run = Callable[..., AppTest]
HOSTILE = "<script>alert(1)</script> **x** [y](javascript:alert(1))"


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Run]:
    """Runs one public page with these query parameters."""
    def run(name: str, **params: str) -> AppTest:
        monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", database_url)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(SITE / "app_pages" / f"{name}.py"), default_timeout=60)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, "\n".join(e.message for e in at.exception)
        return at

    yield run
    st.cache_data.clear()
    st.cache_resource.clear()


@dataclass
class Seeded:
    """One seeded trade and what the test knows of it: its parts and the targets its exits reached."""

    trade: Any
    parts: int
    reached: tuple[int, ...]  # target numbers with a tpK fill
    closed: bool
    exited: datetime | None


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def record_with_splits(seed: Any) -> list[Seeded]:
    """Split and single trades: every target reached, the first reached then stopped out (a loss),
    a short moved to break-even, a backfilled split, one exited 40 days ago, an open split with
    its first target in, a cancelled split, and single-target trades (hit and missed)."""
    start = now() - timedelta(days=10)
    day = timedelta(days=1)
    seeded: list[Seeded] = []

    def split(targets: list[str], shares: list[str], exits: list[tuple[str, str]], **over: Any) -> None:
        trade = seed.split(targets, shares, exits, **over)
        reached = tuple(int(kind[2:]) for kind, _ in exits if kind.startswith("tp"))
        closed = trade.exit_time is not None
        seeded.append(Seeded(trade, len(shares), reached, closed, trade.exit_time))

    def single(status: str, **over: Any) -> None:
        trade = seed.trade(status=status, **over)
        closed = trade.exit_time is not None
        seeded.append(Seeded(trade, 1, (1,) if status == "CLOSED_TP" else (), closed, trade.exit_time))

    third = ["0.333333333333333333", "0.333333333333333333", "0.333333333333333334"]
    split(["61200", "62400", "63600"], third, [("tp1", "61200"), ("tp2", "62400"), ("tp3", "63600")],
          symbol="BTCUSDT", entry_price="60000", stop_loss="58200", signal_time=start)
    # TP1 reached, the rest stopped out: reached a target and still lost overall.
    split(["3060", "3120", "3180"], ["0.5", "0.3", "0.2"], [("tp1", "3060"), ("sl", "2910")], tp_split="50,30,20",
          symbol="ETHUSDT", entry_price="3000", stop_loss="2910", signal_time=start + day)
    split(["95", "90"], ["0.5", "0.5"], [("tp1", "95"), ("sl", "100")], stop_after_tp="breakeven", side="SHORT",
          symbol="SOLUSDT", entry_price="100", stop_loss="103", signal_time=start + 2 * day)
    split(["0.53", "0.54"], ["0.5", "0.5"], [("sl", "0.5")], symbol="XRPUSDT", entry_price="0.52",
          stop_loss="0.5", signal_time=start + 3 * day)
    split(["61200", "62400"], ["0.5", "0.5"], [("tp1", "61200"), ("tp2", "62400")], origin="backfill",
          symbol="BTCUSDT", entry_price="60000", stop_loss="58200", signal_time=start - 20 * day)
    split(["3060", "3120", "3180", "3240"], ["0.25", "0.25", "0.25", "0.25"], [("tp1", "3060"), ("sl", "2990")],
          symbol="ETHUSDT", entry_price="3000", stop_loss="2990", signal_time=start - 30 * day)
    split(["65000", "66000", "67000"], third, [("tp1", "65000")], symbol="BTCUSDT", entry_price="64000",
          stop_loss="62000", signal_time=now() - timedelta(hours=6))
    split(["160", "170"], ["0.5", "0.5"], [], status="CANCELLED", reason="entry not reached", symbol="SOLUSDT",
          signal_time=start + 4 * day, signal_entry="150", entry_mode="limit")
    single("CLOSED_TP", symbol="ADAUSDT", entry_price="0.4", signal_time=start + 5 * day)
    single("CLOSED_SL", symbol="ADAUSDT", entry_price="0.41", signal_time=start + 6 * day)
    seed.price("BTCUSDT", "64800")
    seed.heartbeat()
    return seeded


def expected_rates(seeded: list[Seeded], *, live_only: bool = False, since: datetime | None = None) -> pd.DataFrame:
    """Per target k: closed trades (in scope, by exit time) with at least k parts, how many reached
    target k, how many of those lost overall."""
    scoped = [s for s in seeded if s.closed and (not live_only or s.trade.origin == "live")
              and (since is None or s.exited >= since)]
    rows = []
    for k in range(1, max((s.parts for s in scoped), default=0) + 1):
        having = [s for s in scoped if s.parts >= k]
        reached = [s for s in having if k in s.reached]
        rows.append({"target": f"Target {k}", "trades": len(having), "reached": len(reached),
                     "rate": 100 * len(reached) / len(having),
                     "reached_lost": sum(1 for s in reached if s.trade.pnl_usd < 0)})
    return pd.DataFrame(rows)


def label(s: Seeded) -> str | None:
    return None if s.trade.status == "CANCELLED" else f"{len(s.reached)}/{s.parts}"


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def ids(values: Any) -> list[int]:
    return [int(re.fullmatch(r"trade\?trade=(\d+)", str(v)).group(1)) for v in values]  # type: ignore[union-attr]


def rate_table(at: AppTest) -> pd.DataFrame | None:
    found = [d.value for d in at.dataframe if "reached_lost" in d.value.columns]
    return found[0].reset_index(drop=True) if found else None


def texts(at: AppTest) -> str:
    found = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "warning")
             for e in getattr(at, kind)]
    return "\n".join(found)


# --- targets hit per trade ----------------------------------------------------------------------

def test_every_trade_table_says_targets_hit_of_parts(seed: Any, page: Run) -> None:
    seeded = record_with_splits(seed)
    by_id = {s.trade.id: s for s in seeded}

    at = page("trades")
    history = frame_with(at, "signal_id")
    assert list(history.columns).index("targets_hit") == list(history.columns).index("pnl_pct") + 1
    shown = dict(zip(ids(history["id"]), history["targets_hit"]))
    assert set(shown) == set(by_id)
    for trade_id, value in shown.items():
        expected = label(by_id[trade_id])
        assert (value if expected is not None else (None if pd.isna(value) else value)) == expected, trade_id
    assert shown[seeded[0].trade.id] == "3/3" and shown[seeded[1].trade.id] == "1/3"
    assert shown[seeded[-1].trade.id] == "0/1" and shown[seeded[-2].trade.id] == "1/1"

    positions = frame_with(at, "unrealized_usd")
    open_split = seeded[6]
    assert dict(zip(ids(positions["trade_id"]), positions["targets_hit"])) == {open_split.trade.id: "1/3"}
    assert list(positions["entry_price"]) == [64000] and list(positions["take_profit"]) == [66000]  # the next target

    recent = frame_with(page("overview"), "exit_time")
    recent_shown = dict(zip(ids(recent["trade_id"]), recent["targets_hit"]))
    assert recent_shown and all(recent_shown[i] == label(by_id[i]) for i in recent_shown)


def test_the_trade_page_header_says_targets_hit(seed: Any, page: Run) -> None:
    seeded = record_with_splits(seed)
    at = page("trade", trade=str(seeded[1].trade.id))
    outcome = [m for m in at.metric if m.label == "Outcome"][0]
    assert (outcome.value, outcome.delta) == ("stop-loss", "1/3 targets hit")
    at = page("trade", trade=str(seeded[0].trade.id))
    assert [m.delta for m in at.metric if m.label == "Outcome"] == ["3/3 targets hit"]
    at = page("trade", trade=str(seeded[-2].trade.id))  # one target: nothing to count
    assert [m.delta for m in at.metric if m.label == "Outcome"] in ([None], [""])


def test_a_single_target_record_has_no_targets_column_and_no_hit_rates(seeded_database: Any, page: Run) -> None:
    at = page("trades")
    assert "targets_hit" not in frame_with(at, "signal_id").columns
    assert "targets_hit" not in frame_with(at, "unrealized_usd").columns
    assert "targets_hit" not in frame_with(page("overview"), "exit_time").columns
    at = page("analytics")
    assert rate_table(at) is None and "Targets reached" not in [s.value for s in at.subheader]


# --- hit rates per target -------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["all", "live", "30d", "30d-live"])
def test_analytics_hit_rates_per_target_follow_the_scope(scope: str, seed: Any, page: Run) -> None:
    seeded = record_with_splits(seed)
    params = {"all": {}, "live": {"live": "1"}, "30d": {"range": "30d"}, "30d-live": {"range": "30d", "live": "1"}}
    today = now().replace(hour=0, minute=0, second=0)
    since = today - timedelta(days=29) if scope.startswith("30d") else None
    expected = expected_rates(seeded, live_only="live" in scope, since=since)
    at = page("analytics", **params[scope])
    shown = rate_table(at)
    assert shown is not None
    pd.testing.assert_frame_equal(shown[["target", "trades", "reached", "rate", "reached_lost"]], expected,
                                  check_dtype=False)
    assert "**This is not the win rate**" in texts(at)
    # The reason it is not: a trade reached target 1 and still lost.
    assert expected.loc[0, "reached_lost"] >= 1
    wins = sum(1 for s in seeded if s.closed and s.trade.pnl_usd > 0 and (since is None or s.exited >= since)
               and ("live" not in scope or s.trade.origin == "live"))
    closed = len([s for s in seeded if s.closed and (since is None or s.exited >= since)
                  and ("live" not in scope or s.trade.origin == "live")])
    first = expected.loc[0]
    caption = (f"Target 1 was reached by {first['rate']:.1f}% of {first['trades']} trades; the win rate of the "
               f"period is {100 * wins / closed:.1f}%.")
    assert caption in texts(at)


def test_hit_rates_hide_when_no_trade_of_the_period_was_split(seed: Any, page: Run) -> None:
    record_with_splits(seed)
    # Custom days with only the single-target trades' exits (day 5 and 6 after the start, + 5 h).
    first = (now() - timedelta(days=5)).date()
    at = page("analytics", range="custom", **{"from": first.isoformat(), "to": (first + timedelta(days=1)).isoformat()})
    assert rate_table(at) is None


def test_hostile_text_in_a_split_trade_stays_text(seed: Any, page: Run) -> None:
    trade = seed.split(["61200", "62400"], ["0.5", "0.5"], [("tp1", "61200"), ("sl", "60000")], note=HOSTILE,
                       source=HOSTILE, signal_id="=cmd()|' /C calc'!A0", entry_price="60000", stop_loss="58200",
                       signal_time=now() - timedelta(days=2))
    at = page("trades")
    history = frame_with(at, "signal_id")
    assert list(history["targets_hit"]) == ["1/2"] and list(history["source"]) == [HOSTILE]
    at = page("trade", trade=str(trade.id))
    assert [m.delta for m in at.metric if m.label == "Outcome"] == ["1/2 targets hit"]
    assert "<script>" not in "\n".join(m.value for m in at.markdown)


# --- Methodology ------------------------------------------------------------------------------

def test_methodology_explains_the_split_and_stop_rules_in_force(seed: Any, page: Run) -> None:
    seed.heartbeat()
    at = page("methodology")
    words = texts(at)
    assert "Several targets" in [s.value for s in at.subheader]
    assert "now ***single*: one exit, at one target**" in words
    assert "now\n**none**" in words
    assert "With *single*, `stop_after_tp` does nothing" in words

    seed.settings(tp_split="50,30,20", stop_after_tp="trailing", take_profit_target="2")
    words = texts(page("methodology"))
    assert "now **the percentages 50,30,20 over the first targets**" in words
    assert "now\n**trailing**" in words
    assert "exits at target 2 (the\n  `take_profit_target` setting)" in words

    seed.settings(tp_split="even")
    assert "now ***even*: split equally over all the targets**" in texts(page("methodology"))


def test_the_rules_document_has_the_several_targets_section() -> None:
    text = (SITE.parent / "docs" / "trade-rules.md").read_text()
    section = text.split("## Several targets", 1)[1].split("\n## ", 1)[0]
    for words in ("`tp_split`", "`single`", "`even`", "`50,30,20`", "`stop_after_tp`", "`breakeven`", "`trailing`",
                  "changes nothing", "not the win rate"):
        assert words in section, words


# --- in Chromium, at desktop and phone widths ---------------------------------------------------

@pytest.mark.slow
def test_split_trades_in_chromium(seed: Any, database_url: str, exchange: Any, tmp_path: Path) -> None:
    """The served site (`signalproof site`) on a record with split trades: the Trades history has
    its "Targets hit" column, Analytics its hit-rate table and the warning that it is not the win
    rate, Methodology its section; no page shows an error, and each is saved as a screenshot
    (tests/artifacts/multi-target-*.png)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("once, on PostgreSQL")
    from conftest import Cli
    from tests.site.test_browser import (
        CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, PHONE, VIEWPORT, assert_no_error, running_site, screenshot,
        wait_until_rendered,
    )

    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    seeded = record_with_splits(seed)
    expected = expected_rates(seeded)
    cli = Cli(database_url, exchange.url, tmp_path)
    with running_site(cli, tmp_path / "site.log") as site, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for viewport in (VIEWPORT, PHONE):
                page = browser.new_page(viewport=viewport)
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                for path, heading in (("trades", "Trades"), ("analytics", "Analytics"), ("methodology", "Methodology")):
                    page.goto(f"{site}/{path}", wait_until="domcontentloaded")
                    wait_until_rendered(page, heading)
                    name = f"multi-target-{path}-{viewport['width']}"
                    assert_no_error(page, name)
                    body = page.locator("body").inner_text()
                    if path == "trades":
                        # (a phone's grid lists only the columns in view: the header is checked at 1400 px)
                        headers = [(c.text_content() or "").strip() for c in
                                   page.locator('[data-testid="stDataFrame"]').nth(1).locator('[role="columnheader"]').all()]
                        assert "Targets hit" in headers or viewport is not VIEWPORT, headers
                    elif path == "analytics":
                        assert "Targets reached" in body and "This is not the win rate" in body
                        grid = page.locator('[data-testid="stDataFrame"]').filter(
                            has=page.locator('[role="columnheader"]', has_text="Reached, still lost"))
                        cells = [(c.text_content() or "").strip() for c in grid.locator('[role="gridcell"]').all()]
                        first = expected.loc[0]  # (the grid's accessible cells carry raw values)
                        assert cells[:3] + cells[4:5] == ["Target 1", str(first["trades"]), str(first["reached"]),
                                                          str(first["reached_lost"])], cells
                        assert float(cells[3]) == pytest.approx(first["rate"]), cells
                    else:
                        assert "Several targets" in body and "does nothing" in body
                    screenshot(page, name, viewport)
                page.close()
        finally:
            browser.close()
