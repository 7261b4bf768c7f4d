"""Shared fixtures: every database test runs on SQLite *and* PostgreSQL.

PostgreSQL comes from ``ESANTE_TEST_PG_URL`` (default: the local server's ``test`` database, as .ci/run sets
up). When it is unreachable the PostgreSQL half fails loudly rather than being skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from esante.db.engine import Database, create_database, sqlalchemy_url
from esante.db.schema import metadata

PG_URL = os.environ.get("ESANTE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(os.environ.get("ESANTE_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")).resolve()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; fails (never skips) when the folder is missing."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        raise FileNotFoundError(f"shared test data missing: {path} (clone ../shared beside the repo)")
    return path


def reset_schema(url: str) -> None:
    """Drop and recreate every table (tests start from an empty store)."""
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    url = f"sqlite:///{tmp_path / 'test.sqlite3'}" if request.param == "sqlite" else PG_URL
    reset_schema(url)
    yield url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = create_database(db_url, pool_size=4)
    await db.connect()
    try:
        yield db
    finally:
        await db.close()
