"""A spreadsheet's eye on our CSV exports: which cells would it read as a formula?

Written out here from OWASP's "CSV injection" list rather than imported from shared.trades, so
a test fails if the exporter forgets one.
"""

import csv
import io
from decimal import Decimal, InvalidOperation

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _is_number(cell: str) -> bool:
    try:
        return Decimal(cell).is_finite()
    except InvalidOperation:
        return False


def formula_cells(text: str) -> list[tuple[int, str, str]]:
    """(row, column, cell) of every cell of a CSV export that a spreadsheet would evaluate:
    anything starting like a formula (after leading spaces) that is not a plain number."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    return [(n, column, cell) for n, row in enumerate(body, start=1) for column, cell in zip(header, row)
            if cell.lstrip(" ").startswith(FORMULA_STARTS) and not _is_number(cell)]
