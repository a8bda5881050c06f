"""Fixtures for the public site's page tests: databases filled directly through the models, and
the pages run headless with Streamlit's AppTest against them.

The rows are written the way the worker writes them (a signal, its trade with the settings it
was opened with, events, latest prices), but without the worker: each test states exactly the
track record it needs. P/L comes from `shared.ledger.settle`, so the rows are consistent.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from shared import events, settings as runtime, summaries
from shared.database import make_engine, transaction
from shared.money import settle
from shared.models import LatestPrice, Side, Signal, SignalStatus, Trade, TradeFill, TradeStatus, WorkerHeartbeat

UTC = timezone.utc
PAGES = ("overview", "trades", "analytics", "methodology")
SITE = Path(__file__).resolve().parents[2] / "site"
_MONEY = {"signal_entry", "take_profit", "stop_loss", "stake_usd", "fee_rate", "entry_price", "exit_price", "fees_usd",
          "pnl_usd", "pnl_pct"}
_ids = count(1)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def make_trade(**over: Any) -> Trade:
    """An unsaved, self-consistent trade (a closed take-profit LONG on BTCUSDT by default).

    Whatever `over` does not give is derived from the status, as the worker would have
    written it: entry/exit prices and times, fees and P/L through `settle`.
    """
    status = TradeStatus(over.get("status", TradeStatus.CLOSED_TP))
    side = Side(over.get("side", Side.LONG))
    leverage = int(over.get("leverage", 1))
    signal_time = over.get("signal_time", now() - timedelta(days=3))
    entry = D(str(over.get("entry_price") or over.get("signal_entry") or "60000"))
    up, down = (D("1.05"), D("0.97")) if side is Side.LONG else (D("0.95"), D("1.03"))
    values: dict[str, Any] = {
        "source": "bot", "signal_id": f"sig-{next(_ids)}", "origin": "live", "symbol": "BTCUSDT",
        "market": "FUTURES" if leverage > 1 else "SPOT", "side": side.value, "leverage": leverage,
        "signal_time": signal_time, "signal_entry": None, "take_profit": entry * up, "stop_loss": entry * down,
        "stake_usd": D(100), "fee_rate": D("0.0005") if leverage > 1 else D("0.001"), "entry_mode": "market",
        "slippage_bps": D(0), "maintenance_margin_rate": D("0.004"), "pending_expiry_hours": D(24),
        "max_trade_hours": D(0), "candle_interval": "1m", "ambiguous": False,
        "created_at": signal_time, "updated_at": signal_time,
    }
    values.update({k: D(v) if k in _MONEY and isinstance(v, str) else v
                   for k, v in over.items() if k not in ("status", "side", "leverage")})
    values.update(status=status.value, side=side.value, leverage=leverage)

    if status in (TradeStatus.PENDING, TradeStatus.CANCELLED):
        values.setdefault("signal_entry", None)
        if status is TradeStatus.PENDING and values["signal_entry"] is None:
            values["entry_mode"], values["signal_entry"] = "limit", entry
        if status is TradeStatus.CANCELLED:
            values.setdefault("reason", "entry not reached")
        return Trade(**values)

    values.setdefault("entry_time", signal_time)
    values.setdefault("entry_price", entry)
    if status is TradeStatus.OPEN:
        return Trade(**values)

    sign = side.sign
    if "exit_price" not in values:
        values["exit_price"] = {
            TradeStatus.CLOSED_TP: values["take_profit"],
            TradeStatus.CLOSED_SL: values["stop_loss"],
            TradeStatus.CLOSED_EXPIRED: values["entry_price"] * (1 + sign * D("0.004")),
            TradeStatus.CLOSED_MANUAL: values["entry_price"] * (1 - sign * D("0.002")),
            TradeStatus.LIQUIDATED:
                values["entry_price"] * (1 - sign * (1 / D(leverage) - values["maintenance_margin_rate"])),
        }[status]
    values.setdefault("exit_time", values["entry_time"] + timedelta(hours=5))
    values.setdefault("last_candle_time", values["exit_time"])
    money = settle(side_sign=sign, stake=values["stake_usd"], leverage=leverage, fee_rate=values["fee_rate"],
                   entry=values["entry_price"], exit=values["exit_price"], liquidated=status is TradeStatus.LIQUIDATED)
    values.setdefault("fees_usd", money.fees_usd)
    values.setdefault("pnl_usd", money.pnl_usd)
    values.setdefault("pnl_pct", values["pnl_usd"] / values["stake_usd"])
    values.setdefault("targets_hit", 1 if status is TradeStatus.CLOSED_TP else 0)
    values.setdefault("resolution", "assumed" if values.get("ambiguous") else "candle")  # no tape had
    return Trade(**values)


# The fill a one-target trade's close writes (shared.exits: tp1, sl, liquidated, expired, manual).
SINGLE_FILL = {TradeStatus.CLOSED_TP: "tp1", TradeStatus.CLOSED_SL: "sl", TradeStatus.LIQUIDATED: "liquidated",
               TradeStatus.CLOSED_EXPIRED: "expired", TradeStatus.CLOSED_MANUAL: "manual"}


def single_fills(trade: Trade) -> list[TradeFill]:
    """A closed one-target trade's one fill: its whole position, with the trade's fees and P/L."""
    status = TradeStatus(trade.status)
    if status not in SINGLE_FILL:
        return []
    return [TradeFill(time=trade.exit_time, kind=SINGLE_FILL[status], price=trade.exit_price, share=D(1),
                      fees_usd=trade.fees_usd, pnl_usd=trade.pnl_usd)]


def split_trade(targets: list[str], shares: list[str], exits: list[tuple[str, str]], *, tp_split: str = "even",
                stop_after_tp: str = "none", **over: Any) -> tuple[Trade, list[TradeFill]]:
    """An unsaved trade split over several targets and its fills, as the worker writes them.

    `exits` are (kind, price) in order: tp1, tp2 … at their targets, then optionally the rest
    (sl, liquidated, expired, manual) at its price. Each fill is settled as a trade of its own
    of its share (shared.exits); the trade's fees and P/L are their sums, its exit price their
    quantity-weighted mean, its status CLOSED_TP when the last part closed at a target, else the
    rest's status; OPEN while parts are still open (unless `status` says otherwise).
    """
    parts = [D(s) for s in shares]
    assert len(parts) == len(targets) and sum(parts) == 1, "shares must cover the targets and sum to 1"
    kinds = {"sl": TradeStatus.CLOSED_SL, "liquidated": TradeStatus.LIQUIDATED, "expired": TradeStatus.CLOSED_EXPIRED,
             "manual": TradeStatus.CLOSED_MANUAL}
    hit = sum(1 for kind, _ in exits if kind.startswith("tp"))
    rest = exits[-1][0] if exits and not exits[-1][0].startswith("tp") else None
    status = over.pop("status", None) or (kinds[rest] if rest else TradeStatus.CLOSED_TP if hit == len(parts)
                                          else TradeStatus.OPEN)
    base = make_trade(status=TradeStatus.OPEN if TradeStatus(status) is not TradeStatus.CANCELLED else status,
                      take_profit=D(targets[0]), **over)
    base.tp_split, base.stop_after_tp = tp_split, stop_after_tp
    base.targets, base.shares = ";".join(targets), ";".join(shares)
    if TradeStatus(status) is TradeStatus.CANCELLED:
        return base, []
    fills: list[TradeFill] = []
    left = D(1)
    for n, (kind, price) in enumerate(exits):
        share = parts[n] if kind.startswith("tp") else left
        left -= share
        money = settle(side_sign=Side(base.side).sign, stake=base.stake_usd * share, leverage=base.leverage,
                       fee_rate=base.fee_rate, entry=base.entry_price, exit=D(price), liquidated=kind == "liquidated")
        fills.append(TradeFill(time=base.entry_time + timedelta(hours=n + 1), kind=kind, price=D(price), share=share,
                               fees_usd=money.fees_usd, pnl_usd=money.pnl_usd))
    base.targets_hit = hit
    base.status = TradeStatus(status).value
    if TradeStatus(status).is_closed:
        base.exit_time = fills[-1].time
        base.last_candle_time = base.exit_time
        base.exit_price = sum(f.price * f.share for f in fills)
        base.fees_usd = sum(f.fees_usd for f in fills)
        base.pnl_usd = sum(f.pnl_usd for f in fills)
        base.pnl_pct = base.pnl_usd / base.stake_usd
    elif fills:
        base.last_candle_time = fills[-1].time
    return base, fills


@dataclass
class Seeder:
    """Writes a track record into one database, as the worker and the owner would have."""

    url: str
    engine: Engine
    trades: list[Trade] = field(default_factory=list)
    prices: dict[tuple[str, str], str] = field(default_factory=dict)  # (market, symbol) → latest price

    def trade(self, **over: Any) -> Trade:
        """A trade (see `make_trade`) with its ACCEPTED signal, its events and, once closed, its
        fill (the `trade_fill` row every close writes)."""
        note = over.pop("note", None)
        trade = make_trade(**over)
        return self._store(trade, single_fills(trade), note)

    def split(self, targets: list[str], shares: list[str], exits: list[tuple[str, str]], **over: Any) -> Trade:
        """A trade split over several targets with its fills (see `split_trade`), stored like `trade`."""
        note = over.pop("note", None)
        trade, fills = split_trade(targets, shares, exits, **over)
        return self._store(trade, fills, note)

    def fills(self, trade_id: int) -> list[TradeFill]:
        """The fill rows stored for this trade, in order."""
        from sqlmodel import Session, select

        with Session(self.engine) as session:
            return list(session.exec(select(TradeFill).where(TradeFill.trade_id == trade_id).order_by(TradeFill.id)))

    def _store(self, trade: Trade, fills: list[TradeFill], note: str | None) -> Trade:
        with transaction(self.engine) as session:
            signal = Signal(
                source=trade.source, signal_id=trade.signal_id, time=trade.signal_time,
                received_at=trade.signal_time + (timedelta(days=30) if trade.origin == "backfill"
                                                 else timedelta(seconds=2)),
                symbol=trade.symbol, side=trade.side, market=trade.market, entry=trade.signal_entry,
                take_profit=str(trade.take_profit), stop_loss=trade.stop_loss, leverage=trade.leverage,
                note=note, status=SignalStatus.ACCEPTED.value, origin=trade.origin,
                processed_at=trade.signal_time,
            )
            session.add(signal)
            session.flush()
            trade.signal_pk = signal.id
            session.add(trade)
            session.flush()
            events.record(kind="signal.accepted", at=trade.signal_time, signal_pk=signal.id,
                          message=f"signal {trade.signal_id} accepted", session=session)
            if trade.entry_time is not None:
                events.record(kind="trade.opened", at=trade.entry_time, trade_id=trade.id,
                              message=f"trade {trade.id} opened", session=session)
            if trade.exit_time is not None:
                events.record(kind="trade.closed", at=trade.exit_time, trade_id=trade.id,
                              message=f"trade {trade.id} {trade.status}", session=session)
            for fill in fills:
                fill.trade_id = trade.id
                session.add(fill)
            summaries.note_trade(trade.id, session=session)  # as record_opened does
            if not TradeStatus(trade.status).is_active:  # counted in the summary tables, as save_decision does
                summaries.count_end(trade, status=TradeStatus(trade.status), pnl=trade.pnl_usd,
                                    entry_time=trade.entry_time, exit_time=trade.exit_time, ambiguous=trade.ambiguous,
                                    session=session)
        self.trades.append(trade)
        return trade

    def signal(self, status: SignalStatus, reason: str | None = None, **over: Any) -> Signal:
        """A signal that did not become a trade (rejected, skipped, or not processed yet)."""
        time = over.pop("time", now() - timedelta(days=2))
        values: dict[str, Any] = {
            "source": "bot", "signal_id": f"sig-{next(_ids)}", "time": time, "received_at": time, "symbol": "BTCUSDT",
            "side": "LONG", "market": "SPOT", "take_profit": "70000", "stop_loss": D("50000"), "leverage": 1,
            "origin": "live", **over,
        }
        signal = Signal(status=status.value, reason=reason, **values)
        with transaction(self.engine) as session:
            session.add(signal)
            session.flush()
            if status is not SignalStatus.NEW:
                events.record(kind=f"signal.{status.value.lower()}", at=time, signal_pk=signal.id,
                              message=f"signal {signal.signal_id} {status.value.lower()}: {reason}", session=session)
        return signal

    def price(self, symbol: str, price: str, market: str = "SPOT") -> None:
        with transaction(self.engine) as session:
            session.merge(LatestPrice(market=market, symbol=symbol, price=D(price), updated_at=now()))
        self.prices[(market, symbol)] = price

    def settings(self, actor: str = "owner", at: datetime | None = None, **changes: str) -> list[tuple[str, str, str]]:
        with transaction(self.engine) as session:
            return runtime.change(changes, actor=actor, now=at or now(), session=session)

    def heartbeat(self, seconds_ago: float = 12) -> None:
        beat = now() - timedelta(seconds=seconds_ago)
        with transaction(self.engine) as session:
            session.merge(WorkerHeartbeat(id=1, started_at=beat - timedelta(hours=1), last_tick_at=beat,
                                          last_success_at=beat, behind_seconds=1.0, pid=1, hostname="test"))


@pytest.fixture
def seed(database_url: str) -> Iterator[Seeder]:
    """An empty, migrated database (SQLite, then PostgreSQL) and a way to fill it."""
    engine = make_engine(database_url)
    yield Seeder(database_url, engine)
    engine.dispose()


def fill_rich(seed: Seeder) -> Seeder:
    """A varied track record: every exit reason, open and pending trades marked to stored
    prices, live and backfilled signals, rejected and skipped signals, a settings change."""
    start = now() - timedelta(days=20)
    day = timedelta(days=1)
    seed.settings(at=start - day, stake_usd="100")  # no change: nothing is logged
    seed.trade(symbol="BTCUSDT", status="CLOSED_TP", signal_time=start, entry_price="60000")
    seed.trade(symbol="ETHUSDT", status="CLOSED_SL", signal_time=start + day, entry_price="3000")
    seed.trade(symbol="ETHUSDT", side="SHORT", status="CLOSED_TP", signal_time=start + 2 * day, entry_price="3100")
    seed.trade(symbol="XRPUSDT", leverage=20, status="LIQUIDATED", signal_time=start + 3 * day, entry_price="0.52")
    seed.trade(symbol="BTCUSDT", status="CLOSED_EXPIRED", signal_time=start + 4 * day, entry_price="61000",
               max_trade_hours=D(2), exit_time=start + 4 * day + timedelta(hours=2))
    seed.trade(symbol="ETHBTC", status="CLOSED_SL", ambiguous=True, signal_time=start + 5 * day, entry_price="0.05")
    seed.trade(symbol="ADABTC", side="SHORT", status="CLOSED_TP", origin="backfill", signal_time=start - 30 * day,
               entry_price="0.0000055")
    seed.trade(symbol="ADABTC", status="CLOSED_SL", origin="backfill", signal_time=start - 29 * day,
               entry_price="0.0000056")
    seed.trade(symbol="BTCUSDT", status="CLOSED_MANUAL", signal_time=start + 6 * day, entry_price="62000")
    # Breakeven: a fee-free trade closed at its entry price.
    expired_at = start + 6 * day + timedelta(hours=9)
    seed.trade(symbol="ETHUSDT", status="CLOSED_EXPIRED", fee_rate=D(0), signal_time=expired_at - timedelta(hours=1),
               entry_price="3050", exit_price="3050", max_trade_hours=D(1), exit_time=expired_at)
    seed.trade(symbol="SOLUSDT", status="CANCELLED", reason="entry beyond stop-loss/take-profit",
               signal_time=start + 7 * day, entry_price="150")
    seed.settings(at=start + 8 * day, stake_usd="250")
    seed.trade(symbol="BTCUSDT", status="OPEN", stake_usd=D(250), signal_time=now() - timedelta(hours=6),
               entry_price="64000")
    seed.trade(symbol="ETHUSDT", side="SHORT", leverage=5, status="OPEN", stake_usd=D(250),
               signal_time=now() - timedelta(hours=30), entry_price="3200")
    seed.trade(symbol="SOLUSDT", status="PENDING", stake_usd=D(250), signal_time=now() - timedelta(hours=2),
               signal_entry=D("140"))
    seed.price("BTCUSDT", "64800")
    seed.price("ETHUSDT", "3150", market="FUTURES")
    seed.price("SOLUSDT", "145")
    seed.signal(SignalStatus.REJECTED, "unknown symbol", symbol="NOPECOIN")
    seed.signal(SignalStatus.REJECTED, "take_profit: must be above stop_loss for LONG")
    seed.signal(SignalStatus.SKIPPED, "paused")
    seed.signal(SignalStatus.NEW)
    seed.heartbeat()
    return seed


@pytest.fixture
def rich() -> Callable[[Seeder], Seeder]:
    """`fill_rich`, for tests that add their own rows first (tests cannot import a conftest)."""
    return fill_rich


@pytest.fixture
def seeded_database(seed: Seeder) -> Seeder:
    """The rich track record of `fill_rich`, on SQLite and on PostgreSQL."""
    return fill_rich(seed)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Callable[..., AppTest]]:
    """Runs one public page (`app("overview")`) against this test's database, caches cleared.

    Pages are run directly from their files: they need no `st.navigation` context (they link
    nowhere), and the whole app through `site/streamlit_app.py` is covered by a test of its own.
    """
    def run(page: str, *, url: str | None = None) -> AppTest:
        monkeypatch.setenv("SIGNALPROOF_DATABASE_URL", url or database_url)
        st.cache_data.clear()
        st.cache_resource.clear()
        return AppTest.from_file(str(SITE / "app_pages" / f"{page}.py"), default_timeout=60).run()

    yield run
    st.cache_data.clear()
    st.cache_resource.clear()  # drop the cached read-only engines (and their connections)
