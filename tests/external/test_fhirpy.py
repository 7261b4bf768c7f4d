"""fhirpy's async client against a real server on loopback."""

from __future__ import annotations

import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound


async def test_fhirpy_crud_search_transaction_history(server_url: str, server_token: str) -> None:
    fhir = AsyncFHIRClient(
        server_url, authorization=f"Bearer {server_token}", extra_headers={"Content-Type": "application/fhir+json"}
    )
    patient = fhir.resource(
        "Patient", name=[{"family": "Da Silva", "given": ["João"]}], gender="male", birthDate="1975-02-03"
    )
    await patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    fetched = await fhir.reference("Patient", patient.id).to_resource()
    assert fetched["name"][0]["given"] == ["João"]
    fetched["active"] = True
    await fetched.save()
    assert fetched["meta"]["versionId"] == "2"

    # accent-insensitive string search, token search and sort
    await fhir.resource("Patient", name=[{"family": "Dasilva"}], birthDate="2001-01-01").save()
    found = await fhir.resources("Patient").search(family="da silva").fetch_all()
    assert [p.id for p in found] == [patient.id]
    ordered = await fhir.resources("Patient").sort("-birthdate").fetch_all()
    assert [p["birthDate"] for p in ordered] == ["2001-01-01", "1975-02-03"]
    assert await fhir.resources("Patient").search(gender="male").count() == 1

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "BP"},
                    "subject": {"reference": f"Patient/{patient.id}"},
                    "effectiveDateTime": "2024-03-01",
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    result = await fhir.execute("", method="post", data=bundle)
    assert result["entry"][0]["response"]["status"] == "201 Created"
    revinclude = await fhir.resources("Patient").search(_id=patient.id).revinclude("Observation", "subject").fetch_raw()
    assert {e["resource"]["resourceType"] for e in revinclude["entry"]} == {"Patient", "Observation"}

    history = await fhir.execute(f"Patient/{patient.id}/_history", method="get")
    assert history["total"] == 2

    with pytest.raises(OperationOutcome):
        await fhir.resource("Patient", birthDate="yesterday").save()
    await fetched.delete()
    with pytest.raises((ResourceNotFound, OperationOutcome)):
        await fhir.reference("Patient", patient.id).to_resource()
