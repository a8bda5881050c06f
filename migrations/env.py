"""Alembic environment: the schema is SQLModel's metadata; see shared/database.upgrade()."""

import os

from alembic import context
from sqlmodel import SQLModel

import shared.funding_store  # noqa: F401  (registers the funding_rate table)
import shared.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from shared.database import make_engine

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # plain `alembic` command line: the same database as `signalproof`
        url = os.environ.get("SIGNALPROOF_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url") or ""
        engine = make_engine(url)
        with engine.begin() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
        user_module_prefix="shared.columns.",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
