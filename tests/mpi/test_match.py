"""PDQm ITI-119 ``Patient/$match``: certified identities scored and graded, the options, the errors, the policy."""

from __future__ import annotations

from typing import Any

import httpx

from esante.app import Platform
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.model import MATRICULE_SYSTEM
from tests.api.helpers import FHIR_JSON, outcome
from tests.api.test_audit import events
from tests.auth import bearer, register_client

GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"


def _person(matricule: str, family: str, given: str, birth: str, gender: str, city: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MATRICULE_SYSTEM, "value": matricule}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": gender,
        "address": [{"use": "home", "line": ["12 rue de la Gare"], "postalCode": "1611", "city": city}],
    }


REGISTER = [
    _person("1982080285657", "Schmit", "Léa", "1982-08-02", "female", "Luxembourg"),
    _person("1975031201275", "Da Silva", "João", "1975-03-12", "male", "Esch-sur-Alzette"),
    _person("1990111501900", "Weber", "Marc", "1990-11-15", "male", "Differdange"),
]


async def _register(platform: Platform) -> dict[str, str]:
    """The register imported; returns matricule → certified Patient id."""
    await CertifiedImporter(platform.store).run(list(enumerate(REGISTER, start=1)))
    async with platform.database.read() as conn:
        rows = await conn.fetch(
            "SELECT t.code, t.rid FROM idx_token t WHERE t.res_type = 'Patient' AND t.param = 'identifier'"
            " AND t.system = ?",
            (MATRICULE_SYSTEM,),
        )
        ids = {}
        for code, rid in rows:
            ids[str(code)] = str(
                await conn.fetchval("SELECT res_id FROM resource WHERE rid = ? AND is_current", (rid,))
            )
    assert len(ids) == len(REGISTER), "every register line imported"
    return ids


def _query(patient: dict[str, Any], **options: Any) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [{"name": "resource", "resource": patient}]
    if "only_certain" in options:
        parameter.append({"name": "onlyCertainMatches", "valueBoolean": options["only_certain"]})
    if "count" in options:
        parameter.append({"name": "count", "valueInteger": options["count"]})
    return {"resourceType": "Parameters", "parameter": parameter}


def _lea(**changes: Any) -> dict[str, Any]:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "SCHMIT", "given": ["Lea"]}],
        "birthDate": "1982-08-02",
        "gender": "female",
    }
    return {**patient, **changes}


async def test_match_returns_scored_graded_certified_identities(platform: Platform, client: httpx.AsyncClient) -> None:
    ids = await _register(platform)
    response = await client.post("/fhir/Patient/$match", json=_query(_lea()), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    (entry,) = bundle["entry"]
    assert entry["resource"]["id"] == ids["1982080285657"]
    assert entry["fullUrl"].endswith(f"/Patient/{ids['1982080285657']}")
    assert entry["search"]["mode"] == "match" and 0.95 <= entry["search"]["score"] <= 1
    assert entry["search"]["extension"] == [{"url": GRADE_URL, "valueCode": "certain"}]
    # the Patient itself as the body (ITI-119: allowed without options) gives the same answer
    direct = (await client.post("/fhir/Patient/$match", json=_lea(), headers=FHIR_JSON)).json()
    assert [e["resource"]["id"] for e in direct["entry"]] == [ids["1982080285657"]]
    # the call is audited with the patient it returned
    audited = [e for e in await events(platform) if any(
        (en.get("what") or {}).get("reference") == f"Patient/{ids['1982080285657']}" for en in e.get("entity", [])
    )]  # fmt: skip
    assert audited, "a $match returning a patient is audited with that patient"


async def test_weaker_evidence_is_graded_and_only_certain_matches_filters(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    ids = await _register(platform)
    # a mistyped given name and a transposed birth date: not certain any more, still a candidate
    weaker = _lea(name=[{"family": "Schmit", "given": ["Lia"]}], birthDate="1982-02-08")
    bundle = (await client.post("/fhir/Patient/$match", json=_query(weaker), headers=FHIR_JSON)).json()
    grades = {e["resource"]["id"]: e["search"]["extension"][0]["valueCode"] for e in bundle.get("entry", [])}
    assert grades.get(ids["1982080285657"]) in {"probable", "possible"}, bundle
    scores = [e["search"]["score"] for e in bundle["entry"]]
    assert scores == sorted(scores, reverse=True)
    only = (await client.post("/fhir/Patient/$match", json=_query(weaker, only_certain=True), headers=FHIR_JSON)).json()
    assert only["total"] == 0 and "entry" not in only
    sure = (await client.post("/fhir/Patient/$match", json=_query(_lea(), only_certain=True), headers=FHIR_JSON)).json()
    assert [e["resource"]["id"] for e in sure["entry"]] == [ids["1982080285657"]]
    # nobody like this: an empty searchset, not an error
    nobody = _lea(name=[{"family": "Kowalski", "given": ["Anna"]}], birthDate="1961-05-30")
    empty = (await client.post("/fhir/Patient/$match", json=_query(nobody), headers=FHIR_JSON)).json()
    assert empty["total"] == 0 and "entry" not in empty


async def test_count_limits_and_is_capped(platform: Platform, client: httpx.AsyncClient) -> None:
    await _register(platform)
    # a name and a sex: Marc Weber is found, and count=1 returns him alone
    vague = {"resourceType": "Patient", "gender": "male", "name": [{"family": "Weber", "given": ["Marc"]}]}
    one = (await client.post("/fhir/Patient/$match", json=_query(vague, count=1), headers=FHIR_JSON)).json()
    assert len([e for e in one.get("entry", []) if e["search"]["mode"] == "match"]) == 1
    capped = (await client.post("/fhir/Patient/$match", json=_query(vague, count=500), headers=FHIR_JSON)).json()
    notes = [e for e in capped["entry"] if e["search"]["mode"] == "outcome"]
    assert "capped at 50" in notes[0]["resource"]["issue"][0]["diagnostics"]


async def test_bad_requests_are_named(platform: Platform, client: httpx.AsyncClient) -> None:
    await _register(platform)

    async def bad(body: Any, text: str, status: int = 400) -> None:
        response = await client.post("/fhir/Patient/$match", json=body, headers=FHIR_JSON)
        diagnostics = " ".join(i.get("diagnostics", "") for i in outcome(response, status)["issue"])
        assert text in diagnostics, diagnostics

    await bad({"resourceType": "Parameters", "parameter": []}, "exactly one resource parameter")
    two = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": _lea()}] * 2}
    await bad(two, "exactly one resource parameter")
    await bad(_query({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}), "must be a Patient")
    await bad({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}, "Parameters")
    await bad(_query(_lea(birthDate="1982-13-40")), "birthDate")
    await bad(_query(_lea(gender="feminine")), "gender")
    await bad(_query(_lea(), count=0), "count must be a positive integer")
    wrong_type = _query(_lea())
    wrong_type["parameter"].append({"name": "count", "valueString": "many"})
    await bad(wrong_type, "count must be a positive integer")
    not_boolean = _query(_lea())
    not_boolean["parameter"].append({"name": "onlyCertainMatches", "valueString": "yes"})
    await bad(not_boolean, "onlyCertainMatches must be a boolean")
    await bad(_query(_lea(modifierExtension=[{"url": "urn:x", "valueBoolean": True}])), "modifierExtension")
    malformed = await client.post("/fhir/Patient/$match", content=b'{"resourceType": "Param', headers=FHIR_JSON)
    outcome(malformed, 400)
    outcome(await client.get("/fhir/Patient/$match", params={"family": "Schmit"}), 405)


async def test_match_needs_the_right_to_search_patients_and_respects_the_policy(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await _register(platform)
    await register_client(platform.database, "reader-only", "system/Observation.rs")
    headers = {**FHIR_JSON, **bearer(platform.settings, "system:reader-only", "system/Observation.rs")}
    outcome(await client.post("/fhir/Patient/$match", json=_query(_lea()), headers=headers), 403)
    anonymous = await client.post(
        "/fhir/Patient/$match", json=_query(_lea()), headers={**FHIR_JSON, "Authorization": ""}
    )
    assert anonymous.status_code == 401


async def test_a_patient_only_ever_matches_herself(platform: Platform, client: httpx.AsyncClient) -> None:
    ids = await _register(platform)
    lea = {**FHIR_JSON, **bearer(platform.settings, f"patient:{ids['1982080285657']}", "patient/Patient.rs")}
    joao = {**FHIR_JSON, **bearer(platform.settings, f"patient:{ids['1975031201275']}", "patient/Patient.rs")}
    own = (await client.post("/fhir/Patient/$match", json=_query(_lea()), headers=lea)).json()
    assert [e["resource"]["id"] for e in own["entry"]] == [ids["1982080285657"]]
    other = await client.post("/fhir/Patient/$match", json=_query(_lea()), headers=joao)
    assert other.status_code == 200 and other.json()["total"] == 0 and "entry" not in other.json()
