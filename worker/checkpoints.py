"""Checkpoints: the ledger's head noted (and signed) every few minutes while it moves, then
handed to an optional anchor command that publishes it somewhere public.

A checkpoint pins the history up to it: once its `{seq, hash}` is out of the server's hands
(a git repository, a chat channel), a rewritten chain cannot match it (docs/ledger.md). The
row is committed first, in a short transaction of its own; only then does the anchor run,
outside any transaction, with a time limit, in its own scheduler thread, so a failing or
hanging anchor never holds the write lock or delays a trading job. Its outcome (exit status,
first line of output) is written on the checkpoint row.
"""

import logging
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from shared import signing
from shared.database import transaction
from shared.ledger import canonical, format_time
from shared.models import Checkpoint, Event

log = logging.getLogger(__name__)
DETAIL_CHARS = 200


@dataclass(frozen=True)
class CheckpointPolicy:
    """From the deployment configuration (SIGNALPROOF_CHECKPOINT_MINUTES, _SIGNING_KEY,
    _ANCHOR_COMMAND, _ANCHOR_TIMEOUT_SECONDS)."""

    minutes: float = 10.0
    signing_key: str | None = None
    anchor_command: str | None = None
    anchor_timeout: float = 30.0


def published(row: Checkpoint) -> dict[str, object]:
    """A checkpoint as it is published (API, anchor stdin): the signed point, its signature and key."""
    point: dict[str, object] = {"seq": row.seq, "hash": row.hash, "time": format_time(row.time)}
    if row.signature is not None:
        point["signature"] = row.signature
        point["public_key"] = row.public_key
    return point


def record_checkpoint(engine: Engine, *, now: datetime, signing_key: str | None = None) -> Checkpoint | None:
    """Note the head if it moved since the last checkpoint; None when it did not (or is empty)."""
    with transaction(engine) as session:
        head = session.execute(sa.select(Event.id, Event.hash).order_by(Event.id.desc()).limit(1)).first()
        if head is None:
            return None
        last = session.exec(select(Checkpoint).order_by(Checkpoint.id.desc()).limit(1)).first()  # type: ignore[union-attr]
        if last is not None and last.seq == head[0]:
            return None
        point = signing.checkpoint(int(head[0]), str(head[1]), now)
        row = Checkpoint(seq=int(head[0]), hash=str(head[1]), time=now, created_at=now)
        if signing_key:
            row.signature, row.public_key = signing.sign(point, signing_key), signing.public_of(signing_key)
        session.add(row)
        session.flush()
    log.info("checkpoint: seq %d %s%s", row.seq, row.hash[:12], " (signed)" if row.signature else "")
    return row


def run_anchor(command: str, payload: bytes, *, timeout: float) -> tuple[str, str]:
    """(status, detail) of the anchor command fed `payload`: ok, failed or timeout. No shell."""
    try:
        process = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, ValueError) as exc:
        return "failed", f"cannot start: {exc}"[:DETAIL_CHARS]
    try:
        output, _ = process.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:  # the whole process group: a script's children (curl, git push) hang too
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()
        return "timeout", f"killed after {timeout:g} s"
    first = next((line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()), "")
    status = "ok" if process.returncode == 0 else "failed"
    return status, (f"exit {process.returncode}" + (f": {first}" if first else ""))[:DETAIL_CHARS]


def anchor(engine: Engine, row: Checkpoint, *, command: str, timeout: float) -> tuple[str, str]:
    """Run the anchor on a committed checkpoint and write its outcome on the row."""
    payload = canonical(published(row)) + b"\n"
    status, detail = run_anchor(command, payload, timeout=timeout)
    with transaction(engine) as session:
        session.execute(sa.update(Checkpoint).where(Checkpoint.id == row.id)
                        .values(anchor_status=status, anchor_detail=detail))
    row.anchor_status, row.anchor_detail = status, detail
    (log.info if status == "ok" else log.warning)("anchor of checkpoint %d: %s (%s)", row.seq, status, detail)
    return status, detail


def checkpoint_job(engine: Engine, policy: CheckpointPolicy, *, now: datetime) -> Checkpoint | None:
    """The worker's checkpoint job: note the head if it moved, then anchor it (if configured)."""
    row = record_checkpoint(engine, now=now, signing_key=policy.signing_key)
    if row is not None and policy.anchor_command:
        anchor(engine, row, command=policy.anchor_command, timeout=policy.anchor_timeout)
    return row
