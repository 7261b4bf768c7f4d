"""API fixtures: the real ASGI app over httpx (in process) on both database backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from esante.app import Platform, build_platform, create_app
from esante.config import Settings


@pytest.fixture
async def platform(db_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(var_dir=tmp_path, database_url=db_url, max_body_bytes=200_000)
    built = build_platform(settings)
    await built.database.connect()
    try:
        yield built
    finally:
        await built.database.close()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(platform.settings, platform)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
