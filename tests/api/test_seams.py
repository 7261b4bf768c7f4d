"""The seams later services plug into: hooks, the policy decision point, the operations registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx
import pytest

from esante.app import Platform
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, unprocessable
from esante.fhir.hooks import HookEvent, Pointcut
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction, SqlCondition
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
    """A service rule as a national service would write one: men are invisible (a veto with its own SQL and an
    in-memory check), deleting is refused, women may not be written with gender "other"; it records every
    question it is asked."""

    name = "hide-male-patients"

    def __init__(self) -> None:
        self.actions: list[str] = []

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        self.actions.append(request.action.interaction)
        return ()

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        if request.letter == "d":
            yield EVERYTHING
        if request.resource_type != "Patient":
            return
        yield SqlCondition(
            "male patient",
            "{r}.rid IN (SELECT g.rid FROM idx_token g WHERE g.res_type = 'Patient' AND g.param = 'gender'"
            " AND g.code = ?)",
            ("male",),
            check=lambda resource: resource.get("gender") == "male",
        )
        if request.letter in "cu":
            yield SqlCondition("gender other", "1 = 0", check=lambda resource: resource.get("gender") == "other")


async def test_policy_seam_is_asked_on_every_path(platform: Platform, client: httpx.AsyncClient) -> None:
    rule = HideMalePatients()
    platform.policy.add_rule(rule)
    male = await client.post("/fhir/Patient", json=patient(gender="male"), headers=FHIR_JSON)
    assert male.status_code == 403, "a write outside the caller's rights is refused"
    async with platform.database.transaction() as conn:  # a male patient written behind the API's back
        session = platform.store.session(conn)
        male_id = (await session.create(patient(gender="male"))).res_id
        await session.flush()
    female = (await client.post("/fhir/Patient", json=patient(gender="female"), headers=FHIR_JSON)).json()
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{male_id}"},
    }
    assert (await client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)).status_code == 201
    outcome(await client.get(f"/fhir/Patient/{male_id}"), 404)
    outcome(await client.get(f"/fhir/Patient/{male_id}/_history/1"), 404)
    outcome(await client.get(f"/fhir/Patient/{male_id}/_history"), 404)
    assert (await client.get(f"/fhir/Patient/{female['id']}")).status_code == 200
    search = (await client.get("/fhir/Patient")).json()
    assert [e["resource"]["id"] for e in search["entry"]] == [female["id"]]
    assert search["total"] == 1, "the total counts only what the caller may see"
    assert (await client.get("/fhir/Patient?gender=male")).json()["total"] == 0
    included = (await client.get("/fhir/Observation?_include=Observation:subject")).json()
    assert {e["resource"]["resourceType"] for e in included["entry"]} == {"Observation"}
    chained = (await client.get("/fhir/Observation?subject:Patient.gender=male")).json()
    assert chained["total"] == 0, "a chain never looks through what the caller may not see"
    history = (await client.get("/fhir/Patient/_history")).json()
    assert {e["resource"]["id"] for e in history["entry"]} == {female["id"]}
    outcome(await client.delete(f"/fhir/Patient/{female['id']}"), 403)
    outcome(await client.post("/fhir/Patient", json=patient(gender="other"), headers=FHIR_JSON), 403)
    assert {"read", "vread", "search-type", "history-type", "history-instance", "create", "delete"} <= set(rule.actions)


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
