"""The ledger format (shared/ledger.py) and signed checkpoints (shared/signing.py): canonical
bytes agree with the reference RFC 8785 implementation, and every tampering is detected."""

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
import rfc8785
from hypothesis import given, strategies as st

from shared import signing
from shared.kinds import TradeStatus
from shared.ledger import (
    GENESIS_PREV, ChainVerifier, Entry, LedgerFormatError, canonical, decimal_text, entry_hash, format_time,
    make_entry, make_entry_and_data, parse_entry, read_lines, to_data, verify_chain,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_canonical_bytes_are_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):  # e.g. lone surrogates: not JSON text
        return
    assert canonical(value) == expected


def test_canonical_strings_are_rfc8785_for_every_code_point() -> None:
    """The fast path (orjson) escapes exactly as RFC 8785 does, whatever the character."""
    code_points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and (cp < 0x30000 or cp % 97 == 0)]
    for start in range(0, len(code_points), 4096):
        text = "".join(map(chr, code_points[start:start + 4096]))
        assert canonical({"k": [text, text[::-1]]}) == rfc8785.dumps({"k": [text, text[::-1]]})


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.integers(1, 2**53 - 1),
       st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-5))])), st.text(max_size=70))
def test_an_entry_and_its_data_bytes_are_rfc8785(data: dict[str, object], seq: int, time: datetime, prev: str) -> None:
    """make_entry_and_data puts the body's bytes together around the data's: the same bytes,
    and so the same hash, as canonicalising the whole body with the reference implementation."""
    try:
        reference = rfc8785.dumps(data)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return
    entry, data_bytes = make_entry_and_data(seq=seq, time=time, kind="signal.received", data=data, prev=prev)
    assert data_bytes == reference
    assert entry.time == time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"seq": seq, "time": entry.time, "kind": "signal.received", "data": entry.data, "prev": prev}
    assert entry.hash == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert make_entry(seq=seq, time=time, kind="signal.received", data=data, prev=prev) == entry


def chain(n: int) -> list[Entry]:
    entries = [make_entry(seq=1, time=T0, kind="ledger.genesis", data={"note": "start"}, prev=GENESIS_PREV)]
    for seq in range(2, n + 1):
        entries.append(make_entry(seq=seq, time=T0 + timedelta(seconds=seq), kind="trade.closed",
                                  data={"trade_id": seq, "pnl_usd": D("-1.50"), "status": TradeStatus.CLOSED_SL},
                                  prev=entries[-1].hash))
    return entries


def test_an_entry_is_hashed_over_its_canonical_bytes_without_the_hash() -> None:
    """Recomputed here by hand: sorted keys, no spaces, decimals as strings, times with 6 digits."""
    entry = make_entry(seq=1, time=T0, kind="ledger.genesis", data={"b": D("0.000050"), "a": T0}, prev=GENESIS_PREV)
    text = ('{"data":{"a":"2024-05-01T12:00:00.000000Z","b":"0.00005"},"kind":"ledger.genesis",'
            f'"prev":"{GENESIS_PREV}","seq":1,"time":"2024-05-01T12:00:00.000000Z"}}')
    assert entry.hash == hashlib.sha256(text.encode()).hexdigest()
    assert json.loads(entry.line()) == {**json.loads(text), "hash": entry.hash}
    assert entry.line() == rfc8785.dumps(json.loads(entry.line()))


def test_values_go_in_as_text_never_floats() -> None:
    assert to_data({"p": D("1E-8"), "q": D("100.0"), "t": T0, "s": TradeStatus.CLOSED_TP, "n": [1, None]}) == {
        "p": "0.00000001", "q": "100", "t": "2024-05-01T12:00:00.000000Z", "s": "CLOSED_TP", "n": [1, None]}
    assert decimal_text(D("-0")) == "0"
    with pytest.raises(TypeError):
        to_data({"x": 0.1})


def test_a_whole_chain_verifies() -> None:
    assert verify_chain(chain(20)) == (20, None)


def test_tampering_is_detected_at_its_seq() -> None:
    good = chain(10)
    edited = good.copy()
    edited[4] = replace(good[4], data={**good[4].data, "pnl_usd": "150"})  # an entry's data edited
    assert verify_chain(edited)[1].seq == 5 and "changed" in verify_chain(edited)[1].message
    deleted = good[:6] + good[7:]
    assert verify_chain(deleted) == (6, verify_chain(deleted)[1]) and verify_chain(deleted)[1].seq == 7
    reordered = good[:3] + [good[4], good[3]] + good[5:]
    assert verify_chain(reordered)[0] == 3
    # A forged entry with a recomputed hash still breaks the next link …
    forged = make_entry(seq=5, time=T0, kind="trade.closed", data={"pnl_usd": "999"}, prev=good[3].hash)
    assert verify_chain(good[:4] + [forged] + good[5:])[1].seq == 6
    # … and a whole rebuilt chain verifies on its own: only an earlier published head catches it
    # (signalproof verify --head, signed checkpoints).
    first = make_entry(seq=1, time=T0, kind="ledger.genesis", data={"note": "rewritten"}, prev=GENESIS_PREV)
    assert verify_chain([first])[1] is None and first.hash != good[0].hash


def test_the_first_entry_must_be_the_genesis() -> None:
    entry = make_entry(seq=1, time=T0, kind="signal.received", data={}, prev=GENESIS_PREV)
    assert verify_chain([entry])[1].seq == 1


def test_verification_is_incremental() -> None:
    entries = chain(30)
    verifier = ChainVerifier()
    verifier.feed(entries[:10])
    verifier.feed(entries[10:])
    assert (verifier.verified_through, verifier.problem) == (30, None)
    resumed = ChainVerifier(seq=10, hash=entries[9].hash)
    assert resumed.feed(entries[10:]) is None and resumed.verified_through == 30


@pytest.mark.parametrize("line", [
    b"not json", b"[]", b'{"seq": 1}', b'{"seq": true, "time": "", "kind": "a.b", "data": {}, "prev": "", "hash": ""}',
    json.dumps({"seq": 1, "time": "2024-05-01T12:00:00Z", "kind": "a.b", "data": {}, "prev": GENESIS_PREV,
                "hash": GENESIS_PREV}).encode(),
    json.dumps({"seq": 1, "time": "2024-05-01T12:00:00.000000Z", "kind": "a.b", "data": [], "prev": GENESIS_PREV,
                "hash": GENESIS_PREV}).encode(),
    b"[" * 100000,
])
def test_malformed_lines_are_format_errors_not_crashes(line: bytes) -> None:
    with pytest.raises(LedgerFormatError):
        list(read_lines([line]))


def test_published_lines_read_back_to_the_same_entries() -> None:
    entries = chain(5)
    assert list(read_lines(e.line() for e in entries)) == entries
    assert parse_entry(entries[2].line().decode()) == entries[2]
    assert entry_hash(json.loads(entries[2].line())) == entries[2].hash


def test_checkpoints_are_signed_over_their_canonical_bytes() -> None:
    keys = signing.generate()
    point = signing.checkpoint(42, "ab" * 32, T0)
    assert point == {"seq": 42, "hash": "ab" * 32, "time": format_time(T0)}
    signature = signing.sign(point, keys.private)
    assert signing.signature_ok(point, signature, keys.public)
    assert signing.public_of(keys.private) == keys.public
    assert not signing.signature_ok({**point, "seq": 43}, signature, keys.public)
    assert not signing.signature_ok(point, signature, signing.generate().public)
    assert not signing.signature_ok(point, "not base64!", keys.public)
    with pytest.raises(signing.BadKey):
        signing.sign(point, "short")
