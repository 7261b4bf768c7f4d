"""The right to practise cascade, observed from the outside over real HTTP (uvicorn on loopback), on SQLite and
PostgreSQL: a professional signed in through the authorization server, a system client acting for them, and an
HPD administrator suspending, withdrawing and restoring their right with the FHIR operations."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import httpx

from esante.hpd.practise import standing_checks
from esante.security.operator_tokens import OperatorTokenError, plan_token
from esante.security.tokens import principal
from tests.hpd.practise_support import (
    World,
    audit_events,
    bearer,
    detail,
    directory_entry,
    ehealth_id,
    parameters,
    practise_rows,
    practise_world,
    professional,
    sign_in,
    sign_in_tokens,
    value,
)
from tests.security.oauth_support import system_client

SCOPES = "system/Practitioner.rs system/PractitionerRole.rs"


async def _acting_for(world: World, http: httpx.AsyncClient, client: object, ehid: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "scope": "system/Practitioner.rs system/PractitionerRole.rs",
        "national_provider_identifier": ehid,
        **client.auth_params(world.server.token_url),  # type: ignore[attr-defined]
    }
    return await http.post(world.server.token_url, data=data)


async def next_second() -> None:
    await asyncio.sleep(1.05)


async def _refresh(world: World, http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "pro-app"}
    return await http.post(world.server.token_url, data=data)


async def _get(http: httpx.AsyncClient, world: World, path: str, headers: dict[str, str]) -> httpx.Response:
    return await http.get(f"{world.fhir}/{path}", headers=headers)


async def test_withdrawal_stops_every_grant_at_once_and_restoration_brings_the_directory_back(
    db_url: str, tmp_path: Path
) -> None:
    async with practise_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        ehid = ehealth_id(1)
        await directory_entry(world, http, "doc-1", ehid)
        anne = await professional(world, "anne.doc", "doc-1", ehid)
        hospital = await system_client(world.server, "hospital-1", scopes=SCOPES, kind="hospital")

        # before: the professional reads the directory with the token of their sign-in, and the hospital's
        # software acting for them too
        tokens = await sign_in_tokens(world, http, anne)
        own = bearer(tokens["access_token"])
        assert (await _get(http, world, "Practitioner/doc-1", own)).status_code == 200
        granted = await _acting_for(world, http, hospital, ehid)
        assert granted.status_code == 200, granted.text
        acting = bearer(granted.json()["access_token"])
        assert (await _get(http, world, "PractitionerRole?practitioner=doc-1", acting)).status_code == 200

        # the withdrawal, by an HPD administrator
        answer = await http.post(
            f"{world.fhir}/Practitioner/doc-1/$hpd-withdraw",
            json=parameters("struck off by the disciplinary council", (date.today() - timedelta(days=1)).isoformat()),
            headers=world.admin(),
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert value(result, "status") == "withdrawn" and value(result, "previous") == "active"
        assert value(result, "role") == {"reference": "PractitionerRole/doc-1-role-a"}  # role b was inactive
        assert value(result, "accountsRevoked") == 1 and value(result, "refreshTokensRevoked") == 1

        # the very next request with the same token: refused, naming why
        refused = await _get(http, world, "Practitioner/doc-1", own)
        assert refused.status_code == 401
        issue = refused.json()["issue"][0]
        assert issue["code"] == "suspended"
        assert issue["details"]["coding"][0]["code"] == "right_to_practise_withdrawn"
        assert "right to practise of this professional is withdrawn since" in issue["diagnostics"]
        assert "invalid_token" in refused.headers["www-authenticate"]
        # the system client acting for them: its token is refused, and it gets no new one
        assert (await _get(http, world, "PractitionerRole", acting)).status_code == 401
        again = await _acting_for(world, http, hospital, ehid)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        assert "withdrawn" in again.json()["error_description"]
        # the hospital's own tokens (acting for nobody) still work: only the professional lost their right
        own_client = await http.post(
            world.server.token_url,
            data={"grant_type": "client_credentials", **hospital.auth_params(world.server.token_url)},
        )
        hospital_own = bearer(own_client.json()["access_token"])
        assert (await _get(http, world, "Practitioner/doc-1", hospital_own)).status_code == 200
        # refresh refused, with the reason; sign-in refused with a clear message
        refresh = await _refresh(world, http, tokens["refresh_token"])
        assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
        assert "withdrawn" in refresh.json()["error_description"]
        page = await sign_in(world, http, anne)
        assert "right to practise of this professional is withdrawn" in page.text and "decision" not in page.text
        # introspection agrees with the gate
        introspect = await http.post(
            f"{world.server.base}/oauth/introspect",
            data={"token": tokens["access_token"], **hospital.auth_params(f"{world.server.base}/oauth/introspect")},
        )
        assert introspect.json() == {"active": False}
        # the operator's tokens too
        async with world.database.read() as conn:
            try:
                await plan_token(conn, principal(f"professional:{ehid}"), None, [], standing_checks())
            except OperatorTokenError as error:
                assert "withdrawn" in str(error)
            else:
                raise AssertionError("an operator token was planned for a withdrawn professional")

        # the directory follows
        practitioner = (await _get(http, world, "Practitioner/doc-1", world.system())).json()
        assert practitioner["active"] is False
        extension = next(e for e in practitioner["extension"] if e["url"] == "urn:esante:hpd:right-to-practise")
        assert {"url": "status", "valueCode": "withdrawn"} in extension["extension"]
        assert all(p["url"] != "reason" for p in extension["extension"])  # the reason is not public
        for role in ("a", "b"):
            held = await _get(http, world, f"PractitionerRole/doc-1-role-{role}", world.system())
            assert held.json()["active"] is False

        # audited: the decision, naming the agent, the professional, old and new status, the reason
        event_url = f"{world.fhir}/{value(result, 'auditEvent')['reference']}"
        event = (await http.get(event_url, headers=world.admin())).json()
        assert event["type"]["code"] == "110113"
        assert {"system": "urn:esante:hpd-practise", "code": "withdraw"} in event["subtype"]
        assert event["agent"][0]["who"]["identifier"]["value"] == "staff:hpd-admin-1"
        assert event["entity"][0]["what"]["reference"] == "Practitioner/doc-1"
        assert event["entity"][0]["what"]["identifier"]["value"] == ehid
        assert detail(event, "old-status") == "active" and detail(event, "new-status") == "withdrawn"
        assert detail(event, "reason") == "struck off by the disciplinary council"
        assert detail(event, "source") == "administrator"
        # ... the refused sign-in and the refused request too
        logins = await audit_events(world, http, subtype="http://dicom.nema.org/resources/ontology/DCM|110122")
        assert any(e.get("outcomeDesc") == "right_to_practise_withdrawn" for e in logins)
        refusals = [e for e in await audit_events(world, http, outcome="4") if e["type"]["code"] == "rest"]
        assert refusals, "the refused request was not audited"

        # restoration: the roles it held come back, the old grants stay dead, a new sign-in works
        restored = await http.post(
            f"{world.fhir}/Practitioner/doc-1/$hpd-restore",
            json=parameters("decision annulled on appeal"),
            headers=world.admin(),
        )
        assert restored.status_code == 200, restored.text
        assert value(restored.json(), "role") == {"reference": "PractitionerRole/doc-1-role-a"}
        assert (await _get(http, world, "Practitioner/doc-1", world.system())).json()["active"] is True
        assert (await _get(http, world, "PractitionerRole/doc-1-role-a", world.system())).json()["active"] is True
        assert (await _get(http, world, "PractitionerRole/doc-1-role-b", world.system())).json()["active"] is False
        stale = await _get(http, world, "Practitioner/doc-1", own)
        assert stale.status_code == 401
        assert stale.json()["issue"][0]["details"]["coding"][0]["code"] == "right_to_practise_revoked"
        assert (await _get(http, world, "Practitioner/doc-1", acting)).status_code == 401
        assert (await _refresh(world, http, tokens["refresh_token"])).status_code == 400
        await next_second()  # grants carry their issue time in seconds: the loss's second stays refused
        fresh = await sign_in_tokens(world, http, anne)
        assert (await _get(http, world, "Practitioner/doc-1", bearer(fresh["access_token"]))).status_code == 200
        assert (await _refresh(world, http, fresh["refresh_token"])).status_code == 200
        regranted = await _acting_for(world, http, hospital, ehid)
        assert regranted.status_code == 200
        acting_again = bearer(regranted.json()["access_token"])
        assert (await _get(http, world, "Practitioner/doc-1", acting_again)).status_code == 200
        assert await practise_rows(world) == (1, 2)


async def test_suspension_then_withdrawal_then_restoration(db_url: str, tmp_path: Path) -> None:
    async with practise_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        ehid = ehealth_id(2)
        await directory_entry(world, http, "doc-2", ehid)
        bob = await professional(world, "bob.doc", "doc-2", ehid)
        tokens = await sign_in_tokens(world, http, bob)
        own = bearer(tokens["access_token"])
        assert (await _get(http, world, "Practitioner/doc-2", own)).status_code == 200

        suspended = await http.post(
            f"{world.fhir}/Practitioner/doc-2/$hpd-suspend", json=parameters("pending inquiry"), headers=world.admin()
        )
        assert suspended.status_code == 200, suspended.text
        refused = await _get(http, world, "Practitioner/doc-2", own)
        assert refused.status_code == 401
        assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "right_to_practise_suspended"
        page = await sign_in(world, http, bob)
        assert "right to practise of this professional is suspended" in page.text
        # a role written during the suspension is held inactive, and comes back with the restoration
        role = {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": "Practitioner/doc-2"},
            "active": True,
        }
        created = await http.post(f"{world.fhir}/PractitionerRole", json=role, headers=world.system())
        assert created.status_code == 201 and created.json()["active"] is False
        # an update that sets the Practitioner active again is brought back to the recorded status
        current = (await _get(http, world, "Practitioner/doc-2", world.system())).json()
        forced = await http.put(
            f"{world.fhir}/Practitioner/doc-2", json={**current, "active": True}, headers=world.system()
        )
        assert forced.status_code == 200 and forced.json()["active"] is False

        withdrawn = await http.post(
            f"{world.fhir}/Practitioner/doc-2/$hpd-withdraw", json=parameters("struck off"), headers=world.admin()
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert value(withdrawn.json(), "previous") == "suspended"
        assert value(withdrawn.json(), "role") == []  # the roles were already held by the suspension

        restored = await http.post(
            f"{world.fhir}/Practitioner/doc-2/$hpd-restore", json=parameters("reinstated"), headers=world.admin()
        )
        assert restored.status_code == 200, restored.text
        roles = {r["reference"] for r in value(restored.json(), "role")}
        assert roles == {"PractitionerRole/doc-2-role-a", f"PractitionerRole/{created.json()['id']}"}
        assert (await _get(http, world, "Practitioner/doc-2", own)).status_code == 401  # issued before the loss
        await next_second()
        fresh = await sign_in_tokens(world, http, bob)
        assert (await _get(http, world, "Practitioner/doc-2", bearer(fresh["access_token"]))).status_code == 200

        subtypes = [
            next(c["code"] for c in e["subtype"] if c["system"] == "urn:esante:hpd-practise")
            for e in await audit_events(world, http, type="http://dicom.nema.org/resources/ontology/DCM|110113")
            if any(c.get("system") == "urn:esante:hpd-practise" for c in e.get("subtype", []))
        ]
        assert sorted(subtypes) == ["restore", "suspend", "withdraw"]
        assert await practise_rows(world) == (1, 3)


async def test_acting_for_a_professional_needs_a_valid_ehealth_id(db_url: str, tmp_path: Path) -> None:
    async with practise_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        hospital = await system_client(world.server, "hospital-2", scopes=SCOPES, kind="hospital")
        for bad in ("123", "2850000013x", ehealth_id(3)[:-1] + str((int(ehealth_id(3)[-1]) + 1) % 10)):
            response = await _acting_for(world, http, hospital, bad)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_request"
            assert "national_provider_identifier" in response.json()["error_description"]
        granted = await _acting_for(world, http, hospital, ehealth_id(3))
        assert granted.status_code == 200
        claims = world.server.verify(granted.json()["access_token"])
        assert claims.iua is not None and claims.iua.national_provider_identifier == ehealth_id(3)
        assert claims.role == "system"
