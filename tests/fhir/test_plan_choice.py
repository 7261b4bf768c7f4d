"""Which searches keep PostgreSQL's cached plans: one patient, the default order (search/plan_choice.py)."""

from __future__ import annotations

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
    ],
)
def test_one_patient_in_the_default_order_keeps_cached_plans(parts: list[str], query: list[tuple[str, str]]) -> None:
    assert plan_depends_on_values(parts, query) is False


@pytest.mark.parametrize(
    "parts, query",
    [
        (DOCS, [("patient", "p1"), ("type", "http://loinc.org|11488-4"), ("_sort", "-date")]),  # 25 ms generic
        (DOCS, [("status", "current")]),  # no patient
        (DOCS, []),
        (DOCS, [("patient", "p1,p2")]),  # several patients
        (DOCS, [("patient", "p1"), ("patient", "p2")]),
        (DOCS, [("patient", "p1"), ("subject", "p1")]),
        (DOCS, [("patient:missing", "true")]),  # a modifier that leaves the patient
        (DOCS, [("patient", "")]),
        (DOCS, [("patient", "p1"), ("_has:Provenance:target:agent", "Practitioner/x")]),
        (["Patient", "p1", "DocumentReference"], [("patient", "p2")]),
        (DOCS + ["_search"], [("patient", "p1")]),  # POST _search: the parameters are in the body
        ([], [("_type", "DocumentReference"), ("patient", "p1")]),
        (["Practitioner", "x", "DocumentReference"], []),
    ],
)
def test_anything_else_is_planned_with_its_values(parts: list[str], query: list[tuple[str, str]]) -> None:
    assert plan_depends_on_values(parts, query) is True
