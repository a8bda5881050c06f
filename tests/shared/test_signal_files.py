"""Reading signal files in chunks (shared/signal_files.py `read_file`): whatever the chunk size,
the records are exactly those of the whole text (`read_rows`), and a file is read as its
records are taken, never whole. (What the records say is tested in test_signals.py.)"""

import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from shared.signal_files import RawRow, read_file, read_rows
from shared.signals import SIGNAL_FIELDS

HEADER = ",".join(SIGNAL_FIELDS)
OBJECT = ('{"id": 1, "time": "2024-05-01T11:59:00Z", "symbol": "BTCUSDT", "side": "LONG",'
          ' "take_profit": [61000.5, 6.2e3], "stop_loss": 59000.10}')
# Pieces whose meaning depends on what is next to them: a chunk may end between any two.
PIECES = st.sampled_from([
    OBJECT, '{"id": 1}', "[", "]", ",", "{", "}", ":", '"', '"a"', '"\\u00e9"', "\r", "\n", "\r\n", " ", "\t",
    "\x0c", "\u2028", "\ufeff", "é", "\x00", "1,2", "a,b\n", '"x\ny"', HEADER, "id,symbol\n", "s1,BTCUSDT\n",
    "nan", "NaN", "1e5", "-1.5E+3", "12", "0", "1.", "-", "true", "null",
])
TEXTS = st.one_of(
    st.text(),
    st.lists(PIECES, max_size=40).map("".join),
    *(st.lists(PIECES, max_size=30).map(lambda body, start=start: start + "".join(body))
      for start in ("[", "{", "\n {", HEADER + "\n", "\ufeff[")),
)


def records(rows: list[RawRow] | object) -> list[str]:
    """Records compared by their repr: a parsed NaN never equals itself."""
    return [repr((row.line, row.text, row.fields, row.error)) for row in rows]  # type: ignore[attr-defined]


def chunked(text: str, chunk_chars: int) -> list[RawRow]:
    return list(read_file(io.StringIO(text, newline=""), chunk_chars=chunk_chars))


@settings(max_examples=400)
@given(TEXTS, st.integers(1, 16))
def test_any_chunk_size_reads_the_records_of_the_whole_text(text: str, chunk_chars: int) -> None:
    assert records(chunked(text, chunk_chars)) == records(read_rows(text))


def pretty_array(count: int) -> str:
    return json.dumps([{"id": f"a{n}", "symbol": "ETHBTC", "take_profit": [0.095, 1e-07]} for n in range(count)],
                      indent=2)


@pytest.mark.parametrize("text", [
    pretty_array(40)[:900] + "x" + pretty_array(40)[901:],  # a broken element far into the array
    pretty_array(40).replace("},", "} ,\n,", 1),  # no element between two commas
    pretty_array(5) + "\n trailing",
    '[1e5, 2.5E-3, -0, 123456789]',  # numbers a chunk may cut ("1e" of "1e5" parses on its own)
    "\n\n  " + OBJECT + "\r\n\r\n",  # one object alone, after blank lines: read as one object
    "\n\n  " + OBJECT + "\r\n" + OBJECT + "\r\n",  # two: JSON lines, counted from the first line
    '{\r\n  "id": 1,\r\n  "symbol": "BTCUSDT"\r\n}\r\n',  # one pretty-printed object, its line breaks kept
    '{"id": 1,\n' + OBJECT + "\n",  # a broken first line of JSON lines
    HEADER + '\r\na1,2024,"multi\r\nline",x\r\n\r\n' + "a2,too,few\r" + "a3," * 11 + "\r",
])
def test_the_edges_a_chunk_can_cut_read_as_in_the_whole_text(text: str) -> None:
    whole = records(read_rows(text))
    for chunk_chars in (1, 2, 3, 7, 64, 1000):
        assert records(chunked(text, chunk_chars)) == whole, chunk_chars


def test_a_broken_element_names_its_place_in_the_whole_file() -> None:
    text = pretty_array(40)[:900] + "x" + pretty_array(40)[901:]
    error = chunked(text, 16)[-1].error
    assert error == read_rows(text)[-1].error and error is not None and "(char 900)" in error


class CountingText(io.StringIO):
    """A text file that counts how much of it was read."""

    taken = 0

    def read(self, size: int | None = -1) -> str:
        piece = super().read(size)
        self.taken += len(piece)
        return piece


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_a_file_is_read_as_its_records_are_taken(kind: str) -> None:
    rows = [{"id": f"s{n}", "symbol": "ETHBTC", "note": "x" * 50} for n in range(5000)]
    text = {"csv": "id,symbol,note\n" + "".join(f"{r['id']},{r['symbol']},{r['note']}\n" for r in rows),
            "jsonl": "".join(json.dumps(r) + "\n" for r in rows),
            "json": json.dumps(rows)}[kind]
    handle = CountingText(text, newline="")
    reading = read_file(handle, chunk_chars=4096)
    first = [next(reading) for _ in range(10)]
    assert [row.fields and row.fields["id"] for row in first] == [f"s{n}" for n in range(10)]
    assert handle.taken <= 2 * 4096 < len(text) / 10
    assert len(list(reading)) == 4990
