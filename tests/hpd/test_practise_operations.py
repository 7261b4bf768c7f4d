"""The administrators' operations refuse whoever is not an HPD administrator and every bad input, over real HTTP on
both databases; a refusal leaves the directory, the HPD's records and the professional's access as they were, and is
audited."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth import token
from tests.hpd.practise_support import (
    World,
    audit_events,
    bearer,
    directory_entry,
    ehealth_id,
    parameters,
    practise_rows,
    practise_world,
    query_of,
)

WITHDRAW = "Practitioner/doc-9/$hpd-withdraw"


async def _state(world: World, http: httpx.AsyncClient) -> tuple[Any, ...]:
    """What a refused operation must leave unchanged: the directory entries' versions, the HPD's rows."""
    versions = []
    for path in ("Practitioner/doc-9", "PractitionerRole/doc-9-role-a", "PractitionerRole/doc-9-role-b"):
        body = (await http.get(f"{world.fhir}/{path}", headers=world.system())).json()
        versions.append((path, body["meta"]["versionId"], body.get("active")))
    return (*versions, await practise_rows(world))


async def _refused_operations(world: World, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    return [
        e
        for e in await audit_events(world, http, outcome="4")
        if e["subtype"][0]["code"] == "operation" and "$hpd-" in query_of(e)
    ]


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with practise_world(db_url, tmp_path) as built, httpx.AsyncClient(timeout=30) as http:
        await directory_entry(built, http, "doc-9", ehealth_id(9))
        yield built


async def test_only_hpd_administrators_may_change_a_right(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        before = await _state(world, http)
        callers = {
            "professional": bearer(token(world.settings, f"professional:{ehealth_id(9)}", "user/*.cruds")),
            "administrator": world.staff("admin-1", "administrator"),  # may update Practitioners, not their right
            "vigilance": world.staff("ivo", "identity-vigilance", scope="user/*.rs"),
            "system": world.system(),  # all the FHIR rights of establishment software: still not an HPD decision
        }
        for who, headers in callers.items():
            response = await http.post(f"{world.fhir}/{WITHDRAW}", json=parameters(), headers=headers)
            assert response.status_code == 403, (who, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"
        anonymous = await http.post(f"{world.fhir}/{WITHDRAW}", json=parameters())
        assert anonymous.status_code == 401
        # an HPD administrator's token without the update permission on Practitioner
        narrow = world.staff("hpd-admin-2", "hpd-administrator", scope="user/Practitioner.rs")
        assert (await http.post(f"{world.fhir}/{WITHDRAW}", json=parameters(), headers=narrow)).status_code == 403
        assert await _state(world, http) == before
        assert len(await _refused_operations(world, http)) == len(callers) + 2  # the 401 too (anonymous requestor)


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("Practitioner/nobody/$hpd-withdraw", parameters(), 404, "Practitioner/nobody does not exist"),
        (WITHDRAW, parameters(reason=None), 400, "a reason is required"),
        (WITHDRAW, parameters(reason="   "), 400, "a reason is required"),
        (WITHDRAW, None, 400, "a reason is required"),
        (WITHDRAW, {"resourceType": "Patient"}, 400, "the body must be a Parameters resource"),
        (WITHDRAW, {"resourceType": "Parameters", "parameter": [{"name": "why", "valueString": "x"}]}, 400, "unknown"),
        (
            WITHDRAW,
            {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueInteger": 3}]},
            400,
            "reason must be a valueString",
        ),
        (
            WITHDRAW,
            {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "a"}] * 2},
            400,
            "more than once",
        ),
        (WITHDRAW, parameters(reason="x" * 1001), 400, "at most 1000 characters"),
        (WITHDRAW, parameters(reason="line\x00break"), 400, "control characters"),
        (WITHDRAW, parameters(effective="2026-02-30"), 400, "does not exist"),
        (WITHDRAW, parameters(effective="yesterday"), 400, "is not a date"),
        (WITHDRAW, parameters(effective=(date.today() + timedelta(days=3)).isoformat()), 400, "in the future"),
        ("Practitioner/doc-9/$hpd-restore", parameters(), 409, "is active: there is nothing to restore"),
        ("Practitioner/doc-9/$hpd-unknown", parameters(), 404, "not supported"),
        ("Patient/doc-9/$hpd-withdraw", parameters(), 404, "not supported"),
    ],
)
async def test_bad_inputs_change_nothing(world: World, path: str, body: Any, status: int, words: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        before = await _state(world, http)
        response = await http.post(f"{world.fhir}/{path}", json=body, headers=world.admin())
        assert response.status_code == status, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert words in outcome["issue"][0]["diagnostics"], outcome
        assert await _state(world, http) == before
        refused = await _refused_operations(world, http)
        assert len(refused) == 1 and refused[0]["outcomeDesc"] == f"HTTP {status}"
        assert refused[0]["agent"][-1]["who"]["identifier"]["value"] == "staff:hpd-admin-1"


async def test_transitions_a_status_cannot_take_are_conflicts(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        admin = world.admin()
        url = f"{world.fhir}/Practitioner/doc-9"
        assert (await http.post(f"{url}/$hpd-withdraw", json=parameters(), headers=admin)).status_code == 200
        before = await _state(world, http)
        for operation, words in (
            ("$hpd-withdraw", "is already withdrawn since"),
            ("$hpd-suspend", "is withdrawn: it cannot become suspended (restore it first)"),
        ):
            response = await http.post(f"{url}/{operation}", json=parameters(), headers=admin)
            assert response.status_code == 409, response.text
            issue = response.json()["issue"][0]
            assert issue["code"] == "business-rule" and words in issue["diagnostics"]
        assert await _state(world, http) == before
        get = await http.get(f"{url}/$hpd-restore", params={"reason": "x"}, headers=admin)
        assert get.status_code == 405  # a change is a POST
        assert await _state(world, http) == before
        assert (await http.post(f"{url}/$hpd-restore", json=parameters("appeal"), headers=admin)).status_code == 200
        assert (await http.post(f"{url}/$hpd-suspend", json=parameters("inquiry"), headers=admin)).status_code == 200
        again = await http.post(f"{url}/$hpd-suspend", json=parameters("inquiry"), headers=admin)
        assert again.status_code == 409 and "already suspended" in again.text
        assert await practise_rows(world) == (1, 3)


async def test_operations_are_in_the_capability_statement(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        statement = (await http.get(f"{world.fhir}/metadata")).json()
        practitioner = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Practitioner")
        names = {op["name"] for op in practitioner.get("operation", [])}
        assert {"hpd-suspend", "hpd-withdraw", "hpd-restore"} <= names
