"""Engines, transactions and the schema (through Alembic only).

SQLite is the embedded default: WAL so the site reads while the worker writes, a busy timeout
so two writers wait instead of failing, and `BEGIN IMMEDIATE` so a writer takes the lock up
front (SQLite cannot upgrade a read lock to a write lock while another writer waits).
PostgreSQL goes through psycopg 3; its write transactions are serialised the same way, by an
advisory lock taken at BEGIN (the ledger's appends need one writer at a time). Nothing here
runs at import time.
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.config import sqlite_path

# Inside the package when installed (`pip install .` maps the checkout's migrations/ to
# shared/migrations/, see pyproject.toml), else next to the package in a checkout.
_INSTALLED_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_DIR = (_INSTALLED_MIGRATIONS if (_INSTALLED_MIGRATIONS / "env.py").is_file()
                  else Path(__file__).resolve().parent.parent / "migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL: the transaction-scoped advisory lock every write transaction takes first (any
# fixed 64-bit number; shared.events takes the same one before reading the ledger's head).
WRITE_LOCK_KEY = 8785_0001


class SchemaMissing(RuntimeError):
    """The database has not been created or migrated: run `signalproof db upgrade`."""


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, read_only=read_only)
    connect_args: dict[str, Any] = {}
    if read_only:
        # Every transaction on this engine is read-only: the server refuses any write.
        connect_args["options"] = "-c default_transaction_read_only=on"
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if not read_only:
        @event.listens_for(engine, "begin")
        def _serialise_writers(connection: sa.Connection) -> None:
            # Like SQLite's BEGIN IMMEDIATE: one write transaction at a time, the lock taken
            # before any row lock. Every state change appends to the ledger, whose appends must
            # be serial; taking that lock first, always, means no writer can hold a row another
            # one waits for while itself waiting for the ledger (a deadlock otherwise).
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
    return engine


def _sqlite_engine(url: str, *, read_only: bool) -> Engine:
    path = sqlite_path(url)
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if path is not None and read_only:
        url = f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"
    elif path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not read_only:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        with session.begin():
            yield session


def insert_missing(table: sa.Table, rows: list[dict[str, Any]],
                   returning: tuple[sa.Column[Any], ...] = (), *, session: Session) -> list[tuple[Any, ...]]:
    """INSERT … ON CONFLICT DO NOTHING: safe when two processes create the same row at once."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    columns = sorted({key for row in rows for key in row})
    params = [{c: row.get(c) for c in columns} for row in rows]
    # One single-row statement executed for many parameter sets: SQLAlchemy compiles it once
    # (cached) and batches it into multi-row INSERTs itself ("insertmanyvalues"), instead of
    # compiling a new 500-row VALUES clause for every batch.
    statement = insert(table).on_conflict_do_nothing()
    if returning:
        return [tuple(r) for r in session.execute(statement.returning(*returning), params)]
    session.execute(statement, params)
    return []


def single_row(model: type[Any], *, session: Session) -> Any:
    """The one row (id = 1) of a settings-like table, created with its defaults if missing."""
    row = session.get(model, 1)
    if row is None:
        defaults = model(id=1)
        insert_missing(model.__table__, [{c.name: getattr(defaults, c.name) for c in model.__table__.columns}], session=session)
        row = session.get(model, 1)
    return row


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the schema (`signalproof db upgrade`)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        if revision == "head":
            with transaction(engine) as session:
                ensure_summaries(session=session)
    finally:
        engine.dispose()


def ensure_summaries(*, session: Session) -> int | None:
    """Rebuild the summary tables when they do not match the trades (a first upgrade to them,
    rows written by hand, a restored backup); the number of trades counted, None if current."""
    from shared import summaries

    return None if summaries.is_current(session=session) else summaries.rebuild(session=session)


def require_schema(engine: Engine) -> None:
    """Fail with a clear message, not a traceback, when the tables are not there yet."""
    try:
        with engine.connect() as connection:
            present = sa.inspect(connection).has_table("alembic_version")
    except sa.exc.OperationalError as exc:
        raise SchemaMissing(f"cannot open the database: {exc.orig}") from exc
    if not present:
        raise SchemaMissing("the database has no signalproof schema yet: run `signalproof db upgrade` first")


def driver_rows(table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                dialect: sa.Dialect) -> Iterator[tuple[Any, ...]]:
    """Rows of values as an INSERT through SQLAlchemy hands them to the driver: each value through
    its column's own type (UTC times, exact decimals, kinds as text), so they are stored the same."""
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    if not any(processors):
        yield from (tuple(row) for row in rows)
        return
    for row in rows:
        yield tuple([value if process is None else process(value) for process, value in zip(processors, row)])


def insert_rows(table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, session: Session) -> None:
    """INSERT many rows with one prepared statement executed for them all (DB-API executemany),
    values as `driver_rows` gives them: none of SQLAlchemy's per-row work, which was most of the
    time of an import on SQLite."""
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    statement = (f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(name) for name in columns)})"
                 f" VALUES ({', '.join([marker] * len(columns))})")
    values = list(driver_rows(table, columns, rows, dialect=dialect))
    if values:
        session.connection().exec_driver_sql(statement, values)  # type: ignore[arg-type]


def copy_rows(table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, session: Session) -> None:
    """PostgreSQL's COPY … FROM STDIN into `table`, in the session's transaction: for thousands of
    rows much faster than an INSERT (no SQL text to build and parse), values as `driver_rows`
    gives them. Binary, with the columns' types as the server has them: a third less time than
    text, which must be escaped and parsed."""
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer
    name = quote.format_table(table)
    types = dict(session.execute(sa.text("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = CAST(:table AS regclass)"
                                         " AND attnum > 0 AND NOT attisdropped"), {"table": name}).all())
    statement = f"COPY {name} ({', '.join(quote.quote(column) for column in columns)}) FROM STDIN (FORMAT BINARY)"
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([types[column] for column in columns])
        for row in driver_rows(table, columns, rows, dialect=dialect):
            copy.write_row(row)
