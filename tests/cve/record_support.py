"""The CVE record tests' world: the real application on loopback (uvicorn) on both databases, with the CDC's
CDSi supporting data as the schedule (``cve_schedule`` = the folder), patients and professionals written by the
all-rights establishment client, and tokens for each kind of caller (patient, assistant, professional, a system
client acting for a professional, the establishment itself, staff)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from esante.app import Platform, build_platform
from esante.cve.context import CveContext, cve_context
from esante.cve.record.gs1 import GS
from esante.db.engine import Database, create_database
from esante.hpd.model import EHEALTH_ID_SYSTEM, PROFESSION_SYSTEM
from esante.identifiers.ehealth_id import make_ehealth_id
from esante.security.keys import KeyRing
from esante.security.tokens import PURPOSE_SYSTEM, ROLE_SYSTEM, Coding, IuaClaims, mint
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.conftest import shared_data
from tests.live_server import loopback_settings, serve

CDC_DATA = shared_data("cdsi", "supporting-data-4.64")
FHIR_JSON = {"Content-Type": "application/fhir+json"}
CVX = "http://hl7.org/fhir/sid/cvx"
ORIGIN = "urn:esante:cve:record-origin"
GS1 = "urn:esante:cve:gs1-datamatrix"
SERIAL = "urn:esante:cve:serial-number"
PRODUCT = "urn:esante:cve:product"
QUALIFICATION = "urn:esante:cve:qualification"
HEXYON = "02099900000010"  # the packaged table's (illustrative) GTIN of Hexyon, CVX 146
PRIORIX = "02099900000171"  # MMR, CVX 03


def ehid(n: int) -> str:
    return make_ehealth_id(f"{287_000_000 + n:09d}")


def scan(gtin: str = HEXYON, expiry: str = "270531", lot: str = "LOT42A", serial: str | None = "SN0001") -> str:
    """A raw GS1 DataMatrix scan: symbology identifier, fixed-length AIs first, GS after variable-length ones."""
    text = f"]d201{gtin}17{expiry}10{lot}"
    if serial is not None:
        text += f"{GS}21{serial}"
    return text


@dataclass
class World:
    fhir: str
    platform: Platform
    database: Database

    @property
    def settings(self) -> Any:
        return self.platform.settings

    @property
    def context(self) -> CveContext:
        return cve_context(self.platform)

    def headers(self, value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}", **FHIR_JSON}

    def system(self) -> dict[str, str]:
        return self.headers(token(self.settings, f"system:{TEST_CLIENT}", ALL_RIGHTS))

    def patient(self, patient_id: str) -> dict[str, str]:
        return self.headers(token(self.settings, f"patient:{patient_id}"))

    def professional(self, ehealth_id: str) -> dict[str, str]:
        return self.headers(token(self.settings, f"professional:{ehealth_id}"))

    def staff(self, *roles: str, scope: str = "user/*.rs") -> dict[str, str]:
        return self.headers(token(self.settings, "staff:auditor", scope, extra_claims={"roles": list(roles)}))

    def system_for(self, ehealth_id: str) -> dict[str, str]:
        """Establishment software acting for a named professional (IUA national_provider_identifier)."""
        ring = KeyRing.load_or_create(self.settings)
        value = mint(
            ring,
            issuer=self.settings.effective_issuer,
            audience=self.settings.effective_audience,
            subject=TEST_CLIENT,
            client_id=TEST_CLIENT,
            scope=ALL_RIGHTS,
            ttl=600,
            iua=IuaClaims(
                subject_role=Coding(ROLE_SYSTEM, "system"),
                purpose_of_use=(Coding(PURPOSE_SYSTEM, "TREAT"),),
                national_provider_identifier=ehealth_id,
            ),
        )
        return self.headers(value)

    def assistant(self, account: str, assistant_patient: str, holder: str) -> dict[str, str]:
        ring = KeyRing.load_or_create(self.settings)
        value = mint(
            ring,
            issuer=self.settings.effective_issuer,
            audience=self.settings.effective_audience,
            subject=account,
            client_id="esante-cli",
            scope="patient/*.rs",
            ttl=600,
            iua=IuaClaims(
                subject_role=Coding(ROLE_SYSTEM, "assistant"),
                purpose_of_use=(Coding(PURPOSE_SYSTEM, "PATRQT"),),
                person_id=holder,
            ),
            extra_claims={"acct": account, "fhirUser": f"Patient/{assistant_patient}"},
        )
        return self.headers(value)

    async def add_assistant(self, account: str, assistant_patient: str, holder: str) -> dict[str, str]:
        """An active patient account ``account`` (of ``assistant_patient``) delegated by ``holder``; its headers."""
        now = int(time.time()) - 5
        async with self.database.transaction() as conn:
            await conn.execute(
                "INSERT INTO account (id, kind, username, status, patient_id, roles, totp_enabled, failed_logins,"
                " tokens_valid_after, created_at, updated_at) VALUES (?, 'patient', ?, 'active', ?, '', ?, 0, 0, ?, ?)",
                (account, account, assistant_patient, True, now, now),
            )
            await conn.execute(
                "INSERT INTO account_delegation (account_id, patient_id, created_at) VALUES (?, ?, ?)",
                (account, holder, now),
            )
        return self.assistant(account, assistant_patient, holder)

    async def sql(self, text: str, *params: Any) -> list[Any]:
        async with self.database.read() as conn:
            return list(await conn.fetch(text, params))

    async def count(self, res_type: str) -> int:
        rows = await self.sql("SELECT COUNT(*) FROM resource WHERE res_type = ? AND is_current", res_type)
        return int(rows[0][0])


async def put(http: httpx.AsyncClient, world: World, resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{world.fhir}/{resource['resourceType']}/{resource['id']}"
    response = await http.put(url, json=resource, headers=world.system())
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def patient(
    http: httpx.AsyncClient, world: World, patient_id: str, birth: str = "2024-01-15", gender: str = "female"
) -> str:
    await put(
        http,
        world,
        {
            "resourceType": "Patient",
            "id": patient_id,
            "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": f"{birth.replace('-', '')}00{len(patient_id)}"}],
            "name": [{"family": f"Family-{patient_id}", "given": ["Kim"]}],
            "gender": gender,
            "birthDate": birth,
        },
    )
    return patient_id


async def practitioner(
    http: httpx.AsyncClient, world: World, pid: str, n: int, profession: str = "medecin", trained: bool = False
) -> str:
    """A professional of the directory; returns the eHealthID. ``trained``: the trained-vaccinator qualification."""
    ehealth_id = ehid(n)
    qualifications: list[dict[str, Any]] = [{"code": {"coding": [{"system": PROFESSION_SYSTEM, "code": profession}]}}]
    if trained:
        qualifications.append({"code": {"coding": [{"system": QUALIFICATION, "code": "trained-vaccinator"}]}})
    await put(
        http,
        world,
        {
            "resourceType": "Practitioner",
            "id": pid,
            "active": True,
            "identifier": [{"system": EHEALTH_ID_SYSTEM, "value": ehealth_id}],
            "name": [{"family": f"Doc-{pid}", "given": ["Alex"]}],
            "qualification": qualifications,
        },
    )
    return ehealth_id


async def authorize(http: httpx.AsyncClient, world: World, patient_id: str, practitioner_id: str) -> dict[str, Any]:
    body = parameters(practitioner={"reference": f"Practitioner/{practitioner_id}"})
    response = await http.post(
        f"{world.fhir}/Patient/{patient_id}/$cve-authorize", json=body, headers=world.patient(patient_id)
    )
    assert response.status_code in (200, 201), response.text
    consent: dict[str, Any] = response.json()
    return consent


def parameters(**values: Any) -> dict[str, Any]:
    """Strings → valueString, dicts with 'reference' → valueReference, other dicts → valueIdentifier, a
    (key, value) tuple names value[x], a list → one parameter per item (each a resource)."""
    items: list[dict[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, list):
            items.extend({"name": name, "resource": v} for v in value)
        elif isinstance(value, tuple):
            items.append({"name": name, value[0]: value[1]})
        elif isinstance(value, dict) and "resourceType" in value:
            items.append({"name": name, "resource": value})
        elif isinstance(value, dict) and "reference" in value:
            items.append({"name": name, "valueReference": value})
        elif isinstance(value, dict):
            items.append({"name": name, "valueIdentifier": value})
        else:
            items.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": items}


def immunization(
    patient_id: str,
    origin: str | None = "performed",
    *,
    cvx: str = "146",
    day: str = "2024-03-15",
    lot: str | None = "LOT42A",
    expiry: str | None = "2027-05-31",
    performer: str | None = "Practitioner/doc",
    **extra: Any,
) -> dict[str, Any]:
    """An Immunization of the CVE's profile (a performed hexavalent dose by default)."""
    body: dict[str, Any] = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]},
        "patient": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": day,
    }
    if origin is not None:
        body["extension"] = [{"url": ORIGIN, "valueCoding": {"system": ORIGIN, "code": origin}}]
    if lot is not None:
        body["lotNumber"] = lot
    if expiry is not None:
        body["expirationDate"] = expiry
    if performer is not None:
        body["performer"] = [{"actor": {"reference": performer}}]
    body.update(extra)
    return body


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text}"
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body


def details_codes(body: dict[str, Any]) -> list[str]:
    return [
        str(coding.get("code"))
        for issue in body.get("issue", [])
        for coding in issue.get("details", {}).get("coding", [])
    ]


def diagnostics(body: dict[str, Any]) -> str:
    return " | ".join(str(issue.get("diagnostics", "")) for issue in body.get("issue", []))


def ext(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in resource.get("extension", []) if e.get("url") == url), None)


@asynccontextmanager
async def cve_world(db_url: str, folder: Path, today: date | None = None, **overrides: Any) -> AsyncIterator[World]:
    """The platform on loopback with the CDC schedule; ``today`` fixes the CVE's clock."""
    settings = loopback_settings(
        var_dir=folder, database_url=db_url, audit_enabled=True, cve_schedule=str(CDC_DATA), **overrides
    )
    platform = build_platform(settings)
    if today is not None:
        from datetime import UTC, datetime

        fixed = datetime(today.year, today.month, today.day, 12, tzinfo=UTC).timestamp()
        cve_context(platform).clock = lambda: fixed
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        await register_client(database)
        with serve(settings, platform) as fhir:
            yield World(fhir, platform, database)
    finally:
        await database.close()
