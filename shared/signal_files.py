"""Reading signal files and feed bodies into records: CSV with a header, JSON lines, a JSON
array (docs/signals.md). Pure: text in (a string, or an open file read in chunks, so a file of
any size takes bounded memory), `RawRow`s out; `shared.signals.validate` judges each.

Every record keeps its line and its text, so a rejection can say where it came from, and a
broken record never hides the ones around it. A whole file that is not a signal file at all is
refused (`refusal`), so a mistaken import cannot fill the public record with rejections.
"""

import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TextIO

from shared.signals import SIGNAL_FIELDS, Rejection, ValidSignal, shown, validate


@dataclass(frozen=True)
class RawRow:
    """One record of a file or feed body, before validation."""

    line: int  # 1-based line in the file; for a JSON array, the 1-based element index
    text: str  # the record as it appeared, for error messages and the `raw` column
    fields: dict[str, object] | None  # known keys only (lower-case); None when unparseable
    error: str | None  # why the record could not even be parsed (bad JSON, column count)



NOT_A_SIGNAL_FILE = "not a signal file"


def refusal(rows: Iterable[RawRow], *, received_at: datetime, default_source: str = "default") -> str | None:
    """Why a whole import file is refused (nothing of it is stored), or None to import it.

    A file imported by mistake (/etc/passwd, a CSV of something else) would otherwise become
    rows of permanent REJECTED signals. So a file whose header is not a signal header, or in
    which not one row is a valid signal, is refused whole; a file with some valid rows is
    imported, its invalid rows REJECTED with their reasons. Reads `rows` only up to the first
    valid signal.
    """
    first: RawRow | None = None
    count = 0
    for row in rows:
        if first is None:
            first = row
            if first.fields is None and (first.error or "").startswith(NOT_A_SIGNAL_FILE):
                return f"{first.error}; nothing imported"
        count += 1
        if row.fields is not None and isinstance(
                validate(row.fields, received_at=received_at, default_source=default_source), ValidSignal):
            return None
    if first is None:
        return None
    problem = first.error if first.fields is None else validate(first.fields, received_at=received_at,
                                                                 default_source=default_source)
    reason = problem.reason if isinstance(problem, Rejection) else problem
    return (f"not one of its {count} record(s) is a valid signal (line {first.line}: {reason});"
            " nothing imported")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the same line breaks the csv module counts
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")  # one line with its break
CHUNK_CHARS = 1 << 20  # how much of a file is read at a time: memory stays bounded by it, not by the file


def read_rows(text: str) -> list[RawRow]:
    """The records of an import file: CSV with a header, JSON lines, or a JSON array."""
    return list(read_file(io.StringIO(text, newline="")))


def read_file(handle: TextIO, *, chunk_chars: int = CHUNK_CHARS) -> Iterator[RawRow]:
    """`read_rows` of a file read piece by piece (open it with `newline=""`, so that line
    breaks reach us as they are): a file of any size is read in bounded memory, its records
    are exactly those `read_rows` gives for the whole text.

    Only two cases read the rest of the file at once: a broken JSON array (its last record
    shows the rest) and JSON that starts with `{` but whose first line is not a whole object
    (it may be one pretty-printed object)."""
    text = _Text(handle, chunk_chars)
    text.skip_prefix("\ufeff")
    first = text.first_visible()
    if first == "[":
        yield from _json_array(text)
    elif first == "{":
        yield from _json_objects(text)
    else:
        yield from _csv_rows(text.lines())


def parse_feed_body(body: str) -> list[RawRow]:
    """The records of an HTTP feed body: a JSON array or JSON lines (or one JSON object)."""
    body = body.removeprefix("\ufeff")
    stripped = body.strip()
    if not stripped:
        return []
    if stripped[0] not in "[{":
        # An HTML error page or similar: one problem, not one "invalid JSON" per line of it.
        return [RawRow(1, stripped[:200], None, f"not JSON (starts with {shown(stripped[:20])})")]
    return list(read_file(io.StringIO(body, newline="")))


class _Text:
    """A text read in chunks: a window `buffer` on it, which starts at `offset` in the text."""

    def __init__(self, handle: TextIO, chunk_chars: int) -> None:
        self.handle, self.chunk_chars = handle, chunk_chars
        self.buffer, self.offset, self.eof = "", 0, False
        self.newlines_before, self.last_newline = 0, -1  # "\n"s before the window; where the last was

    def more(self) -> bool:
        """Read on (at least as much again as the window holds); False at the end of the text."""
        if self.eof:
            return False
        piece = self.handle.read(max(self.chunk_chars, len(self.buffer)))
        self.eof = not piece
        self.buffer += piece
        return not self.eof

    def rest(self, position: int) -> str:
        """Everything from `position` (in the window) to the end of the text."""
        while self.more():
            pass
        return self.buffer[position:]

    def drop(self, position: int) -> None:
        """Forget the window before `position`."""
        gone = self.buffer[:position]
        newlines = gone.count("\n")
        if newlines:
            self.newlines_before += newlines
            self.last_newline = self.offset + gone.rindex("\n")
        self.buffer, self.offset = self.buffer[position:], self.offset + position

    def skip_prefix(self, prefix: str) -> None:
        """Skip `prefix` if the text starts with it: positions then count from after it."""
        while len(self.buffer) < len(prefix) and self.more():
            pass
        self.buffer = self.buffer.removeprefix(prefix)

    def first_visible(self) -> str:
        """The first character that is not white space ("" for none), as `str.lstrip` sees it."""
        while not self.buffer.lstrip() and self.more():
            pass
        return self.buffer.lstrip()[:1]

    def skip_space(self, position: int) -> int:
        """The position after JSON white space from `position`, reading on as needed."""
        while True:
            while position < len(self.buffer) and self.buffer[position] in " \t\r\n":
                position += 1
            if position < len(self.buffer) or not self.more():
                return position

    def lines(self) -> Iterator[str]:
        """The lines, each with its line break (the last one may have none)."""
        while True:
            position = 0
            for match in _LINE.finditer(self.buffer):
                if match.end() == len(self.buffer) and self.buffer.endswith("\r") and not self.eof:
                    break  # maybe the first half of "\r\n": read on first
                position = match.end()
                yield match.group()
            self.drop(position)
            if not self.more():
                if self.buffer:
                    yield self.buffer
                return

    def decode_error(self, error: json.JSONDecodeError) -> str:
        """The message `json` gives for this error in the whole text (it counts from the window)."""
        position = self.offset + error.pos
        line = self.newlines_before + self.buffer.count("\n", 0, error.pos) + 1
        newline = self.buffer.rfind("\n", 0, error.pos)
        column = error.pos - newline if newline >= 0 else position - self.last_newline
        return f"{error.msg}: line {line} column {column} (char {position})"


def _without_break(line: str) -> str:
    return line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith(("\r", "\n")) else line


class _NotJson:
    def __init__(self, message: str) -> None:
        self.message = message


def _json_value(text: str) -> object:
    try:
        # parse_float/parse_constant keep numbers exact and leave NaN for the validator to name.
        return json.loads(text, parse_float=Decimal, parse_constant=Decimal)
    except (ValueError, RecursionError) as error:  # includes the 4300-digit int limit
        return _NotJson(str(error) or type(error).__name__)


def _json_record(line: int, text: str, value: object) -> RawRow:
    if not isinstance(value, dict):
        return RawRow(line, text, None, f"not a JSON object (got {type(value).__name__})")
    fields = {str(key).strip().lower(): item for key, item in value.items()}
    return RawRow(line, text, {k: v for k, v in fields.items() if k in SIGNAL_FIELDS}, None)


def _json_objects(text: _Text) -> Iterator[RawRow]:
    """JSON that starts with `{`: one (possibly pretty-printed) object when the whole text is
    one, else JSON lines. When its first non-blank line is a whole value, the text is one object
    exactly when only blank lines follow; else the whole text is needed to tell (read at once)."""
    lines = text.lines()
    before: list[str] = []  # the lines up to the first non-blank one, with their breaks
    for line in lines:
        before.append(line)
        if line.strip():
            break
    else:
        return
    first = _without_break(before[-1]).strip()
    if isinstance(_json_value(first), _NotJson):
        whole = "".join(before) + "".join(lines)
        value = _json_value(whole.strip())
        if isinstance(value, dict):
            yield _json_record(1, whole.strip(), value)
        else:
            yield from _json_lines(enumerate(_LINE_BREAK.split(whole), start=1))
        return
    after: list[str] = []  # the lines after it, up to the next non-blank one
    for line in lines:
        after.append(line)
        if line.strip():
            break
    else:  # nothing but that object
        yield _json_record(1, first, _json_value(first))
        return
    numbered = enumerate(itertools.chain(before, after, lines), start=1)
    yield from _json_lines((number, _without_break(line)) for number, line in numbered)


def _json_lines(lines: Iterable[tuple[int, str]]) -> Iterator[RawRow]:
    for number, line in lines:
        if not line.strip():
            continue
        value = _json_value(line)
        if isinstance(value, _NotJson):
            yield RawRow(number, line, None, f"invalid JSON: {value.message}")
        else:
            yield _json_record(number, line, value)


_NUMBER_TAIL = 2  # a number cut at the window's end ("1e" of "1e5") still parses: read on when this close


def _json_array(text: _Text) -> Iterator[RawRow]:
    """Element by element, so each row keeps its own text and a broken element does not
    hide the ones before it."""
    decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)
    position = text.skip_space(text.buffer.index("[") + 1)
    index = 0
    if text.buffer.startswith("]", position):
        yield from _after_array(text, position, index)
        return
    while True:
        index += 1
        try:
            value, end = _decode(decoder, text, position)
        except (ValueError, RecursionError) as error:
            message = text.decode_error(error) if isinstance(error, json.JSONDecodeError) else str(error)
            yield _broken(index, text.rest(position), f"invalid JSON array element: {message}")
            return
        yield _json_record(index, text.buffer[position:end], value)
        position = text.skip_space(end)
        if text.buffer.startswith("]", position):
            yield from _after_array(text, position, index)
            return
        if not text.buffer.startswith(",", position):
            problem = "invalid JSON array: expected , or ] after an element"
            yield _broken(index + 1, text.rest(position), problem)
            return
        position = text.skip_space(position + 1)
        if position > text.chunk_chars:  # what was read so far is done with
            text.drop(position)
            position = 0


def _decode(decoder: json.JSONDecoder, text: _Text, position: int) -> tuple[object, int]:
    """The JSON value at `position`, reading on until the window holds all of it: a value that
    fails may only be cut off, and one that ends at the window's end may be a cut number."""
    while True:
        try:
            value, end = decoder.raw_decode(text.buffer, position)
        except (ValueError, RecursionError):
            if text.more():
                continue
            raise
        if end + _NUMBER_TAIL >= len(text.buffer) and text.more():
            continue
        return value, end


def _after_array(text: _Text, closing: int, elements: int) -> Iterator[RawRow]:
    rest = text.rest(closing + 1)
    if rest.strip():
        yield _broken(elements + 1, rest, "text after the end of the JSON array")


def _broken(line: int, text: str, error: str) -> RawRow:
    return RawRow(line, text.strip()[:200], None, error)  # the rest may be huge: keep a glimpse


def _csv_records(lines: Iterator[str]) -> Iterator[tuple[int, str, list[str] | None, str | None]]:
    """(first line, text, cells, error) per CSV record; a record may span quoted line breaks."""
    taken: list[str] = []  # the lines the reader took for the record it is reading

    def take() -> Iterator[str]:
        for line in lines:
            taken.append(line)
            yield line

    reader = csv.reader(take())
    while True:
        start = reader.line_num + 1
        taken.clear()
        try:
            cells: list[str] | None = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as problem:  # e.g. a field over the csv module's size limit
            cells, error = None, f"unreadable CSV: {problem}"
        yield start, "\n".join(_without_break(line) for line in taken), cells, error
        if not taken:  # the reader cannot move on: stop rather than spin
            return


def _csv_rows(lines: Iterator[str]) -> Iterator[RawRow]:
    header: list[str] | None = None
    known: list[tuple[int, str]] = []  # (column, name) of the header's signal fields
    header_line = 0
    first: RawRow | None = None  # the first record when it is not a header
    for line, record_text, cells, error in _csv_records(lines):
        if cells is not None and not any(cell.strip() for cell in cells):
            continue  # a blank line
        if cells is None:
            row = _broken(line, record_text, error or "unreadable CSV")
        elif header is None and first is None:
            names = [cell.strip().lower() for cell in cells]
            if "id" in names and "symbol" in names:
                header, header_line = names, line
                known = [(column, name) for column, name in enumerate(names) if name in SIGNAL_FIELDS]
                continue
            row = RawRow(line, record_text, None, _no_header(record_text))
        elif header is None:
            assert first is not None
            reason = f"not read: the file has no usable header (see line {first.line})"
            row = RawRow(line, record_text, None, reason)
        elif len(cells) != len(header):
            reason = (
                f"expected {len(header)} columns like the header on line {header_line},"
                f" got {len(cells)}"
            )
            row = RawRow(line, record_text, None, reason)
        else:
            row = RawRow(line, record_text, {name: cells[column] for column, name in known}, None)
        if first is None:
            first = row
        yield row


def _no_header(first_line: str) -> str:
    hint = " (the separator must be ',')" if ";" in first_line and "," not in first_line else ""
    return (
        f"{NOT_A_SIGNAL_FILE}: the first line must be JSON or a CSV header"
        f" with at least id and symbol columns{hint}"
    )
