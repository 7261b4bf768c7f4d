"""API fixtures: the real ASGI app over httpx (in process) on both database backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from esante.app import Platform, build_platform, create_app
from esante.config import Settings
from tests.auth import bearer, register_client


@pytest.fixture
async def platform(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    # the audit trail is on, as in production; tests that count every stored version through /_history
    # (whose totals would include the AuditEvents of their own requests) are marked ``no_audit``
    audit = request.node.get_closest_marker("no_audit") is None
    settings = Settings(var_dir=tmp_path, database_url=db_url, max_body_bytes=200_000, audit_enabled=audit)
    built = build_platform(settings)
    await built.database.connect()
    await register_client(built.database)
    try:
        yield built
    finally:
        if built.auditor is not None:
            await built.auditor.close()  # the chainer task must not outlive its database
        await built.database.close()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client acting as a registered system client with every permission (``system/*.cruds``)."""
    app = create_app(platform.settings, platform)
    transport = httpx.ASGITransport(app=app)
    headers = bearer(platform.settings)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as http:
        yield http
