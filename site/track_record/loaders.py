"""Cached access to the database for the public pages: one read-only engine per process, and
loaders keyed by plain arguments (the URL and the data version), so a rerun re-reads nothing
unless the worker recorded something new."""

import logging
import threading
import time
from datetime import datetime, timezone

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.config import Config
from track_record import data


@st.cache_resource(show_spinner=False)
def database_url() -> str:
    return Config().database_url


@st.cache_resource(show_spinner=False)
def demo_mode() -> bool:
    """Whether `signalproof demo` runs this site: then every page says the market is simulated."""
    return Config().demo


@st.cache_resource(show_spinner=False)
def stale_after_seconds() -> float:
    """When the worker's heartbeat is stale: the same rule as `worker --check` (shared.heartbeat)."""
    from shared.heartbeat import stale_after

    config = Config()
    return stale_after(config.monitor_interval_seconds, config.worker_stale_after_seconds)


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """Read-only: PostgreSQL transactions are READ ONLY, SQLite is opened with mode=ro."""
    from shared.database import make_engine

    return make_engine(url, read_only=True)


@st.cache_resource(show_spinner=False)
def owner_engine(url: str) -> Engine:
    """Read-write, for the settings page only: its login throttle and, after login, the owner's
    changes. No public page calls this; they all go through the read-only `engine`."""
    from shared.database import make_engine

    return make_engine(url)


def _session(url: str) -> Session:
    return Session(engine(url))


@st.cache_data(ttl=5, show_spinner=False)
def version(url: str) -> tuple[int, str]:
    with _session(url) as session:
        return data.data_version(session)


MAX_SNAPSHOT_AGE_SECONDS = 300


class SnapshotStore:
    """The newest finished snapshot per (database, live-only), rebuilt in the background.

    A snapshot of a million trades takes seconds to build. When the data version moves on, the
    visitor gets the previous snapshot at once while one thread builds the new one (stale for
    one refresh, never blocked); only the very first load of a process waits.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # key → (data version, built at (monotonic), snapshot)
        self.ready: dict[tuple[str, bool], tuple[tuple[int, str], float, data.Snapshot]] = {}
        self.building: set[tuple[str, bool]] = set()

    def get(self, url: str, data_version: tuple[int, str], live_only: bool) -> data.Snapshot:
        key = (url, live_only)
        with self.lock:
            current = self.ready.get(key)
            if current is not None:
                version, built_at, snap = current
                # New data, or old enough that "last 7 days" has moved: refresh behind the scenes.
                stale = version != data_version or time.monotonic() - built_at > MAX_SNAPSHOT_AGE_SECONDS
                if stale and key not in self.building:
                    self.building.add(key)
                    threading.Thread(target=self._rebuild, args=(key, data_version), daemon=True).start()
                return snap
        snap = _build(url, live_only)
        with self.lock:
            self.ready[key] = (data_version, time.monotonic(), snap)
        return snap

    def _rebuild(self, key: tuple[str, bool], data_version: tuple[int, str]) -> None:
        try:
            snap = _build(*key)
            with self.lock:
                self.ready[key] = (data_version, time.monotonic(), snap)
        except Exception:  # the previous snapshot stays; the next page run tries again
            logging.getLogger(__name__).exception("rebuilding the snapshot failed")
        finally:
            with self.lock:
                self.building.discard(key)


def _build(url: str, live_only: bool) -> data.Snapshot:
    with _session(url) as session:
        return data.build_snapshot(session, now=datetime.now(timezone.utc), live_only=live_only)


@st.cache_resource(show_spinner=False)
def _store() -> SnapshotStore:
    return SnapshotStore()


def snapshot(url: str, data_version: tuple[int, str], live_only: bool) -> data.Snapshot:
    """What the Overview, Analytics and Methodology show (small, already reduced frames)."""
    with st.spinner("Loading the track record…", show_time=True):
        return _store().get(url, data_version, live_only)


@st.cache_data(ttl=30, show_spinner=False)
def positions(url: str, data_version: tuple[int, str], live_only: bool) -> pd.DataFrame:
    """Open trades at the latest stored prices (prices move without events: short TTL)."""
    with _session(url) as session:
        return data.open_positions(session, datetime.now(timezone.utc), live_only=live_only)


@st.cache_data(ttl=5, show_spinner=False)
def heartbeat(url: str) -> dict[str, object] | None:
    with _session(url) as session:
        row = data.heartbeat(session)
        return row.model_dump() if row is not None else None


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def history(url: str, data_version: tuple[int, str], flt: data.HistoryFilter, order: str, page: int,
            size: int) -> tuple[list[dict[str, object]], int]:
    with _session(url) as session:
        trades, total = data.trade_page(session, flt, order=order, page=page, size=size)
        return [t.model_dump() for t in trades], total


@st.cache_data(ttl=300, show_spinner=False)
def symbols(url: str, data_version: tuple[int, str]) -> list[str]:
    with _session(url) as session:
        return data.symbols(session)


def history_csv_url(flt: data.HistoryFilter) -> str:
    """Where the filtered history downloads in the export schema: a route beside the app that
    streams it (see track_record/api.py), so no visitor's download is ever held in memory."""
    from track_record import api

    return api.download_url(flt)
