"""How much one worker tick costs when one new candle has closed (a benchmark, not a test).

    python bench/tick.py [--trades 10000] [--symbols 500] [--passes 5] [--postgres-url URL] [--code DIR]

A brand-new PostgreSQL database (signalproof_bench_<random>, dropped at the end) gets N open
trades over S symbols (a fifth of them futures, with leverage; a tenth of the trades waiting
on a limit entry; about 1 % set to close on the new candle), all checked up to the same
candle. The simulated exchange (demo/exchange.py) serves a seeded random walk per symbol over
real HTTP from a process of its own, so only the worker's CPU is counted. Then monitor passes
(`worker.monitor.monitor_trades`, what every tick runs), each with one new 1m candle:

    first    the first pass of a new worker process (it reads every trade's terms)
    then     `--passes` more, a minute apart (what a running worker pays every minute)

For each: CPU seconds of this process, wall seconds, SQL statements sent (SQLAlchemy's
before_cursor_execute, with the commonest kinds), klines requests, trades changed; then the
median of the later passes. The machine's other load shows in these figures: run it twice.
`--code DIR` measures another checkout's code (e.g. `git archive main | tar -x -C DIR`) against
the same market and trades: the "before" figures.
"""

import argparse
import os
import random
import statistics
import time
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from synthetic import (DEFAULT_ADMIN_URL, CountingMarketData, ExchangeProcess, MarketSpec, StatementCounter,
                       SyntheticMarket, bench_database, insert_trades, minutes, timed)

from shared.kinds import Market  # noqa: E402  (after synthetic has put the code to measure on the path)

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
NEW_CANDLE = START + timedelta(hours=12)  # the candle of the second pass; the first pass gets the one before


def make_trades(market: SyntheticMarket, count: int, seed: int) -> list[dict[str, Any]]:
    """Open trades spread evenly over the symbols, checked up to two candles before NEW_CANDLE."""
    rng = random.Random(seed)
    names = market.spec.names()
    checked = NEW_CANDLE - minutes(2)
    trades = []
    for n in range(count):
        market_kind, symbol = names[n % len(names)]
        last, first_new, second_new = market.candles(market_kind, symbol, "1m", checked, NEW_CANDLE + minutes(1))
        price = last.close
        side = rng.choice(("LONG", "SHORT"))
        sign = 1 if side == "LONG" else -1
        leverage = rng.choice((2, 5, 10)) if market_kind is Market.FUTURES else 1
        tp = price * (1 + sign * Decimal(rng.uniform(0.01, 0.08)))
        sl = price * (1 - sign * Decimal(rng.uniform(0.01, 0.05)))
        if rng.random() < 0.005:  # closes at the take-profit in the first pass, or in the second one
            touched = rng.choice((first_new, second_new))
            tp = touched.high if side == "LONG" else touched.low
        entered = START + minutes(rng.randrange(11 * 60))
        trade = {"symbol": symbol, "market": market_kind.value, "side": side, "leverage": leverage,
                 "signal_time": entered, "signal_entry": None, "take_profit": _price(tp), "stop_loss": _price(sl),
                 "stake_usd": Decimal(100), "fee_rate": Decimal("0.001"), "entry_mode": "market",
                 "slippage_bps": Decimal(0), "maintenance_margin_rate": Decimal("0.004"),
                 "pending_expiry_hours": Decimal(24), "max_trade_hours": Decimal(0), "candle_interval": "1m",
                 "status": "OPEN", "entry_time": entered, "entry_price": price, "last_candle_time": checked}
        if rng.random() < 0.1:  # a limit entry far below (LONG) or above (SHORT) the price: still waiting
            limit = price * (1 - sign * Decimal("0.2"))
            trade.update(entry_mode="limit", signal_entry=_price(limit), status="PENDING", entry_time=None,
                         entry_price=None, stop_loss=_price(limit * (1 - sign * Decimal("0.05"))))
        trades.append(trade)
    return trades


def _price(value: Decimal) -> Decimal:
    return value.quantize(Decimal("1e-10")).normalize()


def one_pass(engine: Any, market_data: CountingMarketData, exchange: ExchangeProcess, now: datetime,
             profile: bool = False) -> dict[str, Any]:
    from worker.monitor import monitor_trades

    exchange.set_now(now)
    counter = StatementCounter(engine)
    before = market_data.klines_requests
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)  # CPU time, not wall
        profiler.enable()
    report, wall, cpu = timed(lambda: monitor_trades(engine, market_data, now=now))
    if profile:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    import sqlalchemy as sa

    sa.event.remove(engine, "before_cursor_execute", counter._seen)
    return {"cpu": cpu, "wall": wall, "statements": len(counter.statements), "kinds": counter.summary(),
            "requests": market_data.klines_requests - before, "changed": report.changed, "failed": len(report.failed)}


def digest(engine: Any) -> str:
    """A fingerprint of every trade's state after the passes, to compare two runs' outcomes."""
    import hashlib

    import sqlalchemy as sa

    columns = ("id", "status", "reason", "entry_time", "entry_price", "exit_time", "exit_price", "fees_usd",
               "pnl_usd", "pnl_pct", "ambiguous", "last_candle_time")
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT {', '.join(columns)} FROM trade ORDER BY id")).all()
    return hashlib.sha256(repr([tuple(map(str, row)) for row in rows]).encode()).hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--passes", type=int, default=5, help="passes after the first one")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres-url", default=os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
                        help="an admin URL of the server (a database is created and dropped there)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each pass (slows it down)")
    parser.add_argument("--code", help="measure the code of this checkout instead (for before/after figures)")
    args = parser.parse_args()

    from shared.database import make_engine
    from worker.market_data import BinanceClient

    spec = MarketSpec(symbols=args.symbols, start=START, minutes=24 * 60, seed=args.seed)
    trades = make_trades(SyntheticMarket(spec), args.trades, args.seed)
    with bench_database(args.postgres_url) as url, ExchangeProcess(spec) as exchange:
        insert_trades(url, trades, now=NEW_CANDLE)
        engine = make_engine(url)
        market_data = CountingMarketData(BinanceClient(spot_url=exchange.url, futures_url=exchange.url))
        print(f"{args.trades:,} open trades over {args.symbols} symbols, PostgreSQL, code: "
              f"{sys.path[0] if args.code else 'this checkout'}")
        print(f"{'pass':<8} {'CPU s':>6} {'wall s':>7} {'SQL':>6} {'klines':>7} {'changed':>8}  statements")
        later = []
        for number in range(args.passes + 1):
            now = NEW_CANDLE + timedelta(minutes=number, seconds=5)
            result = one_pass(engine, market_data, exchange, now, args.profile)
            print(f"{'first' if number == 0 else number:<8} {result['cpu']:>6.2f} {result['wall']:>7.2f} "
                  f"{result['statements']:>6} {result['requests']:>7} {result['changed']:>8}  {result['kinds']}",
                  flush=True)
            if result["failed"]:
                print(f"  ({result['failed']} symbol group(s) failed)")
            if number:
                later.append(result)
        print(f"outcome digest: {digest(engine)} (the same for any code that follows the rules)")
        engine.dispose()
    if later:
        print(f"later passes, median: {statistics.median(r['cpu'] for r in later):.2f} s CPU, "
              f"{statistics.median(r['wall'] for r in later):.2f} s wall, "
              f"{statistics.median(r['statements'] for r in later):.0f} SQL statements, "
              f"{statistics.median(r['requests'] for r in later):.0f} klines requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
