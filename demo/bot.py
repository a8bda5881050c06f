"""The demo's signal bot: seeded, plausible signals on the simulated market.

SIMULATED, and it cheats. A real bot calls the market without knowing the future; this one,
so that the demo shows the mildly positive record a decent bot might have (wins and losses,
a rising but bumpy equity curve), peeks: on a share `EDGE` of its calls it looks at the next
day of the random walk and takes the side that reaches its take-profit before its stop-loss,
when one does. Every other call takes a side at random. A few calls (`SCALP_SHARE`) are
scalps with both levels within a minute's move of the next minute's open, which it also peeks
at: now and then one candle reaches both, and the demo shows the trade tape deciding which
came first. The demo is about the site, not a strategy: nothing here says anything about real
markets.

Everything else about a signal is what a real bot sends (docs/signals.md): symbol, side,
market, an entry at the price of the moment, a stop-loss a volatility-sized distance away,
one or two take-profits at a reward multiple of that risk, leverage on futures (now and then
far too much of it, which gets liquidated), a confidence and a note. The signals go through
the real intake, as JSON lines, like any bot's.

Reproducible like the market: the moments of the backfilled calls are drawn per UTC day (from
the seed and the day), and every call is a function of the seed and its moment (its own
generator), so two demos with the same seed make the same call, with the same id, at the same
time. Only the live calls' moments (and so their contents) follow the wall clock.
"""

import json
import random
from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from demo.exchange import from_ms, to_ms
from demo.market import DAY_MINUTES, DAY_MS, EPOCH_MS, MINUTE_MS, Asset, RandomWalkMarket

SOURCE = "demo-bot"
EDGE = 0.4  # share of calls that peek: most simulated months end with a profit factor of 1.1-2.3
SIGNALS_PER_DAY = 6
LIVE_PAUSE_SECONDS = (40.0, 80.0)  # a live call every minute or so
HORIZON_MINUTES = 1440  # how far the cheat looks: the demo's max_trade_hours
FUTURES_SHARE = 0.45  # of calls on assets listed as perpetuals
LEVERAGES = (2, 3, 3, 5, 5, 5, 10)
RECKLESS_SHARE = 0.04  # calls at 25x with a stop beyond the liquidation price
RECKLESS_LEVERAGE = 25
MAINTENANCE_MARGIN_RATE = 0.004  # the runtime setting's default, for the liquidation price
RISK_OF_A_DAYS_MOVE = (0.25, 0.6)  # stop-loss distance, as a share of the asset's daily volatility
RECKLESS_RISK = (0.045, 0.06)  # beyond the 3.6 % to a 25x liquidation
REWARD_MULTIPLES = (1.2, 1.5, 1.5, 1.8, 2.0, 2.5)
SECOND_TARGET_SHARE = 0.3
# A few scalps: the stop and the target within a minute's move of the start candle's open (the
# bot peeks at it), so that now and then one candle reaches both and the trade tape decides
# which came first (docs/trade-rules.md, "Exact order inside a candle").
SCALP_SHARE = 0.08
SCALP_RISK_OF_A_MINUTE = (0.3, 0.6)  # distance to each level, in minute-sigmas of the asset
NOTES = {
    "LONG": ("breakout above the 4h range", "pullback to support", "higher low on the 1h", "momentum continuation",
             "reclaim of the daily open"),
    "SHORT": ("rejection at resistance", "lower high on the 1h", "breakdown of the range", "bearish divergence",
              "lost the daily open"),
}

Signal = dict[str, object]  # one JSON-lines record, as shared.signals reads it


class SignalBot:
    """Makes signals for `market`'s assets; `seed` fixes every choice (the market's seed fixes prices)."""

    def __init__(self, market: RandomWalkMarket, *, seed: int) -> None:
        self.market = market
        self.seed = seed
        self.live = random.Random(seed)  # the pauses between live calls only
        self.random = random.Random()  # reseeded for every call, from the seed and the call's moment

    def moments(self, start: datetime, end: datetime) -> list[datetime]:
        """The backfilled calls' moments in [start, end): SIGNALS_PER_DAY a UTC day, whole seconds,
        drawn per day from the seed, so they do not depend on where the window begins."""
        first, last = (to_ms(start) - EPOCH_MS) // DAY_MS, (to_ms(end) - EPOCH_MS) // DAY_MS
        moments = set()
        for day in range(first, last + 1):
            draw = random.Random(f"signalproof-demo:{self.seed}:day:{day}")
            midnight = EPOCH_MS + day * DAY_MS
            moments |= {from_ms(midnight + 1000 * draw.randrange(DAY_MS // 1000)) for _ in range(SIGNALS_PER_DAY)}
        return sorted(moment for moment in moments if start <= moment < end)

    def backfill(self, start: datetime, end: datetime) -> list[Signal]:
        """The bot's history: SIGNALS_PER_DAY calls a day between `start` and `end`, in time order."""
        return [self.signal_at(moment) for moment in self.moments(start, end)]

    def pause(self) -> float:
        """Seconds until the next live call."""
        return self.live.uniform(*LIVE_PAUSE_SECONDS)

    def signal_at(self, moment: datetime) -> Signal:
        """One call at `moment`, at the price of that moment: a function of the seed and `moment`."""
        self.random.seed(f"signalproof-demo:{self.seed}:call:{to_ms(moment)}")
        asset = self.random.choice(list(self.market.assets.values()))
        futures = asset.futures and self.random.random() < FUTURES_SHARE
        reckless = futures and self.random.random() < RECKLESS_SHARE
        leverage = RECKLESS_LEVERAGE if reckless else self.random.choice(LEVERAGES) if futures else 1
        # The stop-loss sits a fraction of a day's move away; a reckless call's sits beyond its
        # own liquidation price (1/25 - 0.4 % = 3.6 %), which the exchange will hit first.
        risk = self.random.uniform(*RECKLESS_RISK) if reckless else \
            asset.daily_volatility * self.random.uniform(*RISK_OF_A_DAYS_MOVE)
        multiple = self.random.choice(REWARD_MULTIPLES)
        targets = (multiple, multiple + 1) if self.random.random() < SECOND_TARGET_SHARE else (multiple,)
        price = self.market.price_at(asset.symbol, to_ms(moment))
        peek = self.random.random() < EDGE
        side = self._side(asset, moment, price, risk, multiple, leverage, peek)
        sign = 1 if side == "LONG" else -1
        tick = Decimal(asset.tick)
        confidence = self.random.uniform(0.65, 0.95) if peek else self.random.uniform(0.5, 0.85)
        call: Signal = {
            "id": f"{moment:%Y%m%d-%H%M%S}",  # the moment names the call: the same in every run
            "time": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "symbol": asset.symbol,
            "side": side,
            "market": "FUTURES" if futures else "SPOT",
            "entry": str(price),
            "take_profit": [str(_on_tick(price * Decimal(1 + sign * m * risk), tick)) for m in targets],
            "stop_loss": str(_on_tick(price * Decimal(1 - sign * risk), tick)),
            "leverage": leverage,
            "confidence": f"{confidence:.2f}",
            "source": SOURCE,
            "note": self.random.choice(NOTES[side]),
        }
        # Drawn last, so that every other call is exactly what it would be without scalps.
        if self.random.random() < SCALP_SHARE:
            start_ms = self.market.start_ms + self.market.index_at(to_ms(moment)) * MINUTE_MS
            opening = self.market.price_at(asset.symbol, start_ms)
            minute = asset.daily_volatility / DAY_MINUTES ** 0.5
            share = Decimal(minute * self.random.uniform(*SCALP_RISK_OF_A_MINUTE))
            distance = max(tick, _on_tick(opening * share, tick))
            call |= {"entry": str(opening), "take_profit": [str(opening + sign * distance)],
                     "stop_loss": str(opening - sign * distance), "note": "scalp: both levels within a minute's move"}
        return call

    def _side(self, asset: Asset, moment: datetime, price: Decimal, risk: float, multiple: float, leverage: int,
              peek: bool) -> str:
        """A random side, unless this call peeks and one side wins within the horizon."""
        guess = self.random.choice(("LONG", "SHORT"))
        if not peek:
            return guess
        first = self.market.index_at(to_ms(moment))
        highs, lows = self.market.path(asset.symbol, first, HORIZON_MINUTES)
        entry = float(price)
        # The adverse level is the stop-loss or, with leverage, the nearer liquidation price.
        adverse = min(risk, 1 / leverage - MAINTENANCE_MARGIN_RATE) if leverage > 1 else risk
        long_wins = _first(highs >= entry * (1 + multiple * risk)) < _first(lows <= entry * (1 - adverse))
        short_wins = _first(lows <= entry * (1 - multiple * risk)) < _first(highs >= entry * (1 + adverse))
        if long_wins != short_wins:
            return "LONG" if long_wins else "SHORT"
        return guess


def _first(hits: np.ndarray) -> float:
    """Index of the first candle where a level is hit; infinity if none. A tie goes to the stop
    (the `<` above), as the trade rules record a same-candle hit."""
    return float(np.argmax(hits)) if hits.any() else float("inf")


def _on_tick(price: Decimal, tick: Decimal) -> Decimal:
    """A level rounded to the asset's tick, as an exchange would accept it."""
    return price.quantize(tick, rounding=ROUND_HALF_EVEN)


def json_lines(signals: Iterable[Signal]) -> str:
    """The signals as the JSON-lines body `signalproof signals import` reads."""
    return "".join(json.dumps(signal) + "\n" for signal in signals)
