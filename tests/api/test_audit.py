"""The audit trail over the REST API: one BALP AuditEvent per interaction, append-only, hash-chained, verifiable."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from esante.app import Platform, build_platform, create_app
from esante.cli import app as cli
from esante.config import Settings
from esante.security.audit_trail import AuditTrail, VerifyResult, chain_hash
from tests.api.helpers import FHIR_JSON, outcome, patient
from tests.api.test_no_500 import FORBIDDEN, json_values, keys
from tests.auth import bearer


def _job_event(label: str) -> dict[str, Any]:
    """A minimal AuditEvent appended directly to the trail (not produced by a REST interaction)."""
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110100"},
        "recorded": "2026-11-22T09:00:00Z",
        "agent": [{"who": {"display": label}, "requestor": False}],
        "source": {"observer": {"display": "test"}},
    }


async def chained(platform: Platform) -> None:
    """Chain what the requests journaled (the chainer does it in the background a few milliseconds later)."""
    assert platform.auditor is not None
    await platform.auditor.flush()


async def verify(platform: Platform) -> VerifyResult:
    await chained(platform)
    return await AuditTrail().verify(platform.database)


async def events(platform: Platform) -> list[dict[str, Any]]:
    """Every stored AuditEvent, in chain order."""
    if platform.auditor is not None:
        await chained(platform)
    async with platform.database.read() as conn:
        rows = await conn.fetch(
            "SELECT r.content FROM audit_chain c JOIN resource r ON r.rid = c.rid AND r.version_id = 1 ORDER BY c.seq"
        )
    return [orjson.loads(bytes(row[0])) for row in rows]


def subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def patients(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("code") == "1"]


def request_id(event: dict[str, Any]) -> str | None:
    for entity in event["entity"]:
        if entity["type"]["code"] == "XrequestId":
            return str(entity["what"]["identifier"]["value"])
    return None


async def test_one_event_per_interaction(platform: Platform, client: httpx.AsyncClient) -> None:
    created = await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    pid = created.json()["id"]
    read = await client.get(f"/fhir/Patient/{pid}", headers={"X-Request-Id": "req-read-1"})
    assert read.headers["X-Request-Id"] == "req-read-1"
    await client.get(f"/fhir/Patient/{pid}/_history/1")
    await client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, active=True), headers=FHIR_JSON)
    patch = [{"op": "replace", "path": "/active", "value": False}]
    await client.patch(f"/fhir/Patient/{pid}", json=patch, headers={"Content-Type": "application/json-patch+json"})
    await client.get("/fhir/Patient", params={"family": "Schmit"})
    await client.get(f"/fhir/Patient/{pid}/_history")
    await client.delete(f"/fhir/Patient/{pid}")
    recorded = await events(platform)
    assert [subtype(e) for e in recorded] == [
        "create",
        "read",
        "vread",
        "update",
        "patch",
        "search-type",
        "history-instance",
        "delete",
    ]
    assert [e["action"] for e in recorded] == ["C", "R", "R", "U", "U", "E", "E", "D"]
    assert all(e["outcome"] == "0" for e in recorded)
    assert all(patients(e) == [f"Patient/{pid}"] for e in recorded)  # the Patient* variants
    assert recorded[1]["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    ]
    assert request_id(recorded[1]) == "req-read-1"
    assert all(request_id(e) for e in recorded)  # generated when the client sent none
    # the entity of a write names the resource written
    assert {"reference": f"Patient/{pid}"} in [e.get("what") for e in recorded[3]["entity"]]


async def test_failed_and_denied_attempts_are_recorded(platform: Platform, client: httpx.AsyncClient) -> None:
    outcome(await client.get("/fhir/Patient/nobody"), 404)
    outcome(await client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": 7}, headers=FHIR_JSON), 400)

    no_observation_writes = bearer(platform.settings, scope="system/Patient.cruds system/Observation.rs")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "bp"}}
    headers = {**FHIR_JSON, **no_observation_writes}
    outcome(await client.post("/fhir/Observation", json=observation, headers=headers), 403)
    missing, invalid, denied, decision = await events(platform)
    assert (subtype(missing), missing["outcome"], missing["outcomeDesc"]) == ("read", "4", "HTTP 404")
    assert patients(missing) == ["Patient/nobody"]
    assert (subtype(invalid), invalid["outcome"]) == ("create", "4")
    assert (subtype(denied), denied["action"], denied["outcome"], denied["outcomeDesc"]) == (
        "create",
        "C",
        "4",
        "HTTP 403",
    )
    # the refusal is also an authorization decision of its own (BALP AuthZ: Security Alert, outcome 8)
    assert (decision["type"]["code"], subtype(decision), decision["outcome"]) == ("110113", "AuthZ-Role", "8")
    assert "scopes do not allow to create Observation" in decision["outcomeDesc"]
    assert request_id(decision) == request_id(denied)
    # the refused and invalid writes left no data behind, only their audit
    assert (await client.get("/fhir/Patient")).json()["total"] == 0


async def test_a_search_touching_several_patients_gives_one_event_per_patient(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    ids = []
    for first in ("Anne", "Ben", "Carla"):
        ids.append((await client.post("/fhir/Patient", json=patient(given=first), headers=FHIR_JSON)).json()["id"])
    for pid in ids[:2]:
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "bp"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        assert (await client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)).status_code == 201
    before = len(await events(platform))
    bundle = (await client.get("/fhir/Observation", params={"code:text": "bp"}, headers={"X-Request-Id": "q-1"})).json()
    assert bundle["total"] == 2
    searched = (await events(platform))[before:]
    assert sorted(p for e in searched for p in patients(e)) == sorted(f"Patient/{pid}" for pid in ids[:2])
    assert all(request_id(e) == "q-1" and subtype(e) == "search-type" for e in searched)
    query = next(e for e in searched[0]["entity"] if e.get("role", {}).get("code") == "24")
    assert base64.b64decode(query["query"]).decode().startswith("GET http://testserver/fhir/Observation?code%3Atext=bp")
    # all three patients: three events; an Organization search: one, without patient
    await client.get("/fhir/Patient", params={"family": "Schmit"})
    await client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "CHL"}, headers=FHIR_JSON)
    await client.get("/fhir/Organization")
    tail = (await events(platform))[len(searched) + before :]
    assert [len(patients(e)) for e in tail] == [1, 1, 1, 0, 0]


async def test_audit_events_are_append_only_and_searchable_by_patient(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    pid = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()["id"]
    other = (await client.post("/fhir/Patient", json=patient(given="Paul"), headers=FHIR_JSON)).json()["id"]
    await client.get(f"/fhir/Patient/{pid}")
    event = {
        "resourceType": "AuditEvent",
        "type": {"code": "rest"},
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"display": "me"}, "requestor": True}],
        "source": {"observer": {"display": "x"}},
    }
    outcome(await client.post("/fhir/AuditEvent", json=event, headers=FHIR_JSON), 405)
    some = (await events(platform))[0]
    outcome(await client.put(f"/fhir/AuditEvent/{some['id']}", json=some, headers=FHIR_JSON), 405)
    patch = [{"op": "replace", "path": "/outcome", "value": "0"}]
    outcome(
        await client.patch(
            f"/fhir/AuditEvent/{some['id']}", json=patch, headers={"Content-Type": "application/json-patch+json"}
        ),
        405,
    )
    outcome(await client.delete(f"/fhir/AuditEvent/{some['id']}"), 405)
    outcome(await client.delete("/fhir/AuditEvent", params={"_id": some["id"]}), 405)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}],
    }
    outcome(await client.post("/fhir", json=transaction, headers=FHIR_JSON), 405)
    assert (await client.get(f"/fhir/AuditEvent/{some['id']}")).status_code == 200
    # the patient's own compartment: their create, their read, and the read of the create's AuditEvent (which
    # is itself in their compartment); nothing of the other patient
    own = (await client.get("/fhir/AuditEvent", params={"patient": f"Patient/{pid}"})).json()
    assert sorted(subtype(e["resource"]) for e in own["entry"]) == ["create", "read", "read"]
    compartment = (await client.get(f"/fhir/Patient/{other}/AuditEvent")).json()
    assert [subtype(e["resource"]) for e in compartment["entry"]] == ["create"]
    assert (await verify(platform)).ok


async def test_verify_a_clean_chain_then_a_tampered_one(platform: Platform, client: httpx.AsyncClient) -> None:
    assert await verify(platform) == (True, 0, None, "")
    pid = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()["id"]
    for _ in range(4):
        await client.get(f"/fhir/Patient/{pid}")
    result = await verify(platform)
    assert result == (True, 5, None, "")
    await chained(platform)
    async with platform.database.read() as conn:
        chain = await conn.fetch("SELECT seq, rid, hash, prev_hash FROM audit_chain ORDER BY seq")
    assert chain[0][3] == "0" * 64 and all(chain[i][3] == chain[i - 1][2] for i in range(1, 5))
    # alter the third stored AuditEvent: its outcome now says "success" for something else
    third_seq, third_rid = int(chain[2][0]), int(chain[2][1])
    async with platform.database.transaction() as conn:
        content = orjson.loads(bytes(await conn.fetchval("SELECT content FROM resource WHERE rid = ?", (third_rid,))))
        content["outcome"] = "8"
        await conn.execute("UPDATE resource SET content = ? WHERE rid = ?", (orjson.dumps(content), third_rid))
    broken = await verify(platform)
    assert (broken.ok, broken.checked, broken.first_broken_seq) == (False, 2, third_seq)
    assert "altered" in broken.reason


async def test_verify_sees_a_removed_chain_row_and_a_rehashed_one(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        await client.get("/fhir/Patient")
    await chained(platform)
    async with platform.database.read() as conn:
        chain = await conn.fetch("SELECT seq, rid, hash, prev_hash FROM audit_chain ORDER BY seq")
    seqs = [int(row[0]) for row in chain]
    async with platform.database.transaction() as conn:
        await conn.execute("DELETE FROM audit_chain WHERE seq = ?", (seqs[2],))
    broken = await verify(platform)
    assert (broken.ok, broken.first_broken_seq, broken.checked) == (False, seqs[3], 2)
    assert "removed" in broken.reason
    # a forger who also rewrites the row's hash is caught by the next link
    async with platform.database.transaction() as conn:
        await conn.execute(
            "INSERT INTO audit_chain (seq, rid, res_id, recorded, hash, prev_hash) "
            "SELECT ?, rid, res_id, recorded, hash, prev_hash FROM audit_chain WHERE seq = ?",
            (seqs[2], seqs[1]),
        )
    assert (await verify(platform)).first_broken_seq == seqs[2]


async def test_concurrent_appends_keep_one_valid_chain(platform: Platform, client: httpx.AsyncClient) -> None:
    pid = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()["id"]
    responses = await asyncio.gather(*(client.get(f"/fhir/Patient/{pid}") for _ in range(25)))
    assert all(r.status_code == 200 for r in responses)
    trail = AuditTrail()

    async def append(i: int) -> None:
        async with platform.database.transaction() as conn:
            session = platform.store.session(conn)
            event = _job_event(f"job {i}")
            await trail.append(session, event)

    await asyncio.gather(*(append(i) for i in range(25)))
    result = await verify(platform)
    assert result == (True, 51, None, "")


async def test_chain_hash_is_over_canonical_json() -> None:
    assert chain_hash("0" * 64, b'{"b":1,"a":2}') == chain_hash("0" * 64, b'{ "a": 2, "b": 1 }')
    assert chain_hash("0" * 64, b'{"a":1}') != chain_hash("1" * 64, b'{"a":1}')


@pytest.mark.no_audit
async def test_audit_can_be_switched_off(platform: Platform, client: httpx.AsyncClient) -> None:
    assert platform.auditor is None
    await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    assert await events(platform) == []


def test_cli_audit_verify(db_url: str) -> None:
    async def fill() -> None:
        built = build_platform(Settings(database_url=db_url, audit_enabled=True))
        await built.database.connect()
        try:
            transport = httpx.ASGITransport(app=create_app(built.settings, built))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for _ in range(3):
                    await http.get("/fhir/Patient")
            assert built.auditor is not None
            await built.auditor.close()  # chains the journal, as a server does when it stops
            async with built.database.transaction() as conn:
                await conn.execute("DELETE FROM audit_chain WHERE seq = (SELECT MIN(seq) FROM audit_chain)")
        finally:
            await built.database.close()

    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--db", db_url])
    assert ok.exit_code == 0, ok.output
    assert "0 records verified" in ok.output
    asyncio.run(fill())
    broken = runner.invoke(cli, ["audit", "verify", "--db", db_url])
    assert broken.exit_code == 1, broken.output
    assert "broken at seq 2" in broken.output


async def test_a_transaction_gives_one_event_per_patient_naming_their_resources(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    def obs(ref: str) -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final", "code": {"text": "bp"}, "subject": {"reference": ref}}

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": patient(given="A"), "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:p2", "resource": patient(given="B"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": obs("urn:uuid:p1"), "request": {"method": "POST", "url": "Observation"}},
            {"resource": obs("urn:uuid:p2"), "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": {"resourceType": "Organization", "name": "CHL"},
                "request": {"method": "POST", "url": "Organization"},
            },
        ],
    }
    response = await client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    locations = [e["response"]["location"].split("/fhir/")[1].split("/_history")[0] for e in response.json()["entry"]]
    recorded = await events(platform)
    assert all(subtype(e) == "transaction" and e["action"] == "E" and "profile" not in e["meta"] for e in recorded)
    named = {
        (patients(e)[0] if patients(e) else None): sorted(
            x["what"]["reference"] for x in e["entity"] if x.get("role", {}).get("code") == "4"
        )
        for e in recorded
    }
    p1, p2, o1, o2, org = locations
    assert named == {f"{p1}": sorted([p1, o1]), f"{p2}": sorted([p2, o2]), None: [org]}
    # a batch: the failing entry touched nothing
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Organization", "name": "HRS"},
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "resource": {"resourceType": "Organization", "active": "no"},
                "request": {"method": "POST", "url": "Organization"},
            },
        ],
    }
    answer = (await client.post("/fhir", json=batch, headers=FHIR_JSON)).json()
    assert [e["response"]["status"][:3] for e in answer["entry"]] == ["201", "400"]
    last = (await events(platform))[-1]
    assert subtype(last) == "batch"
    assert [x["what"]["reference"] for x in last["entity"] if x.get("role", {}).get("code") == "4"] == [
        answer["entry"][0]["response"]["location"].split("/fhir/")[1].split("/_history")[0]
    ]
    assert (await verify(platform)).ok


async def test_history_names_the_patients_of_its_entries(platform: Platform, client: httpx.AsyncClient) -> None:
    pid = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()["id"]
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "bp"},
        "subject": {"reference": f"Patient/{pid}"},
    }
    oid = (await client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)).json()["id"]
    await client.get(f"/fhir/Observation/{oid}/_history")
    await client.get("/fhir/Organization/_history")
    *_, instance, empty = await events(platform)
    assert (subtype(instance), patients(instance)) == ("history-instance", [f"Patient/{pid}"])
    assert (subtype(empty), patients(empty)) == ("history-type", [])


async def test_verify_sees_audit_events_written_beside_the_chain(platform: Platform, client: httpx.AsyncClient) -> None:
    await client.get("/fhir/Patient")
    await chained(platform)
    async with platform.database.transaction() as conn:
        forged = {
            "resourceType": "AuditEvent",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "recorded": "2026-11-22T09:00:00Z",
            "agent": [{"who": {"display": "nobody"}, "requestor": True}],
            "source": {"observer": {"display": "forger"}},
        }
        session = platform.store.session(conn)
        await session.create(forged)
        await session.flush()
    result = await verify(platform)
    assert (result.ok, result.checked, result.first_broken_seq) == (False, 1, None)
    assert "not in the chain" in result.reason


async def test_verify_sees_the_last_chain_row_removed(platform: Platform, client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.get("/fhir/Patient")
    await chained(platform)
    async with platform.database.transaction() as conn:
        await conn.execute("DELETE FROM audit_chain WHERE seq = (SELECT MAX(seq) FROM audit_chain)")
    result = await verify(platform)
    assert (result.ok, result.checked) == (False, 2)
    assert result.reason == "1 AuditEvent version(s) in the store are not in the chain"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys, value=json_values)
async def test_mutated_writes_are_audited_and_never_crash(
    platform: Platform, client: httpx.AsyncClient, key: str, value: object
) -> None:
    before = len(await events(platform))
    resource = {"resourceType": "Patient", "name": [{"family": "Fuzz"}], key: value}
    response = await client.post("/fhir/Patient", json=resource, headers=FHIR_JSON)
    assert response.status_code not in FORBIDDEN, response.text
    recorded = (await events(platform))[before:]
    assert [(subtype(e), e["outcome"]) for e in recorded] == [("create", "0" if response.status_code == 201 else "4")]
    assert (await verify(platform)).ok


async def test_a_free_text_request_id_is_replaced(platform: Platform, client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/Patient", headers={"X-Request-Id": "Marie Schmit, born 1950 " + "x" * 200})
    replaced = response.headers["X-Request-Id"]
    assert "Schmit" not in replaced and len(replaced) == 32
    assert request_id((await events(platform))[-1]) == replaced


async def test_verify_survives_rows_edited_as_text(platform: Platform, client: httpx.AsyncClient) -> None:
    """An SQL edit may turn the stored bytes into text (SQLite) or break the JSON: reported, never a crash."""
    for _ in range(3):
        await client.get("/fhir/Patient")
    await chained(platform)
    async with platform.database.read() as conn:
        chain = await conn.fetch("SELECT seq, rid FROM audit_chain ORDER BY seq")
    _first, (s2, r2), (s3, r3) = [(int(a), int(b)) for a, b in chain]
    async with platform.database.transaction() as conn:
        if platform.database.dialect.is_postgres:
            await conn.execute("UPDATE resource SET content = ? WHERE rid = ?", (b"{not json", r3))
        else:
            await conn.execute("UPDATE resource SET content = replace(content, 'rest', 'REST') WHERE rid = ?", (r2,))
            await conn.execute("UPDATE resource SET content = ? WHERE rid = ?", (b"{not json", r3))
    result = await verify(platform)
    if platform.database.dialect.is_postgres:
        assert result.first_broken_seq == s3 and "not valid JSON" in result.reason
    else:
        assert result.first_broken_seq == s2 and "altered" in result.reason


async def test_two_workers_appending_at_once_keep_one_chain(platform: Platform, db_url: str) -> None:
    """Two processes' worth of auditors (own pools, own group commit) only meet at the chain's lock."""
    other = build_platform(Settings(database_url=db_url))
    await other.database.connect()
    try:
        trail = AuditTrail()

        async def append(target: Platform, i: int) -> None:
            async with target.database.transaction() as conn:
                session = target.store.session(conn)
                event = _job_event(f"worker job {i}")
                await trail.append(session, event)

        await asyncio.gather(*(append(platform if i % 2 else other, i) for i in range(40)))
    finally:
        await other.database.close()
    result = await verify(platform)
    assert result == (True, 40, None, "")


async def test_the_capability_statement_lists_audit_event_as_read_only(client: httpx.AsyncClient) -> None:
    rest = (await client.get("/fhir/metadata")).json()["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert sorted(i["code"] for i in by_type["AuditEvent"]["interaction"]) == [
        "history-instance",
        "history-type",
        "read",
        "search-type",
        "vread",
    ]
    assert "patient" in {p["name"] for p in by_type["AuditEvent"]["searchParam"]}
    assert {"create", "update", "delete"} <= {i["code"] for i in by_type["Patient"]["interaction"]}


async def test_nothing_is_served_unaudited(platform: Platform, client: httpx.AsyncClient) -> None:
    """When the audit cannot be written the request fails (500, request id only) and no data leaves."""
    pid = (await client.post("/fhir/Patient", json=patient(family="Unaudited"), headers=FHIR_JSON)).json()["id"]
    assert platform.auditor is not None

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("audit store unavailable")

    platform.auditor._journal = broken  # type: ignore[method-assign]
    response = await client.get(f"/fhir/Patient/{pid}")
    body = outcome(response, 500)
    assert "Unaudited" not in response.text and response.headers["X-Request-Id"] in body["issue"][0]["diagnostics"]
    # and the writer recovers for the next requests once the audit store is back
    del platform.auditor._journal
    assert (await client.get(f"/fhir/Patient/{pid}")).status_code == 200


async def test_an_answer_leaves_only_once_its_events_are_durable(platform: Platform, client: httpx.AsyncClient) -> None:
    """The request journals its events before answering; the chainer stores and links them just after."""
    assert platform.auditor is not None
    if platform.auditor._chainer is not None:  # hold the background chainer: look at the journal itself
        platform.auditor._chainer.cancel()
    platform.auditor._kick = lambda: None  # type: ignore[method-assign]
    await client.get("/fhir/Patient")
    async with platform.database.read() as conn:
        journaled = await conn.fetch("SELECT res_id, content FROM audit_journal ORDER BY id")
        chained_rows = int(await conn.fetchval("SELECT COUNT(*) FROM audit_chain"))
    assert len(journaled) == 1 and chained_rows == 0
    event = orjson.loads(bytes(journaled[0][1]))
    assert event["id"] == journaled[0][0] and subtype(event) == "search-type"
    assert await platform.auditor.trail.pending(platform.database) == 1
    assert await platform.auditor.flush() == 1
    stored = await events(platform)
    assert [e["id"] for e in stored] == [event["id"]], "the chained AuditEvent keeps the id it was journaled with"
    assert await platform.auditor.trail.pending(platform.database) == 0


async def test_the_chainer_links_events_in_the_background(platform: Platform, client: httpx.AsyncClient) -> None:
    await client.get("/fhir/Patient")
    for _ in range(200):  # the chainer wakes at the journal write: milliseconds, not seconds
        async with platform.database.read() as conn:
            if int(await conn.fetchval("SELECT COUNT(*) FROM audit_chain")) == 1:
                break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the event was not chained in the background")
    assert platform.auditor is not None and await platform.auditor.trail.pending(platform.database) == 0


async def test_reading_the_trail_sees_every_event_already_answered_for(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    assert platform.auditor is not None
    if platform.auditor._chainer is not None:
        platform.auditor._chainer.cancel()
    platform.auditor._kick = lambda: None  # type: ignore[method-assign]  # only readers chain now
    pid = (await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)).json()["id"]
    await client.get(f"/fhir/Patient/{pid}")
    found = (await client.get("/fhir/AuditEvent", params={"patient": f"Patient/{pid}"})).json()
    assert sorted(subtype(e["resource"]) for e in found["entry"]) == ["create", "read"]
    everything = (await client.get("/fhir/_history", params={"_count": "1"})).json()
    assert everything["entry"][0]["resource"]["resourceType"] == "AuditEvent"


def test_journaled_events_left_by_a_crash_are_chained_by_verify(db_url: str) -> None:
    """A server killed after answering but before chaining: its journal is chained on the next start or verify."""

    async def crash() -> None:
        crashed = build_platform(Settings(database_url=db_url, warm_up=False))
        await crashed.database.connect()
        try:
            assert crashed.auditor is not None
            crashed.auditor._kick = lambda: None  # type: ignore[method-assign]  # the chainer never ran
            await crashed.auditor.record_events([_job_event("before the crash"), _job_event("also before")])
        finally:
            await crashed.database.close()

    asyncio.run(crash())
    result = CliRunner().invoke(cli, ["audit", "verify", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "2 journaled events chained" in result.output and "2 records verified" in result.output


async def test_two_auditors_chaining_at_once_keep_one_chain(platform: Platform, db_url: str) -> None:
    """Two workers' auditors journal and chain concurrently: one chain, every event once (PostgreSQL: SQLite
    runs one worker, and two connections of one thread would only wait on each other's file lock)."""
    if not db_url.startswith("postgres"):
        return
    other = build_platform(Settings(database_url=db_url, warm_up=False))
    await other.database.connect()
    try:
        auditors = [platform.auditor, other.auditor]
        assert all(a is not None for a in auditors)
        await asyncio.gather(
            *(auditors[i % 2].record_events([_job_event(f"job {i}")]) for i in range(30)),  # type: ignore[union-attr]
            *(auditors[i % 2].flush() for i in range(6)),  # type: ignore[union-attr]
        )
        assert other.auditor is not None
        await other.auditor.close()
    finally:
        await other.database.close()
    result = await verify(platform)
    assert result == (True, 30, None, "")
