"""The offline demo (`signalproof demo`): a simulated exchange, market and signal bot.

Nothing here talks to the outside world. `exchange` is a Binance look-alike HTTP server (also
the tests' fake exchange), `market` a seeded random walk of candles that grows with the clock,
`bot` a seeded signal bot, and `run` wires them to the real worker and the real site.
"""

DEFAULT_SEED = 6  # `signalproof demo --seed`: a month like a decent bot's (PF ~1.3, one liquidation)
