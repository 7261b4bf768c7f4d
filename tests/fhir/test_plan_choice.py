"""Which searches keep PostgreSQL's cached plans: those about one patient (search/plan_choice.py)."""

from __future__ import annotations

from typing import Any

import pytest

from esante.fhir.search.plan_choice import plan_depends_on_values

DOCS = ["DocumentReference"]


@pytest.mark.parametrize(
    "parts, query",
    [
        (DOCS, [("patient", "Patient/p1"), ("status", "current")]),
        (DOCS, [("patient", "p1"), ("category", "http://x|lab"), ("_count", "20"), ("_total", "accurate")]),
        (DOCS, [("patient.identifier", "urn:oid:1.3.182.4.4|1980010112345"), ("status", "current")]),
        (DOCS, [("patient:identifier", "urn:oid:1.3.182.4.4|1980010112345")]),
        (DOCS, [("patient:Patient", "p1"), ("date", "ge2020-01-01")]),
        (["Observation"], [("subject", "Patient/p1"), ("code", "http://loinc.org|1-8")]),
        (["Patient", "p1", "DocumentReference"], [("status", "current")]),
        (DOCS, [("patient", "p1"), ("_include", "DocumentReference:author")]),
        # sorted: its other conditions are probes of the patient's rows (test_one_patient_probes.py)
        (DOCS, [("patient", "p1"), ("type", "http://loinc.org|11488-4"), ("_sort", "-date")]),
        (["Patient", "p1", "DocumentReference"], [("_sort", "-date"), ("_count", "10")]),
    ],
)
def test_one_patient_keeps_cached_plans(parts: list[str], query: list[tuple[str, str]]) -> None:
    assert plan_depends_on_values(parts, query) is False


@pytest.mark.parametrize(
    "parts, query",
    [
        (DOCS, [("status", "current")]),  # no patient
        (DOCS, [("status", "current"), ("_sort", "-date")]),
        (DOCS, []),
        (DOCS, [("patient", "p1,p2")]),  # several patients
        (DOCS, [("patient", "p1"), ("patient", "p2")]),
        (DOCS, [("patient", "p1"), ("subject", "p1")]),
        (DOCS, [("patient:missing", "true")]),  # a modifier that leaves the patient
        (DOCS, [("patient", "")]),
        (DOCS, [("patient", "p1"), ("_has:Provenance:target:agent", "Practitioner/x")]),
        (["Patient", "p1", "DocumentReference"], [("patient", "p2")]),
        ([*DOCS, "_search"], [("patient", "p1")]),  # POST _search: the parameters are in the body
        ([], [("_type", "DocumentReference"), ("patient", "p1")]),
        (["Practitioner", "x", "DocumentReference"], []),
    ],
)
def test_anything_else_is_planned_with_its_values(parts: list[str], query: list[tuple[str, str]]) -> None:
    assert plan_depends_on_values(parts, query) is True


async def test_the_router_takes_the_cached_plan_pool_for_one_patient(platform: Any, client: Any) -> None:
    """Over the served API (both databases): which pool each search takes, and the operator's switch; the answers
    are the same either way."""
    chosen: list[bool] = []
    database = platform.database
    original = database.read

    def spying_read(search: bool = False) -> Any:
        chosen.append(search)
        return original(search=search)

    database.read = spying_read
    try:
        patient = {"resourceType": "Patient", "id": "pc1", "name": [{"family": "Plan"}]}
        assert (await client.put("/fhir/Patient/pc1", json=patient)).status_code in (200, 201)
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": "Patient/pc1"},
        }
        assert (await client.post("/fhir/Observation", json=observation)).status_code == 201
        answers = []
        for cached in (True, False):
            platform.router.cached_plans_for_one_patient = cached
            for query, per_execution in (
                ("subject=Patient/pc1", not cached),
                ("subject=Patient/pc1&_sort=-date", not cached),
                ("code=http://loinc.org|8480-6", True),
            ):
                chosen.clear()
                response = await client.get(f"/fhir/Observation?{query}")
                assert response.status_code == 200, response.text
                assert True in chosen if per_execution else True not in chosen, (query, cached, chosen)
                answers.append([e["resource"]["id"] for e in response.json().get("entry", [])])
        assert answers[:3] == answers[3:] and all(len(found) == 1 for found in answers)
    finally:
        database.read = original
        platform.router.cached_plans_for_one_patient = True
