"""Shared fixtures: every database test runs on SQLite *and* PostgreSQL.

PostgreSQL comes from ``ESANTE_TEST_PG_URL`` (default: the local server's ``test`` database, as .ci/run sets
up). When it is unreachable the PostgreSQL half fails loudly rather than being skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from esante.app import Platform, build_platform, create_app
from esante.config import Settings
from esante.db.engine import Database, create_database, sqlalchemy_url
from esante.db.migrate import upgrade
from tests.auth import bearer, register_client

PG_URL = os.environ.get("ESANTE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(os.environ.get("ESANTE_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")).resolve()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; fails (never skips) when the folder is missing."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        raise FileNotFoundError(f"shared test data missing: {path} (clone ../shared beside the repo)")
    return path


_TABLES = (
    "resource",
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_uri",
    "audit_chain",
    "audit_journal",
    "mpi_domain",
    "mpi_esante_id",
    "mpi_match_parameters",
    "hpd_ehealth_id",
    "hpd_right_to_practise",
    "hpd_right_to_practise_history",
    "hpd_practise_held_role",
    "dsp_record",
    "dsp_destruction",
    "dsp_grant",
    "dsp_binary",
    "dsp_document_blob",
    "account",
    "account_delegation",
    "oauth_client",
    "oauth_code",
    "oauth_refresh_token",
    "oauth_revoked_token",
    "oauth_assertion_jti",
    "notify_outbox",
    "wse_affiliation",
    "wse_usage",
    "notify_preference",
    "cve_reminder",
    "cve_dsp_sync",
)


def reset_schema(url: str) -> None:
    """Drop everything and migrate from scratch with Alembic (the path ``esante db upgrade`` takes)."""
    if url.startswith("postgres"):
        engine = create_engine(sqlalchemy_url(url))
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    upgrade(url)


def empty_tables(url: str) -> None:
    """Fast per-test reset of a migrated PostgreSQL database."""
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY")
        conn.exec_driver_sql("ALTER SEQUENCE resource_rid_seq RESTART")
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_pg() -> str:
    reset_schema(PG_URL)
    return PG_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty, migrated database URL on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "test.sqlite3"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
    else:
        url: str = request.getfixturevalue("migrated_pg")
        empty_tables(url)
        yield url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = create_database(db_url, pool_size=4)
    await db.connect()
    try:
        yield db
    finally:
        await db.close()


# --- the application: the real ASGI app over httpx (in process), on both backends -----------------------------


@pytest.fixture
async def platform(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    # the audit trail is on, as in production; tests that count every stored version through /_history
    # (whose totals would include the AuditEvents of their own requests) are marked ``no_audit``
    audit = request.node.get_closest_marker("no_audit") is None
    # the core tests' all-rights establishment client reads everything, DSP documents included (the DSP's default
    # refuses establishments without a professional: tests/dsp)
    settings = Settings(
        var_dir=tmp_path, database_url=db_url, max_body_bytes=200_000, audit_enabled=audit, dsp_establishment_reads=True
    )
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
