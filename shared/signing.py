"""Checkpoints of the ledger's head, signed with Ed25519.

A checkpoint is `{"seq", "hash", "time"}` of the head at some moment. Signed, it carries
`signature`: base64 of the Ed25519 signature over the checkpoint's RFC 8785 bytes (the three
keys only). Keys travel as base64 of their raw 32 bytes: `signalproof keygen` prints a pair,
the worker signs with `SIGNALPROOF_SIGNING_KEY`, anyone verifies with the public key the site
shows. A checkpoint published somewhere public (an anchor) pins the history up to it: a
rewritten chain cannot reproduce its hash at its seq.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from shared.ledger import canonical, format_time


class BadKey(ValueError):
    """A key that is not base64 of 32 bytes."""


@dataclass(frozen=True)
class KeyPair:
    private: str  # base64 of the raw 32-byte seed: the secret
    public: str  # base64 of the raw 32-byte public key: publish it


def generate() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KeyPair(base64.b64encode(private).decode(), base64.b64encode(public).decode())


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"the {what} is not base64") from None
    if len(raw) != 32:
        raise BadKey(f"the {what} must be 32 bytes (base64 of 44 characters), got {len(raw)}")
    return raw


def private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw(text, "signing key"))


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text, "public key"))


def public_of(private_text: str) -> str:
    """The public key (base64) that goes with a signing key."""
    raw = private_key(private_text).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def checkpoint(seq: int, hash: str, time: datetime) -> dict[str, object]:
    return {"seq": seq, "hash": hash, "time": format_time(time)}


def sign(point: dict[str, object], private_text: str) -> str:
    """The base64 Ed25519 signature over the checkpoint's canonical bytes (seq, hash, time)."""
    message = canonical({k: point[k] for k in ("seq", "hash", "time")})
    return base64.b64encode(private_key(private_text).sign(message)).decode()


def signature_ok(point: dict[str, object], signature: str, public_text: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key(public_text).verify(raw, canonical({k: point[k] for k in ("seq", "hash", "time")}))
    except (binascii.Error, ValueError, KeyError, InvalidSignature):
        return False
    return True
