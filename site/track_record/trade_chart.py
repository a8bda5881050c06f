"""A trade's life as a candlestick chart: plain values in, an Altair chart out.

The candles come from the candle store (shared/candle_store.py): what the worker fetched to
decide the trade, in the trade's own interval where it read all of them, else in the coarse
interval it read first during a catch-up (it looks at its own interval only where a coarse
candle may change a trade). Long lives are drawn with at most `MAX_CANDLES` candles, aggregated
from the stored ones as the exchange aggregates them (open of the first, high and low of all,
close of the last). The chart says which.

No Streamlit and no database here: `trade_chart(...)` is tested by serializing it. Everything
drawn travels as data fields, which Vega renders as text, never as HTML.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import altair as alt
import pandas as pd

from shared.candles import INTERVALS, Candle
from shared.clock import EPOCH

MAX_CANDLES = 240  # drawn at most: beyond that a candle is thinner than a couple of pixels
GOOD_COVERAGE = 0.8  # an interval whose stored candles cover this share of the life is drawn as is
HEIGHT = 380

UP, DOWN = "#26a69a", "#ef5350"
HIGHLIGHT = "#f59f00"
LEVEL_COLOURS = {"entry": "#3a6ea5", "limit entry": "#3a6ea5", "take-profit": "#2f9e6e", "stop-loss": "#d0505c",
                 "liquidation": "#7b1e2b", "latest price": "#6c757d", "moved stop": "#e8590c",
                 **{f"target {n}": "#2f9e6e" for n in range(1, 11)}}
MARKER_SHAPES = {"entry": "triangle-right", "exit": "diamond", "latest price": "circle"}

CANDLE_COLUMNS = ("open_time", "close_time", "body_start", "body_end", "mid_time", "open", "high", "low", "close",
                  "direction")


def _length(interval: str) -> timedelta:
    return INTERVALS[interval]


def aligned_count(start: datetime, end: datetime, interval: str) -> int:
    """How many candles of `interval` open in [start, end] (they open on multiples of it from the epoch)."""
    length = _length(interval)
    first = -(-(start - EPOCH) // length)
    last = (end - EPOCH) // length
    return max(0, last - first + 1)


def choose_interval(own: str, counts: Mapping[str, int], start: datetime, end: datetime) -> str | None:
    """Which stored interval to draw, given how many candles of each open in the life [start, end]:
    the trade's own when they cover most of it, else the first longer one that does (the catch-up's
    coarse candles), else the one covering most. None when nothing is stored."""
    if own not in INTERVALS:
        return None
    candidates = [i for i in sorted(INTERVALS, key=_length) if _length(i) >= _length(own) and counts.get(i)]
    candidates.sort(key=lambda i: (i != own, _length(i)))
    if not candidates:
        return None

    def coverage(interval: str) -> float:
        return min(1.0, counts[interval] / max(1, aligned_count(start, end, interval)))

    for interval in candidates:
        if coverage(interval) >= GOOD_COVERAGE:
            return interval
    return max(candidates, key=coverage)  # max() keeps the first of equals: the finer one


def padding(start: datetime, end: datetime, interval: str) -> timedelta:
    """Context drawn before the signal and after the end: a tenth of the life, at least 5 and at
    most 60 candles (what the store keeps around a trade)."""
    length = _length(interval)
    return min(max((end - start) / 10, 5 * length), 60 * length)


def display_interval(interval: str, span: timedelta) -> str:
    """`interval`, or the shortest longer Binance interval it divides that draws `span` in at most MAX_CANDLES."""
    length = _length(interval)
    for name in sorted(INTERVALS, key=_length):
        other = _length(name)
        if other >= length and other % length == timedelta(0) and span / other <= MAX_CANDLES:
            return name
    return max(INTERVALS, key=_length)


def aggregate(candles: Sequence[Candle], interval: str) -> list[Candle]:
    """Candles of `interval` from finer ones, buckets aligned to the epoch as the exchange's."""
    length = _length(interval)
    buckets: list[Candle] = []
    for candle in candles:
        start = candle.open_time - (candle.open_time - EPOCH) % length
        if buckets and buckets[-1].open_time == start:
            first = buckets[-1]
            buckets[-1] = Candle(start, first.open, max(first.high, candle.high), min(first.low, candle.low),
                                 candle.close)
        else:
            buckets.append(Candle(start, candle.open, candle.high, candle.low, candle.close))
    return buckets


@dataclass(frozen=True)
class Series:
    """The candles to draw and where they come from."""

    candles: pd.DataFrame  # CANDLE_COLUMNS, oldest first
    interval: str | None  # the interval drawn
    stored_interval: str | None  # the interval read from the store (aggregated to `interval` if longer)
    own_interval: str  # the trade's own `candle_interval`
    coverage: float  # share of the life's candles of `stored_interval` that are stored

    @property
    def empty(self) -> bool:
        return self.candles.empty

    def describe(self) -> str:
        """One sentence on what the chart shows."""
        if self.empty or self.interval is None or self.stored_interval is None:
            return "No candles of this trade's life are stored."
        words = f"{self.interval} candles"
        if self.interval != self.stored_interval:
            words += f" (the stored {self.stored_interval} candles, aggregated to fit the chart)"
        if self.stored_interval == self.own_interval:
            words += (", the interval the trade was decided on." if self.interval == self.own_interval
                      else f"; the trade was decided on {self.own_interval} candles.")
        else:
            words += (f"; the trade was decided on {self.own_interval} candles, which the worker read only where a "
                      f"coarse {self.stored_interval} candle could change it (a catch-up), so the coarse ones are drawn.")
        if self.coverage < GOOD_COVERAGE:
            words += f" Only {self.coverage:.0%} of the life's candles are stored (exchange gaps, or not fetched)."
        return words[0].upper() + words[1:]


def series(candles: Sequence[Candle], stored_interval: str | None, own_interval: str, start: datetime,
           end: datetime) -> Series:
    """The frame to draw from the stored candles of `stored_interval` (aggregated when too many)."""
    if not candles or stored_interval is None:
        return Series(pd.DataFrame(columns=list(CANDLE_COLUMNS)), None, stored_interval, own_interval, 0.0)
    inside = sum(1 for c in candles if start <= c.open_time <= end)
    coverage = min(1.0, inside / max(1, aligned_count(start, end, stored_interval)))
    drawn = display_interval(stored_interval, candles[-1].open_time - candles[0].open_time + _length(stored_interval))
    if drawn != stored_interval:
        candles = aggregate(candles, drawn)
    length = _length(drawn)
    inset = length / 8  # a little space between bodies
    frame = pd.DataFrame({
        "open_time": [c.open_time for c in candles],
        "close_time": [c.open_time + length for c in candles],
        "body_start": [c.open_time + inset for c in candles],
        "body_end": [c.open_time + length - inset for c in candles],
        "mid_time": [c.open_time + length / 2 for c in candles],
        "open": [float(c.open) for c in candles], "high": [float(c.high) for c in candles],
        "low": [float(c.low) for c in candles], "close": [float(c.close) for c in candles],
        "direction": ["up" if c.close >= c.open else "down" for c in candles],
    })
    for column in ("open_time", "close_time", "body_start", "body_end", "mid_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return Series(frame, drawn, stored_interval, own_interval, coverage)


def levels_frame(levels: Sequence[tuple[str, Decimal]]) -> pd.DataFrame:
    return pd.DataFrame({"level": [name for name, _ in levels], "price": [float(p) for _, p in levels],
                         "label": [f"{name} {format(p.normalize(), 'f')}" for name, p in levels]})


def time_span(drawn: Series, moments: Sequence[datetime]) -> tuple[datetime, datetime]:
    """The time axis: the candles and the given moments, with half a drawn candle either side."""
    candles = drawn.candles
    first = min([candles["open_time"].min().to_pydatetime(), *moments])
    last = max([candles["close_time"].max().to_pydatetime(), *moments])
    half = _length(drawn.interval) / 2 if drawn.interval else timedelta(0)
    return first - half, last + half


def _time_scale(domain: tuple[datetime, datetime] | None) -> alt.Scale:
    if domain is None:
        return alt.Scale(type="utc")
    return alt.Scale(type="utc", domain=[pd.Timestamp(t).isoformat() for t in domain])


def trade_chart(drawn: Series, levels: Sequence[tuple[str, Decimal]],
                markers: Sequence[tuple[str, datetime, Decimal]] = (),
                deciding: tuple[datetime, timedelta] | None = None, *,
                span: tuple[datetime, datetime] | None = None, height: int = HEIGHT) -> alt.LayerChart:
    """Candles, the trade's levels as labelled horizontal lines, entry/exit markers, and the
    deciding candle (open time, length) highlighted: a band over it, and over the drawn candle
    holding it when the drawn interval is longer, with a line at its open time.
    `span`: the time axis (else the candles' own)."""
    candles = drawn.candles
    if span is None and not candles.empty:
        span = time_span(drawn, [t for _, t, _ in markers] + ([deciding[0]] if deciding else []))
    x_scale = _time_scale(span)
    x_axis = alt.Axis(title=None, format="%b %d %H:%M", labelAngle=0, labelOverlap=True, tickCount=5)
    direction = alt.Color("direction:N", scale=alt.Scale(domain=["up", "down"], range=[UP, DOWN]), legend=None)
    tooltip = [alt.Tooltip("utcyearmonthdatehoursminutes(open_time):T", title="Opens (UTC)"),
               alt.Tooltip("open:Q", format=".8~g"), alt.Tooltip("high:Q", format=".8~g"),
               alt.Tooltip("low:Q", format=".8~g"), alt.Tooltip("close:Q", format=".8~g")]
    y = alt.Y("low:Q", title=None, scale=alt.Scale(zero=False), axis=alt.Axis(format=".6~g"))
    layers: list[Any] = []

    # The deciding candle, under everything else.
    highlight = pd.DataFrame(columns=["open_time", "close_time", "drawn_open_time", "drawn_close_time", "label"])
    if deciding is not None:
        at, length = deciding
        drawn_open, drawn_close = at, at + length
        if drawn.interval is not None and not candles.empty:
            holding = candles[(candles["open_time"] <= pd.Timestamp(at)) & (candles["close_time"] > pd.Timestamp(at))]
            if len(holding):
                drawn_open = holding["open_time"].iloc[0].to_pydatetime()
                drawn_close = holding["close_time"].iloc[0].to_pydatetime()
        highlight = pd.DataFrame({"open_time": [at], "close_time": [at + length], "drawn_open_time": [drawn_open],
                                  "drawn_close_time": [drawn_close],
                                  "label": [f"deciding candle {at:%Y-%m-%d %H:%M} UTC"]})
        for column in ("open_time", "close_time", "drawn_open_time", "drawn_close_time"):
            highlight[column] = pd.to_datetime(highlight[column], utc=True)
        band = alt.Chart(highlight).encode(
            x=alt.X("drawn_open_time:T", scale=x_scale, axis=x_axis), x2="drawn_close_time:T",
            tooltip=[alt.Tooltip("label:N", title="Highlighted")])
        layers.append(band.mark_rect(color=HIGHLIGHT, opacity=0.28))
        layers.append(alt.Chart(highlight).mark_rule(color=HIGHLIGHT, strokeWidth=2, strokeDash=[2, 2]).encode(
            x=alt.X("open_time:T", scale=x_scale, axis=x_axis), tooltip=[alt.Tooltip("label:N", title="Highlighted")]))

    if not candles.empty:
        base = alt.Chart(candles)
        layers.append(base.mark_rule().encode(x=alt.X("mid_time:T", scale=x_scale, axis=x_axis), y=y, y2="high:Q",
                                              color=direction, tooltip=tooltip))
        layers.append(base.mark_bar().encode(x=alt.X("body_start:T", scale=x_scale, axis=x_axis), x2="body_end:T",
                                             y=alt.Y("open:Q", title=None, scale=alt.Scale(zero=False)), y2="close:Q",
                                             color=direction, tooltip=tooltip))

    frame = levels_frame(levels)
    names = list(frame["level"])
    level_scale = alt.Scale(domain=names, range=[LEVEL_COLOURS.get(n, "#495057") for n in names])
    level_colour = alt.Color("level:N", scale=level_scale,
                             legend=alt.Legend(title=None, orient="bottom", direction="horizontal", columns=3,
                                               symbolType="stroke", labelLimit=220))
    if len(frame):
        level_base = alt.Chart(frame).encode(y=alt.Y("price:Q", title=None, scale=alt.Scale(zero=False)),
                                             color=level_colour,
                                             tooltip=[alt.Tooltip("level:N", title="Level"),
                                                      alt.Tooltip("price:Q", title="Price", format=".10~g")])
        layers.append(level_base.mark_rule(strokeDash=[6, 4], strokeWidth=1.5))
        # Labels inside the plot, at its right edge, right-aligned: never clipped on a phone.
        layers.append(level_base.mark_text(align="right", baseline="bottom", dx=-4, dy=-2, fontSize=11,
                                           fontWeight="bold").encode(
            x=alt.value("width"), text="label:N",
            color=alt.Color("level:N", scale=level_scale, legend=None)))

    if markers:
        points = pd.DataFrame({"marker": [m for m, _, _ in markers], "time": [t for _, t, _ in markers],
                               "price": [float(p) for _, _, p in markers]})
        points["time"] = pd.to_datetime(points["time"], utc=True)
        points["label"] = [f"{m} {format(p.normalize(), 'f')}" for m, _, p in markers]
        marker_names = list(points["marker"])
        layers.append(alt.Chart(points).mark_point(filled=True, size=140, stroke="white", strokeWidth=1).encode(
            x=alt.X("time:T", scale=x_scale, axis=x_axis), y=alt.Y("price:Q", title=None, scale=alt.Scale(zero=False)),
            shape=alt.Shape("marker:N", scale=alt.Scale(domain=marker_names,
                                                        range=[MARKER_SHAPES.get(m, "diamond") for m in marker_names]),
                            legend=None),
            fill=alt.value("#212529"),
            tooltip=[alt.Tooltip("label:N", title="Marker"),
                     alt.Tooltip("utcyearmonthdatehoursminutes(time):T", title="When (UTC)")]))

    if not layers:
        layers.append(alt.Chart(pd.DataFrame({"price": []})).mark_rule().encode(y="price:Q"))
    return (alt.layer(*layers).resolve_scale(color="independent")
            .properties(width="container", height=height)
            .configure_view(strokeWidth=0))
