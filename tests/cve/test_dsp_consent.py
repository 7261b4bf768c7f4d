"""The DSP consent of the vaccination record over real HTTP (uvicorn on loopback) on SQLite and PostgreSQL: the
patient consents and their history appears in their DSP as a FHIR document filed by the server's sync task through
the DSP's MHD path; each new vaccination replaces it; withdrawing stops the updates (the last document stays); a
closed DSP gets nothing and the vaccinator sees no error; who may give the consent, and bad input.

The patients are certified identities (the DSP exists only for them) with an active DSP; a physician authorised by
each patient records their vaccinations over the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from esante.cli import app
from esante.cve.dsp_consent_document import HISTORY_IDENTIFIER
from esante.dsp.notices import NEW_DOCUMENT
from tests.cve.record_support import immunization
from tests.dsp.dsp_support import World, dsp_world, parameters, practitioner
from tests.dsp.test_notices import notices

CLASS = "urn:esante:dsp:document-class|vaccination-history"


@asynccontextmanager
async def world(db_url: str, folder: Path, interval: int = 1) -> AsyncIterator[World]:
    async with dsp_world(db_url, folder, cve_schedule="lu", cve_dsp_sync_interval=interval, db_pool_size=3) as w:
        yield w


async def _doctor(http: httpx.AsyncClient, w: World) -> dict[str, str]:
    return w.professional(await practitioner(http, w, "doc", 1))


async def _authorise(http: httpx.AsyncClient, w: World, pid: str) -> None:
    response = await http.post(
        f"{w.fhir}/Patient/{pid}/$cve-authorize",
        json=parameters(practitioner={"reference": "Practitioner/doc"}),
        headers=w.patient(pid),
    )
    assert response.status_code in (200, 201), response.text


async def _vaccinate(http: httpx.AsyncClient, w: World, doctor: dict[str, str], pid: str, cvx: str, day: str) -> str:
    body = immunization(pid, "historical", cvx=cvx, day=day, lot=None, expiry=None, performer=None)
    response = await http.post(f"{w.fhir}/Immunization", json=body, headers=doctor)
    assert response.status_code == 201, response.text  # whatever the DSP does, the vaccinator's write succeeds
    return str(response.json()["id"])


async def _consent(http: httpx.AsyncClient, w: World, pid: str, value: bool) -> httpx.Response:
    return await http.post(
        f"{w.fhir}/Patient/{pid}/$cve-dsp-consent", json=parameters(value=value), headers=w.patient(pid)
    )


async def _status(http: httpx.AsyncClient, w: World, pid: str) -> dict[str, Any]:
    response = await http.get(f"{w.fhir}/Patient/{pid}/$cve-dsp-status", headers=w.patient(pid))
    assert response.status_code == 200, response.text
    out: dict[str, Any] = {}
    for p in response.json()["parameter"]:
        value = next(v for k, v in p.items() if k.startswith("value"))
        out[p["name"]] = value["reference"] if isinstance(value, dict) else value
    return out


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the sync task did not get there in time")
        await asyncio.sleep(0.2)


async def _documents(http: httpx.AsyncClient, w: World, pid: str, status: str = "current") -> list[dict[str, Any]]:
    response = await http.get(
        f"{w.fhir}/DocumentReference",
        params={"patient": f"Patient/{pid}", "category": CLASS, "status": status},
        headers=w.patient(pid),
    )
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


async def _content(http: httpx.AsyncClient, w: World, pid: str, reference: dict[str, Any]) -> dict[str, Any]:
    url = reference["content"][0]["attachment"]["url"]
    response = await http.get(f"{w.fhir}/{url}", headers={**w.patient(pid), "Accept": "application/fhir+json"})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = orjson.loads(response.content)
    return document


def _vaccines(document: dict[str, Any]) -> list[str]:
    return sorted(
        e["resource"]["vaccineCode"]["coding"][0]["code"]
        for e in document["entry"]
        if e["resource"]["resourceType"] == "Immunization"
    )


async def test_consent_files_the_history_and_each_change_replaces_it(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w, httpx.AsyncClient(timeout=60) as http:
        await w.certified("lea", 1)
        doctor = await _doctor(http, w)
        await _authorise(http, w, "lea")
        await _vaccinate(http, w, doctor, "lea", "03", "1981-03-01")
        # no consent yet: the change is looked at and nothing goes to the DSP
        await _until(lambda: _state_is(http, w, "lea", "stopped"))
        assert await _documents(http, w, "lea") == []

        given = await _consent(http, w, "lea", True)
        assert given.status_code == 201, given.text
        consent_id = _param(given.json(), "consentRef")
        consent = (await http.get(f"{w.fhir}/{consent_id}", headers=w.patient("lea"))).json()
        assert {c["code"] for cat in consent["category"] for c in cat["coding"]} == {"59284-0", "dsp-sharing"}
        assert (await _consent(http, w, "lea", True)).status_code == 200  # already in force: the same
        status = await _until(lambda: _filed(http, w, "lea"))
        (first,) = await _documents(http, w, "lea")
        assert status["document"] == f"DocumentReference/{first['id']}" and status["consent"] is True
        assert first["identifier"][0] == {"system": HISTORY_IDENTIFIER, "value": "lea"}
        assert first["type"]["coding"][0]["code"] == "82593-5"
        assert first["content"][0]["attachment"]["contentType"] == "application/fhir+json"
        document = await _content(http, w, "lea", first)
        assert document["type"] == "document" and document["entry"][0]["resource"]["resourceType"] == "Composition"
        section = document["entry"][0]["resource"]["section"][0]
        assert section["code"]["coding"][0]["code"] == "11369-6" and len(section["entry"]) == 1
        assert _vaccines(document) == ["03"]
        # the filing is in the audit trail, by the CVE's job, for the patient
        events = await http.get(
            f"{w.fhir}/AuditEvent", params={"patient": "Patient/lea", "_count": "200"}, headers=w.patient("lea")
        )
        agents = [a.get("who", {}) for e in events.json().get("entry", []) for a in e["resource"].get("agent", [])]
        assert any("esante-cve-dsp-sync" in orjson.dumps(a).decode() for a in agents)

        # a new vaccination: the document is replaced, the old one superseded
        await _vaccinate(http, w, doctor, "lea", "115", "2024-06-01")
        status = await _until(lambda: _filed(http, w, "lea", not_document=first["id"]))
        (second,) = await _documents(http, w, "lea")
        assert second["relatesTo"] == [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{first['id']}"}}
        ]
        assert [d["id"] for d in await _documents(http, w, "lea", "superseded")] == [first["id"]]
        assert _vaccines(await _content(http, w, "lea", second)) == ["03", "115"]
        # the patient is told of each filing, the refiling too (docs/cve.md: chosen over silencing refilings)
        told = await notices(http, w.fhir, w.patient("lea"), "lea", NEW_DOCUMENT)
        assert len(told) == 2

        # withdrawn: no more updates; the last document stays current in the DSP
        withdrawn = await _consent(http, w, "lea", False)
        assert withdrawn.status_code == 200 and _param(withdrawn.json(), "consent") is False
        await _until(lambda: _state_is(http, w, "lea", "stopped"))
        assert (await _status(http, w, "lea"))["reason"] == "consent-withdrawn"
        await _vaccinate(http, w, doctor, "lea", "140", "2025-10-15")
        await _until(lambda: _state_is(http, w, "lea", "stopped"))
        await asyncio.sleep(1.5)
        assert [d["id"] for d in await _documents(http, w, "lea")] == [second["id"]]

        # consent again: the current history replaces the last document
        assert (await _consent(http, w, "lea", True)).status_code == 201
        await _until(lambda: _filed(http, w, "lea", not_document=second["id"]))
        (third,) = await _documents(http, w, "lea")
        assert _vaccines(await _content(http, w, "lea", third)) == ["03", "115", "140"]


async def test_closed_dsp_gets_nothing_and_the_vaccinator_sees_no_error(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w, httpx.AsyncClient(timeout=60) as http:
        await w.certified("max", 2)
        doctor = await _doctor(http, w)
        await _authorise(http, w, "max")
        assert (await _consent(http, w, "max", True)).status_code == 201
        await _until(lambda: _filed(http, w, "max"))  # the empty history: "no vaccination recorded"
        (empty,) = await _documents(http, w, "max")
        section = (await _content(http, w, "max", empty))["entry"][0]["resource"]["section"][0]
        assert "entry" not in section and section["emptyReason"]["coding"][0]["code"] == "nilknown"
        await w.lifecycle("max", "close")
        await _vaccinate(http, w, doctor, "max", "03", "1981-03-01")  # 201: the DSP is none of their business
        status = await _until(lambda: _state_is(http, w, "max", "waiting"))
        assert status["reason"] == "dsp-closed"
        rows = await w.sql(
            "SELECT COUNT(*) FROM resource WHERE res_type = 'DocumentReference' AND is_current AND NOT deleted"
        )
        assert int(rows[0][0]) == 1  # the document filed while the DSP was open, nothing more
        # the operator re-queues once the DSP is reopened (or the daily retry does it)
        await w.lifecycle("max", "reopen")
        await w.execute("UPDATE cve_dsp_sync SET next_attempt_at = 0 WHERE patient_id = ?", "max")
        await _until(lambda: _filed(http, w, "max", not_document=empty["id"]))


async def test_who_may_consent_and_bad_input(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w, httpx.AsyncClient(timeout=60) as http:
        await w.certified("ana", 3)
        await w.certified("bob", 4)
        doctor = await _doctor(http, w)
        url = f"{w.fhir}/Patient/ana/$cve-dsp-consent"
        for headers in (doctor, w.patient("bob"), w.system()):
            refused = await http.post(url, json=parameters(value=True), headers=headers)
            assert refused.status_code == 403, refused.text
        for body in (
            {"resourceType": "Parameters"},
            parameters(value="yes"),
            parameters(value=True, other=True),
            {"resourceType": "Patient"},
        ):
            bad = await http.post(url, json=body, headers=w.patient("ana"))
            assert bad.status_code == 400, bad.text
            assert bad.json()["resourceType"] == "OperationOutcome"
        assert (await http.get(url, headers=w.patient("ana"))).status_code == 405  # GET of a state change
        status = await http.get(f"{w.fhir}/Patient/ana/$cve-dsp-status", headers=doctor)
        assert status.status_code == 403
        assert (await _status(http, w, "ana")) == {"consent": False, "state": "none"}
        # the consent is never written through the plain API, not even by the patient or an all-rights client
        consent = {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "urn:esante:cve:consent", "code": "dsp-sharing"}]}],
            "patient": {"reference": "Patient/ana"},
        }  # fmt: skip
        for headers in (w.patient("ana"), w.system()):
            assert (await http.post(f"{w.fhir}/Consent", json=consent, headers=headers)).status_code == 403
        # $cve-revoke (the CVE's authorisation operation) withdraws it too
        given = await _consent(http, w, "ana", True)
        consent_id = _param(given.json(), "consentRef")
        revoked = await http.post(f"{w.fhir}/{consent_id}/$cve-revoke", json={"resourceType": "Parameters"},
                                  headers=w.patient("ana"))  # fmt: skip
        assert revoked.status_code == 200 and revoked.json()["status"] == "inactive"
        assert (await _status(http, w, "ana"))["consent"] is False
        await _until(lambda: _state_is(http, w, "ana", "stopped"))


def test_cli_dsp_sync(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the server's task off, ``esante cve dsp-sync`` files what is queued; ``--requeue`` refiles nothing
    unchanged."""

    async def prepare() -> None:
        async with world(db_url, tmp_path, interval=0) as w, httpx.AsyncClient(timeout=60) as http:
            await w.certified("eve", 5)
            doctor = await _doctor(http, w)
            await _authorise(http, w, "eve")
            await _vaccinate(http, w, doctor, "eve", "03", "1981-03-01")
            assert (await _consent(http, w, "eve", True)).status_code == 201
            assert (await _status(http, w, "eve"))["state"] == "pending"

    asyncio.run(prepare())
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ESANTE_CVE_SCHEDULE", "lu")
    runner = CliRunner()
    done = runner.invoke(app, ["cve", "dsp-sync", "--db", db_url])
    assert done.exit_code == 0, done.output
    assert "filed 1," in done.output and "filed 1" in done.output.split("queue:")[1]
    again = runner.invoke(app, ["cve", "dsp-sync", "--db", db_url, "--requeue"])
    assert again.exit_code == 0, again.output
    assert "filed 0, unchanged 1" in again.output
    assert runner.invoke(app, ["cve", "dsp-sync", "--db", db_url, "--limit", "0"]).exit_code == 2


def _param(body: dict[str, Any], name: str) -> Any:
    for p in body["parameter"]:
        if p["name"] == name:
            value = next(v for k, v in p.items() if k.startswith("value"))
            return value["reference"] if isinstance(value, dict) else value
    return None


async def _state_is(http: httpx.AsyncClient, w: World, pid: str, state: str) -> dict[str, Any] | None:
    status = await _status(http, w, pid)
    return status if status["state"] == state else None


async def _filed(http: httpx.AsyncClient, w: World, pid: str, not_document: str | None = None) -> dict[str, Any] | None:
    status = await _status(http, w, pid)
    if status["state"] != "filed" or "document" not in status:
        return None
    if not_document is not None and status["document"] == f"DocumentReference/{not_document}":
        return None
    return status
