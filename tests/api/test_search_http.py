"""Search over HTTP: GET and POST _search, links, strict handling, compartments, system search, errors."""

from __future__ import annotations

import httpx

from tests.api.helpers import FHIR_JSON, expressions, outcome, patient


async def _seed(client: httpx.AsyncClient) -> tuple[str, str]:
    a = (
        await client.post("/fhir/Patient", json=patient(family="Müller", birthDate="1980-02-01"), headers=FHIR_JSON)
    ).json()
    b = (
        await client.post("/fhir/Patient", json=patient(family="Weber", birthDate="1990-07-15"), headers=FHIR_JSON)
    ).json()
    for subject, value in ((a["id"], 80), (a["id"], 82), (b["id"], 60)):
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{subject}"},
            "effectiveDateTime": "2024-03-05",
            "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "kg", "unit": "kg"},
        }
        await client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)
    return a["id"], b["id"]


async def test_get_and_post_search_agree(client: httpx.AsyncClient) -> None:
    a, _ = await _seed(client)
    got = (await client.get("/fhir/Patient", params={"family": "muller"})).json()
    assert got["type"] == "searchset" and got["total"] == 1 and got["entry"][0]["resource"]["id"] == a
    assert got["entry"][0]["search"]["mode"] == "match"
    assert got["entry"][0]["fullUrl"] == f"http://testserver/fhir/Patient/{a}"
    posted = await client.post(
        "/fhir/Patient/_search", content="family=muller", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert posted.status_code == 200 and posted.json()["entry"][0]["resource"]["id"] == a
    outcome(await client.post("/fhir/Patient/_search", content=b"{}", headers=FHIR_JSON), 415)


async def test_links_paging_and_lenient_or_strict(client: httpx.AsyncClient) -> None:
    await _seed(client)
    page = (
        await client.get("/fhir/Observation", params={"_count": 2, "bogus": "1", "_sort": "-value-quantity"})
    ).json()
    self_link = next(link["url"] for link in page["link"] if link["relation"] == "self")
    assert "bogus" not in self_link and "_count=2" in self_link
    assert [e["resource"]["valueQuantity"]["value"] for e in page["entry"]] == [82, 80]
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = (await client.get(nxt.replace("http://testserver", ""))).json()
    assert [e["resource"]["valueQuantity"]["value"] for e in rest["entry"]] == [60]
    strict = outcome(await client.get("/fhir/Observation?bogus=1", headers={"Prefer": "handling=strict"}), 400)
    assert "bogus" in strict["issue"][0]["diagnostics"]


async def test_chain_include_compartment_and_system_search(client: httpx.AsyncClient) -> None:
    a, b = await _seed(client)
    chained = (await client.get("/fhir/Observation", params={"subject:Patient.family": "weber"})).json()
    assert chained["total"] == 1
    with_patients = (
        await client.get("/fhir/Observation", params={"value-quantity": "gt70", "_include": "Observation:subject"})
    ).json()
    modes = sorted(e["search"]["mode"] for e in with_patients["entry"])
    assert modes == ["include", "match", "match"]
    compartment = (await client.get(f"/fhir/Patient/{a}/Observation")).json()
    assert compartment["total"] == 2
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{a}" for e in compartment["entry"])
    everything = (await client.get("/fhir", params={"_type": "Patient,Observation", "_count": 100})).json()
    assert everything["total"] == 5
    counted = (await client.get("/fhir/Observation", params={"_summary": "count"})).json()
    assert counted["total"] == 3 and "entry" not in counted
    rev = (await client.get("/fhir/Patient", params={"_id": b, "_revinclude": "Observation:subject"})).json()
    assert len(rev["entry"]) == 2


async def test_bad_search_values_name_the_parameter(client: httpx.AsyncClient) -> None:
    for query, name in (
        ("birthdate=1980-13", "birthdate"),
        ("birthdate=xx2020", "birthdate"),
        ("family:nonsense=x", "family"),
        ("_sort=nonsense", "_sort"),
        ("_count=many", "_count"),
        ("gender.name=x", "gender"),
    ):
        body = outcome(await client.get(f"/fhir/Patient?{query}"), 400)
        text = " ".join(i["diagnostics"] for i in body["issue"]) + " ".join(expressions(body))
        assert name in text, (query, body)
    outcome(await client.get("/fhir/NotAType?x=1"), 404)
