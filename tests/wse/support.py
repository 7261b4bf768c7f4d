"""The WSE tests' world: the real application on loopback (uvicorn) on both databases, the establishment software
that calls the WSE (pharmacy, laboratory, CGDIS clients with the WSE scopes, and others without), affiliation files
imported through the importer of ``esante wse import-affiliations``, and the AuditEvents of the trail."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from esante.app import Platform, build_platform
from esante.config import Settings
from esante.db.engine import Database, create_database
from esante.identifiers.matricule import make_matricule
from esante.mpi.cli import open_platform
from esante.wse.affiliation_import import AffiliationImporter, ImportResult
from esante.wse.sources import COLUMNS, read_file
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.live_server import loopback_settings, serve

WSE_SCOPE = "system/CoverageEligibilityRequest.c system/Practitioner.r"
CLIENTS = {
    "pharmacy-1": ("pharmacy", WSE_SCOPE),
    "lab-1": ("laboratory", WSE_SCOPE),
    "cgdis-1": ("cgdis", WSE_SCOPE),
    "hospital-1": ("hospital", WSE_SCOPE),  # the scopes, but not a WSE client kind
    "pharmacy-narrow": ("pharmacy", "system/Observation.rs"),  # a WSE kind without the WSE scopes
}
CHECK = "CoverageEligibilityRequest/$check"
PRESCRIBER = "Practitioner/$wse-prescriber-check"
MATRICULE = "urn:oid:1.3.182.4.4"
ESANTE_ID = "urn:oid:1.3.182.2.4.2"
TODAY = date.today()


def days(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


def matricule(n: int) -> str:
    return make_matricule("19800101", n)


@dataclass
class World:
    fhir: str
    settings: Settings
    platform: Platform
    database: Database

    def client(self, client_id: str = "pharmacy-1", scope: str | None = None) -> dict[str, str]:
        scopes = scope if scope is not None else CLIENTS.get(client_id, ("", ALL_RIGHTS))[1]
        return {"Authorization": f"Bearer {token(self.settings, f'system:{client_id}', scopes)}"}

    def system(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(self.settings, f'system:{TEST_CLIENT}', ALL_RIGHTS)}"}

    def auditor(self) -> dict[str, str]:
        value = token(self.settings, "staff:auditor", "user/AuditEvent.rs", extra_claims={"roles": ["administrator"]})
        return {"Authorization": f"Bearer {value}"}


@asynccontextmanager
async def wse_world(db_url: str, folder: Path, **settings: Any) -> AsyncIterator[World]:
    values: dict[str, Any] = {"wse_past_days": 36600, "wse_future_days": 31, "db_pool_size": 2, **settings}
    config = loopback_settings(var_dir=folder, database_url=db_url, audit_enabled=True, **values)
    platform = build_platform(config)
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        await register_client(database)
        for client_id, (kind, scopes) in CLIENTS.items():
            await register_client(database, client_id, scopes, kind=kind)
        with serve(config, platform) as fhir:
            yield World(fhir, config, platform, database)
    finally:
        await database.close()


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [",".join(COLUMNS)] + [",".join(row.get(c, "") for c in COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def affiliation(n: int, who: int, insurer: str = "CNS", start: str = "2015-01-01", **values: str) -> dict[str, str]:
    return {
        "affiliation_id": f"AFF{n:07d}",
        "matricule": matricule(who),
        "insurer": insurer,
        "type": values.pop("type", "principal"),
        "start": start,
        **values,
    }


async def import_file(settings: Settings, path: Path, batch: int = 1000) -> ImportResult:
    """What ``esante wse import-affiliations`` does (its own platform, connected for the run)."""
    async with open_platform(settings) as platform:
        wse = platform.wse  # type: ignore[attr-defined]
        return await AffiliationImporter(platform.store, wse.index, wse.insurers, batch_size=batch).run(read_file(path))


def cer(system: str, value: str, served: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["validation"],
        "patient": {"identifier": {"system": system, "value": value}},
        "created": TODAY.isoformat(),
        **extra,
    }
    if served is not None:
        body["servicedDate"] = served
    return body


def error_codes(response: dict[str, Any]) -> list[str]:
    return [c["code"] for e in response.get("error", []) for c in e["code"]["coding"]]


async def affiliation_rows(database: Database) -> list[tuple[Any, ...]]:
    async with database.read() as conn:
        return await conn.fetch(
            "SELECT affiliation_id, coverage_id, matricule, insurer, coverage_type, status, start_date, end_date "
            "FROM wse_affiliation ORDER BY affiliation_id"
        )


async def coverage_versions(database: Database) -> int:
    async with database.read() as conn:
        return int(await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Coverage'") or 0)


async def audit_events(world: World, http: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"{world.fhir}/AuditEvent",
        params={"_count": "1000", "_sort": "-_lastUpdated", **query},
        headers=world.auditor(),
    )
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


def query_of(event: dict[str, Any]) -> str:
    for entity in event.get("entity", []):
        if entity.get("role", {}).get("code") == "24":
            return base64.b64decode(entity["query"]).decode("utf-8")
    return ""


async def certify(settings: Settings, *matricules: str) -> dict[str, tuple[str, str]]:
    """Certified identities through the MPI's register import: matricule → (Patient id, eSanté id)."""
    import orjson

    from esante.mpi.certified_import import CertifiedImporter

    source = [
        (
            n,
            {
                "resourceType": "Patient",
                "identifier": [{"system": MATRICULE, "value": m}],
                "name": [{"family": f"P{n}"}],
            },
        )
        for n, m in enumerate(matricules, start=1)
    ]
    async with open_platform(settings) as platform:
        result = await CertifiedImporter(platform.store, workers=0).run(source)
        assert result.created + result.unchanged == len(matricules), result.rejected
        found: dict[str, tuple[str, str]] = {}
        async with platform.database.read() as conn:
            rows = await conn.fetch("SELECT res_id, content FROM resource WHERE res_type = 'Patient' AND is_current")
        for res_id, content in rows:
            body = orjson.loads(bytes(content))
            ids = {i["system"]: i["value"] for i in body["identifier"]}
            found[ids[MATRICULE]] = (str(res_id), ids[ESANTE_ID])
    return found
