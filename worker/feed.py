"""The optional HTTP signal feed (`signal_feed_url`): a JSON array or JSON lines of signals."""

import logging
from datetime import datetime

import requests
from sqlalchemy.engine import Engine

from shared import heartbeat
from shared.database import transaction
from shared.signals import parse_feed_body, shown
from worker.intake import IntakeReport, store_rows

log = logging.getLogger(__name__)
MAX_FEED_BYTES = 10 * 1024 * 1024


def poll_feed(engine: Engine, url: str, *, http: requests.Session, now: datetime, timeout: float) -> IntakeReport | None:
    """Fetch the feed once and store what it lists; its status goes to the heartbeat row."""
    error: str | None = None
    report: IntakeReport | None = None
    try:
        response = http.get(url, timeout=timeout)
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_FEED_BYTES:
            raise ValueError(f"body larger than {MAX_FEED_BYTES} bytes")
        body = response.text.removeprefix("\ufeff").strip()
        if body and body[0] not in "[{":  # an error or login page, not a feed: nothing to store
            raise ValueError(f"not JSON (starts with {shown(body[:20])})")
        rows = parse_feed_body(response.text)
        with transaction(engine) as session:
            report = store_rows(session, rows, default_source="feed", received_at=now, actor="feed")
        if report.accepted or report.rejected:
            log.info("feed: %s", report.summary())
    except (requests.RequestException, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("feed %s: %s", url, error)
    with transaction(engine) as session:
        heartbeat.record_feed(session, now=now, error=error, received=report.accepted if report is not None else 0)
    return report
