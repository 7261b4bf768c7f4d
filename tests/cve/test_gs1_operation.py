"""``Immunization/$parse-gs1`` over real HTTP on SQLite and PostgreSQL: a scan becomes a draft Immunization that a
vaccinator completes and stores; every bad scan is a 4xx OperationOutcome naming the rule; nothing is stored."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from esante.cve.record.gs1 import GS
from tests.cve.record_support import (
    GS1,
    HEXYON,
    PRIORIX,
    PRODUCT,
    SERIAL,
    authorize,
    cve_world,
    details_codes,
    ext,
    outcome,
    parameters,
    patient,
    practitioner,
    scan,
)

TODAY = date(2025, 6, 1)


def _out(body: dict[str, Any], name: str) -> Any:
    for item in body["parameter"]:
        if item["name"] == name:
            return item.get("resource", next((v for k, v in item.items() if k.startswith("value")), None))
    return None


async def test_scan_to_draft_to_stored_record(db_url: str, tmp_path: Path) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=30) as http:
        await patient(http, world, "baby", "2024-12-01")
        doc = await practitioner(http, world, "doc", 1)
        await authorize(http, world, "baby", "doc")
        vaccinator = world.professional(doc)
        url = f"{world.fhir}/Immunization/$parse-gs1"

        body = parameters(
            datamatrix=scan(PRIORIX, "260200", "MMR77", "0042"),
            patient={"reference": "Patient/baby"},
            occurrence=("valueDateTime", "2025-05-30T10:15:00+02:00"),
        )
        response = await http.post(url, json=body, headers=vaccinator)
        assert response.status_code == 200, response.text
        result = response.json()
        assert _out(result, "gtin") == PRIORIX
        assert _out(result, "lot") == "MMR77"
        assert _out(result, "expiry") == "2026-02-28"  # DD=00
        assert _out(result, "serial") == "0042"
        assert _out(result, "expired") is False
        assert _out(result, "gtinStatus") == "illustrative"
        draft = _out(result, "immunization")
        assert draft["vaccineCode"]["coding"][0] == {
            "system": "http://hl7.org/fhir/sid/cvx",
            "code": "03",
            "display": "Priorix",
        }
        assert draft["lotNumber"] == "MMR77" and draft["expirationDate"] == "2026-02-28"
        assert ext(draft, SERIAL)["valueString"] == "0042"  # type: ignore[index]
        assert ext(draft, PRODUCT)["valueCoding"]["code"] == PRIORIX  # type: ignore[index]
        assert draft["route"]["coding"][0]["code"] == "SQ"
        assert draft["patient"] == {"reference": "Patient/baby"}
        assert "id" not in draft
        assert await world.count("Immunization") == 0  # a draft, not a record

        # the vaccinator completes the draft (site) and stores it: the scan is checked again on write
        draft["site"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActSite", "code": "LT"}]}
        draft["occurrenceDateTime"] = "2025-05-30"
        response = await http.post(f"{world.fhir}/Immunization", json=draft, headers=vaccinator)
        assert response.status_code == 201, response.text
        stored = response.json()
        assert ext(stored, GS1)["valueString"] == draft["extension"][2]["valueString"]  # type: ignore[index]
        assert stored["performer"][0]["actor"]["reference"] == "Practitioner/doc"

        # GET works too (the GS character percent-encoded), and an expired pack says so
        text = scan(HEXYON, "250400", "OLD1", None)
        response = await http.get(f"{url}?datamatrix={quote(text)}", headers=vaccinator)
        assert response.status_code == 200, response.text
        assert _out(response.json(), "expired") is True
        assert _out(response.json(), "serial") is None


async def test_bad_scans(db_url: str, tmp_path: Path) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=30) as http:
        await patient(http, world, "kid", "2020-01-01")
        url = f"{world.fhir}/Immunization/$parse-gs1"
        cases = [
            (scan(HEXYON[:-1] + "7"), 400, "gs1-check-digit"),
            ("garbage!", 400, "gs1-syntax"),
            ("", 400, None),  # an empty string is not a value
            (f"17270531{GS}10LOT", 400, "gs1-no-gtin"),
            (f"]d201{HEXYON}10LOTONLY", 422, "gs1-missing-ai"),  # no expiry
            (f"]d201{HEXYON}17270531", 422, "gs1-missing-ai"),  # no lot
            (scan("02099900009990"), 422, "gs1-unknown-gtin"),
            (f"]d201{HEXYON}17270532{GS}10L", 400, "gs1-date"),
            (f"]d201{HEXYON}10" + "L" * 30, 400, "gs1-length"),
        ]
        for text, status, code in cases:
            problem = outcome(await http.post(url, json=parameters(datamatrix=text), headers=world.system()), status)
            if code is not None:
                assert code in details_codes(problem), (text, problem)
        # parameters: missing, unknown, repeated
        outcome(await http.post(url, json=parameters(), headers=world.system()), 400)
        outcome(await http.post(url, json=parameters(datamatrix=scan(), extra="x"), headers=world.system()), 400)
        twice = {"resourceType": "Parameters", "parameter": [{"name": "datamatrix", "valueString": scan()}] * 2}
        outcome(await http.post(url, json=twice, headers=world.system()), 400)
        outcome(await http.post(url, json={"resourceType": "Patient"}, headers=world.system()), 400)
        # who may not create Immunizations may not use it: a patient, a professional the patient did not authorise
        outcome(await http.post(url, json=parameters(datamatrix=scan()), headers=world.patient("kid")), 403)
        stranger = await practitioner(http, world, "stranger", 2, profession="infirmier")
        outcome(await http.post(url, json=parameters(datamatrix=scan()), headers=world.professional(stranger)), 403)
        assert await world.count("Immunization") == 0
