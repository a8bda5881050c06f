"""How long the worker takes to catch up after downtime (a benchmark, not a test).

    python bench/catchup.py [--days 30] [--symbols 100] [--per-symbol 3] [--no-check]
                            [--postgres-url URL] [--code DIR]

A brand-new PostgreSQL database (signalproof_bench_<random>, dropped at the end) gets 3 trades
per symbol whose signals came in during the first day, none checked yet: market, limit and
signal entries, LONG and SHORT, a fifth of the symbols futures with leverage up to 50 (some get
liquidated), some with a time limit (`max_trade_hours`), most with levels far enough away to
stay open for weeks. The simulated exchange (demo/exchange.py) serves a seeded random walk per
symbol over real HTTP from a process of its own. Then, `--days` later, `Worker.catch_up()` —
what `signalproof worker --once` runs — and the figures:

    wall / CPU seconds of the catch-up (this process only: the exchange runs in another one),
    klines requests and all HTTP requests, the trades decided.

Unless `--no-check`: every trade is compared, field by field, with a plain walk of every 1m
candle through the trade rules (`shared.exits.advance`), the definition of the right outcome.
`--code DIR` measures another checkout's code (e.g. `git archive main | tar -x -C DIR`) on the
same market and trades: the "before" figures.
"""

import argparse
import os
import random
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from synthetic import (DEFAULT_ADMIN_URL, CountingMarketData, ExchangeProcess, MarketSpec, SyntheticMarket,
                       bench_database, insert_trades, minutes, timed)

from shared.kinds import Market  # noqa: E402  (after synthetic has put the code to measure on the path)

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
OUTCOME = ("status", "reason", "entry_time", "entry_price", "exit_time", "exit_price", "fees_usd", "pnl_usd",
           "pnl_pct", "ambiguous")


def make_trades(market: SyntheticMarket, per_symbol: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    trades = []
    for market_kind, symbol in market.spec.names():
        for _ in range(per_symbol):
            signal_time = START + timedelta(seconds=rng.randrange(600, 24 * 3600))
            price = market.candles(market_kind, symbol, "1m", signal_time - minutes(3), signal_time)[-1].close
            side = rng.choice(("LONG", "SHORT"))
            sign = 1 if side == "LONG" else -1
            leverage = rng.choice((2, 5, 10, 20, 50)) if market_kind is Market.FUTURES else 1
            wide = rng.random() < 0.85  # far levels: open for weeks (the costly case to catch up)
            tp_distance = Decimal(rng.uniform(0.15, 0.5) if wide else rng.uniform(0.005, 0.05))
            sl_distance = Decimal(rng.uniform(0.1, 0.4) if wide else rng.uniform(0.005, 0.04))
            mode = rng.choice(("market", "market", "limit", "signal"))
            entry = price * (1 - sign * Decimal(rng.uniform(0, 0.02)))
            trade = {"symbol": symbol, "market": market_kind.value, "side": side, "leverage": leverage,
                     "signal_time": signal_time, "signal_entry": None if mode == "market" else _price(entry),
                     "take_profit": _price(price * (1 + sign * tp_distance)),
                     "stop_loss": _price(price * (1 - sign * sl_distance)), "stake_usd": Decimal(100),
                     "fee_rate": Decimal("0.0005" if market_kind is Market.FUTURES else "0.001"), "entry_mode": mode,
                     "slippage_bps": Decimal(rng.choice((0, 0, 5))), "maintenance_margin_rate": Decimal("0.004"),
                     "pending_expiry_hours": Decimal(rng.choice((6, 24, 48))),
                     "max_trade_hours": Decimal(rng.choice((0,) * 8 + (72, 240, 0.5))), "candle_interval": "1m",
                     "status": "PENDING", "entry_time": None, "entry_price": None, "last_candle_time": None}
            if mode == "signal":
                trade.update(status="OPEN", entry_time=signal_time, entry_price=trade["signal_entry"])
            trades.append(trade)
    return trades


def _price(value: Decimal) -> Decimal:
    return value.quantize(Decimal("1e-10")).normalize()


def fine_walk(market: SyntheticMarket, trades: list[Any], now: datetime) -> dict[int, Any]:
    """Every trade's outcome from all its 1m candles, one by one, through `shared.exits.advance`."""
    from shared.candles import interval_length
    from shared.exits import advance
    from shared.trade_rows import state_of, terms_of

    by_series: dict[tuple[str, str, str], list[Any]] = {}
    for trade in trades:
        by_series.setdefault((trade.market, trade.symbol, trade.candle_interval), []).append(trade)
    outcomes = {}
    for (market_kind, symbol, interval), group in by_series.items():
        since = min(trade.signal_time for trade in group) - interval_length(interval)
        candles = market.candles(Market(market_kind), symbol, interval, since, now)
        for trade in group:  # none checked yet: from the signal on
            outcomes[trade.id] = advance(terms_of(trade), state_of(trade), candles,
                                         complete_until=now - interval_length(interval))
    return outcomes


def check(url: str, market: SyntheticMarket, before: list[Any], now: datetime) -> tuple[int, list[str]]:
    from sqlmodel import select

    from shared.database import make_engine, transaction
    from shared.models import Trade

    engine = make_engine(url)
    with transaction(engine) as session:
        after = {t.id: t for t in session.exec(select(Trade))}
    engine.dispose()
    expected = fine_walk(market, before, now)
    differences = []
    for trade_id, state in expected.items():
        got = after[trade_id]
        for name in OUTCOME:
            want, have = getattr(state, name), getattr(got, name)
            if want != have:
                differences.append(f"trade {trade_id} {name}: fine walk {want!r}, worker {have!r}")
    return len(expected), differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--per-symbol", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with a plain 1m walk")
    parser.add_argument("--profile", action="store_true", help="print a cProfile (CPU time) of the catch-up")
    parser.add_argument("--postgres-url", default=os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
                        help="an admin URL of the server (a database is created and dropped there)")
    parser.add_argument("--code", help="measure the code of this checkout instead (for before/after figures)")
    args = parser.parse_args()

    from sqlmodel import select

    from shared.database import make_engine, transaction
    from shared.models import Trade
    from worker.market_data import BinanceClient
    from worker.service import Worker

    # Catch up at an instant that is not on an hour: the last hour is still forming.
    now = START + timedelta(days=args.days, hours=12, minutes=17, seconds=30)
    spec = MarketSpec(symbols=args.symbols, start=START, minutes=(args.days + 1) * 24 * 60, seed=args.seed)
    market = SyntheticMarket(spec)
    trades = make_trades(market, args.per_symbol, args.seed)
    with bench_database(args.postgres_url) as url, ExchangeProcess(spec) as exchange:
        insert_trades(url, trades, now=START + timedelta(days=1))
        engine = make_engine(url)
        with transaction(engine) as session:
            before = list(session.exec(select(Trade).order_by(Trade.id)))
        exchange.set_now(now)
        client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url)
        market_data = CountingMarketData(client)
        worker = Worker(engine, market_data, clock=lambda: now)  # type: ignore[arg-type]
        if args.profile:
            import cProfile
            import pstats
            import time

            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        problems, wall, cpu = timed(worker.catch_up)
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        with transaction(engine) as session:
            statuses = Counter(str(t.status) for t in session.exec(select(Trade)))
        engine.dispose()
        print(f"catch-up of {args.days} days, {args.symbols} symbols x {args.per_symbol} trades, PostgreSQL, code: "
              f"{sys.path[0] if args.code else 'this checkout'}")
        print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, {market_data.klines_requests} klines requests "
              f"({client.requests_made} HTTP requests in all)" + (f", problems: {'; '.join(problems)}" if problems else ""))
        print("trades:", ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())), flush=True)
        if not args.no_check:
            (checked, differences), check_wall, _ = timed(lambda: check(url, market, before, now))
            print(f"check: {checked} trades compared with a plain 1m walk ({check_wall:.0f} s): "
                  f"{len(differences)} difference(s)")
            for line in differences[:20]:
                print("  " + line)
            return 1 if differences else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
