"""batch and transaction Bundles: atomicity, FHIR processing order, urn:uuid and conditional references."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, outcome, patient
from tests.conftest import shared_data


def entry(method: str, url: str, resource: dict | None = None, full_url: str | None = None, **request: str) -> dict:
    item: dict = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        item["resource"] = resource
    if full_url:
        item["fullUrl"] = full_url
    return item


def observation(subject: str, text: str) -> dict:
    """A minimal valid Observation about ``subject`` (any reference form)."""
    return {"resourceType": "Observation", "status": "final", "code": {"text": text}, "subject": {"reference": subject}}


def bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


async def count(client: httpx.AsyncClient) -> int:
    return (await client.get("/fhir/_history")).json()["total"]


async def test_transaction_resolves_urn_uuid_and_orders_entries(client: httpx.AsyncClient) -> None:
    old = (await client.post("/fhir/Patient", json=patient(family="Old"), headers=FHIR_JSON)).json()
    tx = bundle(
        "transaction",
        entry("GET", "Patient?family=Kremer"),
        entry(
            "POST",
            "Observation",
            observation("urn:uuid:11111111-1111-4111-8111-111111111111", "w"),
            full_url="urn:uuid:22222222-2222-4222-8222-222222222222",
        ),
        entry(
            "POST",
            "Patient",
            patient(family="Kremer"),
            full_url="urn:uuid:11111111-1111-4111-8111-111111111111",
        ),
        entry("DELETE", f"Patient/{old['id']}"),
    )
    response = await client.post("/fhir", json=tx, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses[1:] == ["201 Created", "201 Created", "204 No Content"]
    # GET runs last: it sees the patient created in the same transaction
    assert result["entry"][0]["resource"]["total"] == 1
    patient_id = result["entry"][2]["resource"]["id"]
    stored_observation = result["entry"][1]["resource"]
    assert stored_observation["subject"]["reference"] == f"Patient/{patient_id}"
    assert result["entry"][2]["response"]["location"].split("/_history")[0].endswith(f"Patient/{patient_id}")
    outcome(await client.get(f"/fhir/Patient/{old['id']}"), 410)


@pytest.mark.no_audit
async def test_transaction_is_atomic(client: httpx.AsyncClient) -> None:
    before = await count(client)
    tx = bundle(
        "transaction",
        entry("POST", "Patient", patient(family="Ok")),
        entry("POST", "Patient", patient(birthDate="not-a-date")),
    )
    body = outcome(await client.post("/fhir", json=tx, headers=FHIR_JSON), 400)
    assert "Bundle.entry[1]" in body["issue"][0]["diagnostics"]
    assert await count(client) == before
    assert (await client.get("/fhir/Patient?family=Ok")).json()["total"] == 0


async def test_conditional_reference_and_if_none_exist(client: httpx.AsyncClient) -> None:
    ident = {"system": "urn:oid:1.3.182.2.4.2", "value": "5550001112"}
    existing = (await client.post("/fhir/Patient", json=patient(identifier=[ident]), headers=FHIR_JSON)).json()
    tx = bundle(
        "transaction",
        entry(
            "POST",
            "Patient",
            patient(identifier=[ident]),
            full_url="urn:uuid:33333333-3333-4333-8333-333333333333",
            ifNoneExist="identifier=urn:oid:1.3.182.2.4.2|5550001112",
        ),
        entry(
            "POST",
            "Observation",
            observation("urn:uuid:33333333-3333-4333-8333-333333333333", "a"),
        ),
        entry(
            "POST",
            "Observation",
            observation("Patient?identifier=urn:oid:1.3.182.2.4.2|5550001112", "b"),
        ),
    )
    result = (await client.post("/fhir", json=tx, headers=FHIR_JSON)).json()
    assert result["entry"][0]["response"]["status"] == "200 OK"
    refs = [e["resource"]["subject"]["reference"] for e in result["entry"][1:]]
    assert refs == [f"Patient/{existing['id']}"] * 2
    missing = bundle(
        "transaction",
        entry(
            "POST",
            "Observation",
            observation("Patient?identifier=urn:oid:1.3.182.2.4.2|0", "c"),
        ),
    )
    outcome(await client.post("/fhir", json=missing, headers=FHIR_JSON), 404)


async def test_batch_reports_each_entry(client: httpx.AsyncClient) -> None:
    batch = bundle(
        "batch",
        entry("POST", "Patient", patient(family="Good")),
        entry("POST", "Patient", patient(gender="banana")),
        entry("GET", "Patient/does-not-exist"),
    )
    result = (await client.post("/fhir", json=batch, headers=FHIR_JSON)).json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses[0] == "201 Created" and statuses[1] == "400" and statuses[2] == "404"
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert (await client.get("/fhir/Patient?family=Good")).json()["total"] == 1


@pytest.mark.no_audit
async def test_bad_bundles(client: httpx.AsyncClient) -> None:
    outcome(
        await client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=FHIR_JSON),
        400,
    )
    outcome(await client.post("/fhir", json=patient(), headers=FHIR_JSON), 400)
    no_request = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": patient()}]}
    outcome(await client.post("/fhir", json=no_request, headers=FHIR_JSON), 400)
    bad_method = bundle("transaction", entry("TRACE", "Patient"))
    outcome(await client.post("/fhir", json=bad_method, headers=FHIR_JSON), 400)
    twice = bundle("transaction", entry("PUT", "Patient/a", patient(id="a")), entry("DELETE", "Patient/a"))
    outcome(await client.post("/fhir", json=twice, headers=FHIR_JSON), 400)
    assert await count(client) == 0


async def test_every_mhd_example_bundle_is_accepted_as_a_transaction(client: httpx.AsyncClient) -> None:
    """The guide's transaction Bundles that are not ITI-65 submissions go through the generic processing; the
    submissions (a ProvideBundle profile or a SubmissionSet) are claimed by the DSP's MHD Document Recipient, whose
    own test accepts every one of them with the patients and professionals they name
    (tests/dsp/mhd/test_ig_examples.py)."""
    from esante.dsp.mhd.submission import is_provide_bundle

    folder = shared_data("ig-examples", "MHD")
    accepted = claimed = 0
    for path in sorted(folder.glob("Bundle-*.json")):
        example = json.loads(path.read_text())
        if example.get("type") != "transaction":
            continue
        if is_provide_bundle(example):
            claimed += 1
            continue
        response = await client.post("/fhir", json=example, headers=FHIR_JSON)
        assert response.status_code == 200, f"{path.name}: {response.text}"
        result = response.json()
        assert len(result["entry"]) == len(example["entry"])
        expected = {"POST": "201", "PUT": "20", "PATCH": "200", "DELETE": "204", "GET": "200"}
        for item, answer in zip(example["entry"], result["entry"], strict=True):
            assert answer["response"]["status"].startswith(expected[item["request"]["method"]]), path.name
        accepted += 1
    assert accepted >= 1 and claimed == 9


@pytest.mark.no_audit
async def test_conditional_put_fullurl_and_dangling_urns(client: httpx.AsyncClient) -> None:
    ident = {"system": "urn:oid:1.3.182.2.4.2", "value": "7770001112"}
    urn = "urn:uuid:55555555-5555-4555-8555-555555555555"

    def tx() -> dict:
        return bundle(
            "transaction",
            entry(
                "PUT", "Patient?identifier=urn:oid:1.3.182.2.4.2|7770001112", patient(identifier=[ident]), full_url=urn
            ),
            entry(
                "POST",
                "Observation",
                observation(urn, "x"),
            ),
        )

    first = (await client.post("/fhir", json=tx(), headers=FHIR_JSON)).json()
    created_id = first["entry"][0]["resource"]["id"]
    assert first["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{created_id}"
    second = (await client.post("/fhir", json=tx(), headers=FHIR_JSON)).json()
    assert second["entry"][0]["resource"]["id"] == created_id  # matched, updated, not duplicated
    assert second["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{created_id}"
    assert (await client.get("/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|7770001112")).json()["total"] == 1

    before = await count(client)
    dangling = bundle(
        "transaction",
        entry(
            "POST",
            "Observation",
            observation("urn:uuid:66666666-6666-4666-8666-666666666666", "y"),
        ),
    )
    body = outcome(await client.post("/fhir", json=dangling, headers=FHIR_JSON), 400)
    assert "fullUrl of no entry" in body["issue"][0]["diagnostics"]
    assert await count(client) == before
