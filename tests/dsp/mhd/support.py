"""The MHD tests' world: the real application on loopback (uvicorn) on SQLite or PostgreSQL, with the certified
identities of the MPI and the professionals of the HPD that the guide's examples (../shared/data/ig-examples/MHD)
refer to, and helpers to build submissions of our own.

Certified identities are written as the register import writes them (a store session without an API caller);
everything else goes over HTTP with the all-rights establishment client. Documents are read back as the patient
(the DSP access rule gives establishment clients no read of DSP documents).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from esante.app import Platform, build_platform
from esante.config import Settings
from esante.db.engine import Database, create_database
from esante.hpd.model import EHEALTH_ID_SYSTEM, PROFESSION_SYSTEM
from esante.identifiers.ehealth_id import make_ehealth_id
from esante.identifiers.esante_id import new_esante_id
from esante.identifiers.matricule import make_matricule
from esante.mpi.model import ESANTE_ID_SYSTEM, LEVEL_SYSTEM, MATRICULE_SYSTEM
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.conftest import shared_data
from tests.live_server import loopback_settings, serve

MHD = "https://profiles.ihe.net/ITI/MHD"
MINIMAL = f"{MHD}/StructureDefinition/IHE.MHD.Minimal.ProvideBundle"
COMPREHENSIVE = f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
UNIQUE_ID_TYPE = f"{MHD}/CodeSystem/IHE.MHD.MHDIdentifierType"
EXAMPLES = shared_data("ig-examples", "MHD")


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


@dataclass
class World:
    fhir: str  # the server's FHIR base on loopback
    platform: Platform
    database: Database  # the test's own connection
    patients: dict[str, str] = field(default_factory=dict)  # name → certified Patient id

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    @property
    def base(self) -> str:
        """The base URL the server writes into its answers (``base_url`` when set)."""
        return self.settings.base_url.rstrip("/") or self.fhir

    def system(self) -> dict[str, str]:
        """The all-rights establishment software (system/*.cruds)."""
        return {"Authorization": f"Bearer {token(self.settings, f'system:{TEST_CLIENT}', ALL_RIGHTS)}"}

    def patient(self, patient_id: str) -> dict[str, str]:
        """The patient themselves (reads their own DSP)."""
        return {"Authorization": f"Bearer {token(self.settings, f'patient:{patient_id}')}"}

    def professional(self, practitioner: str) -> dict[str, str]:
        """A professional of the fixture directory (by their eHealthID)."""
        number = int(PRACTITIONERS[practitioner]["n"])  # type: ignore[call-overload]
        return {"Authorization": f"Bearer {token(self.settings, f'professional:{ehealth_id(number)}')}"}

    def url(self, location: str) -> str:
        """A location the server answered (absolute on its base URL, or relative) on the loopback server."""
        if location.startswith(self.base):
            location = location[len(self.base) :]
        return f"{self.fhir}/{location.lstrip('/')}"

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.database.read() as conn:
            return [tuple(row) for row in await conn.fetch(sql, params)]

    def blob_dir(self) -> Path:
        return self.settings.effective_blob_dir


@asynccontextmanager
async def mhd_world(db_url: str, folder: Path, **overrides: Any) -> AsyncIterator[World]:
    """The application on loopback with the examples' identities and professionals (see the module docstring)."""
    values: dict[str, Any] = {
        "var_dir": folder,
        "database_url": db_url,
        "dsp_refusal_window_days": 0,
        "db_pool_size": 3,
    }
    values.update(overrides)
    settings = loopback_settings(**values)
    platform = build_platform(settings)
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        await register_client(database)
        world = World("", platform, database)
        world.patients = await certify_examples(world)
        with serve(settings, platform) as fhir:
            world.fhir = fhir
            async with httpx.AsyncClient(timeout=30) as http:
                await directory(world, http)
            yield world
    finally:
        await database.close()


# --------------------------------------------------------------------------------------------- identities


def certified(res_id: str, family: str, given: str, birth: str, gender: str, sequence: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": res_id,
        "meta": {"tag": [{"system": LEVEL_SYSTEM, "code": "certified"}]},
        "active": True,
        "identifier": [
            {"system": MATRICULE_SYSTEM, "value": make_matricule(birth.replace("-", ""), sequence)},
            {"system": ESANTE_ID_SYSTEM, "value": new_esante_id()},
        ],
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
    }


async def certify(world: World, *patients: dict[str, Any]) -> None:
    """Write certified identities as the register import does (no API caller); their DSPs open with them."""
    async with world.database.transaction() as conn:
        session = world.platform.store.session(conn)
        for patient in patients:
            await session.create(json.loads(json.dumps(patient)), res_id=patient["id"])
        await session.flush()


async def certify_examples(world: World) -> dict[str, str]:
    """ex-patient (the examples' Patient/ex-patient), fdoc-patient (the FHIR document example's), Dee Schmidt (the
    Minimal examples' patient known by name only) and two more people."""
    people = {
        "ex-patient": certified("ex-patient", "Schmidt", "John", "1923-07-25", "other", 1),
        "fdoc-patient": certified("fdoc-patient", "Everywoman", "Eve", "1955-01-06", "female", 2),
        "dee": certified(str(uuid.uuid4()), "Schmidt", "Dee", "1961-04-12", "female", 3),
        "lea": certified(str(uuid.uuid4()), "Schmit", "Léa", "1982-08-02", "female", 4),
        "marc": certified(str(uuid.uuid4()), "Weber", "Marc", "1990-11-15", "male", 5),
    }
    await certify(world, *people.values())
    return {name: patient["id"] for name, patient in people.items()}


async def national_id(world: World, name: str, system: str = MATRICULE_SYSTEM) -> str:
    rows = await world.rows(
        "SELECT content FROM resource WHERE res_type = 'Patient' AND res_id = ? AND is_current",
        (world.patients[name],),
    )
    patient = json.loads(bytes(rows[0][0]))
    return str(next(i["value"] for i in patient["identifier"] if i["system"] == system))


# --------------------------------------------------------------------------------------------- the directory


def ehealth_id(n: int) -> str:
    return make_ehealth_id(f"{286_000_000 + n:09d}")


PRACTITIONERS = {
    # the examples' Practitioner/ex-practitioner
    "ex-practitioner": {"name": ("Moehrke", "John"), "telecom": "JohnMoehrke@gmail.com", "n": 1},
    # the contained author of the Complete example (known by its e-mail only)
    "iti-author": {"name": ("Author", "Iti"), "telecom": "iti@ihe.net", "n": 2},
    # the contained author of the FHIR document example (an identifier of the HPD: acme|23)
    "adam-careful": {"name": ("Careful", "Adam"), "identifier": ("http://www.acme.org/practitioners", "23"), "n": 3},
    # a professional of our own submissions, and one whose right to practise will be withdrawn
    "dr-demo": {"name": ("Demo", "Claire"), "n": 4},
    "dr-gone": {"name": ("Gone", "Paul"), "n": 5},
}


async def put(world: World, http: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{world.fhir}/{resource['resourceType']}/{resource['id']}"
    response = await http.put(url, json=resource, headers={**world.system(), **FHIR_JSON})
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def directory(world: World, http: httpx.AsyncClient) -> None:
    """The professionals and the organisation the examples name, as HPD entries."""
    for res_id, spec in PRACTITIONERS.items():
        identifiers = [{"system": EHEALTH_ID_SYSTEM, "value": ehealth_id(int(spec["n"]))}]  # type: ignore[call-overload]
        if "identifier" in spec:
            system, value = spec["identifier"]  # type: ignore[misc]
            identifiers.append({"system": system, "value": value})
        practitioner: dict[str, Any] = {
            "resourceType": "Practitioner",
            "id": res_id,
            "active": True,
            "identifier": identifiers,
            "name": [{"family": spec["name"][0], "given": [spec["name"][1]]}],  # type: ignore[index]
            "qualification": [{"code": {"coding": [{"system": PROFESSION_SYSTEM, "code": "medecin"}]}}],
        }
        if "telecom" in spec:
            practitioner["telecom"] = [{"system": "email", "value": spec["telecom"]}]
        await put(world, http, practitioner)
    await put(
        world,
        http,
        {"resourceType": "PractitionerRole", "id": "dr-demo-gp", "active": True,
         "practitioner": {"reference": "Practitioner/dr-demo"}},
    )  # fmt: skip
    await put(world, http, {"resourceType": "Organization", "id": "ex-organization", "name": "nowhere"})


# --------------------------------------------------------------------------------------------- submissions


def pdf(text: str = "Consultation", size: int = 2000) -> bytes:
    """A small PDF/A-1b-looking document (its XMP metadata declares pdfaid:part), padded to about ``size`` bytes."""
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="1" pdfaid:conformance="B"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    body = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Metadata /Subtype /XML >> stream\n" + xmp + b"\nendstream\n"
    body += f"% {text}\n".encode()
    padding = max(0, size - len(body) - 6)
    return body + b"%" + (b"x" * padding) + b"\n%%EOF"


def sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def submission(
    patient: dict[str, Any],
    documents: list[bytes] | None = None,
    *,
    content_type: str = "application/pdf",
    type_code: str = "11488-4",
    author: dict[str, Any] | None = None,
    confidentiality: str | None = "N",
    profile: str = MINIMAL,
    unique_ids: list[str] | None = None,
    relates_to: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ITI-65 Bundle of our own: one SubmissionSet, one DocumentReference and Binary per document."""
    documents = documents if documents is not None else [pdf()]
    set_url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = []
    items = []
    for i, data in enumerate(documents):
        doc_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        items.append({"item": {"reference": doc_url}})
        unique_id = unique_ids[i] if unique_ids else f"urn:oid:2.25.{uuid.uuid4().int}"
        document: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": unique_id},
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]},
            "subject": patient,
            "date": "2026-03-01T10:00:00+01:00",
            "content": [
                {
                    "attachment": {
                        "contentType": content_type,
                        "url": bin_url,
                        "size": len(data),
                        "hash": sha1(data),
                        "language": "fr",
                        "creation": "2026-03-01T09:30:00+01:00",
                        "title": f"Document {i}",
                    },
                    "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                               "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
                }
            ],
            "context": {
                "period": {"start": "2026-02-28T08:00:00+01:00", "end": "2026-03-01T09:00:00+01:00"},
                "facilityType": {"coding": [{"system": "http://snomed.info/sct", "code": "22232009"}]},
                "practiceSetting": {"coding": [{"system": "http://snomed.info/sct", "code": "394802001"}]},
                "event": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}],
            },
        }  # fmt: skip
        if author is not None:
            document["author"] = [author]
        if confidentiality:
            document["securityLabel"] = [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": confidentiality}
                    ]
                }
            ]
        if relates_to:
            document["relatesTo"] = relates_to
        entries.append(
            {"fullUrl": doc_url, "resource": document, "request": {"method": "POST", "url": "DocumentReference"}}
        )
        entries.append(
            {
                "fullUrl": bin_url,
                "resource": {"resourceType": "Binary", "contentType": content_type,
                             "data": base64.b64encode(data).decode()},
                "request": {"method": "POST", "url": "Binary"},
            }
        )  # fmt: skip
    submission_set: dict[str, Any] = {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": f"{MHD}/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
        "extension": [
            {"url": f"{MHD}/StructureDefinition/ihe-sourceId", "valueIdentifier": {"value": "urn:oid:1.3.182.9.1"}},
            {"url": f"{MHD}/StructureDefinition/ihe-designationType",
             "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "225728007"}]}},
        ],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:oid:2.25.{uuid.uuid4().int}",
                        "type": {"coding": [{"system": UNIQUE_ID_TYPE, "code": "uniqueId"}]}}],
        "subject": patient,
        "date": "2026-03-01T10:00:00+01:00",
        "entry": items,
    }  # fmt: skip
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [profile]},
        "type": "transaction",
        "entry": [
            {"fullUrl": set_url, "resource": submission_set, "request": {"method": "POST", "url": "List"}},
            *entries,
        ],
    }


def author_of(practitioner: str) -> dict[str, Any]:
    return {"reference": f"Practitioner/{practitioner}"}


def locations(body: dict[str, Any]) -> list[str]:
    return [str(e["response"]["location"]) for e in body["entry"]]


def located(body: dict[str, Any], res_type: str, *, created: bool = True) -> list[str]:
    """The ids of the resources of ``res_type`` a transaction-response names (those it created by default)."""
    found = []
    for entry in body["entry"]:
        if created and not entry["response"]["status"].startswith("201"):
            continue
        path = str(entry["response"]["location"]).split("/_history/")[0]
        kind, _, res_id = path.rpartition("/")
        if kind.endswith(res_type):
            found.append(res_id)
    return found


def xds_code(body: dict[str, Any]) -> str | None:
    """The XDS error code an OperationOutcome carries in issue.details."""
    for issue in body.get("issue", []):
        for coding in (issue.get("details") or {}).get("coding", []):
            return str(coding.get("code"))
    return None
