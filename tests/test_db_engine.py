"""The database adapter: placeholders, SQLite URLs, and PostgreSQL's two planning modes."""

from __future__ import annotations

from esante.db.engine import Database, SqliteDatabase, to_dollar_params
from esante.fhir.store import ResourceStore


def test_placeholders_become_numbered() -> None:
    assert to_dollar_params("SELECT ? , ?::bigint[] WHERE a = ?") == "SELECT $1 , $2::bigint[] WHERE a = $3"


def test_sqlite_urls() -> None:
    assert SqliteDatabase("sqlite:////tmp/a/b.db").path == "/tmp/a/b.db"
    assert SqliteDatabase("sqlite:///var/x.db").path == "var/x.db"
    assert SqliteDatabase("sqlite://").path == ":memory:"


async def test_search_connections_plan_per_execution(database: Database) -> None:
    if not database.dialect.is_postgres:
        async with database.read(search=True) as conn:
            assert conn.custom_plans  # SQLite always plans with the values
        return
    async with database.read() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
    async with database.read(search=True) as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    store = ResourceStore(database)
    async with database.transaction() as conn:
        session = store.session(conn)
        await session.plan_searches_per_execution()
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    # SET LOCAL ends with the transaction: the pooled connection is back to cached generic plans
    for _ in range(12):
        async with database.transaction() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"


async def test_a_read_connection_keeps_its_pools_planning(database: Database) -> None:
    """On ``read()``'s autocommitted connection a search runs as its pool plans (search/plan_choice.py chose the
    pool): no ``SET LOCAL``, which outside a transaction would only cost a round trip and change nothing."""
    store = ResourceStore(database)
    async with database.read() as conn:
        assert conn.in_transaction is False or not database.dialect.is_postgres
        session = store.session(conn)
        await session.plan_searches_per_execution()
        if database.dialect.is_postgres:
            assert conn.custom_plans is False
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
    async with database.transaction() as conn:
        assert conn.in_transaction is True
