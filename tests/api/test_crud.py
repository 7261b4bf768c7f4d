"""read, vread, create, update, delete, headers and Prefer — https://hl7.org/fhir/R4/http.html"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.api.helpers import FHIR_JSON, expressions, outcome, patient


async def create(client: httpx.AsyncClient, resource: dict, **headers: str) -> httpx.Response:
    response = await client.post(f"/fhir/{resource['resourceType']}", json=resource, headers={**FHIR_JSON, **headers})
    assert response.status_code in (200, 201), response.text
    return response


async def test_create_read_vread_update_delete(client: httpx.AsyncClient) -> None:
    created = await create(client, patient(id="ignored-on-create", birthDate="1980-05-17"))
    assert created.status_code == 201
    body = created.json()
    pid = body["id"]
    assert pid != "ignored-on-create"
    assert body["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert "Last-Modified" in created.headers

    read = await client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["ETag"] == 'W/"1"'
    assert read.headers["Content-Location"].endswith(f"/fhir/Patient/{pid}/_history/1")

    body["gender"] = "female"
    updated = await client.put(f"/fhir/Patient/{pid}", json=body, headers=FHIR_JSON)
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["ETag"] == 'W/"2"'
    assert updated.headers["Content-Location"].endswith(f"/fhir/Patient/{pid}/_history/2")

    v1 = await client.get(f"/fhir/Patient/{pid}/_history/1")
    assert v1.status_code == 200 and "gender" not in v1.json()
    v2 = await client.get(f"/fhir/Patient/{pid}/_history/2")
    assert v2.json()["gender"] == "female"
    outcome(await client.get(f"/fhir/Patient/{pid}/_history/9"), 404)
    outcome(await client.get(f"/fhir/Patient/{pid}/_history/abc"), 404)

    deleted = await client.delete(f"/fhir/Patient/{pid}")
    assert deleted.status_code == 204
    gone = outcome(await client.get(f"/fhir/Patient/{pid}"), 410)
    assert "deleted" in gone["issue"][0]["diagnostics"]
    # the history keeps every version, the tombstone included
    history = (await client.get(f"/fhir/Patient/{pid}/_history")).json()
    assert [e["response"]["status"] for e in history["entry"]] == ["410 Gone", "200 OK", "201 Created"]
    # deleting again is idempotent
    assert (await client.delete(f"/fhir/Patient/{pid}")).status_code == 204
    # an update revives a deleted resource as a new version
    revived = await client.put(f"/fhir/Patient/{pid}", json=patient(id=pid), headers=FHIR_JSON)
    assert revived.status_code == 201 and revived.json()["meta"]["versionId"] == "4"


async def test_update_creates_with_client_id(client: httpx.AsyncClient) -> None:
    response = await client.put("/fhir/Patient/lux-001", json=patient(id="lux-001"), headers=FHIR_JSON)
    assert response.status_code == 201
    assert response.json()["id"] == "lux-001"
    again = await client.put("/fhir/Patient/lux-001", json=patient(id="lux-001", gender="male"), headers=FHIR_JSON)
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "2"


async def test_if_match(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient())).json()["id"]
    body = patient(id=pid)
    stale = await client.put(f"/fhir/Patient/{pid}", json=body, headers={**FHIR_JSON, "If-Match": 'W/"7"'})
    outcome(stale, 412)
    assert (await client.get(f"/fhir/Patient/{pid}")).json()["meta"]["versionId"] == "1"
    ok = await client.put(f"/fhir/Patient/{pid}", json=body, headers={**FHIR_JSON, "If-Match": 'W/"1"'})
    assert ok.status_code == 200
    outcome(await client.delete(f"/fhir/Patient/{pid}", headers={"If-Match": 'W/"1"'}), 412)


async def test_concurrent_write_race_is_a_conflict(client: httpx.AsyncClient, platform) -> None:  # type: ignore[no-untyped-def]
    pid = (await create(client, patient())).json()["id"]
    async with platform.database.read() as conn:
        stale = await platform.store.session(conn).read("Patient", pid)
    await client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, gender="male"), headers=FHIR_JSON)
    from esante.fhir.errors import FhirError

    try:
        async with platform.database.transaction() as conn:
            session = platform.store.session(conn)
            await session.update(patient(id=pid, gender="female"), stale)
        raise AssertionError("a stale update must not succeed")
    except FhirError as exc:
        assert exc.status == 409
    current = (await client.get(f"/fhir/Patient/{pid}")).json()
    assert current["gender"] == "male" and current["meta"]["versionId"] == "2"


async def test_prefer_return(client: httpx.AsyncClient) -> None:
    minimal = await client.post("/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["Location"]
    oo = await client.post("/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert oo.status_code == 201 and oo.json()["resourceType"] == "OperationOutcome"
    full = await client.post("/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=representation"})
    assert full.json()["resourceType"] == "Patient"


async def test_media_types_and_format(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient())).json()["id"]
    for accept in ("application/fhir+json", "application/json", "*/*"):
        assert (await client.get(f"/fhir/Patient/{pid}", headers={"Accept": accept})).status_code == 200
    assert (await client.get(f"/fhir/Patient/{pid}?_format=json")).status_code == 200
    outcome(await client.get(f"/fhir/Patient/{pid}?_format=xml"), 406)
    outcome(await client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/fhir+xml"}), 406)
    plain = await client.post(
        "/fhir/Patient", content=orjson.dumps(patient()), headers={"Content-Type": "application/json"}
    )
    assert plain.status_code == 201
    outcome(
        await client.post("/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}),
        415,
    )


@pytest.mark.no_audit
async def test_bad_inputs_leave_nothing(client: httpx.AsyncClient) -> None:
    outcome(await client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR_JSON), 400)
    outcome(await client.post("/fhir/Patient", content=b"[1, 2]", headers=FHIR_JSON), 400)
    outcome(await client.post("/fhir/Patient", content=b"", headers=FHIR_JSON), 400)
    wrong_type = outcome(
        await client.post("/fhir/Patient", json={"resourceType": "Observation"}, headers=FHIR_JSON), 400
    )
    assert any("resourceType" in e for e in expressions(wrong_type))
    bad_date = outcome(await client.post("/fhir/Patient", json=patient(birthDate="1980-13-45"), headers=FHIR_JSON), 400)
    assert "Patient.birthDate" in expressions(bad_date)
    unknown = outcome(await client.post("/fhir/Patient", json=patient(hairColour="red"), headers=FHIR_JSON), 400)
    assert any("hairColour" in e for e in expressions(unknown))
    wrong_json_type = outcome(
        await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": "yes"}, headers=FHIR_JSON),
        400,
    )
    assert "Patient.active" in expressions(wrong_json_type)
    missing = outcome(
        await client.post(
            "/fhir/Observation", json={"resourceType": "Observation", "status": "final"}, headers=FHIR_JSON
        ),
        400,
    )
    assert any("code" in e for e in expressions(missing))
    big = {"resourceType": "Patient", "name": [{"text": "x" * 250_000}]}
    outcome(await client.post("/fhir/Patient", json=big, headers=FHIR_JSON), 413)
    outcome(await client.post("/fhir/NotAType", json={"resourceType": "NotAType"}, headers=FHIR_JSON), 404)
    mismatch = await client.put("/fhir/Patient/abc", json=patient(id="xyz"), headers=FHIR_JSON)
    assert "Patient.id" in expressions(outcome(mismatch, 400))
    outcome(await client.put("/fhir/Patient/abc", json=patient(), headers=FHIR_JSON), 400)
    outcome(await client.post("/fhir/Patient/abc", json=patient(), headers=FHIR_JSON), 405)
    # nothing was stored by any of the failures above
    assert (await client.get("/fhir/Patient/abc")).status_code == 404
    everything = (await client.get("/fhir/_history")).json()
    assert everything["total"] == 0


async def test_conditional_create_update_delete(client: httpx.AsyncClient) -> None:
    ident = {"system": "urn:oid:1.3.182.2.4.2", "value": "1234567890"}
    first = await create(
        client,
        patient(identifier=[ident]),
        **{"If-None-Exist": "identifier=urn:oid:1.3.182.2.4.2|1234567890"},
    )
    assert first.status_code == 201
    again = await create(
        client,
        patient(identifier=[ident]),
        **{"If-None-Exist": "identifier=urn:oid:1.3.182.2.4.2|1234567890"},
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    pid = first.json()["id"]

    cond = await client.put(
        "/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|1234567890",
        json=patient(identifier=[ident], gender="female"),
        headers=FHIR_JSON,
    )
    assert cond.status_code == 200 and cond.json()["id"] == pid and cond.json()["meta"]["versionId"] == "2"
    fresh = await client.put("/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|999", json=patient(), headers=FHIR_JSON)
    assert fresh.status_code == 201
    # two matches → 412, nothing changed
    await create(client, patient(family="Weber"))
    await create(client, patient(family="Weber"))
    outcome(await client.put("/fhir/Patient?family=Weber", json=patient(family="Weber"), headers=FHIR_JSON), 412)
    outcome(await client.delete("/fhir/Patient?family=Weber"), 412)
    strict = await client.put("/fhir/Patient?nonsense=1", json=patient(), headers=FHIR_JSON)
    outcome(strict, 400)

    assert (await client.delete("/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|1234567890")).status_code == 204
    outcome(await client.get(f"/fhir/Patient/{pid}"), 410)
    assert (await client.delete("/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|1234567890")).status_code == 204


async def test_patch(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient(active=True))).json()["id"]
    ops = [
        {"op": "replace", "path": "/active", "value": False},
        {"op": "add", "path": "/gender", "value": "female"},
    ]
    patched = await client.patch(
        f"/fhir/Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is False and patched.json()["gender"] == "female"
    assert patched.json()["meta"]["versionId"] == "2"

    fhirpath_patch = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.gender"},
                    {"name": "value", "valueCode": "male"},
                ],
            }
        ],
    }
    second = await client.patch(f"/fhir/Patient/{pid}", json=fhirpath_patch, headers=FHIR_JSON)
    assert second.status_code == 200, second.text
    assert second.json()["gender"] == "male"

    outcome(
        await client.patch(
            f"/fhir/Patient/{pid}",
            json=[{"op": "test", "path": "/gender", "value": "x"}],
            headers={"Content-Type": "application/json-patch+json"},
        ),
        422,
    )
    bad = [{"op": "replace", "path": "/gender", "value": "banana"}]
    outcome(
        await client.patch(f"/fhir/Patient/{pid}", json=bad, headers={"Content-Type": "application/json-patch+json"}),
        400,
    )
    change_id = [{"op": "replace", "path": "/id", "value": "other"}]
    outcome(
        await client.patch(
            f"/fhir/Patient/{pid}", json=change_id, headers={"Content-Type": "application/json-patch+json"}
        ),
        422,
    )
    outcome(
        await client.patch("/fhir/Patient/nope", json=ops, headers={"Content-Type": "application/json-patch+json"}),
        404,
    )
    assert (await client.get(f"/fhir/Patient/{pid}")).json()["meta"]["versionId"] == "3"


@pytest.mark.no_audit
async def test_validate_operation(client: httpx.AsyncClient) -> None:
    ok = await client.post("/fhir/Patient/$validate", json=patient(), headers=FHIR_JSON)
    assert ok.status_code == 200 and ok.json()["issue"][0]["severity"] == "information"
    bad = await client.post("/fhir/Patient/$validate", json=patient(birthDate="nope"), headers=FHIR_JSON)
    assert bad.status_code == 200 and bad.json()["issue"][0]["severity"] == "error"
    outcome(await client.post("/fhir/Patient/$nope", json=patient(), headers=FHIR_JSON), 404)
    assert (await client.get("/fhir/_history")).json()["total"] == 0
