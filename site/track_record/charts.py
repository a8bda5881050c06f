"""Chart builders for the public site: plain DataFrames in, Altair charts out.

No Streamlit and no database here, so every chart is tested by serializing it (`to_dict()`
validates against the Vega-Lite schema) without a browser.

Every builder accepts an empty frame (even one with no columns) and returns a valid chart
with no marks drawn; the page still decides whether to show a friendly empty state instead.

Large histories are reduced here before they reach the browser: curves are downsampled and
histograms are binned in pandas, so a chart carries at most a few thousand rows whatever the
number of trades. Text from the data (symbols, event labels) only ever travels as data
fields, which Vega renders as text, never as HTML.
"""

from datetime import datetime
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

GREEN = "#2f9e6e"
RED = "#d0505c"
GREY = "#9aa1a9"
ACCENT = "#3a6ea5"
INK = "#2b3138"

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
OUTCOMES = ("win", "loss", "flat")
OUTCOME_COLOURS = (GREEN, RED, GREY)

EQUITY_HEIGHT = 300
DRAWDOWN_HEIGHT = 140
PANEL_GAP = 24  # between the equity and drawdown panels of `curve_chart`
# The equity and drawdown charts are shown one above the other; a common minimum y-axis width
# keeps their plot areas (and so their time axes) aligned despite "$12,345" vs "-12%" labels.
Y_AXIS_WIDTH = 64
MAX_BINS = 40
SHORTEST_DURATION_HOURS = 1 / 60  # a log axis cannot show 0: faster exits count as 1 minute

CURVE_COLUMNS = ("time", "equity", "drawdown_usd", "drawdown_pct", "trade_id")


def downsample(curve: pd.DataFrame, max_points: int = 2000) -> pd.DataFrame:
    """At most `max_points` rows of `curve`, in time order, that still draw the same shape.

    Time is cut into equal buckets (about one per pixel column); each bucket keeps the rows of
    its lowest and highest equity and of its deepest drawdown, and the first and last rows are
    always kept. Keeping per-bucket extremes (rather than every n-th row) means the global
    peak, trough and maximum drawdown survive, so the chart never looks better than the data.
    """
    frame = curve.reset_index(drop=True)
    if len(frame) <= max_points:
        return frame
    times = pd.DatetimeIndex(pd.to_datetime(frame["time"], utc=True))
    if not times.is_monotonic_increasing:
        order = np.argsort(times.asi8, kind="stable")
        frame, times = frame.take(order).reset_index(drop=True), times[order]
    extremes = [("equity", "idxmin"), ("equity", "idxmax")]
    if "drawdown_pct" in frame:
        extremes.append(("drawdown_pct", "idxmax"))
    buckets = max(1, (max_points - 2) // len(extremes))
    offsets = times.asi8 - times.asi8[0]  # in the column's own unit (ns or us): only ratios matter
    span = max(int(offsets[-1]), 1)
    bucket = np.minimum((offsets / span * buckets).astype(np.int64), buckets - 1)
    keep = [np.array([0, len(frame) - 1])]
    for column, pick in extremes:
        keep.append(getattr(frame[column].groupby(bucket, sort=False), pick)().to_numpy())
    rows = np.unique(np.concatenate(keep))
    return frame.take(rows).reset_index(drop=True)


def equity_chart(curve: pd.DataFrame, *, mark_to_market: tuple[datetime, float] | None = None,
                 live_start: datetime | None = None, events: pd.DataFrame | None = None) -> alt.LayerChart:
    """Realized equity as a step line, plus optional mark-to-market end, live-start rule and events.

    Equity only changes when a trade closes, so the line steps after each close instead of
    sloping between closes (a slope would invent intermediate P/L that never happened).
    """
    points = _curve_points(curve)
    layers = _equity_layers(points, _curve_x(points, mark_to_market, live_start, events), mark_to_market, live_start,
                            events)
    return alt.layer(*layers).properties(width="container", height=EQUITY_HEIGHT)


def drawdown_chart(curve: pd.DataFrame, *, until: datetime | None = None) -> alt.Chart:
    """Underwater chart: how far below its previous peak the realized equity was, in percent.

    Pass the mark-to-market time as `until` when the equity chart has one, so both charts
    span the same time range and read as a pair.
    """
    points = _curve_points(curve)
    ends = [*_ends(points), *([_utc(until)] if until is not None else [])]
    return _drawdown_layer(points, _time_x(ends)).properties(width="container", height=DRAWDOWN_HEIGHT)


def curve_chart(curve: pd.DataFrame, *, mark_to_market: tuple[datetime, float] | None = None,
                live_start: datetime | None = None, events: pd.DataFrame | None = None) -> alt.LayerChart:
    """The equity chart above its drawdown chart, in one chart: two panels on one time axis,
    drawn from one copy of the curve (Altair sends a data frame used by several layers once).

    The panels are two y scales over different pixel ranges of the same plot (a vertical
    concatenation would be simpler but does not fit the page's width in Streamlit)."""
    points = _curve_points(curve)
    x = _curve_x(points, mark_to_market, live_start, events)
    height = EQUITY_HEIGHT + PANEL_GAP + DRAWDOWN_HEIGHT
    # Ranges in terms of the plot's actual height (the page may size it), split in the same ratio.
    split = f"height * {EQUITY_HEIGHT / height:.4f}"
    gap = f"height * {(EQUITY_HEIGHT + PANEL_GAP) / height:.4f}"
    y = _equity_y((alt.ExprRef(split), 0))
    equity = alt.layer(*_equity_layers(points, x, mark_to_market, live_start, events,
                                       y_range=(alt.ExprRef(split), 0)), *_crosshair_layers(points, x, y))
    drawdown = _drawdown_layer(points, x, y_range=(alt.ExprRef("height"), alt.ExprRef(gap)))
    return alt.layer(equity, drawdown).resolve_scale(y="independent").properties(width="container", height=height)


def _crosshair_layers(points: pd.DataFrame, x: alt.X, y: alt.Y) -> list[alt.Chart]:
    """A vertical rule through both panels at the point nearest the pointer, the point itself
    ringed, and a tooltip with its date, equity and trade."""
    nearest = alt.selection_point(name="nearest", nearest=True, on="pointerover", fields=["time"], empty=False,
                                  clear="pointerout")
    base = alt.Chart(points)
    tooltip = [alt.Tooltip("when:N", title="time"), alt.Tooltip("equity:Q", title="equity", format="$,.2f"),
               alt.Tooltip("drawdown_pct:Q", title="below peak", format=".2%"), alt.Tooltip("trade:N", title="trade")]
    return [
        base.mark_point(opacity=0, size=400).encode(x=x, y=y, tooltip=tooltip).add_params(nearest),
        base.mark_rule(color=INK, strokeWidth=1, strokeDash=[3, 3]).encode(
            x=x, y=alt.value(0), y2=alt.value(alt.expr("height")),
            opacity=alt.when(nearest).then(alt.value(0.6)).otherwise(alt.value(0))),
        base.mark_point(filled=True, size=70, color=ACCENT).encode(
            x=x, y=y, opacity=alt.when(nearest).then(alt.value(1)).otherwise(alt.value(0))),
    ]


def return_chart(record: pd.DataFrame, benchmark: pd.DataFrame) -> alt.Chart:
    """The record's realized return beside BTCUSDT buy-and-hold over the same days, both in %
    of where they started (`record`/`benchmark`: time, return as a fraction)."""
    ours = _with_columns(record, ("time", "return"))[["time", "return"]].assign(series="this record (realized)")
    theirs = _with_columns(benchmark, ("time", "return"))[["time", "return"]].assign(series="BTCUSDT buy-and-hold")
    frame = pd.concat([ours, theirs], ignore_index=True)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame = frame.dropna(subset=["return"])
    frame["when"] = frame["time"].dt.strftime("%Y-%m-%d %H:%M UTC")
    series = ["this record (realized)", "BTCUSDT buy-and-hold"]
    return alt.Chart(frame).mark_line(interpolate="step-after", strokeWidth=1.8).encode(
        x=alt.X("time:T", title="time (UTC)", scale=alt.Scale(type="utc"), axis=alt.Axis(labelFlush=True)),
        y=alt.Y("return:Q", title="return", axis=alt.Axis(format="+.0~%", minExtent=Y_AXIS_WIDTH)),
        color=alt.Color("series:N", title=None, sort=series, scale=alt.Scale(domain=series, range=[ACCENT, "#e3a33b"]),
                        legend=alt.Legend(orient="top", direction="vertical", labelLimit=260)),
        tooltip=[alt.Tooltip("series:N", title="line"), alt.Tooltip("when:N", title="time"),
                 alt.Tooltip("return:Q", title="return", format="+.2%")],
    ).properties(width="container", height=240)


def daily_pnl_chart(daily: pd.DataFrame) -> alt.Chart:
    """Realized P/L per UTC day as bars, green up and red down (`daily`: day, pnl_usd)."""
    frame = _with_columns(daily, ("day", "pnl_usd"))[["day", "pnl_usd"]].copy()
    frame["day"] = pd.to_datetime(frame["day"], utc=True)
    frame["when"] = frame["day"].dt.strftime("%Y-%m-%d")
    field = alt.datum["pnl_usd"]
    colour = alt.when(field > 0).then(alt.value(GREEN)).when(field < 0).then(alt.value(RED)).otherwise(alt.value(GREY))
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("yearmonthdate(day):T", title="UTC day", scale=alt.Scale(type="utc"),
                axis=alt.Axis(labelFlush=True, labelOverlap=True)),
        y=alt.Y("pnl_usd:Q", title="P/L", axis=alt.Axis(format="$,.0f", minExtent=Y_AXIS_WIDTH)),
        color=colour,
        tooltip=[alt.Tooltip("when:N", title="day"), alt.Tooltip("pnl_usd:Q", title="P/L", format="$,.2f")],
    ).properties(width="container", height=200)


def _curve_x(points: pd.DataFrame, mark_to_market: tuple[datetime, float] | None, live_start: datetime | None,
             events: pd.DataFrame | None) -> alt.X:
    """One x encoding for every layer: layers with different explicit domains would merge badly."""
    marks = _events_frame(events if events is not None else pd.DataFrame())
    extra = [_utc(mark_to_market[0])] if mark_to_market is not None else []
    extra += [_utc(live_start)] if live_start is not None else []
    return _time_x([*_ends(points), *extra, *marks["time"]])


def _equity_layers(points: pd.DataFrame, x: alt.X, mark_to_market: tuple[datetime, float] | None,
                   live_start: datetime | None, events: pd.DataFrame | None,
                   y_range: tuple[Any, Any] | None = None) -> list[alt.Chart]:
    y = _equity_y(y_range)
    layers: list[alt.Chart] = [
        alt.Chart(points).mark_line(
            interpolate="step-after", color=ACCENT, strokeWidth=1.8, point="transparent",
        ).encode(
            x=x, y=y,
            tooltip=[alt.Tooltip("when:N", title="time"), alt.Tooltip("equity:Q", title="equity", format="$,.2f"),
                     alt.Tooltip("trade:N", title="trade")],
        )
    ]
    if mark_to_market is not None:
        layers += _mark_to_market_layers(points, (_utc(mark_to_market[0]), float(mark_to_market[1])), x, y)
    if live_start is not None:
        layers += _live_start_layers(_utc(live_start), x)
    marks = _events_frame(events if events is not None else pd.DataFrame())
    if len(marks):
        layers += _events_layers(marks, x, bottom=y_range[0] if y_range else None)
    return layers


def _drawdown_layer(points: pd.DataFrame, x: alt.X, y_range: tuple[Any, Any] | None = None) -> alt.Chart:
    scale = alt.Scale(range=list(y_range)) if y_range else alt.Undefined
    return alt.Chart(points).mark_area(
        interpolate="step-after", color=RED, opacity=0.35, line={"color": RED, "strokeWidth": 1},
        point="transparent",
    ).encode(
        x=x,
        # stack=None: trades closing in the same minute must not add up (areas stack by default)
        y=alt.Y("underwater:Q", title="drawdown", stack=None, scale=scale,
                axis=alt.Axis(format=".1~%", orient="left", minExtent=Y_AXIS_WIDTH, maxExtent=Y_AXIS_WIDTH)),
        tooltip=[alt.Tooltip("when:N", title="time"),
                 alt.Tooltip("drawdown_pct:Q", title="below peak", format=".2%"),
                 alt.Tooltip("drawdown_usd:Q", title="below peak ($)", format="$,.2f")],
    )


def monthly_heatmap(monthly: pd.DataFrame) -> alt.Chart:
    """Months across, years down; colour is the month's P/L sign and size, text its return."""
    frame = _with_columns(monthly, ("year", "month", "pnl_usd", "return_pct"))
    cells = pd.DataFrame({
        "year": frame["year"].astype("Int64").astype(str),
        "month": [MONTHS[int(m) - 1] for m in frame["month"]],
        "pnl_usd": frame["pnl_usd"].astype(float),
        "return_pct": pd.to_numeric(frame["return_pct"], errors="coerce").astype(float),
        # Formatted here, not in Vega: a missing return (no bankroll yet) must read as blank, not "NaN%".
        "label": [_signed_percent(r) for r in frame["return_pct"]],
        "money": [_money(float(p)) if pd.notna(p) else "" for p in frame["pnl_usd"]],
    })
    # Only the months the record has (a record of three months is three columns, not a year's grid
    # of empty cells); a record longer than a year has them all.
    present = [m for m in MONTHS if m in set(cells["month"])] or list(MONTHS)
    base = alt.Chart(cells).encode(
        x=alt.X("month:O", sort=present, scale=alt.Scale(domain=present), title=None,
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y("year:O", sort="ascending", title=None),
        tooltip=[alt.Tooltip("year:O"), alt.Tooltip("month:O"), alt.Tooltip("money:N", title="P/L"),
                 alt.Tooltip("label:N", title="return")],
    )
    # Colour and text both say the return (%); the tooltip adds the $. The colour domain is
    # symmetric so that equal gains and losses get equally strong colours.
    reach = float(cells["return_pct"].abs().max()) if cells["return_pct"].notna().any() else 0.0
    reach = reach if reach > 0 else 0.01
    rects = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("return_pct:Q", title="return", legend=alt.Legend(format="+.0~%"),
                        scale=alt.Scale(domain=[-reach, reach], domainMid=0, range=[RED, "#f4f4f2", GREEN])),
    )
    text = base.mark_text(fontSize=11, color=INK).encode(text="label:N")
    return (rects + text).properties(width="container", height=alt.Step(28))


def pnl_histogram(trades: pd.DataFrame) -> alt.Chart:
    """How closed-trade P/L is distributed; bars are stacked by win, loss and flat.

    `trades`: a `pnl_usd` per trade, or pre-binned values with a `trades` count each."""
    pnl, weight = _weighted(trades, "pnl_usd")
    step = _nice_step(float(pnl.max() - pnl.min()) / MAX_BINS if len(pnl) else 1.0)
    # Bins are multiples of `step`, so 0 is always an edge and no bar mixes wins with losses.
    index = np.floor(pnl / step).astype(np.int64)
    # Integer outcome codes (0 win, 1 loss, 2 flat) group a million rows far faster than strings.
    code = np.where(pnl > 0, 0, np.where(pnl < 0, 1, 2))
    bins = (pd.DataFrame({"index": index, "code": code, "trades": weight}).groupby(["index", "code"])["trades"]
            .sum().reset_index())
    bins = bins.assign(start=bins["index"] * step, end=(bins["index"] + 1) * step,
                       outcome=[OUTCOMES[c] for c in bins["code"]])
    bins["range"] = [f"{_money(a)} to {_money(b)}" for a, b in zip(bins["start"], bins["end"])]
    return alt.Chart(bins[["start", "end", "outcome", "trades", "range"]]).mark_bar().encode(
        x=alt.X("start:Q", bin="binned", title="P/L per trade ($)", axis=alt.Axis(format="$,.0f")),
        x2="end:Q",
        y=alt.Y("trades:Q", stack=True, title="trades"),
        color=_outcome_colour(),
        tooltip=[alt.Tooltip("range:N", title="P/L"), alt.Tooltip("outcome:N"), alt.Tooltip("trades:Q", format=",d")],
    ).properties(width="container", height=220)


def duration_histogram(trades: pd.DataFrame) -> alt.Chart:
    """How long trades stayed open, on a log axis (minutes to weeks all stay readable).

    `trades`: a `duration_hours` per trade, or pre-binned values with a `trades` count each."""
    hours, weight = _weighted(trades, "duration_hours")
    logs = np.log10(np.maximum(hours, SHORTEST_DURATION_HOURS))
    step = _nice_step(float(logs.max() - logs.min()) / MAX_BINS if len(logs) else 1.0)
    # Small float error must not push an exact edge (e.g. 1 minute) into the bin below it.
    index = np.floor(logs / step + 1e-9).astype(np.int64)
    bins = (pd.DataFrame({"index": index, "trades": weight}).groupby("index")["trades"].sum()
            .rename("trades").reset_index())
    bins = bins.assign(start=10.0 ** (bins["index"] * step), end=10.0 ** ((bins["index"] + 1) * step))
    bins["range"] = [f"{_duration(a)} to {_duration(b)}" for a, b in zip(bins["start"], bins["end"])]
    return alt.Chart(bins[["start", "end", "trades", "range"]]).mark_bar(color=ACCENT).encode(
        x=alt.X("start:Q", scale=alt.Scale(type="log"), title="hours in trade", axis=alt.Axis(format="~g")),
        x2="end:Q",
        y=alt.Y("trades:Q", title="trades"),
        y2=alt.datum(0),  # with x and x2 given, bars need both y ends or they draw as dashes
        tooltip=[alt.Tooltip("range:N", title="time in trade"), alt.Tooltip("trades:Q", format=",d")],
    ).properties(width="container", height=220)


OUTCOME_BAR_COLOURS = {"Take-profit": GREEN, "Stop-loss": RED, "Liquidated": "#8c1d2a", "Expired": GREY,
                       "Closed by the owner": "#6b7785", "Cancelled": "#c7ccd1"}


def bar_by(frame: pd.DataFrame, *, category: str, value: str, title: str, value_format: str = "$,.2f",
           colour_by_sign: bool = True, colours: dict[str, str] | None = None) -> alt.Chart:
    """Horizontal bars of `value` per `category`, largest first.

    Colour follows the sign (green gain, red loss, grey zero); pass `colour_by_sign=False` for
    counts, where green would wrongly suggest profit, or `colours` per category (outcomes).
    """
    data = _with_columns(frame, (category, value))[[category, value]]
    if colours:
        names = [c for c in colours if c in set(data[category])] + sorted(set(data[category]) - set(colours))
        colour = alt.Color(f"{category}:N", legend=None,
                           scale=alt.Scale(domain=names, range=[colours.get(n, ACCENT) for n in names]))
    elif colour_by_sign:
        field = alt.datum[value]
        colour = (alt.when(field > 0).then(alt.value(GREEN)).when(field < 0).then(alt.value(RED))
                  .otherwise(alt.value(GREY)))
    else:
        colour = alt.value(ACCENT)
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X(f"{value}:Q", title=None, axis=alt.Axis(format=value_format, labelFlush=True, labelOverlap=True)),
        y=alt.Y(f"{category}:N", sort="-x", title=None),
        color=colour,
        tooltip=[alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q", format=value_format)],
    ).properties(width="container", height=alt.Step(24))


def _curve_points(curve: pd.DataFrame) -> pd.DataFrame:
    """The downsampled curve with UTC times and the text the tooltips show."""
    points = downsample(_with_columns(curve, CURVE_COLUMNS))
    points = points.assign(time=pd.to_datetime(points["time"], utc=True))
    trade_ids = points["trade_id"].astype("Int64")
    points["when"] = points["time"].dt.strftime("%Y-%m-%d %H:%M UTC")
    points["trade"] = ["starting balance" if pd.isna(t) else f"#{t}" for t in trade_ids]
    points["underwater"] = -points["drawdown_pct"].astype(float)
    # One frame for both charts of the curve: Altair sends identical data once (`curve_chart`).
    return points[["time", "equity", "drawdown_usd", "drawdown_pct", "underwater", "when", "trade"]]


def _mark_to_market_layers(points: pd.DataFrame, now: tuple[pd.Timestamp, float], x: alt.X,
                           y: alt.Y) -> list[alt.Chart]:
    time, equity = now
    point = pd.DataFrame({"time": [time], "equity": [equity], "when": [time.strftime("%Y-%m-%d %H:%M UTC")],
                          "label": ["now (mark-to-market)"]})
    segment = pd.concat([points[["time", "equity"]].tail(1), point[["time", "equity"]]], ignore_index=True)
    tooltip = [alt.Tooltip("when:N", title="time"),
               alt.Tooltip("equity:Q", title="equity incl. open trades", format="$,.2f")]
    return [
        alt.Chart(segment).mark_line(color=ACCENT, strokeDash=[5, 4], strokeWidth=1.5).encode(x=x, y=y),
        alt.Chart(point).mark_point(filled=True, size=60, color=ACCENT).encode(x=x, y=y, tooltip=tooltip),
        alt.Chart(point).mark_text(align="right", dx=-8, dy=-12, color=INK).encode(x=x, y=y, text="label:N"),
    ]


def _live_start_layers(start: pd.Timestamp, x: alt.X) -> list[alt.Chart]:
    marker = pd.DataFrame({"time": [start], "label": ["live tracking starts"],
                           "note": ["trades before this were backfilled"]})
    return [
        alt.Chart(marker).mark_rule(color=GREY, strokeDash=[2, 3])
        .encode(x=x, tooltip=[alt.Tooltip("label:N", title="marker"), alt.Tooltip("note:N", title="note")]),
        alt.Chart(marker).mark_text(align="left", baseline="top", dx=4, color=GREY)
        .encode(x=x, y=alt.value(4), text="label:N"),
    ]


def _events_frame(events: pd.DataFrame) -> pd.DataFrame:
    marks = _with_columns(events, ("time", "label"))[["time", "label"]].copy()
    marks["time"] = pd.to_datetime(marks["time"], utc=True)
    marks["when"] = marks["time"].dt.strftime("%Y-%m-%d %H:%M UTC")
    return marks


MAX_EVENT_LABELS = 12  # more would overlap: the rest keep their marker and tooltip


def event_word(label: str) -> str:
    """A settings change's marker text: "paused", "resumed", or the setting's name."""
    text = str(label)
    if text.startswith("paused changed"):
        return "resumed" if text.rstrip().endswith("false") else "paused"
    return text.split(" changed", 1)[0][:24] if " changed" in text else text[:24]


def _events_layers(marks: pd.DataFrame, x: alt.X, bottom: alt.ExprRef | None = None) -> list[alt.Chart]:
    """A dashed rule through the equity panel at each settings change or pause, labelled along
    it ("paused", "stake_usd"), with the whole change in its tooltip."""
    edge = bottom.expr if bottom is not None else "height"
    marks = marks.assign(word=[event_word(label) for label in marks["label"]])
    tooltip = [alt.Tooltip("when:N", title="time"), alt.Tooltip("label:N", title="change")]
    rule = alt.Chart(marks).mark_rule(color="#b07a1e", strokeWidth=1.2, strokeDash=[4, 3]).encode(
        x=x, y=alt.value(0), y2=alt.value(alt.expr(edge)), tooltip=tooltip)
    tick = alt.Chart(marks).mark_rule(color="#b07a1e", strokeWidth=4).encode(
        x=x, y=alt.value(alt.expr(edge)), y2=alt.value(alt.expr(f"{edge} - 10")), tooltip=tooltip)
    text = alt.Chart(marks.tail(MAX_EVENT_LABELS)).mark_text(
        angle=270, align="right", baseline="bottom", dx=-4, dy=-3, fontSize=10, color="#8a5d12").encode(
        x=x, y=alt.value(0), text="word:N", tooltip=tooltip)
    return [rule, tick, text]


def _ends(points: pd.DataFrame) -> list[pd.Timestamp]:
    return list(points["time"].iloc[[0, -1]]) if len(points) else []


def _time_x(ends: list[pd.Timestamp]) -> alt.X:
    """A UTC time axis; with a fixed domain so stacked charts with the same `ends` line up exactly."""
    scale = alt.Scale(type="utc")
    ends = [end for end in ends if pd.notna(end)]
    if ends and min(ends) < max(ends):
        # ISO strings with an offset: unambiguous, and unlike epoch milliseconds they survive
        # Streamlit's renderer (a numeric domain there squashes the whole line to one edge).
        scale = alt.Scale(type="utc", nice=False, domain=[min(ends).isoformat(), max(ends).isoformat()])
    return alt.X("time:T", title="time (UTC)", scale=scale, axis=alt.Axis(labelFlush=True, labelOverlap=True))


def _equity_y(y_range: tuple[Any, Any] | None = None) -> alt.Y:
    scale = alt.Scale(zero=False, range=list(y_range)) if y_range else alt.Scale(zero=False)
    return alt.Y("equity:Q", title="equity", scale=scale,
                 axis=alt.Axis(format="$,.0f", minExtent=Y_AXIS_WIDTH, maxExtent=Y_AXIS_WIDTH))


def _outcome_colour() -> alt.Color:
    return alt.Color("outcome:N", title=None, sort=list(OUTCOMES),
                     scale=alt.Scale(domain=list(OUTCOMES), range=list(OUTCOME_COLOURS)))


def _weighted(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A histogram's values and how many trades each stands for: one per row of raw trades, or
    the `trades` column of pre-binned ones (the summary tables' bins, by their middles)."""
    data = _with_columns(frame, (column,))
    counts = data["trades"] if "trades" in data else pd.Series(1, index=data.index)
    keep = data[column].notna()
    return data.loc[keep, column].astype(float).to_numpy(), counts[keep].astype("int64").to_numpy()


def _with_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """`frame` with every expected column present, so an empty `pd.DataFrame()` is still drawable."""
    missing = [c for c in columns if c not in frame.columns]
    return frame.assign(**{c: pd.Series(dtype=float, index=frame.index) for c in missing}) if missing else frame


def _utc(moment: datetime) -> pd.Timestamp:
    """A naive time is taken to be UTC already (the codebase stores UTC everywhere)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least `raw` (bins people can read)."""
    if not np.isfinite(raw) or raw <= 0:
        return 1.0
    magnitude = 10.0 ** np.floor(np.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-12)))


def _signed_percent(value: float | None) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):+.1%}"


def _money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{_two_digits(hours * 60)} min"
    if hours < 48:
        return f"{_two_digits(hours)} h"
    return f"{_two_digits(hours / 24)} d"


def _two_digits(value: float) -> str:
    """Two significant digits without scientific notation (150, not 1.5e+02): bin edges are approximate."""
    return f"{float(f'{value:.2g}'):g}"
