"""IHE PIXm ITI-83 ``Patient/$ihe-pix`` over the API: cross-references of a person across identifier domains, the
ITI-83 error codes, merged identities, GET and POST, and the policy."""

from __future__ import annotations

from typing import Any

import httpx

from esante.app import Platform
from esante.mpi.domains import DomainStore
from esante.mpi.model import ESANTE_ID_SYSTEM, LEVEL_SYSTEM, MATRICULE_SYSTEM
from tests.api.helpers import FHIR_JSON, outcome
from tests.auth import bearer

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"
LAB = "urn:oid:1.3.182.3.1.1.9.2"


def _patient(pid: str, identifiers: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": s, "value": v} for s, v in identifiers],
        "name": [{"family": "Schmit", "given": ["Léa"]}],
        **extra,
    }


def _link(other: str, kind: str = "seealso") -> list[dict[str, Any]]:
    return [{"other": {"reference": f"Patient/{other}"}, "type": kind}]


async def _people(platform: Platform, client: httpx.AsyncClient) -> None:
    domains = DomainStore(platform.database)
    await domains.register(HOSPITAL, "Centre Hospitalier", source_client_id="chl")
    await domains.register(LAB, "Laboratoire", source_client_id="lab")
    people = [
        _patient(
            "lea",
            [(MATRICULE_SYSTEM, "1982080285657"), (ESANTE_ID_SYSTEM, "1234567897")],
            meta={"tag": [{"system": LEVEL_SYSTEM, "code": "certified"}]},
        ),
        _patient("lea-chl", [(HOSPITAL, "H-001")], link=_link("lea")),
        _patient("lea-lab", [(LAB, "L-77")], link=_link("lea")),
        _patient("lea-chl-old", [(HOSPITAL, "H-000")], active=False, link=_link("lea-chl", "replaced-by")),
        _patient("ben-chl", [(HOSPITAL, "H-002")]),  # provisional: linked to nobody
    ]
    async with platform.database.transaction() as conn:  # as the register import and the agents' decisions do
        session = platform.store.session(conn)
        for person in people:
            await session.create(person, res_id=person["id"])
        await session.flush()


def _targets(body: dict[str, Any]) -> tuple[set[tuple[str, str]], set[str]]:
    identifiers = {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in body["parameter"]
        if p["name"] == "targetIdentifier"
    }
    ids = {p["valueReference"]["reference"] for p in body["parameter"] if p["name"] == "targetId"}
    return identifiers, ids


async def test_cross_references_of_a_person(platform: Platform, client: httpx.AsyncClient) -> None:
    await _people(platform, client)
    one = (
        await client.get(
            "/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|H-001", "targetSystem": LAB}
        )
    ).json()
    assert _targets(one) == ({(LAB, "L-77")}, {"Patient/lea-lab"})
    every = (await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{LAB}|L-77"})).json()
    assert _targets(every) == (
        {(MATRICULE_SYSTEM, "1982080285657"), (ESANTE_ID_SYSTEM, "1234567897"), (HOSPITAL, "H-001")},
        {"Patient/lea", "Patient/lea-chl"},
    )
    national = (
        await client.get(
            "/fhir/Patient/$ihe-pix",
            params=[("sourceIdentifier", f"{MATRICULE_SYSTEM}|1982080285657"), ("targetSystem", HOSPITAL),
                    ("targetSystem", ESANTE_ID_SYSTEM)],
        )
    ).json()  # fmt: skip
    assert _targets(national) == (
        {(HOSPITAL, "H-001"), (ESANTE_ID_SYSTEM, "1234567897")},
        {"Patient/lea", "Patient/lea-chl"},
    )
    merged = (
        await client.get(
            "/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|H-000", "targetSystem": LAB}
        )
    ).json()
    assert _targets(merged) == ({(LAB, "L-77")}, {"Patient/lea-lab"}), "a merged identity answers for its survivor"
    alone = (await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|H-002"})).json()
    assert alone == {"resourceType": "Parameters", "parameter": []}
    posted = await client.post(
        "/fhir/Patient/$ihe-pix",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "sourceIdentifier", "valueIdentifier": {"system": HOSPITAL, "value": "H-001"}},
                {"name": "targetSystem", "valueUri": LAB},
            ],
        },
        headers=FHIR_JSON,
    )
    assert _targets(posted.json()) == ({(LAB, "L-77")}, {"Patient/lea-lab"})


async def test_the_iti_83_errors(platform: Platform, client: httpx.AsyncClient) -> None:
    await _people(platform, client)
    unknown_domain = outcome(
        await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": "urn:oid:9.9|1"}), 400
    )
    assert unknown_domain["issue"][0]["diagnostics"] == "sourceIdentifier Assigning Authority not found"
    unknown_id = outcome(
        await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|nobody"}), 404
    )
    assert unknown_id["issue"][0]["diagnostics"] == "sourceIdentifier Patient Identifier not found"
    params = {"sourceIdentifier": f"{HOSPITAL}|H-001", "targetSystem": "urn:oid:9.9"}
    unknown_target = outcome(await client.get("/fhir/Patient/$ihe-pix", params=params), 403)
    assert unknown_target["issue"][0]["diagnostics"] == "targetSystem not found"
    outcome(await client.get("/fhir/Patient/$ihe-pix"), 400)
    outcome(await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": "H-001"}), 400)
    # the caller must be allowed to read patients: a client registered for Observations only is refused
    only_observations = bearer(platform.settings, scope="system/Observation.rs")
    outcome(
        await client.get(
            "/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{LAB}|L-77"}, headers=only_observations
        ),
        403,
    )


async def test_a_link_to_a_merged_certified_identity_leads_to_its_survivor(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """A feed's link written while an agent merged its target (the race a merge cannot re-point) still resolves."""
    await DomainStore(platform.database).register(HOSPITAL, "Centre Hospitalier", source_client_id="chl")
    certified = {"meta": {"tag": [{"system": LEVEL_SYSTEM, "code": "certified"}]}}
    people = [
        _patient("keep", [(MATRICULE_SYSTEM, "1982080285657")], **certified),
        _patient("gone", [(MATRICULE_SYSTEM, "1982080201410")], active=False, link=_link("keep", "replaced-by"),
                 **certified),
        _patient("late", [(HOSPITAL, "H-9")], link=_link("gone")),
    ]  # fmt: skip
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        for person in people:
            await session.create(person, res_id=person["id"])
        await session.flush()
    body = (await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|H-9"})).json()
    identifiers, ids = _targets(body)
    assert (MATRICULE_SYSTEM, "1982080285657") in identifiers and "Patient/keep" in ids
    assert (MATRICULE_SYSTEM, "1982080201410") not in identifiers
