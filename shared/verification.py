"""What `signalproof verify` checks besides the chain itself: published heads and checkpoints.

Pure. A head `SEQ:HASH` someone noted earlier (from /api/v1/head, a checkpoint, a chat
message) must still be in the chain: a rewritten history cannot reproduce an old hash at its
seq. A checkpoint `{"seq", "hash", "time", "signature"}` must name an entry of the chain and,
given the owner's public key, carry a valid Ed25519 signature over its RFC 8785 bytes.
"""

import re
from dataclasses import dataclass
from typing import Any

from shared import signing
from shared.ledger import HASH_PATTERN, TIME_PATTERN, LedgerFormatError

HEAD_PATTERN = re.compile(r"([0-9]+):([0-9a-f]{64})")


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def parse_head(text: str) -> Head:
    match = HEAD_PATTERN.fullmatch(text.strip().lower())
    if match is None or int(match[1]) < 1:
        raise ValueError(f"--head {text[:90]!r}: expected SEQ:HASH (a seq ≥ 1, a colon, 64 hex digits)")
    return Head(int(match[1]), match[2])


@dataclass(frozen=True)
class PublishedCheckpoint:
    seq: int
    hash: str
    time: str
    signature: str | None

    def point(self) -> dict[str, object]:
        return {"seq": self.seq, "hash": self.hash, "time": self.time}


def parse_checkpoint(value: Any) -> PublishedCheckpoint:
    """One checkpoint object as published (extra keys, e.g. anchor results, are ignored)."""
    if not isinstance(value, dict):
        raise LedgerFormatError("a checkpoint is not a JSON object")
    seq, hash_, time, signature = (value.get(k) for k in ("seq", "hash", "time", "signature"))
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise LedgerFormatError("a checkpoint's seq is not a positive integer")
    if not isinstance(hash_, str) or not HASH_PATTERN.fullmatch(hash_):
        raise LedgerFormatError(f"checkpoint {seq}: hash is not 64 lowercase hex digits")
    if not isinstance(time, str) or not TIME_PATTERN.fullmatch(time):
        raise LedgerFormatError(f"checkpoint {seq}: time is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    if signature is not None and not isinstance(signature, str):
        raise LedgerFormatError(f"checkpoint {seq}: signature is not a string")
    return PublishedCheckpoint(seq, hash_, time, signature or None)


def check_head(head: Head, chain_hash: str | None, last_seq: int) -> str | None:
    """A problem line, or None when the head is in the chain."""
    if chain_hash is None:
        return (f"seq {head.seq}: the head {head.seq}:{head.hash[:12]}… published earlier is beyond the ledger's end "
                f"(seq {last_seq}): entries were removed")
    if chain_hash != head.hash:
        return (f"seq {head.seq}: the head published earlier had hash {head.hash[:12]}…, the ledger now has "
                f"{chain_hash[:12]}… there: history was rewritten")
    return None


def check_checkpoint(point: PublishedCheckpoint, chain_hash: str | None, public_key: str | None) -> list[str]:
    problems = []
    if chain_hash is None:
        problems.append(f"seq {point.seq}: checkpoint of {point.time} names an entry the ledger does not have")
    elif chain_hash != point.hash:
        problems.append(f"seq {point.seq}: checkpoint of {point.time} says hash {point.hash[:12]}…, the ledger has "
                        f"{chain_hash[:12]}…: history was rewritten")
    if public_key is not None:
        if point.signature is None:
            problems.append(f"seq {point.seq}: checkpoint of {point.time} is not signed")
        elif not signing.signature_ok(point.point(), point.signature, public_key):
            problems.append(f"seq {point.seq}: checkpoint of {point.time}: the signature does not match the public key")
    return problems
