"""Benchmark databases: each benchmark starts from an empty, freshly migrated PostgreSQL schema."""

from __future__ import annotations


def reset(url: str) -> None:
    """Drop the public schema of ``url`` and migrate it to the latest revision."""
    from sqlalchemy import create_engine

    from esante.db.engine import sqlalchemy_url
    from esante.db.migrate import upgrade

    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    upgrade(url)
