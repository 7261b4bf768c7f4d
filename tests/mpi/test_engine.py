"""The online matching engine in a running platform: consistent with writes (its own and other processes'),
parameter sets versioned and activated, ambiguous and colliding identities sent to review."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from esante.app import Platform, build_platform
from esante.config import Settings
from esante.mpi import engine as engine_module
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.domains import DomainStore
from esante.mpi.match_parameters import ParameterStore, default_parameters
from esante.mpi.matching import ParameterError, Thresholds
from esante.mpi.model import LEVEL_SYSTEM, MATRICULE_SYSTEM
from tests.api.helpers import FHIR_JSON
from tests.auth import bearer, register_client

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"


def _certified(matricule: str, family: str, given: str, birth: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MATRICULE_SYSTEM, "value": matricule}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": "female",
        **extra,
    }


async def _match(client: httpx.AsyncClient, patient: dict[str, Any]) -> list[tuple[str, str]]:
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}
    bundle = (await client.post("/fhir/Patient/$match", json=body, headers=FHIR_JSON)).json()
    return [(e["resource"]["id"], e["search"]["extension"][0]["valueCode"]) for e in bundle.get("entry", [])]


def _query(family: str, given: str, birth: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": [given]}], "birthDate": birth}


async def test_the_engine_follows_the_register_and_other_processes(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await CertifiedImporter(platform.store).run([(1, _certified("1982080285657", "Schmit", "Léa", "1982-08-02"))])
    assert len(await _match(client, _query("Schmit", "Léa", "1982-08-02"))) == 1  # loads the engine
    assert await _match(client, _query("Hoffmann", "Anne", "1970-04-21")) == []
    # a second process (its own platform on the same database) imports: the first one sees it at its next look-up
    other = build_platform(Settings(database_url=platform.settings.database_url, warm_up=False))
    await other.database.connect()
    try:
        await CertifiedImporter(other.store).run([(1, _certified("1970042101790", "Hoffmann", "Anne", "1970-04-21"))])
        found = await _match(client, _query("Hoffmann", "Anne", "1970-04-21"))
        assert [grade for _id, grade in found] == ["certain"]
        # a register correction (a new family name) re-keys the identity: the old name no longer finds it
        renamed = _certified("1970042101790", "Hoffmann-Klein", "Anne", "1970-04-21")
        await CertifiedImporter(other.store).run([(1, renamed)])
    finally:
        await other.database.close()
    assert await _match(client, _query("Hoffmann-Klein", "Anne", "1970-04-21")) == found
    assert platform.mpi_engine is not None and len(platform.mpi_engine) == 2


async def test_parameter_sets_are_versioned_and_activated(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PARAMETER_REFRESH_SECONDS", 0.0)
    await CertifiedImporter(platform.store).run([(1, _certified("1982080285657", "Schmit", "Léa", "1982-08-02"))])
    query = _query("Schmit", "Lia", "1982-02-08")  # a typo and a transposition: probable with the default
    assert [grade for _id, grade in await _match(client, query)] == ["probable"]
    store = ParameterStore(platform.database)
    strict = default_parameters().with_thresholds(Thresholds(auto_link=0.999, probable=0.95, review=0.9))
    version = await store.save(strict, "test: stricter thresholds", activate=True)
    assert await _match(client, query) == []  # below the new review threshold
    listed = await store.list()
    assert [(p["version"], p["active"]) for p in listed] == [(version, True)]
    with pytest.raises(ParameterError, match="no parameter set"):
        await store.activate("fs-000000000000")
    assert platform.mpi_engine is not None and platform.mpi_engine.parameter_version == version


async def _source(platform: Platform) -> dict[str, str]:
    await register_client(platform.database, "chl-his", "system/Patient.cruds")
    await DomainStore(platform.database).register(HOSPITAL, "CHL", source_client_id="chl-his")
    return {**FHIR_JSON, **bearer(platform.settings, "system:chl-his", "system/Patient.cruds")}


async def _feed(client: httpx.AsyncClient, headers: dict[str, str], local_id: str, **traits: Any) -> dict[str, Any]:
    resource = {"resourceType": "Patient", "identifier": [{"system": HOSPITAL, "value": local_id}], **traits}
    url = f"/fhir/Patient?identifier={quote(HOSPITAL + '|' + local_id)}"
    response = await client.put(url, json=resource, headers=headers)
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _level(resource: dict[str, Any]) -> str:
    return next(t["code"] for t in resource["meta"]["tag"] if t["system"] == LEVEL_SYSTEM)


async def _reviews(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    bundle = (await client.get("/fhir/Task", params={"code": "urn:esante:mpi-task|identity-review"})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def test_two_certain_candidates_are_a_review_not_a_link(platform: Platform, client: httpx.AsyncClient) -> None:
    # namesakes born the same day (the register tells them apart by matricule and address only)
    await CertifiedImporter(platform.store).run(
        [
            (1, _certified("1982080285657", "Schmit", "Léa", "1982-08-02")),
            (2, _certified("1982080201410", "Schmit", "Léa", "1982-08-02")),
        ]
    )
    headers = await _source(platform)
    local = await _feed(
        client, headers, "H1", name=[{"family": "Schmit", "given": ["Léa"]}], birthDate="1982-08-02", gender="female"
    )
    assert _level(local) == "provisional" and "link" not in local
    (task,) = await _reviews(client)
    assert task["reasonCode"]["coding"][0]["code"] == "uncertain-link"
    assert len(task["input"]) == 2
    # $match finds both; count=1 keeps the best one only; onlyCertainMatches gives none (two distinct persons)
    query = _query("Schmit", "Léa", "1982-08-02")
    assert len(await _match(client, query)) == 2
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": query}]}
    one = (await client.post("/fhir/Patient/$match", json={**body, "parameter": [*body["parameter"],
           {"name": "count", "valueInteger": 1}]}, headers=FHIR_JSON)).json()  # fmt: skip
    assert len(one["entry"]) == 1
    certain = (await client.post("/fhir/Patient/$match", json={**body, "parameter": [*body["parameter"],
               {"name": "onlyCertainMatches", "valueBoolean": True}]}, headers=FHIR_JSON)).json()  # fmt: skip
    assert certain["total"] == 0 and "entry" not in certain


async def test_a_reused_local_id_is_a_collision(platform: Platform, client: httpx.AsyncClient) -> None:
    await CertifiedImporter(platform.store).run([(1, _certified("1982080285657", "Schmit", "Léa", "1982-08-02"))])
    headers = await _source(platform)
    traits = {"name": [{"family": "Schmit", "given": ["Léa"]}], "birthDate": "1982-08-02", "gender": "female"}
    linked = await _feed(client, headers, "H7", **traits)
    assert _level(linked) == "validated" and await _reviews(client) == []
    # a revision that only corrects the address keeps the link quietly
    await _feed(client, headers, "H7", **traits, address=[{"city": "Mersch"}])
    assert await _reviews(client) == []
    # the establishment reuses H7 for somebody else: the link stays (an agent decides), a collision review opens
    reused = await _feed(
        client, headers, "H7", name=[{"family": "Wagner", "given": ["Paul"]}], birthDate="1944-01-09", gender="male"
    )
    assert reused["link"] == linked["link"] and _level(reused) == "validated"
    (task,) = await _reviews(client)
    assert task["reasonCode"]["coding"][0]["code"] == "collision"
    assert task["focus"] == {"reference": f"Patient/{linked['id']}"}
    assert task["input"][0]["valueReference"] == linked["link"][0]["other"]


async def test_an_implausible_trait_is_refused(platform: Platform, client: httpx.AsyncClient) -> None:
    headers = await _source(platform)
    resource = {
        "resourceType": "Patient",
        "identifier": [{"system": HOSPITAL, "value": "H9"}],
        "name": [{"family": "Old", "given": ["Anna"]}],
        "birthDate": "1700-01-01",  # valid FHIR, no living identity
    }
    response = await client.put(f"/fhir/Patient?identifier={quote(HOSPITAL + '|H9')}", json=resource, headers=headers)
    assert response.status_code == 400, response.text
    assert "birth year 1700" in response.json()["issue"][0]["diagnostics"]
    async with platform.database.read() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Patient'") == 0
