"""What `signalproof verify` checks besides the chain itself: published heads and checkpoints.

Pure. A head `SEQ:HASH` someone noted earlier (from /api/v1/head, a checkpoint, a chat
message) must still be in the chain: a rewritten history cannot reproduce an old hash at its
seq. A checkpoint `{"seq", "hash", "time", "signature"}` must name an entry of the chain and,
given the owner's public key, carry a valid Ed25519 signature over its RFC 8785 bytes.
"""

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shared import signing
from shared.ledger import HASH_PATTERN, KIND_PATTERN, TIME_PATTERN, Entry, LedgerFormatError, parse_entry

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


# --- reading published entries fast ---------------------------------------------------------


@dataclass(frozen=True)
class CheckedEntry(Entry):
    """An entry whose hash was already checked on its published bytes (see `read_checked`)."""

    verdict: bool = False

    def hash_ok(self) -> bool:
        return self.verdict


def read_checked(lines: Iterable[bytes]) -> Iterator[Entry]:
    """Entries from published JSON lines, like shared.ledger.read_lines, with each hash checked
    on the way, fast.

    A published line is the canonical bytes of the entry, so when a line is exactly what
    `orjson.dumps(OPT_SORT_KEYS)` makes of it — which is RFC 8785 for ASCII text without escapes,
    integers below 2**53 and no floats — the canonical bytes of the entry without `hash` are the line
    with its top-level `,"hash":"…"` cut out: one SHA-256 of bytes we already have, instead of
    walking the value to canonicalise it again (about twice as fast on a million entries). Any other line
    (non-canonical, non-ASCII, a float, a huge integer) takes the general path of
    shared.ledger, so both give the same verdict for every line.
    """
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        entry = _fast(line)
        if entry is None:
            try:
                entry = checked(parse_entry(line))
            except LedgerFormatError as error:
                raise LedgerFormatError(f"line {number}: {error}") from None
        yield entry


def checked(entry: Entry) -> Entry:
    """An entry with its hash verdict taken now. A value RFC 8785 cannot represent (an integer
    beyond 2**53, NaN) has no canonical form, so no hash can match: the entry fails, it does
    not stop the verification."""
    try:
        verdict = entry.hash_ok()
    except ValueError:  # rfc8785's IntegerDomainError, FloatDomainError
        verdict = False
    result = object.__new__(CheckedEntry)
    result.__dict__.update(seq=entry.seq, time=entry.time, kind=entry.kind, data=entry.data, prev=entry.prev,
                           hash=entry.hash, verdict=verdict)
    return result


# A float, or an integer that may reach 2**53, as a value (after a key's `":`) or an array
# element: JCS writes those differently from their JSON text, so such a line takes the general
# path. (A match inside a string only sends a line there needlessly; `":` inside a string would
# need an escaped quote, and lines with a backslash never take the fast path.)
_ODD_VALUE = re.compile(rb'":-?(?:[0-9]{16}|[0-9]+[.eE])')
_ODD_ELEMENT = re.compile(rb'[\[,]-?(?:[0-9]{16}|[0-9]+[.eE])')
_ENTRY_KEYS = frozenset({"seq", "time", "kind", "data", "prev", "hash"})


def _fast(line: bytes) -> Entry | None:
    """The entry of a line in canonical form with its hash checked, or None for the general path."""
    if (b"\\" in line or not line.isascii() or _ODD_VALUE.search(line)
            or (b"[" in line and _ODD_ELEMENT.search(line))):
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict or value.keys() != _ENTRY_KEYS:
        return None
    seq, time, kind, data, prev, hash_ = (value["seq"], value["time"], value["kind"], value["data"], value["prev"],
                                          value["hash"])
    if not (type(seq) is int and seq >= 1 and type(data) is dict and type(time) is str and type(kind) is str
            and type(prev) is str and type(hash_) is str and TIME_PATTERN.fullmatch(time)
            and KIND_PATTERN.fullmatch(kind) and HASH_PATTERN.fullmatch(prev) and HASH_PATTERN.fullmatch(hash_)):
        return None
    if orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != line:  # not canonical: let the general path decide
        return None
    marker = b',"hash":"' + hash_.encode() + b'"'
    cut = line.rfind(marker)  # the top-level one: after `data`, before `kind`
    if cut < 0:
        return None
    body = line[:cut] + line[cut + len(marker):]
    entry = object.__new__(CheckedEntry)  # the dataclass's frozen __init__ costs as much as the hash
    entry.__dict__.update(seq=seq, time=time, kind=kind, data=data, prev=prev, hash=hash_,
                          verdict=hashlib.sha256(body).hexdigest() == hash_)
    return entry
