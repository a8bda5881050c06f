"""The schema exists only through Alembic: running the migrations on an empty database must
give exactly what the SQLModel models describe, on SQLite and on PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import shared.models  # noqa: F401  (registers every table on SQLModel.metadata)
from shared.database import make_engine, require_schema, SchemaMissing, upgrade

HEAD = "0004"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it (unlike `database_url`, which is already migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(empty_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def schema(engine: sa.Engine) -> dict[str, object]:
    """Tables with their columns, indexes and unique constraints, as the database reports them."""
    inspector = sa.inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            sorted((u["name"] or "", tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def version(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.text("SELECT version_num FROM alembic_version"))]


def test_the_empty_database_has_no_schema(engine: sa.Engine) -> None:
    with pytest.raises(SchemaMissing, match="signalproof db upgrade"):
        require_schema(engine)


def test_the_migrations_match_the_models(empty_url: str, engine: sa.Engine) -> None:
    upgrade(empty_url)
    assert differences(engine) == []
    assert set(sa.inspect(engine).get_table_names()) == set(SQLModel.metadata.tables) | {"alembic_version"}
    assert version(engine) == [HEAD]
    require_schema(engine)


def test_upgrading_twice_is_harmless(empty_url: str, engine: sa.Engine) -> None:
    upgrade(empty_url)
    with engine.begin() as connection:  # data survives a second upgrade
        connection.execute(sa.text("INSERT INTO signal (signal_id, symbol) VALUES ('kept', 'ETHBTC')"))
    first = schema(engine)
    upgrade(empty_url)
    assert schema(engine) == first
    assert version(engine) == [HEAD]
    assert differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT signal_id FROM signal")).all() == [("kept",)]


def test_a_bot_can_insert_a_signal_with_only_the_columns_it_knows(empty_url: str, engine: sa.Engine) -> None:
    """DESIGN.md "Signals" way 3: every column a bot does not know has a server default."""
    upgrade(empty_url)
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO signal (signal_id, time, symbol, side, take_profit, stop_loss)"
            " VALUES ('bot-1', '2018-01-20 12:00:00', 'eth/btc', 'buy', '0.095;0.1', 0.085)"
        ))
        row = connection.execute(sa.text(
            "SELECT source, market, leverage, status, received_at IS NOT NULL FROM signal")).one()
    assert tuple(row) == ("default", "SPOT", 1, "NEW", True)
