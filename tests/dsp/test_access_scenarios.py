"""The DSP access rule's combinations and writes over HTTP, on both databases: a withdrawn right to practise then
restored (the grants come back untouched), an emergency access (read-only, essential, notified to the patient,
an AuthZ-Consent AuditEvent per use) and its refusal after the opt-out, the end of a relationship, the patient's
revocation, what professionals may write (habilitation, confidentiality labels, blocks), deletes and grant
Consents refused through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from esante.dsp.access_rule import PRACTITIONER, PROFESSIONS
from esante.fhir.context import RequestContext
from esante.hpd.practise import Agent, Source, change_right_to_practise
from esante.security.policy import Caller
from tests.dsp.dsp_support import (
    World,
    binary,
    details_code,
    document,
    dsp_world,
    ids,
    outcome,
    parameters,
    practitioner,
    put,
)

DAY = 86400


async def grant(http: httpx.AsyncClient, world: World, patient: str, kind: str, who: str | None = None) -> str:
    body = parameters(
        kind=("valueCode", kind), **({"practitioner": {"reference": f"Practitioner/{who}"}} if who else {})
    )
    response = await http.post(f"{world.fhir}/Patient/{patient}/$dsp-grant", json=body, headers=world.patient(patient))
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def visible(http: httpx.AsyncClient, world: World, headers: dict[str, str], patient: str) -> set[str]:
    response = await http.get(f"{world.fhir}/DocumentReference?patient=Patient/{patient}&_count=50", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body.get("entry", []))
    return {r.split("/")[1] for r in ids(body)}


async def test_withdrawn_right_to_practise_then_restored(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        doctor = await practitioner(http, world, "wd", 1)
        anna = await world.certified("anna", 1)
        await put(http, world, document("d1", anna, "consultation-report"))
        consent = await grant(http, world, anna, "trusted-circle", "wd")
        assert await visible(http, world, world.professional(doctor), anna) == {"d1"}
        before = (await http.get(f"{world.fhir}/Consent/{consent}", headers=world.patient(anna))).json()

        agent = Agent("hpd-admin", "staff")
        async with world.database.transaction() as conn:
            await change_right_to_practise(
                world.store.session(conn),
                "wd",
                "withdrawn",
                reason="decision 1",
                source=Source.ADMINISTRATOR,
                agent=agent,
            )
        # every access at once: the professional's tokens (old and new) and a system client acting for them
        for headers in (world.professional(doctor), world.system_for(doctor)):
            outcome(await http.get(f"{world.fhir}/DocumentReference/d1", headers=headers), 401)
        # the rule's SQL says so too, for a caller that did not come through the gate
        caller = Caller(
            "professional", "x", ("user/*.cruds",), attributes={PRACTITIONER: "wd", PROFESSIONS: ("medecin",)}
        )
        async with world.database.read() as conn:
            session = world.platform.store.session(conn, caller)
            result = await world.platform.service.search(
                session, RequestContext(caller=caller), "DocumentReference", [("patient", f"Patient/{anna}")]
            )
        assert isinstance(result.body, dict) and result.body["total"] == 0
        # the patient's grant is untouched
        kept = (await http.get(f"{world.fhir}/Consent/{consent}", headers=world.patient(anna))).json()
        assert kept["meta"]["versionId"] == before["meta"]["versionId"] and kept["status"] == "active"

        async with world.database.transaction() as conn:
            await change_right_to_practise(
                world.store.session(conn), "wd", "active", reason="decision 2", source=Source.ADMINISTRATOR, agent=agent
            )
        world.clock.advance(1)
        # a token issued after the restoration: the grant works again, the patient did nothing
        import asyncio

        await asyncio.sleep(1.1)  # tokens issued in the second of the loss stay refused
        assert await visible(http, world, world.professional(doctor), anna) == {"d1"}


async def test_emergency_access(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        em = await practitioner(http, world, "em", 1)
        pha = await practitioner(http, world, "pha", 2, "pharmacien")
        anna = await world.certified("anna", 1)
        cleo = await world.certified("cleo", 2)
        for doc in (
            document("sum", anna, "patient-summary"),
            document("meds", anna, "medication-list"),
            document("rmeds", anna, "medication-list", labels=("R",)),
            document("cons", anna, "consultation-report"),
            document("csum", cleo, "patient-summary"),
        ):
            await put(http, world, doc)
        await put(http, world, binary("sum"))
        path = f"{world.fhir}/Patient/{anna}/$dsp-emergency"
        # a reason is mandatory (400, nothing written), and only professionals break the glass
        for body in (
            parameters(),
            parameters(reason="   "),
            parameters(reason="x" * 1001),
            parameters(reason="a\x00b"),
        ):
            outcome(await http.post(path, json=body, headers=world.professional(em)), 400)
        outcome(await http.post(path, json=parameters(reason="why"), headers=world.patient(anna)), 403)
        outcome(await http.post(path, json=parameters(reason="why"), headers=world.system()), 403)
        assert not await world.sql("SELECT 1 FROM dsp_grant WHERE kind = 'emergency'")
        assert await visible(http, world, world.professional(em), anna) == set()

        declared = await http.post(
            path, json=parameters(reason="unconscious, no relative"), headers=world.professional(em)
        )
        assert declared.status_code == 201, declared.text
        consent = declared.json()
        assert (
            consent["provision"]["period"]["end"]
            and consent["extension"][0]["valueString"] == "unconscious, no relative"
        )
        # read-only, essential classes, normal level only
        assert await visible(http, world, world.professional(em), anna) == {"sum", "meds"}
        assert (await http.get(f"{world.fhir}/Binary/bin-sum", headers=world.professional(em))).status_code == 200
        created = await http.post(
            f"{world.fhir}/DocumentReference",
            json=document("x", anna, "patient-summary"),
            headers=world.professional(em),
        )
        outcome(created, 403)
        # a pharmacist's emergency: the essential classes they are habilitated for
        await http.post(path, json=parameters(reason="pharmacy emergency"), headers=world.professional(pha))
        assert await visible(http, world, world.professional(pha), anna) == {"meds"}
        # the patient was notified, with an urgent notification naming the grant
        notes = await http.get(
            f"{world.fhir}/Communication?category=urn:esante:notification-kind|dsp-emergency-access",
            headers=world.patient(anna),
        )
        body = notes.json()
        assert body["total"] == 2 and {e["resource"]["priority"] for e in body["entry"]} == {"urgent"}
        # each use is a notable decision: its own AuthZ-Consent AuditEvent naming the emergency rule
        events = await http.get(
            f"{world.fhir}/AuditEvent?subtype=https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType|AuthZ-Consent"
            "&_count=200",
            headers=world.staff("administrator", scope="user/AuditEvent.rs"),
        )
        rules = [
            d["valueString"]
            for e in events.json().get("entry", [])
            for entity in e["resource"].get("entity", [])
            for d in entity.get("detail", [])
            if d["type"] == "rules"
        ]
        assert any("dsp-emergency-consent" in r for r in rules), rules

        # 24 hours later it is over
        world.clock.advance(24 * 3600 + 1)
        assert await visible(http, world, world.professional(em), anna) == set()

        # Cleo opted out: no emergency access at all (403 naming it, nothing written, nothing readable)
        opt = await http.post(
            f"{world.fhir}/Patient/{cleo}/$dsp-emergency-opt-out",
            json=parameters(value=True),
            headers=world.patient(cleo),
        )
        assert opt.status_code == 201, opt.text
        refused = await http.post(
            f"{world.fhir}/Patient/{cleo}/$dsp-emergency",
            json=parameters(reason="coma"),
            headers=world.professional(em),
        )
        assert details_code(outcome(refused, 403)) == "dsp-emergency-opt-out"
        assert await visible(http, world, world.professional(em), cleo) == set()
        # back in: possible again
        back = await http.post(
            f"{world.fhir}/Patient/{cleo}/$dsp-emergency-opt-out",
            json=parameters(value=False),
            headers=world.patient(cleo),
        )
        assert back.status_code == 200 and back.json()["status"] == "inactive"
        again = await http.post(
            f"{world.fhir}/Patient/{cleo}/$dsp-emergency",
            json=parameters(reason="coma"),
            headers=world.professional(em),
        )
        assert again.status_code == 201
        assert await visible(http, world, world.professional(em), cleo) == {"csum"}
        # opting out ends the emergency accesses in force
        await http.post(
            f"{world.fhir}/Patient/{cleo}/$dsp-emergency-opt-out",
            json=parameters(value=True),
            headers=world.patient(cleo),
        )
        assert await visible(http, world, world.professional(em), cleo) == set()


async def test_relationship_lasts_then_ends_or_is_revoked(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        doc = await practitioner(http, world, "rel", 1)
        anna = await world.certified("anna", 1)
        await put(http, world, document("d1", anna, "consultation-report"))
        await put(http, world, document("d2", anna, "discharge-letter", labels=("R",)))
        path = f"{world.fhir}/Patient/{anna}/$dsp-relationship"
        first = await http.post(path, json=parameters(), headers=world.professional(doc))
        assert first.status_code == 201
        assert await visible(http, world, world.professional(doc), anna) == {"d1"}, "restricted is not for them"
        # the patient was told
        notes = await http.get(
            f"{world.fhir}/Communication?category=urn:esante:notification-kind|dsp-access-granted",
            headers=world.patient(anna),
        )
        assert notes.json()["total"] == 1
        # 119 days later a new declaration extends it (same Consent); 121 days after that it is over
        world.clock.advance(119 * DAY)
        renewed = await http.post(path, json=parameters(), headers=world.professional(doc))
        assert renewed.status_code == 200 and renewed.json()["id"] == first.json()["id"]
        world.clock.advance(119 * DAY)
        assert await visible(http, world, world.professional(doc), anna) == {"d1"}
        world.clock.advance(2 * DAY)
        assert await visible(http, world, world.professional(doc), anna) == set()
        # declared again, then revoked by the patient
        again = await http.post(path, json=parameters(), headers=world.professional(doc))
        assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
        revoke = f"{world.fhir}/Consent/{again.json()['id']}/$dsp-revoke"
        outcome(await http.post(revoke, json=parameters(), headers=world.professional(doc)), 403)
        assert (await http.post(revoke, json=parameters(), headers=world.patient(anna))).status_code == 200
        assert await visible(http, world, world.professional(doc), anna) == set()
        outcome(await http.post(revoke, json=parameters(), headers=world.patient(anna)), 409)
        # the professional sees their own grants only (never the patient's other settings)
        await grant(http, world, anna, "block", "rel")
        consents = (await http.get(f"{world.fhir}/Consent", headers=world.professional(doc))).json()
        assert {r.split("/")[1] for r in ids(consents)} == {first.json()["id"], again.json()["id"]}


async def test_professional_writes(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        tc = await practitioner(http, world, "tc", 1)
        pha = await practitioner(http, world, "pha", 2, "pharmacien")
        blk = await practitioner(http, world, "blk", 3)
        nobody = await practitioner(http, world, "nobody", 4)
        anna = await world.certified("anna", 1)
        await grant(http, world, anna, "trusted-circle", "tc")
        await grant(http, world, anna, "trusted-circle", "blk")
        await put(http, world, document("own", anna, "consultation-report", author="Practitioner/blk"))
        await grant(http, world, anna, "block", "blk")
        await http.post(
            f"{world.fhir}/Patient/{anna}/$dsp-relationship", json=parameters(), headers=world.professional(pha)
        )

        async def create(headers: dict[str, str], category: str, **extra: Any) -> httpx.Response:
            body = document("x", anna, category, **extra)
            del body["id"]
            return await http.post(f"{world.fhir}/DocumentReference", json=body, headers=headers)

        assert (await create(world.professional(tc), "consultation-report")).status_code == 201
        assert (await create(world.system_for(tc), "operative-report")).status_code == 201
        outcome(await create(world.professional(nobody), "consultation-report"), 403)
        outcome(await create(world.system_for(nobody), "consultation-report"), 403)
        outcome(await create(world.professional(pha), "prescription"), 403)  # reads them, does not write them
        assert (await create(world.professional(pha), "medication-list")).status_code == 201
        outcome(await create(world.professional(blk), "consultation-report", author="Practitioner/blk"), 403)
        # the blocked professional still reads and corrects what they authored
        own = await http.get(f"{world.fhir}/DocumentReference/own", headers=world.professional(blk))
        assert own.status_code == 200
        fixed = {**own.json(), "description": "corrected"}
        assert (
            await http.put(f"{world.fhir}/DocumentReference/own", json=fixed, headers=world.professional(blk))
        ).status_code == 200
        # nobody but the patient hides a document or changes its level; nobody moves it to another DSP
        doc = (await http.get(f"{world.fhir}/DocumentReference/own", headers=world.professional(tc))).json()
        hidden = {
            **doc,
            "securityLabel": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "V"}]}
            ],
        }
        outcome(await http.put(f"{world.fhir}/DocumentReference/own", json=hidden, headers=world.professional(tc)), 422)
        outcome(await http.put(f"{world.fhir}/DocumentReference/own", json=hidden, headers=world.system()), 422)
        moved = {**doc, "subject": {"reference": "Patient/ben"}}
        await world.certified("ben", 2)
        outcome(await http.put(f"{world.fhir}/DocumentReference/own", json=moved, headers=world.system()), 422)
        outcome(await create(world.system(), "consultation-report", labels=("V",)), 422)
        assert (await http.get(f"{world.fhir}/DocumentReference/own", headers=world.professional(tc))).json()["meta"][
            "versionId"
        ] == "2"
        # DSP documents are never deleted through the API, DSP grants never written through it
        for headers in (world.system(), world.professional(tc)):
            response = await http.delete(f"{world.fhir}/DocumentReference/own", headers=headers)
            assert response.status_code in (403, 404), response.text
        consent = {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
            },
            "category": [{"coding": [{"system": "urn:esante:dsp:consent-kind", "code": "trusted-circle"}]}],
            "patient": {"reference": f"Patient/{anna}"},
            "policyRule": {"coding": [{"system": "urn:esante:dsp:policy", "code": "dsp-access"}]},
            "provision": {
                "type": "permit",
                "actor": [{"role": {"text": "x"}, "reference": {"reference": "Practitioner/nobody"}}],
            },
        }
        outcome(await http.post(f"{world.fhir}/Consent", json=consent, headers=world.system()), 403)
        assert await visible(http, world, world.professional(nobody), anna) == set()
        assert (await http.get(f"{world.fhir}/DocumentReference/own", headers=world.patient(anna))).status_code == 200


async def test_patient_personal_area_and_confidentiality(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        tc = await practitioner(http, world, "tc", 1)
        anna = await world.certified("anna", 1)
        ben = await world.certified("ben", 2)
        await grant(http, world, anna, "trusted-circle", "tc")
        await put(http, world, document("d1", anna, "consultation-report"))
        mine = document("p1", anna, "patient-provided")
        del mine["id"]
        uploader = world.patient(anna, "patient/*.rs patient/DocumentReference.c")
        created = await http.post(f"{world.fhir}/DocumentReference", json=mine, headers=uploader)
        assert created.status_code == 201, created.text
        other_class = {**mine, "category": document("z", anna, "prescription")["category"]}
        outcome(await http.post(f"{world.fhir}/DocumentReference", json=other_class, headers=uploader), 403)
        outcome(
            await http.post(
                f"{world.fhir}/DocumentReference",
                json={**mine, "subject": {"reference": f"Patient/{ben}"}},
                headers=uploader,
            ),
            403,
        )
        assert await visible(http, world, world.professional(tc), anna) == {"d1", created.json()["id"]}

        hide = f"{world.fhir}/DocumentReference/d1/$dsp-hide"
        outcome(await http.post(hide, json=parameters(), headers=world.professional(tc)), 403)
        outcome(await http.post(hide, json=parameters(), headers=world.patient(ben)), 404)
        assert (await http.post(hide, json=parameters(), headers=world.patient(anna))).status_code == 200
        assert await visible(http, world, world.professional(tc), anna) == {created.json()["id"]}
        outcome(await http.get(f"{world.fhir}/DocumentReference/d1/_history/1", headers=world.professional(tc)), 404)
        # level while hidden, then unhide: the level set comes back
        level = f"{world.fhir}/DocumentReference/d1/$dsp-confidentiality"
        for body in (
            parameters(),
            parameters(level=("valueCode", "V")),
            parameters(level=("valueCode", "X")),
            parameters(level=("valueCode", "R"), other="x"),
        ):
            outcome(await http.post(level, json=body, headers=world.patient(anna)), 400)
        response = await http.post(level, json=parameters(level=("valueCode", "R")), headers=world.patient(anna))
        codes = sorted(c["code"] for label in response.json()["securityLabel"] for c in label["coding"])
        assert codes == ["R", "V"]
        unhidden = await http.post(
            f"{world.fhir}/DocumentReference/d1/$dsp-unhide", json=parameters(), headers=world.patient(anna)
        )
        assert [c["code"] for label in unhidden.json()["securityLabel"] for c in label["coding"]] == ["R"]
        assert "d1" in await visible(http, world, world.professional(tc), anna)
        again = await http.post(
            f"{world.fhir}/DocumentReference/d1/$dsp-unhide", json=parameters(), headers=world.patient(anna)
        )
        assert again.json()["meta"]["versionId"] == unhidden.json()["meta"]["versionId"], "nothing to change"
