"""Property test: whatever valid Patient goes in comes back unchanged (plus server meta), and is findable."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import FHIR_JSON

names = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll"), max_codepoint=0x17F), min_size=1, max_size=12)
dates = st.dates().map(lambda d: d.isoformat())
patients = st.fixed_dictionaries(
    {
        "resourceType": st.just("Patient"),
        "name": st.lists(
            st.fixed_dictionaries({"family": names, "given": st.lists(names, min_size=1, max_size=2)}),
            min_size=1,
            max_size=2,
        ),
    },
    optional={
        "birthDate": dates,
        "gender": st.sampled_from(["male", "female", "other", "unknown"]),
        "active": st.booleans(),
    },
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resource=patients)
async def test_patient_round_trip(client: httpx.AsyncClient, resource: dict) -> None:
    created = await client.post("/fhir/Patient", json=resource, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    stored = (await client.get(f"/fhir/Patient/{created.json()['id']}")).json()
    meta = stored.pop("meta")
    stored.pop("id")
    assert stored == resource
    assert meta["versionId"] == "1"
    family = resource["name"][0]["family"]
    found = (await client.get("/fhir/Patient", params={"family:exact": family, "_count": 1000})).json()
    assert created.json()["id"] in {e["resource"]["id"] for e in found["entry"]}
