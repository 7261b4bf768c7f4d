"""A small synthetic demo data set (no real person): a directory of professionals, patients, observations, a
document.

Loaded by ``esante serve --demo`` when the store is empty. The directory goes through the HPD's import (as the
Ministry's extract would: eHealthIDs assigned, places of practice, the code systems); the clinical data through the
same transaction path as any client, so the demo also exercises validation, indexing, urn:uuid and conditional
reference resolution.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import time
from datetime import date
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

from esante.app import Platform, build_platform
from esante.config import Settings
from esante.db.engine import Database
from esante.fhir.context import RequestContext
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.clients import OAuthClient, Registration, build_client, parse_jwks
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


# the demo's own physician, first line of the demo directory; the clinical data refer to her by her key
DEMO_PHYSICIAN = "MED-2005-00001"
DEMO_PHYSICIAN_REF = f"Practitioner?identifier=urn:esante:hpd:ministry-authorisation|{DEMO_PHYSICIAN}"
DEMO_DIRECTORY_SIZE = 60  # professionals of the demo directory (besides Dr Claire Demo)


def demo_directory_rows(count: int = DEMO_DIRECTORY_SIZE, seed: int = 7) -> list[dict[str, str]]:
    """Rows of the HPD's CSV import format: Dr Claire Demo at her cabinet in Luxembourg, then ``count`` synthetic
    professionals with their places of practice."""
    from esante.hpd.csv_source import COLUMNS
    from esante.hpd.synthetic import DirectoryConfig, iter_directory_rows

    claire = {
        "authorisation": DEMO_PHYSICIAN,
        "profession": "medecin",
        "specialties": "med-generale",
        "family": "Demo",
        "given": "Claire",
        "prefix": "Dr",
        "gender": "F",
        "languages": "lb fr de en",
        "cns_code": "900001-01",
        "authorised_from": "2005-09-01",
        "org_id": "CAB-DEMO",
        "org_name": "Cabinet médical Demo",
        "org_type": "practice",
        "org_endpoint": "mailto:cabinet.demo@example.lu",
        "site_id": "CAB-DEMO-S1",
        "street": "1, avenue de la Liberté",
        "postal_code": "L-1930",
        "city": "Luxembourg",
        "role_phone": "+352 26 00 00 01",
        "role_email": "claire.demo@example.lu",
        "role_from": "2006-01-01",
    }
    return [{c: claire.get(c, "") for c in COLUMNS}, *iter_directory_rows(DirectoryConfig(count=count, seed=seed))]


async def load_demo_directory(platform: Platform) -> int:
    """Import the demo directory through the HPD's importer; returns the number of resources it created."""
    from esante.hpd.csv_source import row_to_line
    from esante.hpd.directory_import import DirectoryImporter

    today = date.today()
    lines = ((number, row_to_line(number, row, today)) for number, row in enumerate(demo_directory_rows(), start=2))
    result = await DirectoryImporter(platform.store, operator="esante-demo-loader").run(lines)
    return sum(result.created.values())


def demo_bundle(count: int = 20, seed: int = 7) -> dict[str, Any]:
    """A transaction Bundle: ``count`` patients, each with two observations by Dr Claire Demo (a conditional
    reference to her directory entry, which the demo directory holds); one document she wrote."""
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
                    "performer": [{"reference": DEMO_PHYSICIAN_REF}],
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
            "author": [{"reference": DEMO_PHYSICIAN_REF}],
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
"""A system client registered with the demo data, with every right. The operator's CLI mints its tokens
(``esante token --as system:demo-integrator``); its private key is left in ``<var_dir>/demo/`` so that the real
flow (client_credentials with a private_key_jwt assertion) can be tried too."""


async def register_system_client(
    database: Database,
    client_id: str,
    name: str,
    scopes: str,
    *,
    kind: str = "hospital",
    key_file: Path | None = None,
) -> OAuthClient:
    """Register establishment software with a freshly generated P-256 key, through the client registry's own
    validation; the private key is written to ``key_file`` (PKCS#8 PEM, mode 0600) when one is given."""
    key = ECKey.generate_key("P-256")
    jwks = parse_jwks(json.dumps({"keys": [key.as_dict(private=False)]}))
    client = build_client(Registration(client_id, name, kind, jwks=jwks, scopes=scopes), int(time.time()))
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.as_pem(private=True))
    return await ClientStore(database).register(client)


async def load_demo(settings: Settings) -> int:
    """Load the demo Bundle into an empty store and register the demo client; returns the number of resources
    created (0 if the store was not empty)."""
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        async with platform.database.read() as conn:
            # the HPD's code systems are written at every start: they do not make a store "not empty"
            if await conn.fetchval("SELECT 1 FROM resource WHERE res_type <> 'CodeSystem' LIMIT 1"):
                return 0
        directory = await load_demo_directory(platform)
        outcome = await platform.router.bundles.process(RequestContext(caller=DEMO_LOADER), demo_bundle())
        assert isinstance(outcome.body, dict)
        key_file = settings.var_dir / "demo" / f"{DEMO_CLIENT}.pem"
        await register_system_client(
            platform.database, DEMO_CLIENT, "Demo integration (all rights)", "system/*.cruds", key_file=key_file
        )
        return directory + len(outcome.body["entry"])
    finally:
        await platform.database.close()
