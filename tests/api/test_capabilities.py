"""GET /fhir/metadata reflects what is implemented."""

from __future__ import annotations

import httpx


async def test_capability_statement(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    cs = response.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction",
        "batch",
        "search-system",
        "history-system",
    }
    by_type = {r["type"]: r for r in rest["resource"]}
    assert len(by_type) >= 140
    patient = by_type["Patient"]
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["family"] == "string" and params["birthdate"] == "date" and params["identifier"] == "token"
    assert params["general-practitioner"] == "reference" and "_lastUpdated" in params
    assert not {"_text", "_content", "_query"} & set(params), "listed parameters must really be supported"
    assert "near" not in {p["name"] for p in by_type["Location"]["searchParam"]}
    observation = {p["name"]: p["type"] for p in by_type["Observation"]["searchParam"]}
    assert observation["code-value-quantity"] == "composite"
    assert {"read", "vread", "patch", "history-instance", "create", "search-type"} <= {
        i["code"] for i in patient["interaction"]
    }
    assert "Observation:subject" in by_type["Observation"]["searchInclude"]
    assert "Observation:subject" in patient["searchRevInclude"]
    assert any(op["name"] == "validate" for op in patient.get("operation", []))
