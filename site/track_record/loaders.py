"""Cached access to the database for the public pages: one read-only engine per process, and
loaders keyed by plain arguments (the URL and the data version), so a rerun re-reads nothing
unless the worker recorded something new."""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared import owner, settings as runtime
from shared.clock import utcnow
from shared.config import Config
from shared.database import transaction
from shared.heartbeat import read as heartbeat_row
from shared.models import LatestPrice, RuntimeSettings, Trade
from track_record import deployment, record
from track_record import signal_log as signal_log_module

if TYPE_CHECKING:
    from track_record import self_check


def config() -> Config:
    """The deployment configuration (read once per process: track_record.deployment)."""
    return deployment.config()


def database_url() -> str:
    """The database the public pages read: the read replica (SIGNALPROOF_SITE_DATABASE_URL) when
    one is set, else the one the worker writes. A replica is behind by its replication lag: the
    pages show what it has replayed, their data version moves when it does."""
    return config().site_read_url


def primary_database_url() -> str:
    """The database the worker writes (SIGNALPROOF_DATABASE_URL): the owner's settings page
    reads and writes here only, so the owner sees a change at once, whatever a replica lags."""
    return config().database_url


def demo_mode() -> bool:
    """Whether `signalproof demo` runs this site: then every page says the market is simulated."""
    return config().demo


def stale_after_seconds() -> float:
    """When the worker's heartbeat is stale: the same rule as `worker --check` (shared.heartbeat)."""
    from shared.heartbeat import stale_after

    return stale_after(config().monitor_interval_seconds, config().worker_stale_after_seconds)


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """Read-only: PostgreSQL transactions are READ ONLY, SQLite is opened with mode=ro."""
    from shared.database import make_engine

    return make_engine(url, read_only=True)


@st.cache_resource(show_spinner=False)
def owner_engine(url: str) -> Engine:
    """Read-write, for the settings page only (on `primary_database_url()`, never a replica): its
    login throttle and, after login, the owner's changes. No public page calls this; they all go
    through the read-only `engine`."""
    from shared.database import make_engine

    return make_engine(url)


def _session(url: str) -> Session:
    return Session(engine(url))


@st.cache_data(ttl=5, show_spinner=False)
def version(url: str) -> tuple[int, str]:
    with _session(url) as session:
        return record.data_version(session=session)


SNAPSHOT_MINUTES = 5  # "the last 7 days" moves with the clock: a snapshot is rebuilt at least this often


@st.cache_data(max_entries=16, show_spinner=False)
def _snapshot(url: str, data_version: tuple[int, str], live_only: bool, period: int, since: datetime | None,
              until: datetime | None) -> record.Snapshot:
    """`data_version` and `period` (the clock, in SNAPSHOT_MINUTES) are only the cache key."""
    with _session(url) as session:
        return record.build_snapshot(now=utcnow(), live_only=live_only, since=since, until=until, session=session)


def snapshot(url: str, data_version: tuple[int, str], live_only: bool, since: datetime | None = None,
             until: datetime | None = None) -> record.Snapshot:
    """What the Overview, Analytics and Methodology show (small, already reduced frames), built
    from the summary tables once per data version (a few hundred milliseconds at most), so a
    close or an owner's change is on the next refresh. `since`/`until`: the period shown
    (track_record/scope.py), whole UTC days."""
    period = int(utcnow().timestamp() // (SNAPSHOT_MINUTES * 60))
    return _snapshot(url, data_version, live_only, period, since, until)


@st.cache_data(ttl=30, show_spinner=False)
def positions(url: str, data_version: tuple[int, str], live_only: bool) -> pd.DataFrame:
    """Open trades at the latest stored prices (prices move without events: short TTL)."""
    with _session(url) as session:
        return record.open_positions(utcnow(), live_only=live_only, session=session)


@st.cache_data(ttl=5, show_spinner=False)
def heartbeat(url: str) -> dict[str, object] | None:
    with _session(url) as session:
        row = record.heartbeat(session=session)
        return row.model_dump() if row is not None else None


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def history(url: str, data_version: tuple[int, str], flt: record.HistoryFilter, order: str, page: int,
            size: int) -> tuple[list[dict[str, object]], int]:
    with _session(url) as session:
        return record.trade_page(flt, order=order, page=page, size=size, session=session)


@st.cache_data(ttl=300, show_spinner=False)
def split_trades(url: str, data_version: tuple[int, str]) -> bool:
    """Whether any trade was split over several targets (the trade tables then say "2/3")."""
    with _session(url) as session:
        return record.has_split_trades(session=session)


@st.cache_data(ttl=300, show_spinner=False)
def symbols(url: str, data_version: tuple[int, str]) -> list[str]:
    with _session(url) as session:
        return record.symbols(session=session)


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def signal_log(url: str, data_version: tuple[int, str], flt: "signal_log_module.SignalFilter", page: int,
               size: int) -> tuple[list[dict[str, object]], int]:
    """One page of the public signal log and the number of matching signals (SQL, paged)."""
    with _session(url) as session:
        return signal_log_module.signal_page(flt, page=page, size=size, session=session)


@st.cache_data(ttl=300, show_spinner=False)
def signal_choices(url: str, data_version: tuple[int, str]) -> dict[str, list[str]]:
    """The symbols and sources signals came with (for the signal log's filters)."""
    with _session(url) as session:
        return signal_log_module.choices(session=session)


def signals_csv_url(flt: "signal_log_module.SignalFilter") -> str:
    from track_record import api

    return api.signals_download_url(flt)


def ledger_state(url: str, *, for_banner: bool = False) -> "self_check.State | None":
    """The site's own check of its ledger (incremental per data version; see self_check.py), or
    None when it cannot be read right now (the page then says nothing rather than fail).
    `for_banner`: wait less for a new process's first full walk (every page shows the banner)."""
    from track_record import self_check

    try:
        checker = self_check.for_url(url)
        return checker.state(self_check.BANNER_WAIT_SECONDS) if for_banner else checker.state()
    except Exception as exc:  # one line in the log; a visitor is not shown a traceback
        logging.getLogger(__name__).error("ledger self-check: %s: %s", type(exc).__name__,
                                          (str(exc).splitlines() or [""])[0][:200])
        return None


@st.cache_data(ttl=30, show_spinner=False)
def receipt_delays(url: str, data_version: tuple[int, str]) -> list[record.ReceiptDelay]:
    with _session(url) as session:
        return record.receipt_delays(session=session)


@st.cache_data(ttl=30, show_spinner=False)
def same_candle_counts(url: str, data_version: tuple[int, str]) -> dict[str, int]:
    with _session(url) as session:
        return record.same_candle_counts(session=session)


@st.cache_data(ttl=30, show_spinner=False)
def checkpoints(url: str, data_version: tuple[int, str], newest: int = 20) -> list[dict[str, object]]:
    with _session(url) as session:
        return record.checkpoints(newest=newest, session=session)


def history_csv_url(flt: record.HistoryFilter) -> str:
    """Where the filtered history downloads in the export schema: a route beside the app that
    streams it (see track_record/api.py), so no visitor's download is ever held in memory."""
    from track_record import api

    return api.download_url(flt)


# --- the owner's side (the settings page): read-write, never cached ------------------------------


@dataclass(frozen=True)
class OwnerView:
    settings: RuntimeSettings
    values: dict[str, str]  # as `signalproof settings show` prints them
    version: str  # changes with every settings change: the forms are redrawn with the stored values
    beat: dict[str, object] | None


def owner_view(url: str) -> OwnerView:
    with transaction(owner_engine(url)) as session:
        settings = runtime.load(session=session)
        beat = heartbeat_row(session=session)
        values = runtime.as_dict(settings)
    version = settings.updated_at.isoformat() if settings.updated_at else "defaults"
    return OwnerView(settings, values, version, beat.model_dump() if beat is not None else None)


def set_paused(url: str, paused: bool, *, now: datetime) -> None:
    with transaction(owner_engine(url)) as session:
        owner.set_paused(paused, now=now, session=session)


def change_settings(url: str, changes: dict[str, str], *, now: datetime) -> list[tuple[str, str, str]]:
    with transaction(owner_engine(url)) as session:
        return runtime.change(changes, actor=owner.OWNER, now=now, session=session)


def owner_trades(url: str) -> list[tuple[Trade, LatestPrice | None]]:
    with transaction(owner_engine(url)) as session:
        return owner.active_trades(session=session)


def close_trade(url: str, trade_id: int, *, now: datetime, confirmed_price: Decimal) -> str:
    with transaction(owner_engine(url)) as session:
        return owner.close_trade(trade_id, now=now, confirmed_price=confirmed_price, session=session)


def cancel_trade(url: str, trade_id: int, *, now: datetime) -> str:
    with transaction(owner_engine(url)) as session:
        return owner.cancel_trade(trade_id, now=now, session=session)


def recent_changes(url: str, *, limit: int = 20) -> pd.DataFrame:
    with transaction(owner_engine(url)) as session:
        return record.public_changes(limit=limit, session=session)


@st.cache_data(ttl=30, max_entries=64, show_spinner=False)
def trade_detail(url: str, data_version: tuple[int, str], trade_id: int) -> "record.TradeDetail | None":
    """One trade's page. Open trades move without new ledger entries (candles, prices): a short TTL."""
    with _session(url) as session:
        return record.trade_detail(trade_id, session=session, now=utcnow())
