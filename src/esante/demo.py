"""A small synthetic demo data set (no real person): patients, practitioners, observations, a document.

Loaded by ``esante serve --demo`` when the store is empty, through the same transaction path as any client,
so the demo also exercises validation, indexing and urn:uuid resolution.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from typing import Any

from esante.app import Platform, build_platform
from esante.config import Settings
from esante.fhir.context import RequestContext
from esante.security.policy import Caller

# the demo loader writes as a system process of the platform itself (like any establishment software would)
DEMO_LOADER = Caller(kind="system", subject="esante-demo-loader", scopes=("system/*.cruds",))

_FAMILIES = [
    "Schmit",
    "Muller",
    "Weber",
    "Wagner",
    "Hoffmann",
    "Da Silva",
    "Pereira",
    "Thill",
    "Kremer",
    "Reuter",
]
_GIVEN_F = ["Marie", "Anne", "Sophie", "Laura", "Léa", "Ana", "Mia"]
_GIVEN_M = ["Jean", "Luc", "Marc", "Paul", "Tom", "João", "Ben"]
_CITIES = ["Luxembourg", "Esch-sur-Alzette", "Differdange", "Dudelange", "Ettelbruck", "Diekirch"]


def demo_bundle(count: int = 20, seed: int = 7) -> dict[str, Any]:
    """A transaction Bundle: one practitioner, ``count`` patients, each with two observations; one document."""
    rng = random.Random(seed)
    entries: list[dict[str, Any]] = []

    def add(resource: dict[str, Any], full_url: str) -> None:
        entries.append(
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )

    add(
        {
            "resourceType": "Practitioner",
            "active": True,
            "identifier": [{"system": "urn:oid:1.3.182.2.8.1", "value": "1000000009"}],
            "name": [{"family": "Demo", "given": ["Dr Claire"]}],
        },
        "urn:uuid:00000000-0000-4000-8000-000000000001",
    )
    for i in range(count):
        female = rng.random() < 0.5
        patient_url = f"urn:uuid:00000000-0000-4000-8000-{i + 100:012d}"
        year = rng.randint(1940, 2022)
        add(
            {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:oid:1.3.182.2.4.2", "value": f"{1000000000 + i}"}],
                "active": True,
                "name": [
                    {"family": _FAMILIES[i % len(_FAMILIES)], "given": [rng.choice(_GIVEN_F if female else _GIVEN_M)]}
                ],
                "gender": "female" if female else "male",
                "birthDate": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "address": [{"city": _CITIES[i % len(_CITIES)], "country": "LU"}],
            },
            patient_url,
        )
        for code, display, unit, low, high in (
            ("29463-7", "Body weight", "kg", 50, 100),
            ("8480-6", "Systolic blood pressure", "mm[Hg]", 100, 160),
        ):
            add(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                    "subject": {"reference": patient_url},
                    "performer": [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}],
                    "effectiveDateTime": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "valueQuantity": {
                        "value": rng.randint(low, high),
                        "unit": unit,
                        "system": "http://unitsofmeasure.org",
                        "code": unit,
                    },
                },
                f"urn:uuid:{rng.getrandbits(128):032x}",
            )
    text = b"Demo discharge letter (synthetic)."
    add(
        {"resourceType": "Binary", "contentType": "text/plain", "data": base64.b64encode(text).decode()},
        "urn:uuid:00000000-0000-4000-8000-000000000002",
    )
    add(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]},
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000100"},
            "author": [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}],
            "date": "2024-06-01T10:00:00Z",
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "url": "urn:uuid:00000000-0000-4000-8000-000000000002",
                        "size": len(text),
                        "hash": base64.b64encode(hashlib.sha1(text).digest()).decode(),
                    }
                }
            ],
        },
        "urn:uuid:00000000-0000-4000-8000-000000000003",
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


DEMO_CLIENT = "demo-integrator"
"""A system client registered with the demo data, for operator tokens (``esante token --as system:demo-integrator``).
It has no keys, so it cannot obtain tokens from the token endpoint itself."""


async def register_demo_client(platform: Platform) -> None:
    now = int(time.time())
    async with platform.database.transaction() as conn:
        if await conn.fetchval("SELECT 1 FROM oauth_client WHERE client_id = ?", (DEMO_CLIENT,)):
            return
        await conn.execute(
            "INSERT INTO oauth_client (client_id, name, kind, status, public, auth_method, jwks, redirect_uris,"
            " grant_types, scopes, organization, tokens_valid_after, created_at, updated_at)"
            " VALUES (?, ?, 'hospital', 'active', ?, 'private_key_jwt', ?, '[]', 'client_credentials', ?, ?, 0, ?, ?)",
            (DEMO_CLIENT, "Demo integration (all rights)", False, '{"keys": []}', "system/*.cruds", "demo", now, now),
        )


async def load_demo(settings: Settings) -> int:
    """Load the demo Bundle into an empty store and register the demo client; returns the number of resources
    created (0 if the store was not empty)."""
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        async with platform.database.read() as conn:
            if await conn.fetchval("SELECT 1 FROM resource LIMIT 1"):
                return 0
        outcome = await platform.router.bundles.process(RequestContext(caller=DEMO_LOADER), demo_bundle())
        assert isinstance(outcome.body, dict)
        await register_demo_client(platform)
        return len(outcome.body["entry"])
    finally:
        await platform.database.close()
