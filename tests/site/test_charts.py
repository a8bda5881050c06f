"""Chart builders: serialized specs (validated by `to_dict()`), never a browser."""

import time
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import pytest

from track_record import charts

START = datetime(2024, 1, 1, tzinfo=UTC)


def make_curve(n: int = 6, *, seed: int = 1) -> pd.DataFrame:
    """A curve as the data layer builds it: a starting-balance row, then one row per closed trade."""
    rng = np.random.default_rng(seed)
    equity = 1000 + np.concatenate([[0.0], np.cumsum(rng.normal(0, 5, n - 1))])
    peak = np.maximum.accumulate(equity)
    return pd.DataFrame({
        "time": pd.date_range(START, periods=n, freq="h", tz="UTC"),
        "equity": equity,
        "drawdown_usd": peak - equity,
        "drawdown_pct": (peak - equity) / peak,
        "trade_id": pd.array([None, *range(1, n)], dtype="Int64"),
    })


def layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("layer", [spec])


def mark_types(spec: dict[str, Any]) -> list[str]:
    return [layer["mark"]["type"] for layer in layers(spec)]


def data_of(spec: dict[str, Any], layer: dict[str, Any]) -> list[dict[str, Any]]:
    # Altair lifts data shared by every layer up to the top-level spec.
    return spec["datasets"][layer.get("data", spec.get("data"))["name"]]


# -- equity -------------------------------------------------------------------------------

def test_equity_chart_is_a_step_line_on_a_utc_time_axis() -> None:
    spec = charts.equity_chart(make_curve()).to_dict()
    (line,) = layers(spec)
    assert line["mark"]["type"] == "line"
    assert line["mark"]["interpolate"] == "step-after"
    assert line["encoding"]["x"]["field"] == "time"
    assert line["encoding"]["x"]["scale"]["type"] == "utc"
    assert line["encoding"]["y"]["scale"]["zero"] is False
    assert line["encoding"]["y"]["axis"]["format"].startswith("$")
    assert [t["field"] for t in line["encoding"]["tooltip"]] == ["when", "equity", "trade"]
    assert spec["width"] == "container"


def test_equity_tooltips_name_the_starting_balance_and_show_utc() -> None:
    spec = charts.equity_chart(make_curve(3)).to_dict()
    rows = data_of(spec, layers(spec)[0])
    assert [r["trade"] for r in rows] == ["starting balance", "#1", "#2"]
    assert rows[0]["when"] == "2024-01-01 00:00 UTC"


def test_equity_optional_layers_appear_only_when_given() -> None:
    now = START + timedelta(days=1)
    full = charts.equity_chart(
        make_curve(),
        mark_to_market=(now, 1234.5),
        live_start=START + timedelta(hours=2),
        events=pd.DataFrame({"time": [START + timedelta(hours=3)], "label": ["stake changed 100 → 250"]}),
    ).to_dict()
    # the event: a dashed rule through the panel, a tick on its edge, its label along the rule
    assert mark_types(full) == ["line", "line", "point", "text", "rule", "text", "rule", "rule", "text"]
    texts = [data_of(full, layer)[0]["label"] for layer in layers(full) if layer["mark"]["type"] == "text"]
    assert texts == ["now (mark-to-market)", "live tracking starts", "stake changed 100 → 250"]
    assert layers(full)[-1]["encoding"]["text"]["field"] == "word"
    assert data_of(full, layers(full)[-1])[0]["word"] == "stake"
    dashed = layers(full)[1]
    assert dashed["mark"]["strokeDash"]
    segment = data_of(full, dashed)
    assert segment[0]["equity"] == pytest.approx(make_curve()["equity"].iloc[-1])
    assert segment[-1]["equity"] == 1234.5
    assert data_of(full, layers(full)[-1])[0]["label"] == "stake changed 100 → 250"
    # Every layer shares one x domain that reaches the mark-to-market time.
    domains = {tuple(layer["encoding"]["x"]["scale"]["domain"]) for layer in layers(full)}
    # ISO strings: Streamlit's renderer squashes a numeric (epoch ms) temporal domain.
    assert domains == {(START.isoformat(), now.isoformat())}

    assert mark_types(charts.equity_chart(make_curve(), live_start=START).to_dict()) == ["line", "rule", "text"]
    assert mark_types(charts.equity_chart(make_curve(), mark_to_market=(now, 1.0)).to_dict()) == ["line", "line", "point", "text"]


def test_equity_chart_ignores_an_empty_events_frame() -> None:
    spec = charts.equity_chart(make_curve(), events=pd.DataFrame(columns=["time", "label"])).to_dict()
    assert mark_types(spec) == ["line"]


def test_equity_chart_downsamples_a_long_curve() -> None:
    spec = charts.equity_chart(make_curve(50_000)).to_dict()
    assert len(data_of(spec, layers(spec)[0])) <= 2002


# -- drawdown -----------------------------------------------------------------------------

def test_drawdown_chart_is_a_red_step_area_below_zero() -> None:
    curve = make_curve(20)
    spec = charts.drawdown_chart(curve).to_dict()
    assert spec["mark"]["type"] == "area"
    assert spec["mark"]["interpolate"] == "step-after"
    assert spec["mark"]["color"] == charts.RED
    assert spec["encoding"]["y"]["axis"]["format"].endswith("%")
    assert spec["height"] == charts.DRAWDOWN_HEIGHT
    assert spec["encoding"]["y"]["stack"] is None  # rows sharing a close time must not add up
    values = [r["underwater"] for r in data_of(spec, spec)]
    assert values == pytest.approx(list(-curve["drawdown_pct"]))
    assert max(values) <= 0


def test_drawdown_chart_lines_up_with_the_equity_chart() -> None:
    curve, now = make_curve(), START + timedelta(days=2)
    equity = charts.equity_chart(curve, mark_to_market=(now, 1.0)).to_dict()
    drawdown = charts.drawdown_chart(curve, until=now).to_dict()
    assert drawdown["encoding"]["x"] == layers(equity)[0]["encoding"]["x"]
    assert drawdown["encoding"]["y"]["axis"]["minExtent"] == layers(equity)[0]["encoding"]["y"]["axis"]["minExtent"]


# -- monthly heatmap ----------------------------------------------------------------------

def test_monthly_heatmap_months_in_calendar_order_diverging_around_zero() -> None:
    monthly = pd.DataFrame({"year": [2025, 2024, 2024], "month": [2, 12, 1],
                            "pnl_usd": [-40.0, 12.5, 80.0], "return_pct": [-0.04, 0.0125, float("nan")]})
    spec = charts.monthly_heatmap(monthly).to_dict()
    assert mark_types(spec) == ["rect", "text"]
    rect = layers(spec)[0]["encoding"]
    # only the months the record has, in calendar order: no grid of empty months
    assert rect["x"]["sort"] == ["Jan", "Feb", "Dec"]
    assert rect["x"]["scale"]["domain"] == rect["x"]["sort"]
    assert rect["y"]["field"] == "year"
    assert rect["color"]["scale"]["domainMid"] == 0
    assert rect["color"]["scale"]["range"][0] == charts.RED and rect["color"]["scale"]["range"][-1] == charts.GREEN
    # colour and text say the return (%), the tooltip adds the $
    assert rect["color"]["field"] == "return_pct" and rect["color"]["scale"]["domain"] == [-0.04, 0.04]
    assert any(t["field"] == "money" and t["title"] == "P/L" for t in rect["tooltip"])
    rows = data_of(spec, spec)
    assert [(r["year"], r["month"], r["label"]) for r in rows] == [
        ("2025", "Feb", "-4.0%"), ("2024", "Dec", "+1.2%"), ("2024", "Jan", "")]


# -- histograms ---------------------------------------------------------------------------

def test_pnl_histogram_colours_bars_by_sign_and_never_mixes_them() -> None:
    trades = pd.DataFrame({"pnl_usd": [-12.0, -0.01, 0.0, 0.01, 3.0, 40.0, 40.0]})
    spec = charts.pnl_histogram(trades).to_dict()
    assert spec["mark"]["type"] == "bar"
    colour = spec["encoding"]["color"]
    assert colour["field"] == "outcome"
    assert dict(zip(colour["scale"]["domain"], colour["scale"]["range"])) == {
        "win": charts.GREEN, "loss": charts.RED, "flat": charts.GREY}
    assert spec["encoding"]["x2"]["field"] == "end"
    rows = data_of(spec, spec)
    assert sum(r["trades"] for r in rows) == len(trades)
    assert {r["outcome"] for r in rows if r["end"] <= 0} == {"loss"}
    assert {r["outcome"] for r in rows if r["start"] > 0} == {"win"}
    assert [r["trades"] for r in rows if r["outcome"] == "flat"] == [1]


def test_pnl_histogram_of_a_million_trades_sends_only_bins() -> None:
    trades = pd.DataFrame({"pnl_usd": np.random.default_rng(3).normal(0, 20, 1_000_000)})
    spec = charts.pnl_histogram(trades).to_dict()
    rows = data_of(spec, spec)
    assert len(rows) <= 2 * (charts.MAX_BINS + 2)
    assert sum(r["trades"] for r in rows) == 1_000_000


def test_duration_histogram_is_binned_on_a_log_axis() -> None:
    trades = pd.DataFrame({"duration_hours": [0.0, 0.1, 1.0, 1.2, 30.0, 24 * 40]})
    spec = charts.duration_histogram(trades).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["title"] == "hours in trade"
    assert spec["encoding"]["x"]["scale"]["type"] == "log"
    assert spec["encoding"]["y2"] == {"datum": 0}  # bars from 0, not dashes (x and x2 are both given)
    rows = data_of(spec, spec)
    assert sum(r["trades"] for r in rows) == len(trades)
    assert len(rows) <= charts.MAX_BINS + 1
    assert all(0 < r["start"] < r["end"] for r in rows)
    assert all(r["start"] <= 1.0 < r["end"] for r in rows if "1 h" in r["range"].split(" to ")[0])


# -- bars ---------------------------------------------------------------------------------

def test_bar_by_sorts_descending_and_colours_by_sign() -> None:
    frame = pd.DataFrame({"symbol": ["BTCUSDT", "<b>ETH</b>", "SOLUSDT"], "pnl_usd": [5.0, -3.0, 0.0]})
    spec = charts.bar_by(frame, category="symbol", value="pnl_usd", title="P/L by symbol").to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["title"] == "P/L by symbol"
    assert spec["encoding"]["y"] == {"field": "symbol", "sort": "-x", "title": None, "type": "nominal"}
    assert spec["encoding"]["x"]["axis"]["format"] == "$,.2f"
    colour = spec["encoding"]["color"]
    assert [c["value"] for c in colour["condition"]] == [charts.GREEN, charts.RED]
    assert colour["value"] == charts.GREY
    # Symbols travel as data, untouched (Vega draws them as text).
    assert [r["symbol"] for r in data_of(spec, spec)] == ["BTCUSDT", "<b>ETH</b>", "SOLUSDT"]


def test_bar_by_counts_use_the_accent_colour() -> None:
    frame = pd.DataFrame({"status": ["tp", "sl"], "trades": [7, 3]})
    spec = charts.bar_by(frame, category="status", value="trades", title="Exits", value_format=",d",
                         colour_by_sign=False).to_dict()
    assert spec["encoding"]["color"] == {"value": charts.ACCENT}
    assert spec["encoding"]["x"]["axis"]["format"] == ",d"


# -- empty frames -------------------------------------------------------------------------

EMPTY_CURVE = make_curve().iloc[:0]

EMPTY_CASES = [
    pytest.param(lambda f: charts.equity_chart(f), id="equity"),
    pytest.param(lambda f: charts.equity_chart(f, mark_to_market=(START, 1.0), live_start=START,
                                               events=pd.DataFrame()), id="equity-with-extras"),
    pytest.param(charts.drawdown_chart, id="drawdown"),
    pytest.param(charts.monthly_heatmap, id="heatmap"),
    pytest.param(charts.pnl_histogram, id="pnl"),
    pytest.param(charts.duration_histogram, id="duration"),
    pytest.param(lambda f: charts.bar_by(f, category="symbol", value="pnl_usd", title="t"), id="bar_by"),
]


@pytest.mark.parametrize("build", EMPTY_CASES)
@pytest.mark.parametrize("frame", [pd.DataFrame(), EMPTY_CURVE], ids=["no-columns", "typed"])
def test_every_builder_serializes_an_empty_frame(build: Any, frame: pd.DataFrame) -> None:
    chart = build(frame)
    assert isinstance(chart, alt.TopLevelMixin)
    spec = chart.to_dict()
    assert all(layer["mark"] for layer in layers(spec))


def test_equity_chart_of_only_the_starting_balance() -> None:
    spec = charts.equity_chart(make_curve(1)).to_dict()
    assert "domain" not in layers(spec)[0]["encoding"]["x"]["scale"]


# -- downsample ---------------------------------------------------------------------------

def test_downsample_leaves_a_short_curve_alone() -> None:
    curve = make_curve(50)
    pd.testing.assert_frame_equal(charts.downsample(curve), curve)


def test_downsample_a_million_trades_keeps_the_shape_fast() -> None:
    curve = make_curve(1_000_000, seed=7)
    started = time.perf_counter()
    small = charts.downsample(curve, max_points=2000)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5
    assert len(small) <= 2002
    assert len(small) > 1000  # buckets are evenly filled here, so most of the budget is used
    assert small["time"].is_monotonic_increasing
    for row in (curve.iloc[0], curve.iloc[-1], curve.loc[curve["equity"].idxmin()],
                curve.loc[curve["equity"].idxmax()], curve.loc[curve["drawdown_pct"].idxmax()]):
        assert ((small["time"] == row["time"]) & (small["equity"] == row["equity"])).any()


def test_downsample_keeps_the_deepest_drawdown_even_when_it_is_not_a_bucket_low() -> None:
    # In one bucket: an early low of 90 (10 % under 100), then a climb to 200 and a fall to 150
    # (25 % under 200). Min/max equity alone would keep 90 and 200 and hide the worse drawdown.
    equity = np.array([100.0, 90.0, 200.0, 150.0] + [150.0] * 20)
    peak = np.maximum.accumulate(equity)
    curve = pd.DataFrame({"time": pd.date_range(START, periods=len(equity), freq="min", tz="UTC"),
                          "equity": equity, "drawdown_usd": peak - equity, "drawdown_pct": (peak - equity) / peak,
                          "trade_id": pd.array(range(len(equity)), dtype="Int64")})
    small = charts.downsample(curve, max_points=5)
    assert small["drawdown_pct"].max() == pytest.approx(0.25)
    assert len(small) <= 5


def test_downsample_sorts_an_unsorted_curve() -> None:
    curve = make_curve(5000).sample(frac=1, random_state=2)
    small = charts.downsample(curve, max_points=100)
    assert small["time"].is_monotonic_increasing
    assert small["time"].iloc[0] == curve["time"].min() and small["time"].iloc[-1] == curve["time"].max()


def test_the_curve_chart_sends_the_curve_once_for_both_panels() -> None:
    curve = make_curve(500)
    spec = charts.curve_chart(curve, mark_to_market=(START + timedelta(days=600), 1.0), live_start=START,
                              events=pd.DataFrame({"time": [START + timedelta(days=3)], "label": ["a change"]})).to_dict()
    sizes = sorted(len(rows) for rows in spec["datasets"].values())
    assert sizes.count(len(charts.downsample(curve))) == 1  # the curve's points: one copy, used by both panels
    assert spec["resolve"]["scale"]["y"] == "independent"
    equity, drawdown = spec["layer"]
    assert drawdown["encoding"]["y"]["field"] == "underwater"
    # The panels split the plot's height: equity on top, drawdown below it, never overlapping.
    assert drawdown["encoding"]["y"]["scale"]["range"][0] == {"expr": "height"}
    assert equity["layer"][0]["encoding"]["y"]["scale"]["range"][1] == 0


# -- the crosshair, the benchmark, daily P/L, outcome colours --------------------------------

def test_the_curve_has_a_crosshair_on_the_nearest_point_with_date_equity_and_trade() -> None:
    spec = charts.curve_chart(make_curve()).to_dict()
    equity_panel = spec["layer"][0]["layer"]
    [param] = spec["params"]  # Altair lifts a layer's selection to the top, naming its view
    [hover] = [layer for layer in equity_panel if layer.get("name") in param["views"]]
    assert param["select"]["nearest"] is True and param["select"]["on"] == "pointerover"
    assert [t["field"] for t in hover["encoding"]["tooltip"]] == ["when", "equity", "drawdown_pct", "trade"]
    rules = [layer for layer in equity_panel if layer["mark"]["type"] == "rule"]
    assert any(r["encoding"]["y2"]["value"] == {"expr": "height"} for r in rules)  # through both panels


def test_the_return_chart_draws_the_record_and_btc_in_percent() -> None:
    record = pd.DataFrame({"time": [START, START + timedelta(days=1)], "return": [0.0, 0.02]})
    btc = pd.DataFrame({"time": [START, START + timedelta(days=1)], "return": [0.0, -0.05]})
    spec = charts.return_chart(record, btc).to_dict()
    rows = spec["datasets"][spec["data"]["name"]]
    assert {r["series"] for r in rows} == {"this record (realized)", "BTCUSDT buy-and-hold"}
    assert spec["encoding"]["y"]["axis"]["format"].endswith("%")
    assert charts.return_chart(pd.DataFrame(), pd.DataFrame()).to_dict()  # empty is still valid


def test_daily_pnl_bars_are_coloured_by_sign_and_outcomes_by_outcome() -> None:
    daily = pd.DataFrame({"day": [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")], "pnl_usd": [3.0, -2.0]})
    spec = charts.daily_pnl_chart(daily).to_dict()
    colours = json.dumps(spec["encoding"]["color"])
    assert charts.GREEN in colours and charts.RED in colours
    outcomes = pd.DataFrame({"reason": ["Stop-loss", "Take-profit"], "trades": [4, 3]})
    bars = charts.bar_by(outcomes, category="reason", value="trades", title="x", colours=charts.OUTCOME_BAR_COLOURS)
    scale = bars.to_dict()["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == {"Take-profit": charts.GREEN, "Stop-loss": charts.RED}
