"""A real server: uvicorn on a loopback port, in a background thread, on both database backends.

``server_url`` is its FHIR base; ``server_token`` an access token of a registered system client with every
permission (the external clients send it as ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from esante.app import create_app
from esante.config import Settings
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, database_url=db_url, host="127.0.0.1", port=_free_port(), warm_up=False)


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
    settings = server_settings
    port = settings.port
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("the test server did not start")
    yield base
    server.should_exit = True
    thread.join(timeout=10)
