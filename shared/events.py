"""The append-only event log: every state change gets one row, and rows are never updated."""

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from shared.models import Event


def record(session: Session, *, kind: str, message: str, at: datetime, actor: str = "worker",
           signal_pk: int | None = None, trade_id: int | None = None, data: dict[str, Any] | None = None) -> None:
    session.add(Event(at=at, kind=kind, actor=actor, signal_pk=signal_pk, trade_id=trade_id, message=message,
                      data=json.dumps(data, default=str, sort_keys=True) if data is not None else None))
