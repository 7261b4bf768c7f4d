"""The grants' operations over HTTP, on both databases: what the patient and assistants declare (trusted circle,
MR03, blocks, the opt-out, assistants), every bad input a 4xx OperationOutcome naming the problem with nothing
written, the Consent profile as stored, the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from esante.dsp.grants_model import KIND_SYSTEM, ROLE_SYSTEM
from tests.dsp.dsp_support import MATRICULE, World, details_code, dsp_world, outcome, parameters, practitioner


async def _state(world: World) -> tuple[Any, ...]:
    consents = await world.sql("SELECT COUNT(*) FROM resource WHERE res_type = 'Consent'")
    grants = await world.sql("SELECT rid, status, ends_at FROM dsp_grant ORDER BY rid")
    delegations = await world.sql("SELECT account_id, patient_id, revoked_at FROM account_delegation ORDER BY id")
    return consents[0][0], [tuple(r) for r in grants], [tuple(r) for r in delegations]


def _grant(kind: str, **more: Any) -> dict[str, Any]:
    return parameters(kind=("valueCode", kind), **more)


def _pract(pid: str) -> dict[str, str]:
    return {"reference": f"Practitioner/{pid}"}


async def test_patient_grants_and_bad_inputs(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        gp = await practitioner(http, world, "gp", 1)
        await practitioner(http, world, "gp2", 2)
        nurse = await practitioner(http, world, "nurse", 3, "infirmier")
        anna = await world.certified("anna", 1)
        await world.certified("refuser", 2, active_dsp=False)
        url = f"{world.fhir}/Patient/{anna}/$dsp-grant"
        me = world.patient(anna)

        created = await http.post(url, json=_grant("trusted-circle", practitioner=_pract("gp")), headers=me)
        assert created.status_code == 201, created.text
        consent = created.json()
        assert consent["status"] == "active" and consent["patient"] == {"reference": f"Patient/{anna}"}
        assert {"system": KIND_SYSTEM, "code": "trusted-circle"} in consent["category"][1]["coding"]
        actor = consent["provision"]["actor"][0]
        assert (
            actor["reference"] == {"reference": "Practitioner/gp"}
            and actor["role"]["coding"][0]["system"] == ROLE_SYSTEM
        )
        assert consent["provision"]["type"] == "permit" and "end" not in consent["provision"]["period"]
        # the same grant again: the one in force (200), nothing new
        same = await http.post(
            url,
            json=_grant("trusted-circle", practitioner={"system": "urn:oid:1.3.182.2.8.1", "value": gp}),
            headers=me,
        )
        assert same.status_code == 200 and same.json()["id"] == consent["id"]
        before = await _state(world)

        bad: list[tuple[dict[str, Any], int, str | None]] = [
            (parameters(), 400, None),
            (_grant("friends", practitioner=_pract("gp")), 400, None),
            (_grant("relationship", practitioner=_pract("gp")), 400, None),
            (_grant("emergency", practitioner=_pract("gp")), 400, None),
            (_grant("trusted-circle"), 400, "dsp-practitioner-required"),
            (_grant("trusted-circle", practitioner=_pract("ghost")), 404, "dsp-unknown-practitioner"),
            (_grant("trusted-circle", practitioner={"reference": "Patient/x"}), 400, None),
            (_grant("trusted-circle", practitioner={"system": "urn:other", "value": "1"}), 400, None),
            (
                _grant("trusted-circle", practitioner={"system": "urn:oid:1.3.182.2.8.1", "value": "0000000000"}),
                404,
                None,
            ),
            (_grant("referent", practitioner=_pract("nurse")), 422, "dsp-referent-physician"),
            (_grant("emergency-opt-out", practitioner=_pract("gp")), 400, "dsp-practitioner-unexpected"),
            (_grant("assistant"), 400, "dsp-assistant-required"),
            (_grant("assistant", assistant={"reference": f"Patient/{anna}"}), 422, "dsp-self-assistant"),
            (_grant("assistant", assistant={"reference": "Patient/refuser"}), 422, "dsp-assistant-account"),
            (_grant("assistant", assistant={"reference": "Patient/ghost"}), 404, "dsp-unknown-assistant"),
            (_grant("block", assistant={"reference": "Patient/refuser"}, practitioner=_pract("gp")), 400, None),
            (
                {
                    "resourceType": "Parameters",
                    "parameter": [{"name": "kind", "valueCode": "block"}, {"name": "kind", "valueCode": "block"}],
                },
                400,
                None,
            ),
            ({"resourceType": "Parameters", "parameter": [{"name": "kind"}]}, 400, None),
            ({"resourceType": "Parameters", "parameter": [{"name": "kind", "valueInteger": 3}]}, 400, None),
            ({"resourceType": "Patient"}, 400, None),
        ]
        for body, status, code in bad:
            answer = outcome(await http.post(url, json=body, headers=me), status)
            if code:
                assert details_code(answer) == code, (body, answer)
        # who may not: professionals, establishments, other patients; GET is refused for a change
        for headers in (world.professional(gp), world.system(), world.patient("refuser")):
            outcome(await http.post(url, json=_grant("block", practitioner=_pract("gp")), headers=headers), 403)
        outcome(await http.get(url + "?kind=block&practitioner=Practitioner/gp", headers=me), 405)
        # a refused DSP has no grants to manage; a patient without a DSP neither
        await http.post(
            f"{world.fhir}/Patient/refuser/$dsp-refuse", json=parameters(), headers=world.patient("refuser")
        )
        refused = await http.post(
            f"{world.fhir}/Patient/refuser/$dsp-grant",
            json=_grant("block", practitioner=_pract("gp")),
            headers=world.patient("refuser"),
        )
        assert details_code(outcome(refused, 409)) == "dsp-refused"
        outcome(
            await http.post(
                f"{world.fhir}/Patient/nobody/$dsp-grant",
                json=_grant("block", practitioner=_pract("gp")),
                headers=world.patient("nobody"),
            ),
            404,
        )
        assert await _state(world) == before, "refusals write nothing"

        # one médecin référent at a time
        first = await http.post(url, json=_grant("referent", practitioner=_pract("gp")), headers=me)
        second = await http.post(url, json=_grant("referent", practitioner=_pract("gp2")), headers=me)
        assert first.status_code == 201 and second.status_code == 201
        old = await http.get(f"{world.fhir}/Consent/{first.json()['id']}", headers=me)
        assert old.json()["status"] == "inactive"
        # revocations: only the holder's own grants, once
        revoke = f"{world.fhir}/Consent/{consent['id']}/$dsp-revoke"
        outcome(await http.post(revoke, json=parameters(), headers=world.patient("refuser")), 404)
        outcome(await http.post(f"{world.fhir}/Consent/ghost/$dsp-revoke", json=parameters(), headers=me), 404)
        outcome(await http.post(revoke, json=parameters(why="x"), headers=me), 400)
        assert (await http.post(revoke, json=parameters(), headers=me)).status_code == 200
        outcome(await http.post(revoke, json=parameters(), headers=me), 409)
        outcome(
            await http.post(
                f"{world.fhir}/Patient/{anna}/$dsp-emergency-opt-out", json=parameters(value=False), headers=me
            ),
            409,
        )
        outcome(
            await http.post(
                f"{world.fhir}/Patient/{anna}/$dsp-emergency-opt-out", json=parameters(value="yes"), headers=me
            ),
            400,
        )

        # every change is in the audit trail
        trail = await http.get(
            f"{world.fhir}/AuditEvent?subtype=urn:esante:dsp-event|grant,urn:esante:dsp-event|revoke",
            headers=world.staff("administrator", scope="user/AuditEvent.rs"),
        )
        assert trail.json()["total"] >= 4
        # the patient reads their grants as FHIR Consents
        mine = await http.get(f"{world.fhir}/Consent?category={KIND_SYSTEM}|referent", headers=me)
        assert mine.json()["total"] == 2
        assert nurse


async def test_assistants(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        await practitioner(http, world, "gp", 1)
        anna = await world.certified("anna", 1)
        await world.certified("dora", 2)
        await world.certified("emil", 3)
        for account, person in (("acct-dora", "dora"), ("acct-emil", "emil")):
            await world.execute(
                "INSERT INTO account (id, kind, username, status, patient_id, roles, totp_enabled, failed_logins,"
                " tokens_valid_after, created_at, updated_at) VALUES (?, 'patient', ?, 'active', ?, '', ?, 0, 0, 0, 0)",
                account,
                person,
                person,
                False,
            )
        url = f"{world.fhir}/Patient/{anna}/$dsp-grant"
        assistant = world.assistant("acct-dora", "dora", anna)
        # not yet appointed: the gate refuses the delegation
        outcome(await http.get(f"{world.fhir}/Patient/{anna}/$dsp-status", headers=assistant), 401)
        appointed = await http.post(
            url, json=_grant("assistant", assistant={"reference": "Patient/dora"}), headers=world.patient(anna)
        )
        assert appointed.status_code == 201, appointed.text
        assert (await http.get(f"{world.fhir}/Patient/{anna}/$dsp-status", headers=assistant)).status_code == 200
        # the same rights as the holder ...
        trusted = await http.post(url, json=_grant("trusted-circle", practitioner=_pract("gp")), headers=assistant)
        assert trusted.status_code == 201
        # ... except appointing assistants (default)
        refused = await http.post(
            url, json=_grant("assistant", assistant={"reference": "Patient/emil"}), headers=assistant
        )
        assert details_code(outcome(refused, 403)) == "dsp-assistant-appoints"
        outcome(
            await http.post(
                f"{world.fhir}/Consent/{appointed.json()['id']}/$dsp-revoke", json=parameters(), headers=assistant
            ),
            403,
        )
        # the holder removes the assistant: the next request is refused
        removed = await http.post(
            f"{world.fhir}/Consent/{appointed.json()['id']}/$dsp-revoke", json=parameters(), headers=world.patient(anna)
        )
        assert removed.status_code == 200
        outcome(await http.get(f"{world.fhir}/Patient/{anna}/$dsp-status", headers=assistant), 401)


async def test_assistants_may_appoint_when_configured(db_url: str, tmp_path: Path) -> None:
    async with (
        dsp_world(db_url, tmp_path, dsp_assistants_may_appoint=True) as world,
        httpx.AsyncClient(timeout=30) as http,
    ):
        anna = await world.certified("anna", 1)
        await world.certified("dora", 2)
        await world.certified("emil", 3)
        for account, person in (("acct-dora", "dora"), ("acct-emil", "emil")):
            await world.execute(
                "INSERT INTO account (id, kind, username, status, patient_id, roles, totp_enabled, failed_logins,"
                " tokens_valid_after, created_at, updated_at) VALUES (?, 'patient', ?, 'active', ?, '', ?, 0, 0, 0, 0)",
                account,
                person,
                person,
                False,
            )
        url = f"{world.fhir}/Patient/{anna}/$dsp-grant"
        await http.post(
            url, json=_grant("assistant", assistant={"reference": "Patient/dora"}), headers=world.patient(anna)
        )
        by_assistant = await http.post(
            url,
            json=_grant("assistant", assistant={"reference": "Patient/emil"}),
            headers=world.assistant("acct-dora", "dora", anna),
        )
        assert by_assistant.status_code == 201, by_assistant.text


async def test_professional_declarations_bad_inputs(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        gp = await practitioner(http, world, "gp", 1)
        anna = await world.certified("anna", 1)
        pending = await world.certified("pending", 2, active_dsp=False)
        before = await _state(world)
        pro = world.professional(gp)
        type_level = f"{world.fhir}/Patient/$dsp-relationship"
        cases = [
            (type_level, parameters(), pro, 400),
            (type_level, parameters(patient={"system": "urn:other", "value": "1"}), pro, 400),
            (type_level, parameters(patient={"system": MATRICULE, "value": "00000000000"}), pro, 404),
            (
                f"{world.fhir}/Patient/{anna}/$dsp-relationship",
                parameters(patient={"system": MATRICULE, "value": world.matricules[anna]}),
                pro,
                400,
            ),
            (f"{world.fhir}/Patient/ghost/$dsp-relationship", parameters(), pro, 404),
            (f"{world.fhir}/Patient/{pending}/$dsp-relationship", parameters(), pro, 409),
            (f"{world.fhir}/Patient/{pending}/$dsp-emergency", parameters(reason="x"), pro, 409),
            (f"{world.fhir}/Patient/{anna}/$dsp-relationship", parameters(), world.patient(anna), 403),
            (f"{world.fhir}/Patient/{anna}/$dsp-relationship", parameters(), world.system(), 403),
            (f"{world.fhir}/Patient/{anna}/$dsp-relationship", parameters(), world.professional("2869999990"), 403),
        ]
        for url, body, headers, status in cases:
            outcome(await http.post(url, json=body, headers=headers), status)
        assert await _state(world) == before
        by_matricule = await http.post(
            type_level, json=parameters(patient={"system": MATRICULE, "value": world.matricules[anna]}), headers=pro
        )
        assert by_matricule.status_code == 201 and by_matricule.json()["patient"]["reference"] == f"Patient/{anna}"
