"""A real server: uvicorn on a loopback port, in a background thread, on both database backends.

``server_url`` is its FHIR base; ``server_token`` an access token of a registered system client with every
permission (the external clients send it as ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from esante.config import Settings
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.live_server import loopback_settings, serve


@pytest.fixture
def server_settings(db_url: str, tmp_path: Path) -> Settings:
    return loopback_settings(var_dir=tmp_path, database_url=db_url)


@pytest.fixture
def server_token(server_settings: Settings) -> str:
    """A token of the registered system client ``test-system`` (``system/*.cruds``) for the running server."""

    async def register() -> None:
        upgrade(server_settings.effective_database_url)
        database = create_database(server_settings.effective_database_url, pool_size=1)
        await database.connect()
        try:
            await register_client(database)
        finally:
            await database.close()

    asyncio.run(register())
    return token(server_settings, f"system:{TEST_CLIENT}", ALL_RIGHTS)


@pytest.fixture
def server_url(server_settings: Settings) -> Iterator[str]:
    """Base URL (…/fhir) of a running server; stopped after the test."""
    with serve(server_settings) as base:
        yield base
