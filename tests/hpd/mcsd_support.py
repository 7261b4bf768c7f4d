"""A small Luxembourg provider directory in the seven IHE mCSD types, and a real server holding it.

The directory has a hierarchy of organisations (a hospital federation → CHL → its cardiology department → a
rhythmology unit), of locations (CHL's site → the cardiology wing → a room), an additional mCSD hierarchy (the
hospital federation, through the OrganizationHierarchy extension), professionals with private data that must never
reach the public directory, and one professional whose right to practise was withdrawn (inactive).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from esante.config import Settings
from esante.db.engine import create_database
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.live_server import loopback_settings, serve

PROFESSION = "urn:esante:hpd:profession"
EHEALTH_ID = "urn:oid:1.3.182.2.8.1"
CNS_PROVIDER = "urn:oid:1.3.182.4.7"
MATRICULE = "urn:oid:1.3.182.4.4"
ORG = "urn:esante:hpd:organization"
LOC = "urn:esante:hpd:location"
HIERARCHY = "https://profiles.ihe.net/ITI/mCSD/StructureDefinition/IHE.mCSD.OrganizationHierarchy"
HIERARCHY_TYPES = "urn:esante:hpd:hierarchy-type"
CONNECTION = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
PAYLOAD = "urn:esante:hpd:payload-type"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
LOC_TYPE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
SERVICE_TYPE = "urn:esante:hpd:service-type"
AFFILIATION_ROLE = "http://hl7.org/fhir/organization-role"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _ref(reference: str, display: str | None = None) -> dict[str, str]:
    return {"reference": reference, **({"display": display} if display else {})}


def _org(rid: str, name: str, kind: str, *, active: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": rid,
        "identifier": [{"system": ORG, "value": rid.upper()}],
        "active": active,
        "type": [_coding(ORG_TYPE, kind)],
        "name": name,
        **extra,
    }


def _hierarchy(kind: str, parent: str) -> dict[str, Any]:
    return {
        "url": HIERARCHY,
        "extension": [
            {"url": "hierarchy-type", "valueCodeableConcept": _coding(HIERARCHY_TYPES, kind)},
            {"url": "part-of", "valueReference": _ref(f"Organization/{parent}")},
        ],
    }


def _address(line: str, city: str, postal: str) -> dict[str, Any]:
    return {"use": "work", "line": [line], "city": city, "postalCode": postal, "country": "LU"}


def _loc(rid: str, name: str, *, status: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": rid,
        "identifier": [{"system": LOC, "value": rid.upper()}],
        "status": status,
        "name": name,
        "type": [_coding(LOC_TYPE, "HOSP")],
        "physicalType": _coding("http://terminology.hl7.org/CodeSystem/location-physical-type", "bu"),
        **extra,
    }


def _practitioner(rid: str, family: str, given: list[str], ehealth: str, *, active: bool = True) -> dict[str, Any]:
    """A professional with the private data a directory holds (identifiers, private phone, birth date...)."""
    return {
        "resourceType": "Practitioner",
        "id": rid,
        "identifier": [
            {"system": EHEALTH_ID, "value": ehealth},
            {"system": CNS_PROVIDER, "value": f"9{ehealth[:5]}-{ehealth[5:7]}"},
            {"system": MATRICULE, "value": "1974091186700"},
        ],
        "active": active,
        "name": [{"use": "official", "family": family, "given": given, "prefix": ["Dr"]}],
        "telecom": [{"system": "phone", "value": "+352 691 000 111", "use": "mobile"}],
        "address": [_address("1 rue privée", "Mamer", "L-8211") | {"use": "home"}],
        "gender": "female" if rid in ("schmit", "wagner") else "male",
        "birthDate": "1970-01-01",
        "communication": [_coding("urn:ietf:bcp:47", "fr"), _coding("urn:ietf:bcp:47", "lb")],
        "qualification": [
            {
                "identifier": [{"system": "urn:esante:hpd:ministry-authorisation", "value": f"M-{ehealth}"}],
                "code": _coding(PROFESSION, "medecin"),
            }
        ],
        "extension": [
            {"url": "urn:esante:hpd:right-to-practise", "extension": [{"url": "status", "valueCode": "active"}]}
        ],
    }


def _role(
    rid: str,
    practitioner: str,
    organization: str,
    location: str,
    profession: str,
    specialty: str | None,
    *,
    active: bool = True,
    service: str | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": rid,
        "identifier": [{"system": "urn:esante:hpd:practitioner-role", "value": rid.upper()}],
        "active": active,
        "practitioner": {**_ref(f"Practitioner/{practitioner}"), "identifier": {"system": EHEALTH_ID, "value": "x"}},
        "organization": _ref(f"Organization/{organization}"),
        "location": [_ref(f"Location/{location}")],
        "code": [_coding(PROFESSION, profession)],
        "telecom": [{"system": "phone", "value": "+352 4411 1", "use": "work"}],
        "availableTime": [{"daysOfWeek": ["mon", "tue"], "availableStartTime": "08:00:00"}],
    }
    if specialty:
        role["specialty"] = [_coding(PROFESSION, specialty)]
    if service:
        role["healthcareService"] = [_ref(f"HealthcareService/{service}")]
    return role


DIRECTORY: list[dict[str, Any]] = [
    # --- organisations: FHL → CHL → cardiology → rhythmology; a practice, a laboratory, a pharmacy, the CGDIS
    _org("fhl", "Fédération des Hôpitaux Luxembourgeois", "other"),
    _org(
        "chl",
        "Centre Hospitalier de Luxembourg",
        "prov",
        extension=[_hierarchy("federation", "fhl")],
        endpoint=[_ref("Endpoint/ep-chl")],
        telecom=[{"system": "phone", "value": "+352 4411 1"}],
        address=[_address("4 rue Nicolas Ernest Barblé", "Luxembourg", "L-1210")],
    ),
    _org("chl-cardio", "Service de cardiologie", "dept", partOf=_ref("Organization/chl")),
    _org("chl-rythmo", "Unité de rythmologie", "dept", partOf=_ref("Organization/chl-cardio")),
    _org(
        "cabinet-esch",
        "Cabinet médical de l'Alzette",
        "prov",
        address=[_address("12 rue de l'Alzette", "Esch-sur-Alzette", "L-4011")],
    ),
    _org("labo", "Laboratoires Réunis", "prov", extension=[_hierarchy("network", "chl")]),
    _org("pharmacie", "Pharmacie du Globe", "prov"),
    _org("cgdis", "Corps grand-ducal d'incendie et de secours", "govt", active=False),
    # --- locations: CHL site → cardiology wing → room; the practice in Esch; the pharmacy in Ettelbruck
    _loc(
        "loc-chl",
        "CHL Centre",
        managingOrganization=_ref("Organization/chl"),
        address=_address("4 rue Nicolas Ernest Barblé", "Luxembourg", "L-1210"),
        telecom=[{"system": "phone", "value": "+352 4411 1"}],
        position={"latitude": 49.6167, "longitude": 6.1},
    ),
    _loc(
        "loc-chl-cardio",
        "CHL Centre, aile de cardiologie",
        managingOrganization=_ref("Organization/chl-cardio"),
        partOf=_ref("Location/loc-chl"),
        address=_address("4 rue Nicolas Ernest Barblé", "Luxembourg", "L-1210"),
    ),
    _loc(
        "loc-chl-room",
        "Salle de rythmologie",
        status="suspended",
        partOf=_ref("Location/loc-chl-cardio"),
        managingOrganization=_ref("Organization/chl-rythmo"),
    ),
    _loc(
        "loc-esch",
        "Cabinet de l'Alzette",
        managingOrganization=_ref("Organization/cabinet-esch"),
        address=_address("12 rue de l'Alzette", "Esch-sur-Alzette", "L-4011"),
        telecom=[{"system": "phone", "value": "+352 54 00 00"}],
        position={"latitude": 49.4958, "longitude": 5.9806},
    ),
    _loc(
        "loc-cgdis",
        "Centre national d'incendie et de secours",
        managingOrganization=_ref("Organization/cgdis"),
        address=_address("1 boulevard de Kockelscheuer", "Luxembourg", "L-1821"),
    ),
    _loc(
        "loc-ettelbruck",
        "Pharmacie du Globe, Ettelbruck",
        status="inactive",
        managingOrganization=_ref("Organization/pharmacie"),
        address=_address("1 Grand-Rue", "Ettelbruck", "L-9050"),
    ),
    # --- professionals (private data included), one withdrawn
    _practitioner("muller", "Müller", ["Jean", "Paul"], "1000000017"),
    _practitioner("schmit", "Schmit", ["Marie"], "1000000025"),
    _practitioner("dasilva", "Da Silva", ["João"], "1000000033"),
    _practitioner("wagner", "Wagner", ["Anne"], "1000000041", active=False),
    # --- healthcare services
    {
        "resourceType": "HealthcareService",
        "id": "hs-cardio",
        "identifier": [{"system": "urn:esante:hpd:healthcare-service", "value": "HS-CARDIO"}],
        "active": True,
        "providedBy": _ref("Organization/chl-cardio"),
        "location": [_ref("Location/loc-chl-cardio")],
        "type": [_coding(SERVICE_TYPE, "consultation-cardiologie")],
        "name": "Consultation de cardiologie",
    },
    {
        "resourceType": "HealthcareService",
        "id": "hs-prise-de-sang",
        "identifier": [{"system": "urn:esante:hpd:healthcare-service", "value": "HS-SANG"}],
        "active": False,
        "providedBy": _ref("Organization/labo"),
        "location": [_ref("Location/loc-esch")],
        "type": [_coding(SERVICE_TYPE, "prelevement")],
        "name": "Prise de sang",
    },
    # --- roles
    _role("r-muller-chl", "muller", "chl-cardio", "loc-chl-cardio", "medecin", "med-cardiologie", service="hs-cardio"),
    _role("r-muller-esch", "muller", "cabinet-esch", "loc-esch", "medecin", "med-cardiologie"),
    _role("r-schmit", "schmit", "cabinet-esch", "loc-esch", "infirmier", None),
    _role("r-schmit-cgdis", "schmit", "cgdis", "loc-cgdis", "infirmier", None),
    _role("r-dasilva", "dasilva", "pharmacie", "loc-ettelbruck", "pharmacien", None),
    _role("r-wagner", "wagner", "cabinet-esch", "loc-esch", "medecin", "med-generale", active=False),
    # --- endpoints
    {
        "resourceType": "Endpoint",
        "id": "ep-chl",
        "identifier": [{"system": "urn:esante:hpd:endpoint", "value": "EP-CHL"}],
        "status": "active",
        "connectionType": {"system": CONNECTION, "code": "hl7-fhir-rest"},
        "managingOrganization": _ref("Organization/chl"),
        "payloadType": [_coding(PAYLOAD, "mhd")],
        "address": "https://chl.example.lu/fhir",
    },
    {
        "resourceType": "Endpoint",
        "id": "ep-labo",
        "identifier": [{"system": "urn:esante:hpd:endpoint", "value": "EP-LABO"}],
        "status": "off",
        "connectionType": {"system": CONNECTION, "code": "direct-project"},
        "managingOrganization": _ref("Organization/labo"),
        "payloadType": [_coding(PAYLOAD, "regimail")],
        "address": "mailto:labo@regimail.example.lu",
    },
    # --- affiliations
    {
        "resourceType": "OrganizationAffiliation",
        "id": "aff-fhl-chl",
        "identifier": [{"system": "urn:esante:hpd:organization-affiliation", "value": "AFF-FHL-CHL"}],
        "active": True,
        "period": {"start": "2020-01-01"},
        "organization": _ref("Organization/fhl"),
        "participatingOrganization": _ref("Organization/chl"),
        "code": [_coding(AFFILIATION_ROLE, "member")],
        "endpoint": [_ref("Endpoint/ep-chl")],
    },
    {
        "resourceType": "OrganizationAffiliation",
        "id": "aff-chl-labo",
        "identifier": [{"system": "urn:esante:hpd:organization-affiliation", "value": "AFF-CHL-LABO"}],
        "active": False,
        "period": {"start": "2010-01-01", "end": "2015-12-31"},
        "organization": _ref("Organization/chl"),
        "participatingOrganization": _ref("Organization/labo"),
        "code": [_coding(AFFILIATION_ROLE, "provider")],
        "endpoint": [_ref("Endpoint/ep-labo")],
    },
]


@dataclass
class Directory:
    """A running server holding :data:`DIRECTORY`; ``http`` sends the all-rights system client's token."""

    base: str
    http: httpx.Client
    settings: Settings

    def ids(self, path: str, **kwargs: Any) -> set[str]:
        """The ids of a search's matches (``search.mode`` match) — includes excluded."""
        response = self.http.get(f"{self.base}/{path}", **kwargs)
        assert response.status_code == 200, f"{path}: {response.text}"
        return {e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"}

    def bundle(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The Bundle at ``path`` (below the base, or an absolute URL such as a paging link)."""
        response = self.http.get(path if path.startswith("http") else f"{self.base}/{path}", **kwargs)
        assert response.status_code == 200, f"{path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body


def _register(settings: Settings) -> None:
    async def run() -> None:
        database = create_database(settings.effective_database_url, pool_size=1)
        await database.connect()
        try:
            await register_client(database)
        finally:
            await database.close()

    asyncio.run(run())


@contextmanager
def directory_server(db_url: str, tmp_path: Path, load: bool = True, **settings_values: Any) -> Iterator[Directory]:
    """A real server (uvicorn on loopback) on ``db_url``, loaded with :data:`DIRECTORY` in one transaction."""
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url, **settings_values)
    _register(settings)
    headers = {"Authorization": f"Bearer {token(settings, f'system:{TEST_CLIENT}', ALL_RIGHTS)}"}
    with serve(settings) as base, httpx.Client(timeout=30, headers=headers) as http:
        directory = Directory(base, http, settings)
        if load:
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                    for r in DIRECTORY
                ],
            }
            response = http.post(base, json=bundle, headers={"Content-Type": "application/fhir+json"})
            assert response.status_code == 200, response.text
        yield directory
