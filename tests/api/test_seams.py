"""The seams later services plug into: hooks, the policy decision point, the operations registry."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from esante.app import Platform, create_app
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, forbidden, unprocessable
from esante.fhir.hooks import HookEvent, Pointcut
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.security.policy import Action, Caller
from tests.api.helpers import FHIR_JSON, outcome, patient


async def _count(client: httpx.AsyncClient) -> int:
    return (await client.get("/fhir/_history")).json()["total"]


@pytest.mark.no_audit
async def test_prestorage_hook_can_modify_and_refuse(platform: Platform, client: httpx.AsyncClient) -> None:
    async def stamp_and_check(event: HookEvent) -> None:
        assert event.resource is not None
        if event.resource.get("gender") == "unknown":
            raise unprocessable("identity feed refuses unknown gender", expression="Patient.gender")
        event.resource.setdefault("identifier", []).append({"system": "urn:oid:1.3.182.2.4.2", "value": "0000000001"})

    platform.hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, stamp_and_check, {"Patient"})
    created = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()
    assert created["identifier"][0]["value"] == "0000000001"
    found = (await client.get("/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|0000000001")).json()
    assert found["total"] == 1, "hook changes must be indexed"
    before = await _count(client)
    refused = outcome(await client.post("/fhir/Patient", json=patient(gender="unknown"), headers=FHIR_JSON), 422)
    assert refused["issue"][0]["expression"] == ["Patient.gender"]
    assert await _count(client) == before
    # the hook is limited to Patient
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    assert "identifier" not in (await client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)).json()


@pytest.mark.no_audit
async def test_precommit_hook_runs_in_the_same_transaction(platform: Platform, client: httpx.AsyncClient) -> None:
    seen: list[str] = []

    async def derived_then_fail(event: HookEvent) -> None:
        assert event.stored is not None
        # write a derived resource in the same transaction, then refuse: both must vanish
        await event.session.create({"resourceType": "Basic", "code": {"text": f"derived from {event.stored.res_id}"}})
        seen.append(event.stored.res_id)
        raise FhirError(409, [])

    platform.hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, derived_then_fail, {"Patient"})
    pid = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()["id"]
    before = await _count(client)
    response = await client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, active=True), headers=FHIR_JSON)
    assert response.status_code == 409 and seen == [pid]
    assert await _count(client) == before
    assert (await client.get(f"/fhir/Patient/{pid}")).json()["meta"]["versionId"] == "1"
    assert (await client.get("/fhir/Basic")).json()["total"] == 0


class HideMalePatients:
    """A test policy: men are invisible, deleting is forbidden, and it records every decision."""

    def __init__(self) -> None:
        self.actions: list[str] = []

    async def authorize(self, caller: Caller, action: Action) -> None:
        self.actions.append(action.interaction)
        if action.interaction == "delete":
            raise forbidden("deleting is not allowed")

    async def can_see(self, caller: Caller, action: Action, resource: StoredResource) -> bool:
        return resource.content is None or b'"gender":"male"' not in resource.content

    async def check_write(self, caller: Caller, action: Action, resource: dict[str, Any] | None, current: Any) -> None:
        if resource and resource.get("gender") == "other":
            raise forbidden("this caller may not write that")


async def test_policy_seam_is_asked_on_every_path(platform: Platform) -> None:
    policy = HideMalePatients()
    platform.service.policy = policy
    app = create_app(platform.settings, platform)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        male = (await client.post("/fhir/Patient", json=patient(gender="male"), headers=FHIR_JSON)).json()
        female = (await client.post("/fhir/Patient", json=patient(gender="female"), headers=FHIR_JSON)).json()
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{male['id']}"},
        }
        await client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)
        outcome(await client.get(f"/fhir/Patient/{male['id']}"), 404)
        outcome(await client.get(f"/fhir/Patient/{male['id']}/_history/1"), 404)
        assert (await client.get(f"/fhir/Patient/{female['id']}")).status_code == 200
        search = (await client.get("/fhir/Patient")).json()
        assert [e["resource"]["id"] for e in search["entry"]] == [female["id"]]
        included = (await client.get("/fhir/Observation?_include=Observation:subject")).json()
        assert {e["resource"]["resourceType"] for e in included["entry"]} == {"Observation"}
        history = (await client.get("/fhir/Patient/_history")).json()
        assert {e["resource"]["id"] for e in history["entry"]} == {female["id"]}
        outcome(await client.delete(f"/fhir/Patient/{female['id']}"), 403)
        outcome(await client.post("/fhir/Patient", json=patient(gender="other"), headers=FHIR_JSON), 403)
        assert {"read", "vread", "search-type", "history-type", "create", "delete"} <= set(policy.actions)


async def test_operations_registry(platform: Platform, client: httpx.AsyncClient) -> None:
    async def echo(call: OperationCall) -> Outcome:
        names = [p["name"] for p in call.parameters.get("parameter", [])]
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "level", "valueString": f"{call.resource_type}/{call.resource_id}"},
                {"name": "received", "valueString": ",".join(names)},
            ],
        }
        return Outcome(200, body)

    platform.operations.register(
        OperationDefinition(
            "echo", echo, system=True, type_level=True, instance=True, resource_types=frozenset({"Patient"})
        )
    )
    got = (await client.get("/fhir/Patient/123/$echo?x=1&y=2")).json()
    assert got["parameter"] == [
        {"name": "level", "valueString": "Patient/123"},
        {"name": "received", "valueString": "x,y"},
    ]
    posted = await client.post(
        "/fhir/$echo",
        json={"resourceType": "Parameters", "parameter": [{"name": "a", "valueString": "1"}]},
        headers=FHIR_JSON,
    )
    assert posted.json()["parameter"][0]["valueString"] == "None/None"
    outcome(await client.get("/fhir/Observation/$echo"), 404)
    outcome(await client.delete("/fhir/Patient/$echo"), 405)
    cs = (await client.get("/fhir/metadata")).json()
    assert any(op["name"] == "echo" for op in cs["rest"][0]["operation"])


async def test_concurrent_conditional_creates_make_one_resource(client: httpx.AsyncClient) -> None:
    ident = {"system": "urn:oid:1.3.182.2.4.2", "value": "4444444444"}
    headers = {**FHIR_JSON, "If-None-Exist": "identifier=urn:oid:1.3.182.2.4.2|4444444444"}
    responses = await asyncio.gather(
        *[client.post("/fhir/Patient", json=patient(identifier=[ident]), headers=headers) for _ in range(6)]
    )
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in responses}) == 1


async def test_internal_errors_are_a_500_operation_outcome_without_details(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    async def broken(call: OperationCall) -> Outcome:
        raise RuntimeError("secret internal detail: patient 1234567890")

    platform.operations.register(OperationDefinition("broken", broken, system=True))
    response = await client.get("/fhir/$broken")
    body = outcome(response, 500)
    text = response.text
    assert "secret" not in text and "Traceback" not in text and "1234567890" not in text
    assert response.headers["X-Request-Id"] in body["issue"][0]["diagnostics"]
