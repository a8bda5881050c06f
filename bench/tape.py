"""Same-candle cases settled by the exchange's trade tape: requests and time (a benchmark, not a test).

    python bench/tape.py [--signals 300] [--symbols 20] [--days 3] [--postgres-url URL]

A brand-new PostgreSQL database (dropped at the end) gets `--signals` tight-stop market trades
(targets 0.05–0.3 % away, stops 0.05–0.2 %, one to three targets split evenly) on `--symbols`
symbols of the simulated exchange (demo/exchange.py, a seeded random walk, served over real
HTTP from a process of its own), signals spread over the first day. Then, `--days` later,
`Worker.catch_up()` (what `signalproof worker --once` runs), and the figures:

    wall / CPU seconds of the catch-up, klines requests, aggTrades requests, and the trades
    decided by the candle, by the tape ("trades") and with the stop-loss assumed.

Tape reads grow with the candles that reach both a stop and a target, not with the trades: one
read per (symbol, candle), however many trades share it.
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
from shared.targets import portions  # noqa: E402

START = datetime(2024, 3, 1, tzinfo=timezone.utc)


class CountingTapes(CountingMarketData):
    """Counts the aggTrades requests too (one per page of a tape)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.tape_requests = 0

    def agg_trades(self, *args: Any, **kwargs: Any) -> Any:
        self.tape_requests += 1
        return self.client.agg_trades(*args, **kwargs)


def make_trades(market: SyntheticMarket, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = [name for name in market.spec.names() if name[0] is Market.SPOT]
    trades = []
    for _ in range(count):
        market_kind, symbol = rng.choice(names)
        signal_time = START + minutes(rng.randrange(10, 24 * 60))
        price = market.candles(market_kind, symbol, "1m", signal_time - minutes(3), signal_time)[-1].close
        side = rng.choice(("LONG", "SHORT"))
        sign = 1 if side == "LONG" else -1
        steps = sorted(rng.sample(range(5, 30), rng.randint(1, 3)))
        targets = [_price(price * (1 + sign * Decimal(step) / 10000)) for step in steps]
        split = portions("even", tuple(targets))
        stop = _price(price * (1 - sign * Decimal(rng.randint(5, 20)) / 10000))
        trades.append({
            "symbol": symbol, "market": market_kind.value, "side": side, "leverage": 1, "signal_time": signal_time,
            "signal_entry": None, "take_profit": targets[0], "stop_loss": stop, "stake_usd": Decimal(100),
            "fee_rate": Decimal("0.001"), "entry_mode": "market", "slippage_bps": Decimal(0),
            "maintenance_margin_rate": Decimal("0.004"), "pending_expiry_hours": Decimal(24),
            "max_trade_hours": Decimal(0), "candle_interval": "1m", "status": "PENDING", "entry_time": None,
            "entry_price": None, "last_candle_time": None,
            "tp_split": "even" if len(targets) > 1 else "single", "stop_after_tp": "none",
            "targets": ";".join(format(t, "f") for t in targets) if len(targets) > 1 else None,
            "shares": ";".join(format(p.share, "f") for p in split) if len(targets) > 1 else None,
        })
    return trades


def _price(value: Decimal) -> Decimal:
    return value.quantize(Decimal("1e-10")).normalize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=300)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres-url", default=os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
                        help="an admin URL of the server (a database is created and dropped there)")
    args = parser.parse_args()

    from sqlmodel import select

    from shared.database import make_engine, transaction
    from shared.models import Trade
    from worker.market_data import BinanceClient
    from worker.service import Worker

    now = START + timedelta(days=args.days, hours=12, minutes=17, seconds=30)
    spec = MarketSpec(symbols=args.symbols, start=START, minutes=(args.days + 1) * 24 * 60, seed=args.seed)
    market = SyntheticMarket(spec)
    trades = make_trades(market, args.signals, args.seed)
    with bench_database(args.postgres_url) as url, ExchangeProcess(spec) as exchange:
        insert_trades(url, trades, now=START + timedelta(days=1))
        engine = make_engine(url)
        exchange.set_now(now)
        client = BinanceClient(spot_url=exchange.url, futures_url=exchange.url)
        market_data = CountingTapes(client)
        worker = Worker(engine, market_data, clock=lambda: now)  # type: ignore[arg-type]
        problems, wall, cpu = timed(worker.catch_up)
        with transaction(engine) as session:
            rows = list(session.exec(select(Trade)))
        engine.dispose()
    statuses = Counter(str(t.status) for t in rows)
    resolutions = Counter(t.resolution for t in rows if str(t.status).startswith(("CLOSED", "LIQUIDATED")))
    print(f"{args.signals} tight-stop trades on {args.symbols} symbols, caught up after {args.days} days, PostgreSQL")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, {market_data.klines_requests} klines requests, "
          f"{market_data.tape_requests} aggTrades requests" + (f", problems: {'; '.join(problems)}" if problems else ""))
    print("trades:", ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    print("decided by:", ", ".join(f"{count} {how}" for how, count in sorted(resolutions.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
