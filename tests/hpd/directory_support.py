"""Helpers for the directory import tests: CSV files from row dicts, reading the directory back."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson

from esante.app import Platform
from esante.hpd.csv_source import COLUMNS
from esante.hpd.model import KEY_SYSTEMS


def gp(**values: str) -> dict[str, str]:
    """A general practitioner at her cabinet (one row)."""
    base = {
        "authorisation": "MED-2010-00042",
        "profession": "medecin",
        "specialties": "med-generale",
        "family": "Schmit",
        "given": "Anne",
        "prefix": "Dr",
        "gender": "F",
        "languages": "lb fr",
        "cns_code": "901234-56",
        "authorised_from": "2010-09-01",
        "org_id": "CAB00001",
        "org_name": "Cabinet médical Schmit",
        "org_type": "practice",
        "org_endpoint": "mailto:cabinet.schmit@example.lu",
        "site_id": "CAB00001-S1",
        "street": "12, rue de la Gare",
        "postal_code": "L-4011",
        "city": "Esch-sur-Alzette",
        "role_phone": "+352 26 54 32 10",
        "role_from": "2012-01-01",
    }
    base.update(values)
    return base


def hospital(**values: str) -> dict[str, str]:
    """The same kind of row for a place at a hospital."""
    return gp(
        org_id="HOSP01",
        org_name="Centre hospitalier Luxembourg 1",
        org_type="hospital",
        org_endpoint="https://fhir.hosp01.example.lu/fhir",
        org_phone="+352 4411 1",
        site_id="HOSP01-S1",
        site_name="Centre hospitalier Luxembourg 1 — site de Luxembourg",
        street="4, rue Nicolas Ernest Barblé",
        postal_code="L-1210",
        city="Luxembourg",
        role_phone="+352 4411 2222",
        **values,
    )


def nurse(**values: str) -> dict[str, str]:
    return hospital(
        authorisation="INF-2015-00007",
        profession="infirmier",
        specialties="infirmier-pediatrie",
        family="Pereira",
        given="João",
        prefix="",
        gender="M",
        cns_code="",
        languages="pt fr",
        authorised_from="2015-02-01",
        role_from="2015-03-01",
        **values,
    )


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


async def current(platform: Platform, res_type: str) -> dict[str, dict[str, Any]]:
    """The current resources of a type by business key (``version`` = meta.versionId as an int)."""
    async with platform.database.read() as conn:
        rows = await conn.fetch(
            "SELECT content FROM resource WHERE res_type = ? AND is_current AND NOT deleted", (res_type,)
        )
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        resource = orjson.loads(bytes(row[0]))
        keys = [i["value"] for i in resource.get("identifier", []) if i.get("system") == KEY_SYSTEMS[res_type]]
        out[keys[0] if keys else resource["id"]] = resource
    return out


async def versions(platform: Platform) -> int:
    async with platform.database.read() as conn:
        return int(await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type <> 'AuditEvent'"))


async def ledger(platform: Platform) -> dict[str, str]:
    async with platform.database.read() as conn:
        rows = await conn.fetch("SELECT ehealth_id, practitioner_id FROM hpd_ehealth_id")
    return {str(r[0]): str(r[1]) for r in rows}


def identifier(resource: dict[str, Any], system: str) -> str | None:
    values = [i["value"] for i in resource.get("identifier", []) if i.get("system") == system]
    return values[0] if values else None
