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


def test_store_tables_are_analyzed_often_on_postgresql(db_url: str) -> None:
    if not db_url.startswith("postgres"):
        return
    engine = create_engine(sqlalchemy_url(db_url))
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('resource', 'idx_token')"
        ).all()
        options = {name: reloptions for name, reloptions in rows}
    engine.dispose()
    for table in ("resource", "idx_token"):
        assert "autovacuum_analyze_scale_factor=0.005" in (options[table] or []), options


def test_index_tables_have_multi_column_statistics_on_postgresql(db_url: str) -> None:
    if not db_url.startswith("postgres"):
        return
    engine = create_engine(sqlalchemy_url(db_url))
    with engine.connect() as conn:
        names = {row[0] for row in conn.exec_driver_sql("SELECT stxname FROM pg_statistic_ext").all()}
    engine.dispose()
    assert {"st_idx_token_code", "st_idx_reference_target"} <= names
