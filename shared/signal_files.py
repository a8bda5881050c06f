"""Reading signal files and feed bodies into records: CSV with a header, JSON lines, a JSON
array (docs/signals.md). Pure: text in, `RawRow`s out; `shared.signals.validate` judges each.

Every record keeps its line and its text, so a rejection can say where it came from, and a
broken record never hides the ones around it. A whole file that is not a signal file at all is
refused (`refusal`), so a mistaken import cannot fill the public record with rejections.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.signals import SIGNAL_FIELDS, Rejection, ValidSignal, shown, validate


@dataclass(frozen=True)
class RawRow:
    """One record of a file or feed body, before validation."""

    line: int  # 1-based line in the file; for a JSON array, the 1-based element index
    text: str  # the record as it appeared, for error messages and the `raw` column
    fields: dict[str, object] | None  # known keys only (lower-case); None when unparseable
    error: str | None  # why the record could not even be parsed (bad JSON, column count)



NOT_A_SIGNAL_FILE = "not a signal file"


def refusal(rows: list[RawRow], *, received_at: datetime, default_source: str = "default") -> str | None:
    """Why a whole import file is refused (nothing of it is stored), or None to import it.

    A file imported by mistake (/etc/passwd, a CSV of something else) would otherwise become
    rows of permanent REJECTED signals. So a file whose header is not a signal header, or in
    which not one row is a valid signal, is refused whole; a file with some valid rows is
    imported, its invalid rows REJECTED with their reasons.
    """
    if not rows:
        return None
    first = rows[0]
    if first.fields is None and (first.error or "").startswith(NOT_A_SIGNAL_FILE):
        return f"{first.error}; nothing imported"
    for row in rows:
        if row.fields is not None and isinstance(
                validate(row.fields, received_at=received_at, default_source=default_source), ValidSignal):
            return None
    problem = first.error if first.fields is None else validate(first.fields, received_at=received_at,
                                                                 default_source=default_source)
    reason = problem.reason if isinstance(problem, Rejection) else problem
    return (f"not one of its {len(rows)} record(s) is a valid signal (line {first.line}: {reason});"
            " nothing imported")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the same line breaks the csv module counts


def read_rows(text: str) -> list[RawRow]:
    """The records of an import file: CSV with a header, JSON lines, or a JSON array."""
    text = text.removeprefix("\ufeff")
    first = text.lstrip()[:1]
    if first in ("[", "{"):
        return parse_feed_body(text)
    return _csv_rows(text)


def parse_feed_body(body: str) -> list[RawRow]:
    """The records of an HTTP feed body: a JSON array or JSON lines (or one JSON object)."""
    body = body.removeprefix("\ufeff")
    stripped = body.strip()
    if not stripped:
        return []
    if stripped[0] == "[":
        return _json_array(body)
    if stripped[0] != "{":
        # An HTML error page or similar: one problem, not one "invalid JSON" per line of it.
        return [RawRow(1, stripped[:200], None, f"not JSON (starts with {shown(stripped[:20])})")]
    whole = _json_value(stripped)
    if isinstance(whole, dict):  # a single, possibly pretty-printed, object
        return [_json_record(1, stripped, whole)]
    return _json_lines(body)


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


def _json_lines(text: str) -> list[RawRow]:
    rows = []
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        value = _json_value(line)
        if isinstance(value, _NotJson):
            rows.append(RawRow(number, line, None, f"invalid JSON: {value.message}"))
        else:
            rows.append(_json_record(number, line, value))
    return rows


def _json_array(text: str) -> list[RawRow]:
    """Element by element, so each row keeps its own text and a broken element does not
    hide the ones before it."""
    decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)
    rows: list[RawRow] = []
    position = _skip_space(text, text.index("[") + 1)
    if text.startswith("]", position):
        return _after_array(text, position, rows)
    while True:
        index = len(rows) + 1
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as error:
            return rows + [_broken(index, text[position:], f"invalid JSON array element: {error}")]
        rows.append(_json_record(index, text[position:end], value))
        position = _skip_space(text, end)
        if text.startswith("]", position):
            return _after_array(text, position, rows)
        if not text.startswith(",", position):
            problem = "invalid JSON array: expected , or ] after an element"
            return rows + [_broken(index + 1, text[position:], problem)]
        position = _skip_space(text, position + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _after_array(text: str, closing: int, rows: list[RawRow]) -> list[RawRow]:
    rest = text[closing + 1 :]
    if not rest.strip():
        return rows
    return rows + [_broken(len(rows) + 1, rest, "text after the end of the JSON array")]


def _broken(line: int, text: str, error: str) -> RawRow:
    return RawRow(line, text.strip()[:200], None, error)  # the rest may be huge: keep a glimpse


def _csv_records(text: str) -> Iterator[tuple[int, str, list[str] | None, str | None]]:
    """(first line, text, cells, error) per CSV record; a record may span quoted line breaks."""
    lines = _LINE_BREAK.split(text)
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            cells: list[str] | None = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as problem:  # e.g. a field over the csv module's size limit
            cells, error = None, f"unreadable CSV: {problem}"
        yield start, "\n".join(lines[start - 1 : reader.line_num]), cells, error
        if reader.line_num < start:  # the reader cannot move on: stop rather than spin
            return


def _csv_rows(text: str) -> list[RawRow]:
    rows: list[RawRow] = []
    header: list[str] | None = None
    header_line = 0
    for line, record_text, cells, error in _csv_records(text):
        if cells is not None and not any(cell.strip() for cell in cells):
            continue  # a blank line
        if cells is None:
            rows.append(_broken(line, record_text, error or "unreadable CSV"))
        elif header is None and not rows:
            names = [cell.strip().lower() for cell in cells]
            if "id" in names and "symbol" in names:
                header, header_line = names, line
            else:
                rows.append(RawRow(line, record_text, None, _no_header(record_text)))
        elif header is None:
            reason = f"not read: the file has no usable header (see line {rows[0].line})"
            rows.append(RawRow(line, record_text, None, reason))
        elif len(cells) != len(header):
            reason = (
                f"expected {len(header)} columns like the header on line {header_line},"
                f" got {len(cells)}"
            )
            rows.append(RawRow(line, record_text, None, reason))
        else:
            fields = {name: cell for name, cell in zip(header, cells) if name in SIGNAL_FIELDS}
            rows.append(RawRow(line, record_text, fields, None))
    return rows


def _no_header(first_line: str) -> str:
    hint = " (the separator must be ',')" if ";" in first_line and "," not in first_line else ""
    return (
        f"{NOT_A_SIGNAL_FILE}: the first line must be JSON or a CSV header"
        f" with at least id and symbol columns{hint}"
    )
