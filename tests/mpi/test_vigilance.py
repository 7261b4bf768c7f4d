"""Identity-vigilance decisions over the API ($mpi-link, $mpi-unlink, $mpi-merge, $mpi-unmerge, Task $mpi-dismiss),
taken by a real identity-vigilance agent (a staff account and its token): the Patient versions, the one Provenance
naming the agent, the review Task closed, the establishments' Communications, $ihe-pix before and after, every
refusal leaving the data as it was, and nobody else allowed."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from esante.app import Platform
from esante.fhir.errors import FhirError, Issue
from esante.fhir.hooks import HookEvent, Pointcut
from esante.fhir.store import ResourceStore
from esante.identifiers.esante_id import new_esante_id
from esante.identifiers.matricule import make_matricule
from esante.mpi.domains import DomainStore
from esante.mpi.feed import Candidate, IdentityFeed
from esante.mpi.model import ESANTE_ID_SYSTEM, LEVEL_SYSTEM, MATRICULE_SYSTEM
from esante.mpi.review import review_task
from esante.security.operator_tokens import plan_token
from esante.security.tokens import principal
from tests.api.helpers import FHIR_JSON, outcome
from tests.auth import bearer, register_client, token
from tests.security.accounts_support import PASSWORD
from tests.security.helpers import FakeClock
from tests.security.oauth_support import (
    AuthServer,
    authorize_params,
    exchange,
    form_action,
    hidden_fields,
    location_params,
    next_code,
    person,
    pkce,
    public_app,
    whole_platform,
)

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"
LAB = "urn:oid:1.3.182.3.1.1.9.2"
LEA, LEA_TWIN = make_matricule("19820802", 856), make_matricule("19820802", 857)
NOTICE = "urn:esante:mpi-notice"


def _patient(pid: str, identifiers: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": s, "value": v} for s, v in identifiers],
        "name": [{"family": "Schmit", "given": ["Léa"]}],
        "birthDate": "1982-08-02",
        "gender": "female",
        **extra,
    }


def _link(other: str, kind: str = "seealso") -> list[dict[str, Any]]:
    return [{"other": {"reference": f"Patient/{other}"}, "type": kind}]


CERTIFIED = {"meta": {"tag": [{"system": LEVEL_SYSTEM, "code": "certified"}]}}


async def _world(platform: Platform) -> dict[str, str]:
    """Two certified identities of one person (a duplicate of the register), local identities of a hospital and a
    laboratory; returns the eSanté identifiers."""
    domains = DomainStore(platform.database)
    await domains.register(HOSPITAL, "Centre Hospitalier", organization="Organization/chl", source_client_id="chl")
    await domains.register(LAB, "Laboratoire", organization="Laboratoire national de santé", source_client_id="lab")
    ids = {"lea": new_esante_id(), "twin": new_esante_id()}
    people = [
        _patient("lea", [(MATRICULE_SYSTEM, LEA), (ESANTE_ID_SYSTEM, ids["lea"])], **CERTIFIED),
        _patient("twin", [(MATRICULE_SYSTEM, LEA_TWIN), (ESANTE_ID_SYSTEM, ids["twin"])], **CERTIFIED),
        _patient("h1", [(HOSPITAL, "H1")], link=_link("lea")),
        _patient("h2", [(HOSPITAL, "H2")], link=_link("twin")),
        _patient("h3", [(HOSPITAL, "H3")]),  # provisional
        _patient("l1", [(LAB, "L1")], link=_link("twin")),
        _patient("l2", [(LAB, "L2")]),  # provisional
    ]
    async with platform.database.transaction() as conn:  # the MPI's own writer, as the register import does
        session = platform.store.session(conn)
        for item in people:
            await session.create(item, res_id=item["id"])
        await session.flush()
    return ids


async def _review(platform: Platform, local: str, candidate: str, task_id: str = "t1") -> None:
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        stored = await session.read("Patient", local)
        assert stored is not None
        agreement = {"family": "exact", "birth_date": "transposed"}
        task = review_task(stored, [Candidate(candidate, 0.7, "review", "probable", agreement)], "2026-01-01T00:00:00Z")
        await session.create(task, res_id=task_id)
        await session.flush()


async def _agent(
    platform: Platform, username: str = "ivo", roles: tuple[str, ...] = ("identity-vigilance",)
) -> dict[str, str]:
    """A staff account with its roles (created, activated, TOTP confirmed) and an access token bound to it."""
    server = AuthServer(
        "http://testserver", platform.settings, platform.keyring, platform.database, FakeClock(time.time())
    )
    who = await person(server, "staff", username, roles=roles, display_name=f"Agent {username}")
    async with platform.database.read() as conn:
        plan = await plan_token(conn, principal(f"staff:{username}"), "user/*.cruds", [])
    assert plan.extra_claims["acct"] == who.account.id
    bearer_token = token(platform.settings, f"staff:{username}", plan.scope, extra_claims=plan.extra_claims)
    return {**FHIR_JSON, "Authorization": f"Bearer {bearer_token}", "X-Account": who.account.id}


def _ref(pid: str) -> dict[str, Any]:
    return {"reference": pid if "/" in pid else f"Patient/{pid}"}


def _params(**values: Any) -> dict[str, Any]:
    parameter = []
    for name, value in values.items():
        if isinstance(value, dict):
            parameter.append({"name": name, **value})
        elif name == "reason":
            parameter.append({"name": name, "valueString": value})
        else:
            parameter.append({"name": name, "valueReference": _ref(value)})
    return {"resourceType": "Parameters", "parameter": parameter}


async def _decide(http: httpx.AsyncClient, agent: dict[str, str], op: str, **values: Any) -> httpx.Response:
    headers = {k: v for k, v in agent.items() if k != "X-Account"}
    return await http.post(f"/fhir/Patient/${op}", json=_params(**values), headers=headers)


def _out(body: dict[str, Any], name: str) -> list[Any]:
    return [next(v for k, v in p.items() if k.startswith("value")) for p in body["parameter"] if p["name"] == name]


async def _read(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await http.get(f"/fhir/{path}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _level(resource: dict[str, Any]) -> str:
    return next(t["code"] for t in resource["meta"]["tag"] if t["system"] == LEVEL_SYSTEM)


def _links(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(link["type"], link["other"]["reference"]) for link in resource.get("link", [])]


async def _pix(http: httpx.AsyncClient, source: str) -> set[tuple[str, str]]:
    body = (await http.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": source})).json()
    return {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in body["parameter"]
        if p["name"] == "targetIdentifier"
    }


async def _snapshot(platform: Platform) -> list[tuple[Any, ...]]:
    async with platform.database.read() as conn:
        rows = await conn.fetch(
            "SELECT res_type, res_id, version_id, is_current FROM resource WHERE res_type <> 'AuditEvent'"
            " ORDER BY res_type, res_id, version_id"
        )
    return [tuple(r) for r in rows]


async def _audit_of(http: httpx.AsyncClient, op: str) -> list[dict[str, Any]]:
    """The AuditEvents of the invocations of ``$op`` (the request line is the query entity, base64)."""
    bundle = await _read(http, "AuditEvent?_count=200")
    found = []
    for entry in bundle.get("entry", []):
        event = entry["resource"]
        queries = [base64.b64decode(e["query"]).decode() for e in event.get("entity", []) if "query" in e]
        if any(q.startswith("POST ") and q.endswith(f"/${op}") for q in queries):
            found.append(event)
    return found


# --- link and unlink -------------------------------------------------------------------------------------------------


async def test_link_move_and_unlink(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    await _review(platform, "h3", "lea")
    agent = await _agent(platform)
    linked = await _decide(client, agent, "mpi-link", local="h3", target="lea", task="Task/t1", reason="same person")
    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert _out(body, "decision") == ["link"] and _out(body, "patient") == [_ref("Patient/h3/_history/2")]
    h3 = await _read(client, "Patient/h3")
    assert _level(h3) == "validated" and _links(h3) == [("seealso", "Patient/lea")]
    # the one Provenance: the agent's account, the reason, the Task, the link's target
    (provenance_ref,) = _out(body, "provenance")
    provenance = await _read(client, provenance_ref["reference"])
    assert provenance["activity"]["coding"] == [{"system": "urn:esante:mpi-activity", "code": "link"}]
    (who,) = provenance["agent"]
    assert who["who"]["identifier"] == {"system": "urn:esante:account", "value": agent["X-Account"]}
    assert provenance["target"] == [{"reference": "Patient/h3/_history/2"}]
    assert provenance["entity"] == [{"role": "source", "what": {"reference": "Patient/lea"}}]
    assert provenance["reason"] == [{"text": "same person"}] and provenance["extension"] == [
        {"url": "urn:esante:mpi-review-task", "valueReference": {"reference": "Task/t1"}}
    ]
    # the review Task closed in the same decision
    task = await _read(client, "Task/t1")
    assert task["status"] == "completed" and task["executionPeriod"]["end"] == provenance["recorded"]
    outputs = {o["type"]["coding"][0]["code"]: o for o in task["output"]}
    assert outputs["decision"]["valueCode"] == "link"
    assert outputs["provenance"]["valueReference"] == provenance_ref
    # audited with the agent's identity
    (event,) = await _audit_of(client, "mpi-link")
    requestor = next(a for a in event["agent"] if a.get("requestor"))
    assert requestor["who"]["identifier"]["value"] == "staff:ivo" and event["outcome"] == "0"  # the token's subject
    # moving the link: the old one is named as removed; the same link again is refused
    outcome(await _decide(client, agent, "mpi-link", local="h3", target="lea"), 409)
    moved = await _decide(client, agent, "mpi-link", local="h3", target="twin")
    assert moved.status_code == 200, moved.text
    moved_provenance = await _read(client, _out(moved.json(), "provenance")[0]["reference"])
    assert {(e["role"], e["what"]["reference"]) for e in moved_provenance["entity"]} == {
        ("source", "Patient/twin"),
        ("removal", "Patient/lea"),
    }
    assert "extension" not in moved_provenance
    # unlink: provisional again; a reason is required
    outcome(await _decide(client, agent, "mpi-unlink", local="h3"), 400)
    unlinked = await _decide(client, agent, "mpi-unlink", local="h3", reason="not the same person")
    assert unlinked.status_code == 200, unlinked.text
    h3 = await _read(client, "Patient/h3")
    assert _level(h3) == "provisional" and "link" not in h3 and h3["meta"]["versionId"] == "4"
    outcome(await _decide(client, agent, "mpi-unlink", local="h3", reason="again"), 409)
    # history kept: every version is there, the first provisional, then linked, moved, unlinked
    history = await _read(client, "Patient/h3/_history")
    versions = {e["resource"]["meta"]["versionId"]: e["resource"] for e in history["entry"]}
    assert sorted(versions) == ["1", "2", "3", "4"]
    assert _links(versions["2"]) == [("seealso", "Patient/lea")] and _links(versions["3"]) == [
        ("seealso", "Patient/twin")
    ]


# --- merge and unmerge -----------------------------------------------------------------------------------------------


async def test_certified_merge_repoints_and_unmerge_points_back(platform: Platform, client: httpx.AsyncClient) -> None:
    ids = await _world(platform)
    agent = await _agent(platform)
    before = await _pix(client, f"{LAB}|L1")
    assert before == {(MATRICULE_SYSTEM, LEA_TWIN), (ESANTE_ID_SYSTEM, ids["twin"]), (HOSPITAL, "H2")}
    merged = await _decide(client, agent, "mpi-merge", source="twin", target="lea", reason="register duplicate")
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert sorted(p["reference"] for p in _out(body, "patient")) == [
        "Patient/h2/_history/2",
        "Patient/l1/_history/2",
        "Patient/twin/_history/2",
    ]
    twin = await _read(client, "Patient/twin")
    assert twin["active"] is False and _links(twin) == [("replaced-by", "Patient/lea")] and _level(twin) == "certified"
    for local in ("h2", "l1"):
        resource = await _read(client, f"Patient/{local}")
        assert _links(resource) == [("seealso", "Patient/lea")] and _level(resource) == "validated"
    assert (await _read(client, "Patient/h1"))["meta"]["versionId"] == "1"  # linked to the survivor already
    provenance = await _read(client, _out(body, "provenance")[0]["reference"])
    assert {(e["role"], e["what"]["reference"]) for e in provenance["entity"]} == {
        ("source", "Patient/lea"),
        ("revision", "Patient/h2/_history/2"),
        ("revision", "Patient/l1/_history/2"),
    }
    # $ihe-pix: the laboratory's identity now leads to the survivor and its identities; the old matricule too
    after = await _pix(client, f"{LAB}|L1")
    assert after == {(MATRICULE_SYSTEM, LEA), (ESANTE_ID_SYSTEM, ids["lea"]), (HOSPITAL, "H1"), (HOSPITAL, "H2")}
    assert (HOSPITAL, "H2") in await _pix(client, f"{MATRICULE_SYSTEM}|{LEA_TWIN}")
    # one notice per affected establishment domain, in the same decision
    notices = {n["identifier"][0]["system"]: n for n in await _notices(client)}
    assert set(notices) == {HOSPITAL, LAB} and len(_out(body, "notice")) == 2
    hospital, lab = notices[HOSPITAL], notices[LAB]
    assert hospital["recipient"] == [{"reference": "Organization/chl"}]
    assert lab["recipient"] == [{"display": "Laboratoire national de santé"}]
    assert hospital["category"][0]["coding"] == [{"system": NOTICE, "code": "merge"}]
    assert hospital["status"] == "completed" and hospital["sent"] == provenance["recorded"]
    assert hospital["identifier"][0]["value"] == provenance["id"]
    text = hospital["payload"][0]["contentString"]
    assert f"{HOSPITAL}|H2 (Patient/h2) belongs to Patient/lea (eSanté identifier {ids['lea']})" in text
    assert "L1" not in text and "Schmit" not in text  # each domain its own identities; no traits
    assert {"Patient/h2", "Patient/twin", "Patient/lea"} <= {a["reference"] for a in hospital["about"]}
    # a merged identity cannot be merged again, nor its survivor merged into it
    outcome(await _decide(client, agent, "mpi-merge", source="twin", target="lea"), 409)
    outcome(await _decide(client, agent, "mpi-merge", source="lea", target="twin"), 409)
    # a hospital identity linked to the survivor after the merge stays with it when the merge is undone
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        await session.create(_patient("h9", [(HOSPITAL, "H9")], link=_link("lea")), res_id="h9")
        await session.flush()
    outcome(await _decide(client, agent, "mpi-unmerge", source="twin"), 400)  # a reason is required
    undone = await _decide(client, agent, "mpi-unmerge", source="twin", reason="two persons after all: twins")
    assert undone.status_code == 200, undone.text
    twin = await _read(client, "Patient/twin")
    assert "active" not in twin and "link" not in twin and twin["meta"]["versionId"] == "3"
    for local in ("h2", "l1"):
        resource = await _read(client, f"Patient/{local}")
        assert _links(resource) == [("seealso", "Patient/twin")] and resource["meta"]["versionId"] == "3"
    for local in ("h1", "h9"):
        assert _links(await _read(client, f"Patient/{local}")) == [("seealso", "Patient/lea")]
    assert await _pix(client, f"{LAB}|L1") == before
    unmerge = await _read(client, _out(undone.json(), "provenance")[0]["reference"])
    assert unmerge["activity"]["coding"][0]["code"] == "unmerge"
    assert {(e["role"], e["what"]["reference"]) for e in unmerge["entity"]} == {
        ("removal", "Patient/lea"),
        ("revision", "Patient/h2/_history/3"),
        ("revision", "Patient/l1/_history/3"),
    }
    kinds = sorted(n["category"][0]["coding"][0]["code"] for n in await _notices(client))
    assert kinds == ["merge", "merge", "unmerge", "unmerge"]
    outcome(await _decide(client, agent, "mpi-unmerge", source="twin", reason="again"), 409)


async def _notices(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    bundle = await _read(http, f"Communication?category={quote(NOTICE + '|')}merge,{quote(NOTICE + '|')}unmerge")
    return [e["resource"] for e in bundle.get("entry", [])]


async def test_establishment_reads_its_own_notices(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    agent = await _agent(platform)
    scope = f"system/Patient.cruds system/Communication.rs?identifier={HOSPITAL}|"
    await register_client(platform.database, "chl", scope)
    assert (await _decide(client, agent, "mpi-merge", source="twin", target="lea")).status_code == 200
    chl = {"Authorization": f"Bearer {token(platform.settings, 'system:chl', scope)}"}
    found = await client.get("/fhir/Communication", params={"identifier": f"{HOSPITAL}|"}, headers=chl)
    assert found.status_code == 200, found.text
    (entry,) = found.json()["entry"]
    assert entry["resource"]["identifier"][0]["system"] == HOSPITAL
    every = await client.get("/fhir/Communication", headers=chl)  # the granular scope hides the laboratory's
    assert [e["resource"]["identifier"][0]["system"] for e in every.json()["entry"]] == [HOSPITAL]
    lab = {"Authorization": f"Bearer {token(platform.settings, 'system:lab', 'system/Patient.cruds')}"}
    await register_client(platform.database, "lab", "system/Patient.cruds")
    outcome(await client.get("/fhir/Communication", headers=lab), 403)  # no Communication scope, no notices


async def test_local_merge_and_unmerge(platform: Platform, client: httpx.AsyncClient) -> None:
    ids = await _world(platform)
    agent = await _agent(platform)
    await _review(platform, "h1", "h3")
    # h1 (linked to lea) is merged into h3 (provisional): the survivor takes the link
    merged = await _decide(client, agent, "mpi-merge", source="h1", target="h3", task="Task/t1")
    assert merged.status_code == 200, merged.text
    h1, h3 = await _read(client, "Patient/h1"), await _read(client, "Patient/h3")
    assert h1["active"] is False and _links(h1) == [("replaced-by", "Patient/h3")]
    assert _links(h3) == [("seealso", "Patient/lea")] and _level(h3) == "validated"
    assert await _pix(client, f"{HOSPITAL}|H1") == {
        (MATRICULE_SYSTEM, LEA),
        (ESANTE_ID_SYSTEM, ids["lea"]),
        (HOSPITAL, "H3"),
    }
    (notice,) = await _notices(client)
    assert notice["identifier"][0]["system"] == HOSPITAL
    text = notice["payload"][0]["contentString"]
    assert f"{HOSPITAL}|H1 (Patient/h1) is merged into {HOSPITAL}|H3 (Patient/h3)" in text
    assert f"{HOSPITAL}|H3 (Patient/h3) belongs to Patient/lea" in text
    assert (await _read(client, "Task/t1"))["output"][0]["valueCode"] == "merge"
    # undone: h1 active and linked again, h3 provisional again
    undone = await _decide(client, agent, "mpi-unmerge", source="h1", reason="two patients with one record")
    assert undone.status_code == 200, undone.text
    h1, h3 = await _read(client, "Patient/h1"), await _read(client, "Patient/h3")
    assert "active" not in h1 and _links(h1) == [("seealso", "Patient/lea")] and _level(h1) == "validated"
    assert "link" not in h3 and _level(h3) == "provisional"
    # two identities linked to different persons are not merged
    refused = outcome(await _decide(client, agent, "mpi-merge", source="h1", target="h2"), 409)
    assert "two persons" in refused["issue"][0]["diagnostics"]


async def test_unmerge_of_a_feed_merge_is_the_establishments(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    agent = await _agent(platform)
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        current = await session.read("Patient", "h3")
        assert current is not None
        await session.update(_patient("h3", [(HOSPITAL, "H3")], active=False, link=_link("h1", "replaced-by")), current)
        await session.flush()
    refused = outcome(await _decide(client, agent, "mpi-unmerge", source="h3", reason="wrong"), 409)
    assert "identity feed" in refused["issue"][0]["diagnostics"]


# --- dismissing a review ---------------------------------------------------------------------------------------------


async def test_dismiss_a_review(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    await _review(platform, "h3", "lea")
    agent = await _agent(platform)
    headers = {k: v for k, v in agent.items() if k != "X-Account"}
    reason = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "different mothers"}]}
    done = await client.post("/fhir/Task/t1/$mpi-dismiss", json=reason, headers=headers)
    assert done.status_code == 200, done.text
    task = await _read(client, "Task/t1")
    assert task["status"] == "completed" and task["statusReason"] == {"text": "different mothers"}
    assert task["output"][0]["valueCode"] == "distinct" and "end" in task["executionPeriod"]
    provenance = await _read(client, _out(done.json(), "provenance")[0]["reference"])
    assert provenance["target"] == [{"reference": "Task/t1/_history/2"}]
    assert provenance["agent"][0]["who"]["identifier"]["value"] == agent["X-Account"]
    assert (await _read(client, "Patient/h3"))["meta"]["versionId"] == "1"  # no identity touched
    outcome(await client.post("/fhir/Task/t1/$mpi-dismiss", headers=headers), 409)
    outcome(await client.post("/fhir/Task/nope/$mpi-dismiss", headers=headers), 404)
    queue = await _read(client, "Task?code=urn:esante:mpi-task|identity-review&status=requested")
    assert queue.get("entry", []) == []


# --- refusals --------------------------------------------------------------------------------------------------------


async def test_wrong_decisions_are_refused_and_change_nothing(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    await _review(platform, "h3", "lea")
    await _review(platform, "l2", "lea", task_id="t2")
    agent = await _agent(platform)
    headers = {k: v for k, v in agent.items() if k != "X-Account"}
    async with platform.database.transaction() as conn:  # a closed review and a Task that is no review
        session = platform.store.session(conn)
        current = await session.read("Task", "t2")
        assert current is not None
        await session.update({**orjson.loads(current.content or b"{}"), "status": "completed"}, current)
        await session.create({"resourceType": "Task", "status": "requested", "intent": "order"}, res_id="other")
        await session.create({"resourceType": "Patient", "name": [{"family": "Plain"}]}, res_id="plain")
        await session.flush()
    before = await _snapshot(platform)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("mpi-link", {"local": "nobody", "target": "lea"}, 404, "Patient/nobody does not exist"),
        ("mpi-link", {"local": "h3", "target": "nobody"}, 404, "target: Patient/nobody"),
        ("mpi-link", {"local": "lea", "target": "twin"}, 422, "local must be an establishment's local identity"),
        ("mpi-link", {"local": "h3", "target": "h1"}, 422, "target must be a certified one"),
        ("mpi-link", {"local": "h3"}, 400, "missing parameter(s): target"),
        ("mpi-link", {"local": {"valueString": "Patient/h3"}, "target": "lea"}, 400, "local must be a valueReference"),
        ("mpi-link", {"local": "Observation/h3", "target": "lea"}, 400, "local must reference a Patient"),
        ("mpi-link", {"local": "h3", "target": "lea", "bogus": "x"}, 400, "unknown parameter 'bogus'"),
        ("mpi-link", {"local": "h3", "target": "lea", "reason": {"valueString": " "}}, 400, "non-empty"),
        ("mpi-link", {"local": "h3", "target": "lea", "task": "Task/none"}, 404, "Task/none does not exist"),
        ("mpi-link", {"local": "h3", "target": "lea", "task": "Task/t2"}, 409, "already completed"),
        ("mpi-link", {"local": "h3", "target": "lea", "task": "Task/other"}, 422, "not an identity-review"),
        ("mpi-link", {"local": "h2", "target": "lea", "task": "Task/t1"}, 422, "reviews Patient/h3"),
        ("mpi-link", {"local": "plain", "target": "lea"}, 422, "Patient/plain is not an MPI identity"),
        (
            "mpi-link",
            {"local": {"valueReference": {"identifier": {"value": "H3"}}}, "target": "lea"},
            400,
            "Patient/<id>",
        ),
        ("mpi-unlink", {"local": "h3", "reason": "x"}, 409, "not linked"),
        ("mpi-unlink", {"local": "lea", "reason": "x"}, 422, "certified identity"),
        ("mpi-merge", {"source": "h1", "target": "l1"}, 422, "two domains"),
        ("mpi-merge", {"source": "h1", "target": "h1"}, 422, "same identity"),
        ("mpi-merge", {"source": "twin", "target": "h1"}, 422, "a certified identity and a local one"),
        ("mpi-merge", {"source": "twin"}, 400, "missing parameter(s): target"),
        ("mpi-merge", {"source": "plain", "target": "lea"}, 422, "not an MPI identity"),
        ("mpi-unmerge", {"source": "twin", "reason": "x"}, 409, "is not merged"),
        ("mpi-unmerge", {"source": "ghost", "reason": "x"}, 404, "does not exist"),
    ]
    for op, values, status, text in cases:
        body = outcome(await _decide(client, agent, op, **values), status)
        assert text in body["issue"][0]["diagnostics"], (op, values, body)
    not_parameters = await client.post("/fhir/Patient/$mpi-link", json={"resourceType": "Patient"}, headers=headers)
    assert "Parameters" in outcome(not_parameters, 400)["issue"][0]["diagnostics"]
    outcome(await client.post("/fhir/Patient/$mpi-merge", headers=headers), 400)  # no body: no parameters
    outcome(await client.get("/fhir/Patient/$mpi-link", headers=headers), 405)  # a decision is never a GET
    outcome(await client.post("/fhir/Task/other/$mpi-dismiss", headers=headers), 422)
    assert await _snapshot(platform) == before


async def test_a_failure_while_writing_rolls_back_the_whole_decision(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await _world(platform)
    agent = await _agent(platform)
    before = await _snapshot(platform)

    async def refuse(event: HookEvent) -> None:  # the notices are written last: everything else is already staged
        raise FhirError(503, [Issue("transient", "the notice store is unavailable")])

    platform.hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, refuse, {"Communication"})
    outcome(await _decide(client, agent, "mpi-merge", source="twin", target="lea"), 503)
    assert await _snapshot(platform) == before


@pytest.mark.parametrize("who", ["none", "professional", "source", "administrator"])
async def test_only_identity_vigilance_agents_decide(platform: Platform, client: httpx.AsyncClient, who: str) -> None:
    await _world(platform)
    await register_client(platform.database, "chl", "system/Patient.cruds system/Task.cruds")
    headers: dict[str, str] = dict(FHIR_JSON)
    if who == "professional":
        headers.update(bearer(platform.settings, "professional:2854123452"))
    elif who == "source":
        headers.update(bearer(platform.settings, "system:chl", "system/Patient.cruds system/Task.cruds"))
    elif who == "administrator":
        headers.update(
            {k: v for k, v in (await _agent(platform, "ada", ("administrator",))).items() if k != "X-Account"}
        )
    before = await _snapshot(platform)
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as bare:
        response = await _decide(bare, headers, "mpi-merge", source="twin", target="lea")
        outcome(response, 401 if who == "none" else 403)
        dismiss = await bare.post("/fhir/Task/t1/$mpi-dismiss", headers=headers)
        outcome(dismiss, 401 if who == "none" else 403)
    assert await _snapshot(platform) == before


class _SureMatcher:
    """A matcher certain that every identity is Léa (the feed's auto-link path, deterministically)."""

    async def candidates(self, conn: Any, patient: dict[str, Any], limit: int) -> list[Candidate]:
        return [Candidate("lea", 0.99, "auto-link", "certain", {})]


async def test_an_unlink_survives_the_next_feed_revision(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    platform.hooks._hooks.clear()  # the feed again, with a matcher that always links
    IdentityFeed(_SureMatcher()).install(platform.hooks)
    await register_client(platform.database, "chl", "system/Patient.cruds")
    chl = {**FHIR_JSON, **bearer(platform.settings, "system:chl", "system/Patient.cruds")}
    agent = await _agent(platform)
    local = _patient("x", [(HOSPITAL, "H7")])
    del local["id"]
    url = f"/fhir/Patient?identifier={quote(HOSPITAL + '|H7')}"
    created = (await client.put(url, json=local, headers=chl)).json()
    assert _links(created) == [("seealso", "Patient/lea")]
    unlinked = await _decide(client, agent, "mpi-unlink", local=created["id"], reason="not her")
    assert unlinked.status_code == 200, unlinked.text
    revised = await client.put(url, json={**local, "address": [{"city": "Wiltz"}]}, headers=chl)
    assert revised.status_code == 200 and "link" not in revised.json()


async def test_merge_over_a_real_socket_with_an_oauth_agent_token(db_url: str, tmp_path: Path) -> None:
    """The whole platform under uvicorn: the agent logs in (password + TOTP, consent) through the authorization
    server, and the decision, its Provenance and its AuditEvent carry the account the token was issued to."""
    async with whole_platform(db_url, tmp_path) as (fhir, server):
        await DomainStore(server.database).register(HOSPITAL, "CHL", organization="Organization/chl")
        async with server.database.transaction() as conn:
            session = ResourceStore(server.database).session(conn)
            for item in (
                _patient("lea", [(MATRICULE_SYSTEM, LEA)], **CERTIFIED),
                _patient("twin", [(MATRICULE_SYSTEM, LEA_TWIN)], **CERTIFIED),
                _patient("h2", [(HOSPITAL, "H2")], link=_link("twin")),
            ):
                await session.create(item, res_id=item["id"])
            await session.flush()
        await public_app(server, "vigil-console", scopes="user/*.cruds openid fhirUser")
        agent = await person(server, "staff", "ivo", roles=("identity-vigilance",), display_name="Ivo Agent")
        async with httpx.AsyncClient() as http:
            verifier, challenge = pkce()
            params = authorize_params("vigil-console", challenge, scope="user/*.cruds openid fhirUser")
            page = await http.get(server.authorize_url, params=params)
            login = {**hidden_fields(page.text), "username": "ivo", "password": PASSWORD}
            consent = await http.post(form_action(page.text), data={**login, "totp": next_code(server, agent)})
            allowed = await http.post(
                form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"}
            )
            issued = await exchange(server, http, location_params(allowed)["code"], verifier, "vigil-console")
            assert issued.status_code == 200, issued.text
            headers = {**FHIR_JSON, "Authorization": f"Bearer {issued.json()['access_token']}"}
            merged = await http.post(
                f"{fhir}/Patient/$mpi-merge", json=_params(source="twin", target="lea"), headers=headers
            )
            assert merged.status_code == 200, merged.text
            provenance = await http.get(f"{fhir}/{_out(merged.json(), 'provenance')[0]['reference']}", headers=headers)
            who = provenance.json()["agent"][0]["who"]
            assert who == {
                "identifier": {"system": "urn:esante:account", "value": agent.account.id},
                "display": "Ivo Agent",
            }
            h2 = (await http.get(f"{fhir}/Patient/h2", headers=headers)).json()
            assert _links(h2) == [("seealso", "Patient/lea")]
            outcome(await http.post(f"{fhir}/Patient/$mpi-merge", json=_params(source="twin", target="lea")), 401)
        async with server.database.read() as conn:
            rows = await conn.fetch("SELECT content FROM resource WHERE res_type = 'AuditEvent' AND is_current")
        events = [orjson.loads(bytes(r[0])) for r in rows]
        requestors = [
            a["who"] for e in events if e.get("subtype", [{}])[0].get("code") == "operation" and e["outcome"] == "0"
            for a in e["agent"] if a.get("requestor")
        ]  # fmt: skip
        assert {
            "identifier": {"system": "urn:esante:caller", "value": agent.account.id},
            "display": "Ivo Agent",
        } in requestors


async def test_unmerge_leaves_an_identity_moved_since(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    agent = await _agent(platform)
    assert (await _decide(client, agent, "mpi-merge", source="twin", target="lea")).status_code == 200
    assert (await _decide(client, agent, "mpi-unlink", local="h2", reason="not her")).status_code == 200
    undone = await _decide(client, agent, "mpi-unmerge", source="twin", reason="twins")
    assert undone.status_code == 200, undone.text
    (skipped,) = _out(undone.json(), "skipped")
    assert "Patient/h2 is now linked to nothing" in skipped
    assert "link" not in await _read(client, "Patient/h2")  # the later decision stands
    assert _links(await _read(client, "Patient/l1")) == [("seealso", "Patient/twin")]
    (notice,) = [n for n in await _notices(client) if n["category"][0]["coding"][0]["code"] == "unmerge"]
    assert notice["identifier"][0]["system"] == LAB  # the hospital's identity was not pointed back


async def test_a_parameter_given_twice_is_refused(platform: Platform, client: httpx.AsyncClient) -> None:
    await _world(platform)
    agent = await _agent(platform)
    headers = {k: v for k, v in agent.items() if k != "X-Account"}
    body = _params(local="h3", target="lea")
    body["parameter"].append({"name": "target", "valueReference": _ref("twin")})
    refused = outcome(await client.post("/fhir/Patient/$mpi-link", json=body, headers=headers), 400)
    assert "target is given more than once" in refused["issue"][0]["diagnostics"]
    assert "link" not in await _read(client, "Patient/h3")
