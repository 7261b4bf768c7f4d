"""The review screen's data: ``Task/{id}/$mpi-compare`` and ``Patient/$mpi-compare`` put two identities' traits
side by side with the engine's per-field agreement, through the policy."""

from __future__ import annotations

from typing import Any

import httpx

from esante.app import Platform
from esante.mpi.domains import DomainStore
from esante.mpi.feed import Candidate
from esante.mpi.model import MATRICULE_SYSTEM
from esante.mpi.review import review_task
from tests.api.helpers import FHIR_JSON, outcome
from tests.auth import bearer
from tests.mpi.test_vigilance import CERTIFIED, _agent

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"


async def _review(platform: Platform) -> str:
    """A certified identity, a local one with a typo and a transposed date, and the review Task between them."""
    lea = {
        "resourceType": "Patient",
        "id": "lea",
        "identifier": [{"system": MATRICULE_SYSTEM, "value": "1982080285657"}],
        "name": [{"family": "Schmit", "given": ["Léa", "Marie"]}, {"use": "maiden", "family": "Weber"}],
        "birthDate": "1982-08-02",
        "gender": "female",
        "address": [{"use": "home", "line": ["12 rue de la Gare"], "postalCode": "1611", "city": "Luxembourg"}],
        **CERTIFIED,
    }
    local = {
        "resourceType": "Patient",
        "id": "h1",
        "identifier": [{"system": HOSPITAL, "value": "H1"}],
        "name": [{"family": "Schmitt", "given": ["Lea"]}],
        "birthDate": "1982-02-08",
        "gender": "female",
    }
    await DomainStore(platform.database).register(HOSPITAL, "CHL", source_client_id="chl")
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        for item in (lea, local):
            await session.create(item, res_id=item["id"])
        await session.flush()
        stored = await session.read("Patient", "h1")
        assert stored is not None
        task = review_task(stored, [Candidate("lea", 0.8, "review", "probable", {})], "2026-01-01T00:00:00Z")
        created = await session.create(task, client_id=False)
        await session.flush()
    return created.res_id


def _fields(comparison: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = {}
    for part in comparison["part"]:
        if part["name"] == "field":
            values = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in part["part"]}
            rows[values["name"]] = values
    return rows


async def test_a_review_task_shows_both_identities_side_by_side(platform: Platform, client: httpx.AsyncClient) -> None:
    task = await _review(platform)
    agent = await _agent(platform)
    response = await client.get(f"/fhir/Task/{task}/$mpi-compare", headers=agent)
    assert response.status_code == 200, response.text
    (comparison,) = [p for p in response.json()["parameter"] if p["name"] == "comparison"]
    head = {p["name"]: p for p in comparison["part"] if p["name"] != "field"}
    assert head["left"]["valueReference"] == {"reference": "Patient/h1"}
    assert head["right"]["valueReference"] == {"reference": "Patient/lea"}
    assert 0 <= head["probability"]["valueDecimal"] <= 1 and head["grade"]["valueCode"]
    rows = _fields(comparison)
    assert (rows["family"]["left"], rows["family"]["right"], rows["family"]["agreement"]) == (
        "Schmitt",
        "Schmit",
        "close",
    )
    assert (rows["birth_date"]["left"], rows["birth_date"]["right"]) == ("1982-02-08", "1982-08-02")
    assert rows["birth_date"]["agreement"] == "transposed" and rows["birth_date"]["weight"] > 0
    assert rows["given"]["right"] == "Léa Marie" and rows["birth_name"]["right"] == "Weber"
    assert "left" not in rows["address"] and rows["address"]["agreement"] == "missing"
    assert rows["address"]["right"] == "12 rue de la Gare, 1611 Luxembourg"
    # the same comparison asked for two Patients directly (GET and POST)
    direct = await client.get(
        "/fhir/Patient/$mpi-compare", params={"left": "Patient/h1", "right": "Patient/lea"}, headers=agent
    )
    assert _fields(direct.json()["parameter"][0]) == rows


async def test_compare_is_guarded(platform: Platform, client: httpx.AsyncClient) -> None:
    task = await _review(platform)
    agent = await _agent(platform)
    # a client that may not read the review queue
    reader = {**FHIR_JSON, **bearer(platform.settings, "system:test-system", "system/Observation.rs")}
    outcome(await client.get(f"/fhir/Task/{task}/$mpi-compare", headers=reader), 403)
    outcome(await client.get("/fhir/Task/nope/$mpi-compare", headers=agent), 404)
    outcome(await client.get("/fhir/Patient/$mpi-compare", params={"left": "Patient/h1"}, headers=agent), 400)
    bad = await client.get("/fhir/Patient/$mpi-compare", params={"left": "h1", "right": "Patient/lea"}, headers=agent)
    assert "Patient/<id>" in outcome(bad, 400)["issue"][0]["diagnostics"]
    outcome(
        await client.get(
            "/fhir/Patient/$mpi-compare", params={"left": "Patient/h1", "right": "Patient/x"}, headers=agent
        ),
        404,
    )
    # a patient sees only herself: comparing her with somebody else is refused, not answered
    lea = {**FHIR_JSON, **bearer(platform.settings, "patient:lea", "patient/Patient.rs")}
    refused = await client.get(
        "/fhir/Patient/$mpi-compare", params={"left": "Patient/lea", "right": "Patient/h1"}, headers=lea
    )
    assert refused.status_code in (403, 404)
