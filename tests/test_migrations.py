"""The schema exists only through Alembic: running the migrations on an empty database must
give exactly what the SQLModel models describe, on SQLite and on PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

import shared.funding_store  # noqa: F401  (registers the funding_rate table)
import shared.models  # noqa: F401  (registers every table on SQLModel.metadata)
from shared.database import make_engine, require_schema, SchemaMissing, upgrade

HEAD = "0009"


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
    """docs/signals.md way 3: every column a bot does not know has a server default."""
    upgrade(empty_url)
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO signal (signal_id, time, symbol, side, take_profit, stop_loss)"
            " VALUES ('bot-1', '2018-01-20 12:00:00', 'eth/btc', 'buy', '0.095;0.1', 0.085)"
        ))
        row = connection.execute(sa.text(
            "SELECT source, market, leverage, status, received_at IS NOT NULL FROM signal")).one()
    assert tuple(row) == ("default", "SPOT", 1, "NEW", True)


def test_existing_events_are_chained_after_a_genesis_entry(empty_url: str, engine: sa.Engine) -> None:
    """Migration 0003: the event log becomes the ledger; what was recorded before is kept, in its
    order, after a `ledger.genesis` entry that says how many there were, and the chain verifies."""
    import json

    from shared.events import stored_entry
    from shared.ledger import verify_chain
    from shared.models import Event

    upgrade(empty_url, "0002")
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO runtime_settings (id, stake_usd, entry_mode, take_profit_target, fee_rate_spot, fee_rate_futures,"
            " slippage_bps, maintenance_margin_rate, pending_expiry_hours, max_trade_hours, candle_interval,"
            " starting_balance_usd, min_confidence, markets, symbols_allow, symbols_deny, max_open_trades,"
            " one_per_symbol_side, paused, signal_feed_url, site_title, site_description) VALUES (1, '250', 'limit', 2,"
            " '0.001', '0.0005', '0', '0.004', '24', '0', '5m', '1000', '0', 'SPOT', '', '', 0, false, true,"
            " 'https://bot.example/feed?token=secret', 't', 'd')"))
        for n, (kind, data) in enumerate([("settings.changed", '{"key": "stake_usd", "old": "100", "new": "250"}'),
                                          ("trade.closed", '{"status": "CLOSED_TP", "ambiguous": false}'),
                                          ("signal.rejected", None)], start=5):
            connection.execute(sa.text("INSERT INTO event (id, at, kind, actor, trade_id, message, data) VALUES "
                                       "(:id, '2024-05-01 12:00:00.000000', :kind, 'worker', 7, 'm', :data)"),
                               {"id": n * 3, "kind": kind, "data": data})
    upgrade(empty_url)
    with Session(engine) as session:
        rows = list(session.exec(select(Event).order_by(Event.id)))
    entries = [stored_entry(row) for row in rows]
    assert verify_chain(entries) == (4, None)
    assert [e.kind for e in entries] == ["ledger.genesis", "settings.changed", "trade.closed", "signal.rejected"]
    genesis = entries[0].data
    assert genesis["migrated_events"] == 3
    assert genesis["settings"]["stake_usd"] == "250" and genesis["settings"]["paused"] == "true"
    assert genesis["settings"]["signal_feed_url"] == "set (bot.example)"  # never the token
    assert entries[1].data == {"key": "stake_usd", "old": "100", "new": "250", "actor": "worker", "message": "m",
                               "trade_id": 7}
    assert json.loads(rows[2].data or "")["status"] == "CLOSED_TP"
