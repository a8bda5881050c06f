"""The verifiable ledger's format: entries, their canonical bytes, their hashes, the chain.

Pure: no database, no clock. An entry is the JSON object

    {"seq": 1, "time": "2024-05-01T12:00:00.000000Z", "kind": "signal.received",
     "data": {...}, "prev": "<64 hex>", "hash": "<64 hex>"}

and `hash` is the lowercase hex SHA-256 of the RFC 8785 (JSON Canonicalization Scheme) bytes
of the entry without its `hash` key; `prev` is the previous entry's hash (64 zeros for seq 1),
and seq counts 1, 2, 3 … without gaps. A published entry is those canonical bytes with `hash`
added, canonicalised again (docs/ledger.md is the full specification, enough to write a
verifier in another language).

Prices, stakes, fees and P/L in `data` are decimal strings without exponent, times are
`YYYY-MM-DDTHH:MM:SS.ffffffZ`: no float ever enters an entry, so every implementation of the
hashing rule agrees byte for byte.
"""

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
import rfc8785

GENESIS_PREV = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
TIME_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
KIND_PATTERN = re.compile(r"[a-z]+(?:\.[a-z_]+)+")
ENTRY_KEYS = frozenset({"seq", "time", "kind", "data", "prev", "hash"})


class LedgerFormatError(ValueError):
    """A line or object that is not a ledger entry at all (the input is unusable)."""


# --- values ------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """A ledger time: UTC, always six fractional digits, `Z`."""
    if moment.tzinfo is timezone.utc and moment.year >= 1000:
        return _utc_text(moment)
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: ledger times are UTC")
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


@functools.lru_cache(maxsize=1024)
def _utc_text(moment: datetime) -> str:
    """`format_time` of a UTC time: the same text as its strftime, three times faster, and
    remembered (an import formats its one receiving time twice per row)."""
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    if not TIME_PATTERN.fullmatch(text):
        raise ValueError(f"not a ledger time: {text!r}")
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text: no exponent, no trailing zeros ("0.00005123", "100", "-1.5")."""
    if not value.is_finite():
        raise ValueError(f"non-finite amount {value!r}")
    if value == 0:
        return "0"
    # normalize() in the default context: 28 significant digits, far below any price tick or cent,
    # and it keeps a P/L of 1.465 from showing as 1.464999… (the table keeps all 34 digits).
    return format(value.normalize(), "f")


_AS_IS = frozenset({str, int, bool, type(None)})  # exact types to_data returns unchanged


def to_data(value: Any) -> Any:
    """A Python value as ledger data: Decimals and times become text, enums their value."""
    kind = type(value)
    if kind in _AS_IS:  # the common cases first, by exact type (the checks below give the same)
        return value
    if kind is dict:
        return {str(key): item if type(item) in _AS_IS else to_data(item) for key, item in value.items()}
    if kind is Decimal:
        return decimal_text(value)
    if kind is datetime:
        return format_time(value)
    if kind is list:
        return [to_data(item) for item in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Mapping):
        return {str(key): to_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(item) for item in value]
    raise TypeError(f"{type(value).__name__} cannot go into a ledger entry (floats are not allowed)")


# --- canonical bytes and hashes -----------------------------------------------------------


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value.

    For what our entries hold (objects with ASCII keys, strings, integers, booleans, null)
    JCS is exactly `json.dumps` with sorted keys, no spaces and UTF-8 output, and so is
    `orjson.dumps` with sorted keys (the same escapes for every code point: tests/shared/
    test_ledger.py), twenty times faster than the general implementation; anything else (a
    float, a non-ASCII key, a lone surrogate in a forged file) goes through the `rfc8785`
    package. tests/shared/test_ledger.py checks the two agree.
    """
    if _simple(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate: let the reference implementation decide
            pass
    return rfc8785.dumps(value)


_SIMPLE_SCALARS = frozenset({str, bool, type(None)})
_SAFE_INTEGER = 2**53  # JCS numbers are IEEE doubles: larger ints need the reference


def _simple(value: Any) -> bool:
    kind = type(value)
    if kind in _SIMPLE_SCALARS:  # exact types first (fast); subclasses take the checks below
        return True
    if kind is int:
        return -_SAFE_INTEGER < value < _SAFE_INTEGER
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return _simple_slow(value)
            if not (type(item) in _SIMPLE_SCALARS or isinstance(item, str) or _simple(item)):
                return False
        return True
    if kind is list:
        return all(type(item) in _SIMPLE_SCALARS or isinstance(item, str) or _simple(item) for item in value)
    return _simple_slow(value)


def _simple_slow(value: Any) -> bool:
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return abs(value) < _SAFE_INTEGER
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _simple(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_simple(item) for item in value)
    return False


def entry_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 (lowercase hex) of the canonical bytes of an entry without its `hash`."""
    return hashlib.sha256(canonical({k: v for k, v in body.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "kind": self.kind, "data": self.data, "prev": self.prev}

    def line(self) -> bytes:
        """The published form: the canonical bytes of the whole entry, `hash` included."""
        return canonical({**self.body(), "hash": self.hash})

    def hash_ok(self) -> bool:
        try:
            return entry_hash(self.body()) == self.hash
        except (ValueError, TypeError, rfc8785.CanonicalizationError):  # e.g. an integer beyond 2**53 (forged)
            return False


def make_entry(*, seq: int, time: datetime, kind: str, data: Mapping[str, Any], prev: str) -> Entry:
    """The next entry of a chain whose last hash is `prev`."""
    return make_entry_and_data(seq=seq, time=time, kind=kind, data=data, prev=prev)[0]


def make_entry_and_data(*, seq: int, time: datetime, kind: str, data: Mapping[str, Any],
                        prev: str) -> tuple[Entry, bytes]:
    """`make_entry`, and the canonical bytes of the entry's data (what the event table stores).

    The data is canonicalised once, not twice: JCS writes an object as its members in key order
    ("data" < "kind" < "prev" < "seq" < "time"), each value exactly as it is written on its own,
    so the body's canonical bytes are the data's bytes with the other members around them
    (the same bytes as `entry_hash`'s: tests/shared/test_ledger.py).
    """
    if not KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"not an entry kind: {kind!r}")
    time_text, converted = format_time(time), to_data(dict(data))
    data_bytes = canonical(converted)
    # kind and time are ASCII letters, digits and punctuation that JSON writes as they are.
    body = b"".join((b'{"data":', data_bytes, b',"kind":"', kind.encode(), b'","prev":', canonical(prev),
                     b',"seq":', canonical(seq), b',"time":"', time_text.encode(), b'"}'))
    entry = Entry(seq=seq, time=time_text, kind=kind, data=converted, prev=prev, hash=hashlib.sha256(body).hexdigest())
    return entry, data_bytes


def parse_entry(value: Any) -> Entry:
    """An entry from its JSON object (or line), its shape checked; the hash is NOT checked here."""
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as error:
            raise LedgerFormatError(f"not JSON: {str(error)[:80]}") from None
    if not isinstance(value, dict) or set(value) != ENTRY_KEYS:
        raise LedgerFormatError("not a ledger entry (needs exactly seq, time, kind, data, prev, hash)")
    seq, time, kind, data, prev, hash_ = (value[k] for k in ("seq", "time", "kind", "data", "prev", "hash"))
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise LedgerFormatError(f"seq must be a positive integer (got {str(seq)[:20]!r})")
    if not isinstance(time, str) or not TIME_PATTERN.fullmatch(time):
        raise LedgerFormatError(f"entry {seq}: time is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise LedgerFormatError(f"entry {seq}: kind is not like trade.closed")
    if not isinstance(data, dict):
        raise LedgerFormatError(f"entry {seq}: data is not an object")
    for name, text in (("prev", prev), ("hash", hash_)):
        if not isinstance(text, str) or not HASH_PATTERN.fullmatch(text):
            raise LedgerFormatError(f"entry {seq}: {name} is not 64 lowercase hex digits")
    return Entry(seq=seq, time=time, kind=kind, data=data, prev=prev, hash=hash_)


# --- the chain -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


class ChainVerifier:
    """Checks entries in order, incrementally: feed it the chain in pieces, as it grows.

    `verified_through` is the last seq known good; after the first problem it stops moving
    (everything after a broken link is unproven).
    """

    def __init__(self, *, seq: int = 0, hash: str = GENESIS_PREV) -> None:
        self.verified_through = seq
        self.head_hash = hash
        self.problem: Problem | None = None

    def feed(self, entries: Iterable[Entry]) -> Problem | None:
        for entry in entries:
            if self.problem is not None:
                break
            self.problem = self._check(entry)
            if self.problem is None:
                self.verified_through, self.head_hash = entry.seq, entry.hash
        return self.problem

    def _check(self, entry: Entry) -> Problem | None:
        expected = self.verified_through + 1
        if entry.seq != expected:
            what = "missing" if entry.seq > expected else "repeated or out of order"
            return Problem(expected if entry.seq > expected else entry.seq,
                           f"expected seq {expected}, found {entry.seq} (entries {what})")
        if entry.prev != self.head_hash:
            return Problem(entry.seq, "prev does not match the previous entry's hash (the chain is broken)")
        if not entry.hash_ok():
            return Problem(entry.seq, "hash does not match the entry's content (the entry was changed)")
        if entry.seq == 1 and entry.kind != "ledger.genesis":
            return Problem(1, "the first entry is not ledger.genesis")
        return None


def verify_chain(entries: Iterable[Entry]) -> tuple[int, Problem | None]:
    """(last verified seq, first problem or None) of a whole chain from seq 1."""
    verifier = ChainVerifier()
    verifier.feed(entries)
    return verifier.verified_through, verifier.problem


def read_lines(lines: Iterable[bytes | str]) -> Iterator[Entry]:
    """Entries from JSON lines (blank lines skipped); LedgerFormatError names the line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_entry(line)
        except LedgerFormatError as error:
            raise LedgerFormatError(f"line {number}: {error}") from None
