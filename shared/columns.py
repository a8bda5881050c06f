"""Column types that keep the promises of the data model on every database:

* timestamps are timezone-aware UTC (SQLite has no time zones and would hand back naive values);
* money and prices are exact `Decimal`s (SQLite's NUMERIC affinity would round them to
  floats, so there they are stored as text; PostgreSQL gets a real NUMERIC);
* a domain kind (side, status, …) is stored as its text and read back as its enum member.
"""

from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """TIMESTAMPTZ on PostgreSQL. On SQLite, text in SQLAlchemy's own DATETIME format, read back
    by us: SQLite keeps whatever a bot inserts directly (epoch milliseconds in `signal.time`),
    and that must not make every later read of the row fail."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True
    SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what sa.DateTime writes on SQLite: sorts as text

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given for a UTC column")
        value = value.astimezone(timezone.utc)
        return value.strftime(self.SQLITE_FORMAT) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # what we wrote, SQLite's CURRENT_TIMESTAMP, or a bot's value
            try:
                # Only a direct insert puts a number here: epoch milliseconds, as the signal format.
                return datetime.fromtimestamp(float(value) / 1000, timezone.utc)
            except (ValueError, OverflowError, OSError):
                pass
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return None  # unreadable: the worker rejects such a signal (its text is kept in `raw`)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Money(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, canonical text on SQLite."""

    impl = sa.Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value) if not isinstance(value, Decimal) else value
        if not value.is_finite():
            raise ValueError(f"non-finite amount {value!r}")
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class EnumText(TypeDecorator[StrEnum]):
    """A `StrEnum` stored as its plain text (VARCHAR: the same schema as a text column).

    Columns only the worker writes are `strict`: an unknown value is a bug and fails loudly.
    A column a bot may fill by hand (`signal.status`) is lenient: a value that is not a member
    comes back as the text it is, so the row stays readable and the worker can reject it.
    """

    impl = sa.String()
    cache_ok = True

    def __init__(self, kind: type[StrEnum], *, strict: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.strict = strict

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.kind(value).value if self.strict else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            return self.kind(value)
        except ValueError:
            if self.strict:
                raise
            return value


def plain_on_postgres(columns: Iterable[Any], dialect: str) -> list[Any]:
    """Columns to select in bulk: on PostgreSQL, money and times read as psycopg returns them
    (Decimal, aware datetime), without the per-value conversion these types do for SQLite's
    text (a million rows × several columns). Each keeps its name."""
    if dialect != "postgresql":
        return list(columns)
    plain = {Money: sa.Numeric(asdecimal=True), UtcDateTime: sa.DateTime(timezone=True)}
    return [sa.type_coerce(c, plain[type(c.type)]).label(c.name) if type(c.type) in plain else c for c in columns]
