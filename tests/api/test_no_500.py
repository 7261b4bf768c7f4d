"""Property tests: whatever a client sends, the answer is a FHIR response, never a 500, and nothing half-written."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import FHIR_JSON

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(
    [
        "name",
        "birthDate",
        "gender",
        "identifier",
        "telecom",
        "address",
        "active",
        "link",
        "contained",
        "meta",
        "id",
        "extension",
        "_birthDate",
        "deceasedBoolean",
        "deceasedDateTime",
        "multipleBirthInteger",
        "generalPractitioner",
    ]
)
FORBIDDEN = {500, 502, 503}


@pytest.mark.no_audit
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys, value=json_values)
async def test_mutated_patients_never_crash(client: httpx.AsyncClient, key: str, value: object) -> None:
    before = (await client.get("/fhir/_history?_count=0")).json()["total"]
    resource = {"resourceType": "Patient", "name": [{"family": "Fuzz"}], key: value}
    response = await client.post("/fhir/Patient", json=resource, headers=FHIR_JSON)
    assert response.status_code not in FORBIDDEN, response.text
    assert response.json()["resourceType"] in ("Patient", "OperationOutcome")
    after = (await client.get("/fhir/_history?_count=0")).json()["total"]
    assert after == before + (1 if response.status_code == 201 else 0)


params = st.sampled_from(
    [
        "family",
        "birthdate",
        "identifier",
        "_id",
        "_lastUpdated",
        "general-practitioner",
        "general-practitioner.name",
        "_has:Observation:subject:code",
        "_sort",
        "_count",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_total",
        "address-city:exact",
        "gender:not",
        "name:missing",
        "_offset",
        "link:Patient.family",
    ]
)
values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.lists(st.tuples(params, values), min_size=1, max_size=3))
async def test_any_search_is_answered_or_refused(client: httpx.AsyncClient, query: list[tuple[str, str]]) -> None:
    response = await client.get("/fhir/Patient", params=query)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert body["resourceType"] == ("Bundle" if response.status_code == 200 else "OperationOutcome")
