"""The CVE access rule over real HTTP on SQLite and PostgreSQL: vaccinators the patient authorised create and read
the patient's record, nobody else does (404 for what exists but is not theirs, 403 for writes), totals count only
what the caller may see, patients and assistants read their own, authorisations are given, limited in time and
withdrawn by the patient only, and never written through the plain API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.cve.record_support import (
    World,
    authorize,
    cve_world,
    details_codes,
    immunization,
    outcome,
    parameters,
    patient,
    practitioner,
)

TODAY = date(2025, 6, 1)
CATEGORY = {"coding": [{"system": "urn:esante:cve:category", "code": "cve"}]}


async def _history(http: httpx.AsyncClient, world: World, patient_id: str, day: str) -> str:
    body = immunization(patient_id, "historical", cvx="08", day=day, lot=None, performer=None)
    response = await http.post(f"{world.fhir}/Immunization", json=body, headers=world.system())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _search(http: httpx.AsyncClient, world: World, query: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await http.get(f"{world.fhir}/{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])}


def _fixed(day: date) -> float:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()


async def test_authorised_vaccinators_only(db_url: str, tmp_path: Path) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=30) as http:
        await patient(http, world, "alice", "2020-02-02")
        await patient(http, world, "bob", "2019-03-03")
        doc = await practitioner(http, world, "doc", 1)
        other = await practitioner(http, world, "other", 2)
        pharma = await practitioner(http, world, "pharma", 3, profession="pharmacien", trained=True)
        untrained = await practitioner(http, world, "untrained", 4, profession="pharmacien")
        alice_ids = {await _history(http, world, "alice", day) for day in ("2020-04-02", "2020-06-02")}
        bob_id = await _history(http, world, "bob", "2019-05-03")
        await authorize(http, world, "alice", "doc")
        await authorize(http, world, "alice", "pharma")

        # an untrained pharmacist cannot be authorised as a vaccinator
        body = parameters(practitioner={"reference": "Practitioner/untrained"})
        problem = outcome(
            await http.post(f"{world.fhir}/Patient/alice/$cve-authorize", json=body, headers=world.patient("alice")),
            422,
        )
        assert "cve-not-vaccinator" in details_codes(problem)

        for ehealth_id in (doc, pharma):
            vaccinator = world.professional(ehealth_id)
            # read and search alice's record; bob's does not exist for them
            first = next(iter(alice_ids))
            assert (await http.get(f"{world.fhir}/Immunization/{first}", headers=vaccinator)).status_code == 200
            outcome(await http.get(f"{world.fhir}/Immunization/{bob_id}", headers=vaccinator), 404)
            everything = await _search(http, world, "Immunization?_total=accurate", vaccinator)
            assert _ids(everything) == alice_ids and everything["total"] == len(alice_ids)
            count = await _search(http, world, "Immunization?_summary=count", vaccinator)
            assert count["total"] == len(alice_ids)
            assert _ids(await _search(http, world, "Immunization?patient=bob", vaccinator)) == set()
            assert (await _search(http, world, "Immunization?patient=bob&_summary=count", vaccinator))["total"] == 0
            # the patients: alice, not bob (not even by matricule)
            assert (await http.get(f"{world.fhir}/Patient/alice", headers=vaccinator)).status_code == 200
            outcome(await http.get(f"{world.fhir}/Patient/bob", headers=vaccinator), 404)
            assert _ids(await _search(http, world, "Patient?family=Family-bob", vaccinator)) == set()
            # chains and includes do not reach bob either
            assert _ids(await _search(http, world, "Immunization?patient.family=Family-bob", vaccinator)) == set()
            # write for alice, not for bob
            created = await http.post(
                f"{world.fhir}/Immunization", json=immunization("alice", performer=None), headers=vaccinator
            )
            assert created.status_code == 201, created.text
            before = await world.count("Immunization")
            for_bob = immunization("bob", performer=None)
            outcome(await http.post(f"{world.fhir}/Immunization", json=for_bob, headers=vaccinator), 403)
            # ... nor move alice's record to bob
            moved = created.json()
            moved["patient"] = {"reference": "Patient/bob"}
            outcome(await http.put(f"{world.fhir}/Immunization/{moved['id']}", json=moved, headers=vaccinator), 403)
            assert await world.count("Immunization") == before
            alice_ids.add(created.json()["id"])

        # an unauthorised vaccinator sees nothing and writes nothing, whether the patient exists or not
        stranger = world.professional(other)
        outcome(await http.get(f"{world.fhir}/Immunization/{next(iter(alice_ids))}", headers=stranger), 404)
        assert (await _search(http, world, "Immunization?_summary=count", stranger))["total"] == 0
        for who in ("alice", "nobody"):
            problem = outcome(
                await http.post(f"{world.fhir}/Immunization", json=immunization(who, performer=None), headers=stranger),
                403,
            )
            assert "nobody" not in str(problem) and "birth" not in str(problem)
        # a professional who is not a vaccinator gets no CVE right at all
        outcome(await http.get(f"{world.fhir}/Immunization", headers=world.professional(untrained)), 403)

        # establishment software acting for a professional gets what that professional may reach
        acting = world.system_for(doc)
        assert _ids(await _search(http, world, "Immunization", acting)) == alice_ids
        outcome(await http.get(f"{world.fhir}/Immunization/{bob_id}", headers=acting), 404)
        outcome(await http.get(f"{world.fhir}/Immunization", headers=world.system_for(untrained)), 403)
        # ... while the establishment itself keeps its scopes (e.g. the import)
        assert bob_id in _ids(await _search(http, world, "Immunization?_count=100", world.system()))

        # patients read their own; an assistant reads the holder's; neither writes
        mine = _ids(await _search(http, world, "Immunization", world.patient("alice")))
        assert mine == alice_ids
        outcome(await http.get(f"{world.fhir}/Immunization/{bob_id}", headers=world.patient("alice")), 404)
        outcome(
            await http.post(f"{world.fhir}/Immunization", json=immunization("alice"), headers=world.patient("alice")),
            403,
        )
        helper = await world.add_assistant("acct-helper", "bob", "alice")
        assert _ids(await _search(http, world, "Immunization", helper)) == alice_ids

        # health parameters: a vaccinator files and reads those of the CVE only
        condition = {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/alice"},
            "category": [CATEGORY],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]},
        }
        vaccinator = world.professional(doc)
        response = await http.post(f"{world.fhir}/Condition", json=condition, headers=vaccinator)
        assert response.status_code == 201, response.text
        unfiled = {k: v for k, v in condition.items() if k != "category"}
        outcome(await http.post(f"{world.fhir}/Condition", json=unfiled, headers=vaccinator), 403)
        response = await http.post(f"{world.fhir}/Condition", json=unfiled, headers=world.system())
        assert response.status_code == 201
        seen = await _search(http, world, "Condition?patient=alice", vaccinator)
        assert len(seen["entry"]) == 1
        outcome(await http.get(f"{world.fhir}/Condition/{response.json()['id']}", headers=vaccinator), 404)


async def test_authorisations_are_the_patients(db_url: str, tmp_path: Path) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=30) as http:
        await patient(http, world, "alice", "2020-02-02")
        await patient(http, world, "bob", "2019-03-03")
        doc = await practitioner(http, world, "doc", 1)
        pharma = await practitioner(http, world, "pharma", 3, profession="pharmacien", trained=True)
        record = await _history(http, world, "alice", "2020-04-02")
        vaccinator = world.professional(doc)
        outcome(await http.get(f"{world.fhir}/Immunization/{record}", headers=vaccinator), 404)

        consent = await authorize(http, world, "alice", "doc")
        assert consent["status"] == "active"
        assert consent["category"][1]["coding"][0]["code"] == "vaccinator"
        assert consent["provision"]["actor"][0]["reference"] == {"reference": "Practitioner/doc"}
        again = await http.post(
            f"{world.fhir}/Patient/alice/$cve-authorize",
            json=parameters(practitioner={"system": "urn:oid:1.3.182.2.8.1", "value": doc}),
            headers=world.patient("alice"),
        )
        assert again.status_code == 200 and again.json()["id"] == consent["id"]  # by eHealthID: the same one
        assert (await http.get(f"{world.fhir}/Immunization/{record}", headers=vaccinator)).status_code == 200

        # the vaccinator sees the authorisations that name them; the patient sees theirs
        own = await _search(http, world, "Consent", vaccinator)
        assert _ids(own) == {consent["id"]}
        assert _ids(await _search(http, world, "Consent", world.patient("alice"))) == {consent["id"]}

        # only the holder (or an assistant) authorises and revokes
        body = parameters(practitioner={"reference": "Practitioner/doc"})
        for headers in (world.patient("bob"), vaccinator, world.system()):
            outcome(await http.post(f"{world.fhir}/Patient/alice/$cve-authorize", json=body, headers=headers), 403)
        outcome(await http.post(f"{world.fhir}/Consent/{consent['id']}/$cve-revoke", headers=world.patient("bob")), 404)
        outcome(await http.post(f"{world.fhir}/Consent/{consent['id']}/$cve-revoke", headers=vaccinator), 403)
        bad = [
            (parameters(), 400),
            (parameters(practitioner={"reference": "Patient/bob"}), 400),
            (parameters(practitioner={"reference": "Practitioner/ghost"}), 404),
            (parameters(practitioner={"system": "urn:x", "value": "1"}), 400),
            (parameters(practitioner={"reference": "Practitioner/doc"}, end=("valueDate", "2025-05-01")), 400),
        ]
        for payload, status in bad:
            url = f"{world.fhir}/Patient/alice/$cve-authorize"
            outcome(await http.post(url, json=payload, headers=world.patient("alice")), status)

        # never through the plain API, whoever asks (the establishment may still write other Consents)
        forged = {k: v for k, v in consent.items() if k not in ("id", "meta")}
        actor = {**consent["provision"]["actor"][0], "reference": {"reference": "Practitioner/pharma"}}
        forged["provision"] = {**forged["provision"], "actor": [actor]}
        before = await world.count("Consent")
        outcome(await http.post(f"{world.fhir}/Consent", json=forged, headers=world.system()), 403)
        changed = {**consent, "provision": forged["provision"]}
        # an update or delete does not even find it (the vetoed version is out of the writer's reach)
        outcome(await http.put(f"{world.fhir}/Consent/{consent['id']}", json=changed, headers=world.system()), 404)
        outcome(await http.delete(f"{world.fhir}/Consent/{consent['id']}", headers=world.system()), 404)
        assert await world.count("Consent") == before
        unchanged = (await http.get(f"{world.fhir}/Consent/{consent['id']}", headers=world.patient("alice"))).json()
        assert unchanged["meta"]["versionId"] == consent["meta"]["versionId"]
        other = {**forged, "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]}
        assert (await http.post(f"{world.fhir}/Consent", json=other, headers=world.system())).status_code == 201
        outcome(await http.get(f"{world.fhir}/Immunization/{record}", headers=world.professional(pharma)), 404)

        # a time-limited authorisation ends by itself
        limited = await http.post(
            f"{world.fhir}/Patient/bob/$cve-authorize",
            json=parameters(practitioner={"reference": "Practitioner/pharma"}, end=("valueDate", "2025-06-10")),
            headers=world.patient("bob"),
        )
        assert limited.status_code == 201, limited.text
        bob_record = await _history(http, world, "bob", "2019-05-03")
        response = await http.get(f"{world.fhir}/Immunization/{bob_record}", headers=world.professional(pharma))
        assert response.status_code == 200
        later = _fixed(TODAY + timedelta(days=20))
        world.context.clock = lambda: later
        outcome(await http.get(f"{world.fhir}/Immunization/{bob_record}", headers=world.professional(pharma)), 404)
        world.context.clock = lambda: _fixed(TODAY)

        # the patient withdraws it: the next request is refused
        revoked = await http.post(f"{world.fhir}/Consent/{consent['id']}/$cve-revoke", headers=world.patient("alice"))
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "inactive" and revoked.json()["provision"]["period"]["end"]
        outcome(await http.get(f"{world.fhir}/Immunization/{record}", headers=vaccinator), 404)
        for_alice = immunization("alice", performer=None)
        outcome(await http.post(f"{world.fhir}/Immunization", json=for_alice, headers=vaccinator), 403)
        assert (await _search(http, world, "Immunization?_summary=count", vaccinator))["total"] == 0
        # ... and can give it again (a new Consent)
        renewed = await authorize(http, world, "alice", "doc")
        assert renewed["id"] != consent["id"]
        assert (await http.get(f"{world.fhir}/Immunization/{record}", headers=vaccinator)).status_code == 200
