"""The CVE's Immunization record over real HTTP on SQLite and PostgreSQL: round trips for each origin (performed,
historical, imported), what the server fills (origin from primarySource, reportOrigin, GS1 fields, performer,
recorded), and every bad record refused with a 4xx OperationOutcome naming the problem, nothing stored."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx

from tests.cve.record_support import (
    GS1,
    HEXYON,
    ORIGIN,
    PRODUCT,
    SERIAL,
    authorize,
    cve_world,
    details_codes,
    diagnostics,
    ext,
    immunization,
    outcome,
    patient,
    practitioner,
    scan,
)

TODAY = date(2025, 6, 1)


async def _create(http: httpx.AsyncClient, fhir: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return await http.post(f"{fhir}/Immunization", json=body, headers=headers)


async def test_round_trip_of_each_origin(db_url: str, tmp_path: Path) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=30) as http:
        await patient(http, world, "baby", "2024-01-15")
        doc = await practitioner(http, world, "doc", 1)
        await authorize(http, world, "baby", "doc")
        vaccinator = world.professional(doc)
        changed: list[str] = []

        async def listener(session: Any, patient_id: str) -> None:
            assert session.conn is not None  # inside the writing transaction
            changed.append(patient_id)

        world.context.on_record_change(listener)

        # performed, from the scanned pack only: product, CVX check, lot, expiry, serial, manufacturer filled;
        # the vaccinator becomes the performer; recorded is set
        body = immunization("baby", lot=None, expiry=None, performer=None)
        body["extension"].append({"url": GS1, "valueString": scan(HEXYON, "270500", "LOT42A", "SN0001")})
        response = await _create(http, world.fhir, body, vaccinator)
        assert response.status_code == 201, response.text
        stored = (await http.get(response.headers["Location"], headers=vaccinator)).json()
        assert stored["primarySource"] is True and "reportOrigin" not in stored
        assert ext(stored, ORIGIN)["valueCoding"]["code"] == "performed"  # type: ignore[index]
        assert stored["lotNumber"] == "LOT42A" and stored["expirationDate"] == "2027-05-31"  # DD=00: end of May
        assert ext(stored, SERIAL)["valueString"] == "SN0001"  # type: ignore[index]
        assert ext(stored, PRODUCT)["valueCoding"]["code"] == HEXYON  # type: ignore[index]
        assert stored["manufacturer"]["identifier"] == {"system": "http://hl7.org/fhir/sid/mvx", "value": "PMC"}
        assert stored["performer"][0]["actor"]["reference"] == "Practitioner/doc"
        assert stored["recorded"]
        assert changed == ["baby"]  # the record listeners heard of it (e.g. the DSP-consent document)

        # historical (paper card), given without a lot: primarySource false and reportOrigin "record" follow
        response = await _create(
            http, world.fhir, immunization("baby", "historical", cvx="08", day="2024-01-16", lot=None), vaccinator
        )
        assert response.status_code == 201, response.text
        historical = response.json()
        assert historical["primarySource"] is False
        assert historical["reportOrigin"]["coding"][0]["code"] == "record"

        # the origin inferred from primarySource when the extension is absent
        response = await _create(
            http, world.fhir, immunization("baby", None, cvx="08", day="2024-02-01", primarySource=False), vaccinator
        )
        assert response.status_code == 201, response.text
        assert ext(response.json(), ORIGIN)["valueCoding"]["code"] == "historical"  # type: ignore[index]

        # imported (e.g. MSVAC COVID-19), by the import (a system client), with the register's identifier
        imported = immunization(
            "baby",
            "imported",
            cvx="208",
            day="2024-06-01",
            performer=None,
            identifier=[{"system": "urn:esante:msvac", "value": "MSVAC-123"}],
        )
        response = await _create(http, world.fhir, imported, world.system())
        assert response.status_code == 201, response.text
        assert response.json()["primarySource"] is False
        # ... never by a professional
        imported["identifier"] = [{"system": "urn:esante:msvac", "value": "MSVAC-124"}]
        body = outcome(await _create(http, world.fhir, imported, vaccinator), 403)
        assert "imported" in diagnostics(body)

        # the patient reads the four
        bundle = (await http.get(f"{world.fhir}/Immunization?patient=baby", headers=world.patient("baby"))).json()
        origins = sorted(ext(e["resource"], ORIGIN)["valueCoding"]["code"] for e in bundle["entry"])  # type: ignore[index]
        assert origins == ["historical", "historical", "imported", "performed"]

        # update keeps the origin; entered-in-error is how a record is withdrawn
        historical["status"] = "entered-in-error"
        response = await http.put(f"{world.fhir}/Immunization/{historical['id']}", json=historical, headers=vaccinator)
        assert response.status_code == 200, response.text
        historical = response.json()
        historical["extension"] = [e for e in historical["extension"] if e["url"] != ORIGIN] + [
            {"url": ORIGIN, "valueCoding": {"system": ORIGIN, "code": "performed"}}
        ]
        body = outcome(
            await http.put(f"{world.fhir}/Immunization/{historical['id']}", json=historical, headers=vaccinator), 422
        )
        assert "cannot change" in diagnostics(body)


BAD_RECORDS: list[tuple[str, dict[str, Any], int, str]] = [
    ("unknown CVX", immunization("kid", cvx="9999"), 422, "not a vaccine"),
    ("no CVX coding", {**immunization("kid"), "vaccineCode": {"text": "hexa"}}, 422, "CVX coding"),
    ("in the future", immunization("kid", day="2025-06-02"), 422, "future"),
    ("before birth", immunization("kid", day="2023-12-31"), 422, "before the patient's birth"),
    ("partial date", immunization("kid", day="2024-03"), 422, "full date"),
    ("performed without lot", immunization("kid", lot=None), 422, "lot number"),
    ("performed without expiry", immunization("kid", expiry=None), 422, "expiration date"),
    ("performed without performer", immunization("kid", performer=None), 422, "vaccinator"),
    ("performed, not primary source", immunization("kid", primarySource=False), 422, "primarySource must be true"),
    ("historical, primary source", immunization("kid", "historical", primarySource=True), 422, "must be false"),
    ("imported without identifier", immunization("kid", "imported"), 422, "identifier"),
    ("unknown origin code", immunization("kid", "remembered"), 422, "record-origin"),
    ("no origin at all", immunization("kid", None), 422, "record origin is missing"),
    ("unknown patient", immunization("nobody"), 422, "Patient/nobody is not known"),
    ("patient not a reference", {**immunization("kid"), "patient": {"display": "Kim"}}, 422, "Patient/<id>"),
    (
        "historical with a bad reportOrigin",
        immunization("kid", "historical", reportOrigin={"coding": [{"system": "urn:x", "code": "y"}]}),
        422,
        "reportOrigin",
    ),
]


def _with_scan(text: str, **fields: Any) -> dict[str, Any]:
    body = immunization("kid", **fields)
    body["extension"].append({"url": GS1, "valueString": text})
    return body


BAD_SCANS: list[tuple[str, dict[str, Any], str]] = [
    ("lot differs", _with_scan(scan(lot="OTHER1")), "gs1-mismatch"),
    ("expiry differs", _with_scan(scan(expiry="280101")), "gs1-mismatch"),
    ("unknown GTIN", _with_scan(scan(gtin="02099900009990")), "gs1-unknown-gtin"),
    ("bad check digit", _with_scan(scan(gtin="02099900000011")), "gs1-check-digit"),
    ("garbage", _with_scan("hello world"), "gs1-syntax"),
    ("CVX not the product's", _with_scan(scan(), cvx="03"), "cve-product-mismatch"),
    ("impossible expiry", _with_scan(scan(expiry="271332")), "gs1-date"),
]


async def test_bad_records_are_refused_and_nothing_is_stored(db_url: str, tmp_path: Path) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=30) as http:
        await patient(http, world, "kid", "2024-01-15")
        await practitioner(http, world, "doc", 1)
        before = await world.count("Immunization")
        for name, body, status, text in BAD_RECORDS:
            response = await _create(http, world.fhir, body, world.system())
            problem = outcome(response, status)
            assert text in diagnostics(problem), (name, diagnostics(problem))
        for name, body, code in BAD_SCANS:
            problem = outcome(await _create(http, world.fhir, body, world.system()), 422)
            assert code in details_codes(problem), (name, problem)
        # several problems are reported together
        many = immunization("kid", cvx="9999", day="2025-07-01", lot=None)
        problem = outcome(await _create(http, world.fhir, many, world.system()), 422)
        assert len(problem["issue"]) >= 3
        assert await world.count("Immunization") == before
        # an unreadable body is refused before any of this
        response = await http.post(f"{world.fhir}/Immunization", content=b"{", headers=world.system())
        assert 400 <= response.status_code < 500
        assert await world.count("Immunization") == before
