"""The Alembic migrations produce exactly the schema declared in esante.db.schema (on both engines)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from esante.db.engine import sqlalchemy_url
from esante.db.schema import metadata


def test_migrated_database_matches_the_declared_schema(db_url: str) -> None:
    engine = create_engine(sqlalchemy_url(db_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == [], diff
