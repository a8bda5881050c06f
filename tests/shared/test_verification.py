"""The fast reader of published entries gives exactly the verdict of the general path
(shared.ledger.parse_entry + Entry.hash_ok) on every line, canonical or not; heads and
checkpoints are checked against the chain and the owner's key."""

from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from shared import signing
from shared.ledger import GENESIS_PREV, LedgerFormatError, make_entry, parse_entry
from shared.verification import (Head, PublishedCheckpoint, check_checkpoint, check_head, parse_checkpoint,
                                 parse_head, read_checked)

AT = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def general(line: bytes) -> tuple[object, bool] | str:
    try:
        entry = parse_entry(line)
    except LedgerFormatError:
        return "malformed"
    try:
        return entry.body(), entry.hash_ok()
    except ValueError:  # no canonical form (rfc8785): the entry cannot be valid
        return entry.body(), False


def fast(line: bytes) -> tuple[object, bool] | str:
    try:
        entry = next(read_checked([line]))
    except LedgerFormatError:
        return "malformed"
    return entry.body(), entry.hash_ok()


def line_of(data: dict[str, object]) -> bytes:
    return make_entry(seq=3, time=AT, kind="trade.closed", data=data, prev=GENESIS_PREV).line()


VARIANTS = [
    lambda line: line,
    lambda line: line.replace(b'"pnl_usd":"1.5"', b'"pnl_usd":"2.5"'),  # edited
    lambda line: line.replace(b",", b", "),  # not canonical
    lambda line: line.replace(b'"leverage":2', b'"leverage":2.0'),  # a float
    lambda line: line.replace(b'"leverage":2', b'"leverage":2e0'),
    lambda line: line.replace(b'"leverage":2', b'"leverage":12345678901234567890'),  # huge
    lambda line: line.replace(b'"note":"a', b'"note":"\\u0061'),  # an escape for a plain letter
    lambda line: line.replace(b'{"data":{', b'{"data":{"actor":"x",'),  # duplicate key
    lambda line: line.replace(b'"seq":3', b'"seq":-3'),
    lambda line: line.replace(b'"seq":3', b'"seq":true'),
    lambda line: line[:-1],  # truncated
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_fast_and_general_agree_on_variants(variant: int) -> None:
    line = VARIANTS[variant](line_of({"actor": "worker", "note": "a,1.5 [2", "leverage": 2, "pnl_usd": "1.5",
                                      "take_profit": ["0.1", "0.2"], "ambiguous": False}))
    assert fast(line) == general(line)


@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8), max_size=6))
def test_fast_and_general_agree_on_any_data(data: dict[str, object]) -> None:
    line = line_of(data)
    assert fast(line) == general(line)
    assert fast(line)[1] is True  # type: ignore[index]


def test_heads() -> None:
    head = parse_head("12:" + "a" * 64)
    assert head == Head(12, "a" * 64)
    assert check_head(head, "a" * 64, 20) is None
    assert "beyond the ledger's end" in (check_head(head, None, 11) or "")
    assert "history was rewritten" in (check_head(head, "b" * 64, 20) or "")
    for bad in ("12", "0:" + "a" * 64, "x:y", "12:" + "a" * 63):
        with pytest.raises(ValueError):
            parse_head(bad)


def test_checkpoints() -> None:
    keys, other = signing.generate(), signing.generate()
    point = signing.checkpoint(5, "c" * 64, AT)
    signed = parse_checkpoint({**point, "signature": signing.sign(point, keys.private), "anchor_status": "ok"})
    assert check_checkpoint(signed, "c" * 64, keys.public) == []
    assert check_checkpoint(signed, "c" * 64, None) == []
    assert [p.split(": ", 1)[1] for p in check_checkpoint(signed, "c" * 64, other.public)] == \
        ["checkpoint of 2024-05-01T12:00:00.000000Z: the signature does not match the public key"]
    assert "history was rewritten" in check_checkpoint(signed, "d" * 64, None)[0]
    unsigned = PublishedCheckpoint(5, "c" * 64, point["time"], None)  # type: ignore[arg-type]
    assert "is not signed" in check_checkpoint(unsigned, "c" * 64, keys.public)[0]
    with pytest.raises(LedgerFormatError):
        parse_checkpoint({"seq": "5", "hash": "c" * 64, "time": point["time"]})
