"""The DSP's lifecycle over HTTP, on both databases: opened pending by the certified identity's store hook, the
refusal window (documents refused with a clear OperationOutcome, nothing stored), early activation, refusal, the
end of the window without any job, close and reopen, every refused change a 4xx with the data unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.dsp.dsp_support import World, details_code, document, dsp_world, outcome, parameters

DAY = 86400


async def _status(http: httpx.AsyncClient, world: World, patient: str) -> dict[str, Any]:
    response = await http.get(f"{world.fhir}/Patient/{patient}/$dsp-status", headers=world.patient(patient))
    assert response.status_code == 200, response.text
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in response.json()["parameter"]}


async def _post(
    http: httpx.AsyncClient, world: World, patient: str, op: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        f"{world.fhir}/Patient/{patient}/${op}", json=parameters(), headers=headers or world.patient(patient)
    )


async def _documents(world: World, patient: str) -> int:
    rows = await world.sql(
        "SELECT COUNT(*) FROM idx_reference WHERE res_type = 'DocumentReference' AND param = 'patient'"
        " AND target_id = ?",
        patient,
    )
    return int(rows[0][0])


async def test_pending_window_activation_refusal_close_reopen(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        anna = await world.certified("anna", 1, active_dsp=False)
        status = await _status(http, world, anna)
        assert status["status"] == "pending" and status["acceptsDocuments"] is False and "refusalWindowEnds" in status

        # a pending DSP accepts no document: 409 naming why, nothing stored
        refused = await http.post(
            f"{world.fhir}/DocumentReference", json=document("x", anna, "prescription"), headers=world.system()
        )
        assert details_code(outcome(refused, 409)) == "dsp-not-open"
        assert await _documents(world, anna) == 0

        # refusals of changes the state cannot take, data unchanged
        for op, code in (("dsp-close", "dsp-pending"), ("dsp-reopen", "dsp-pending")):
            assert details_code(outcome(await _post(http, world, anna, op), 409)) == code
        assert (await _status(http, world, anna))["status"] == "pending"

        # the patient opens it early
        assert (await _post(http, world, anna, "dsp-activate")).status_code == 200
        assert (await _status(http, world, anna))["status"] == "active"
        created = await http.post(
            f"{world.fhir}/DocumentReference", json=document("x", anna, "prescription"), headers=world.system()
        )
        assert created.status_code == 201, created.text
        assert details_code(outcome(await _post(http, world, anna, "dsp-refuse"), 409)) == "dsp-window-over"

        # close: no new document, kept for the retention period
        closed = await _post(http, world, anna, "dsp-close")
        assert closed.status_code == 200
        status = await _status(http, world, anna)
        assert status["status"] == "closed" and "retentionUntil" in status
        again = await http.post(
            f"{world.fhir}/DocumentReference", json=document("y", anna, "prescription"), headers=world.system()
        )
        assert details_code(outcome(again, 409)) == "dsp-closed"
        assert await _documents(world, anna) == 1
        # the patient still reads their own content
        own = await http.get(f"{world.fhir}/DocumentReference?patient=Patient/{anna}", headers=world.patient(anna))
        assert own.json()["total"] == 1
        assert details_code(outcome(await _post(http, world, anna, "dsp-close"), 409)) == "dsp-closed"
        assert (await _post(http, world, anna, "dsp-reopen")).status_code == 200
        assert (await _status(http, world, anna))["status"] == "active"


async def test_refusal_and_the_end_of_the_window(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        ben = await world.certified("ben", 2, active_dsp=False)
        cleo = await world.certified("cleo", 3, active_dsp=False)
        assert (await _post(http, world, ben, "dsp-refuse")).status_code == 200
        assert (await _status(http, world, ben))["status"] == "refused"
        refused = await http.post(
            f"{world.fhir}/DocumentReference", json=document("b1", ben, "prescription"), headers=world.system()
        )
        assert details_code(outcome(refused, 409)) == "dsp-refused"
        assert details_code(outcome(await _post(http, world, ben, "dsp-refuse"), 409)) == "dsp-refused"

        # no job needed: 30 days later the pending DSP is open
        world.clock.advance(30 * DAY + 1)
        status = await _status(http, world, cleo)
        assert status["status"] == "active" and status["acceptsDocuments"] is True
        assert (
            await http.post(
                f"{world.fhir}/DocumentReference", json=document("c1", cleo, "prescription"), headers=world.system()
            )
        ).status_code == 201
        assert (await _status(http, world, ben))["status"] == "refused", "a refusal is final"
        # ... unless the person asks for their DSP themself
        assert (await _post(http, world, ben, "dsp-activate")).status_code == 200
        assert (await _status(http, world, ben))["status"] == "active"


async def test_only_the_holder_and_assistants(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        anna = await world.certified("anna", 1, active_dsp=False)
        other = await world.certified("other", 2)
        for headers in (world.patient(other), world.system(), world.professional("2860000011")):
            outcome(await http.get(f"{world.fhir}/Patient/{anna}/$dsp-status", headers=headers), 403)
            outcome(await _post(http, world, anna, "dsp-activate", headers), 403)
        # GET on a state-changing operation, unknown parameters, a patient without a DSP
        outcome(await http.get(f"{world.fhir}/Patient/{anna}/$dsp-close", headers=world.patient(anna)), 405)
        bad = await http.post(
            f"{world.fhir}/Patient/{anna}/$dsp-close", json=parameters(when="now"), headers=world.patient(anna)
        )
        outcome(bad, 400)
        not_json = await http.post(
            f"{world.fhir}/Patient/{anna}/$dsp-close", json={"resourceType": "Patient"}, headers=world.patient(anna)
        )
        outcome(not_json, 400)
        outcome(await http.get(f"{world.fhir}/Patient/nobody/$dsp-status", headers=world.patient("nobody")), 404)
        assert (await _status(http, world, anna))["status"] == "pending"
