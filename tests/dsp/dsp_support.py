"""The DSP tests' world: the real application on loopback (uvicorn) on both databases, and what the tests do around
it — certified identities written as the MPI's register import does, professionals in the directory, documents
written by establishment software over the API in the shape the MHD side uses, and tokens for every kind of caller
(patient, assistant, professional, a system client acting for a professional, the establishment itself, staff).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from esante.app import Platform, build_platform
from esante.db.engine import Database, create_database
from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.context import DspContext, dsp_context
from esante.dsp.lifecycle import change
from esante.dsp.model import CONFIDENTIALITY_SYSTEM, DOCUMENT_CLASS_SYSTEM
from esante.fhir.store import ResourceStore
from esante.hpd.model import EHEALTH_ID_SYSTEM, PROFESSION_SYSTEM
from esante.identifiers.ehealth_id import make_ehealth_id
from esante.security.keys import KeyRing
from esante.security.tokens import PURPOSE_SYSTEM, ROLE_SYSTEM, Coding, IuaClaims, mint
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.live_server import loopback_settings, serve

MATRICULE = "urn:oid:1.3.182.4.4"
ESANTE_ID = "urn:oid:1.3.182.2.4.2"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


class Clock:
    """The DSP's clock, movable (the server reads it through the shared context)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def ehid(n: int) -> str:
    return make_ehealth_id(f"{286_000_000 + n:09d}")


@dataclass
class World:
    fhir: str
    platform: Platform
    database: Database  # the test's own connection
    store: ResourceStore  # the test's internal writer (the platform's hooks)
    clock: Clock
    matricules: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Any:
        return self.platform.settings

    @property
    def context(self) -> DspContext:
        return dsp_context(self.platform)

    # --- tokens ---------------------------------------------------------------------------------------------------
    def headers(self, value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}", **FHIR_JSON}

    def system(self) -> dict[str, str]:
        """The all-rights establishment software (writes the directory and the documents)."""
        return self.headers(token(self.settings, f"system:{TEST_CLIENT}", ALL_RIGHTS))

    def patient(self, patient_id: str, scope: str | None = None) -> dict[str, str]:
        return self.headers(token(self.settings, f"patient:{patient_id}", scope))

    def professional(self, ehealth_id: str, purpose: str | None = None) -> dict[str, str]:
        return self.headers(token(self.settings, f"professional:{ehealth_id}", purpose_of_use=purpose))

    def staff(self, *roles: str, scope: str = "user/*.rs") -> dict[str, str]:
        return self.headers(token(self.settings, "staff:auditor", scope, extra_claims={"roles": list(roles)}))

    def system_for(self, ehealth_id: str, client: str = TEST_CLIENT) -> dict[str, str]:
        """Establishment software acting for a named professional (IUA national_provider_identifier)."""
        ring = KeyRing.load_or_create(self.settings)
        value = mint(
            ring,
            issuer=self.settings.effective_issuer,
            audience=self.settings.effective_audience,
            subject=client,
            client_id=client,
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

    # --- data -----------------------------------------------------------------------------------------------------
    async def certified(self, patient_id: str, n: int, *, active_dsp: bool = True) -> str:
        """A certified identity (as the register import writes it): its DSP is opened by the store hook, pending;
        ``active_dsp`` activates it as its holder would."""
        matricule = f"19800101{n:05d}"
        self.matricules[patient_id] = matricule
        resource = {
            "resourceType": "Patient",
            "id": patient_id,
            "meta": {"tag": [{"system": "urn:esante:identity-level", "code": "certified"}]},
            "identifier": [
                {"system": MATRICULE, "value": matricule},
                {"system": ESANTE_ID, "value": f"{1_000_000_000 + n}"},
            ],
            "name": [{"family": f"Family{n}", "given": [f"Given{n}"]}],
            "birthDate": "1980-01-01",
        }
        async with self.database.transaction() as conn:
            session = self.store.session(conn)
            await session.create(resource, res_id=patient_id)
            await session.flush()
        if active_dsp:
            await self.lifecycle(patient_id, "activate")
        return patient_id

    async def lifecycle(self, patient_id: str, action: str) -> None:
        async with self.database.transaction() as conn:
            await change(self.store.session(conn), self.context, patient_id, action, SYSTEM_ACTOR, "tests")

    async def sql(self, text: str, *params: Any) -> list[Any]:
        async with self.database.read() as conn:
            return list(await conn.fetch(text, params))

    async def execute(self, text: str, *params: Any) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(text, params)


async def put(http: httpx.AsyncClient, world: World, resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{world.fhir}/{resource['resourceType']}/{resource['id']}"
    response = await http.put(url, json=resource, headers=world.system())
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def practitioner(http: httpx.AsyncClient, world: World, pid: str, n: int, profession: str = "medecin") -> str:
    """A professional of the directory with an eHealthID and a profession; returns the eHealthID."""
    ehealth_id = ehid(n)
    await put(
        http,
        world,
        {
            "resourceType": "Practitioner",
            "id": pid,
            "active": True,
            "identifier": [{"system": EHEALTH_ID_SYSTEM, "value": ehealth_id}],
            "name": [{"family": f"Doc-{pid}", "given": ["Alex"]}],
            "qualification": [{"code": {"coding": [{"system": PROFESSION_SYSTEM, "code": profession}]}}],
        },
    )
    return ehealth_id


async def role(http: httpx.AsyncClient, world: World, role_id: str, practitioner_id: str) -> None:
    await put(
        http,
        world,
        {
            "resourceType": "PractitionerRole",
            "id": role_id,
            "active": True,
            "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
        },
    )


def document(
    doc_id: str,
    patient: str,
    category: str | None,
    *,
    labels: tuple[str, ...] = (),
    author: str | None = None,
) -> dict[str, Any]:
    """A DSP DocumentReference in the shared shape (subject, class, confidentiality, author)."""
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": doc_id,
        "status": "current",
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "application/pdf", "url": f"Binary/bin-{doc_id}"}}],
    }
    if category:
        body["category"] = [{"coding": [{"system": DOCUMENT_CLASS_SYSTEM, "code": category}]}]
    if labels:
        body["securityLabel"] = [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": code}]} for code in labels]
    if author:
        body["author"] = [{"reference": author}]
    return body


def binary(doc_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Binary",
        "id": f"bin-{doc_id}",
        "contentType": "application/pdf",
        "data": "JVBERi0xLjQK",
        "securityContext": {"reference": f"DocumentReference/{doc_id}"},
    }


def submission_set(list_id: str, patient: str, source: str, items: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "List",
        "id": list_id,
        "status": "current",
        "mode": "working",
        "subject": {"reference": f"Patient/{patient}"},
        "source": {"reference": source},
        "entry": [{"item": {"reference": f"DocumentReference/{i}"}} for i in items],
    }


def parameters(**values: Any) -> dict[str, Any]:
    """A Parameters body: strings become valueString, booleans valueBoolean, dicts with 'reference' valueReference,
    dicts with 'system' valueIdentifier; a (key, value) tuple names the value[x] explicitly."""
    items = []
    for name, value in values.items():
        if isinstance(value, tuple):
            items.append({"name": name, value[0]: value[1]})
        elif isinstance(value, bool):
            items.append({"name": name, "valueBoolean": value})
        elif isinstance(value, dict) and "reference" in value:
            items.append({"name": name, "valueReference": value})
        elif isinstance(value, dict):
            items.append({"name": name, "valueIdentifier": value})
        else:
            items.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": items}


@asynccontextmanager
async def dsp_world(db_url: str, folder: Path, **overrides: Any) -> AsyncIterator[World]:
    settings = loopback_settings(var_dir=folder, database_url=db_url, audit_enabled=True, **overrides)
    platform = build_platform(settings)
    clock = Clock()
    dsp_context(platform).clock = clock
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        await register_client(database)
        store = ResourceStore(database, platform.hooks)
        store.clock = platform.store.clock
        with serve(settings, platform) as fhir:
            yield World(fhir, platform, database, store, clock)
    finally:
        await database.close()


def ids(bundle: dict[str, Any], mode: str = "match") -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode", "match") == mode and "resource" in e
    }


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text}"
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body


def details_code(body: dict[str, Any]) -> str | None:
    for issue in body.get("issue", []):
        for coding in issue.get("details", {}).get("coding", []):
            return str(coding.get("code"))
    return None
