"""history at instance, type and system level with _since, _at, _count and paging."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, outcome, patient


@pytest.mark.no_audit
async def test_history_levels_and_paging(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        response = await client.post("/fhir/Patient", json=patient(given=f"P{i}"), headers=FHIR_JSON)
        ids.append(response.json()["id"])
    await client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        headers=FHIR_JSON,
    )
    body = (await client.get(f"/fhir/Patient/{ids[0]}")).json()
    body["active"] = True
    await client.put(f"/fhir/Patient/{ids[0]}", json=body, headers=FHIR_JSON)

    instance = (await client.get(f"/fhir/Patient/{ids[0]}/_history")).json()
    assert instance["type"] == "history" and instance["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in instance["entry"]] == ["2", "1"]
    assert instance["entry"][0]["request"] == {"method": "PUT", "url": f"Patient/{ids[0]}"}
    assert (await client.get("/fhir/Patient/_history")).json()["total"] == 6
    assert (await client.get("/fhir/_history")).json()["total"] == 7

    seen = []
    url: str | None = "/fhir/_history?_count=3"
    while url:
        page = (await client.get(url)).json()
        seen += [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else None
    assert len(seen) == 7 and len(set(seen)) == 7
    outcome(await client.get("/fhir/Patient/nope/_history"), 404)
    outcome(await client.get("/fhir/_history?_since=yesterday"), 400)


async def test_since_and_at(client: httpx.AsyncClient) -> None:
    first = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()
    await asyncio.sleep(0.01)
    second = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()
    since = second["meta"]["lastUpdated"]
    recent = (await client.get("/fhir/Patient/_history", params={"_since": since})).json()
    assert [e["resource"]["id"] for e in recent["entry"]] == [second["id"]]
    await asyncio.sleep(0.01)
    first["active"] = False
    v2 = (await client.put(f"/fhir/Patient/{first['id']}", json=first, headers=FHIR_JSON)).json()
    # at the moment the second patient was created, version 1 of the first was the current one
    at = (await client.get(f"/fhir/Patient/{first['id']}/_history", params={"_at": since})).json()
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["1"]
    at_now = (
        await client.get(f"/fhir/Patient/{first['id']}/_history", params={"_at": v2["meta"]["lastUpdated"]})
    ).json()
    assert [e["resource"]["meta"]["versionId"] for e in at_now["entry"]] == ["2"]
