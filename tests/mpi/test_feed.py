"""PIXm ITI-104 Patient Identity Feed over the API: an establishment's identities are linked, guarded and merged."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from esante.app import Platform
from esante.db.engine import Connection
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.domains import DomainStore
from esante.mpi.feed import Candidate, IdentityFeed
from esante.mpi.model import ESANTE_ID_SYSTEM, LEVEL_SYSTEM, MATRICULE_SYSTEM
from tests.api.helpers import FHIR_JSON, outcome
from tests.auth import bearer, register_client

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"
LAB = "urn:oid:1.3.182.3.1.1.9.2"
LEA = "1982080285657"


def _local(system: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        "name": [{"family": "Schmit", "given": ["Léa"]}],
        "birthDate": "1982-08-02",
        "gender": "female",
        **extra,
    }


async def _setup(platform: Platform) -> tuple[dict[str, str], dict[str, str], str]:
    await register_client(platform.database, "chl-his", "system/Patient.cruds")
    await register_client(platform.database, "lab-lis", "system/Patient.cruds")
    domains = DomainStore(platform.database)
    await domains.register(HOSPITAL, "CHL", source_client_id="chl-his")
    await domains.register(LAB, "Laboratoire", source_client_id="lab-lis")
    register = [(1, _local(MATRICULE_SYSTEM, LEA))]
    await CertifiedImporter(platform.store).run(register)
    async with platform.database.read() as conn:
        certified = str(await conn.fetchval("SELECT res_id FROM resource WHERE res_type = 'Patient' AND is_current"))
    chl = {**FHIR_JSON, **bearer(platform.settings, "system:chl-his", "system/Patient.cruds")}
    lab = {**FHIR_JSON, **bearer(platform.settings, "system:lab-lis", "system/Patient.cruds")}
    return chl, lab, certified


async def _feed(client: httpx.AsyncClient, headers: dict[str, str], resource: dict[str, Any]) -> httpx.Response:
    ident = resource["identifier"][0]
    return await client.put(
        f"/fhir/Patient?identifier={quote(ident['system'] + '|' + ident['value'])}", json=resource, headers=headers
    )


def _level(resource: dict[str, Any]) -> str:
    return next(t["code"] for t in resource["meta"]["tag"] if t["system"] == LEVEL_SYSTEM)


async def test_feeds_are_linked_by_matricule_and_revised(platform: Platform, client: httpx.AsyncClient) -> None:
    chl, _lab, certified = await _setup(platform)
    with_matricule = _local(
        HOSPITAL, "H1", identifier=[{"system": HOSPITAL, "value": "H1"}, {"system": MATRICULE_SYSTEM, "value": LEA}]
    )
    created = await _feed(client, chl, with_matricule)
    assert created.status_code == 201, created.text
    h1 = created.json()
    assert _level(h1) == "validated" and h1["link"] == [
        {"other": {"reference": f"Patient/{certified}"}, "type": "seealso"}
    ]
    pix = (await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|H1"})).json()
    systems = {p["valueIdentifier"]["system"] for p in pix["parameter"] if p["name"] == "targetIdentifier"}
    assert systems == {MATRICULE_SYSTEM, ESANTE_ID_SYSTEM}
    # a revision (new address) keeps the link; the feed cannot drop or move it
    revised = await _feed(client, chl, {**with_matricule, "address": [{"city": "Ettelbruck"}]})
    assert revised.status_code == 200 and revised.json()["link"][0]["other"]["reference"] == f"Patient/{certified}"
    assert revised.json()["id"] == h1["id"] and revised.json()["meta"]["versionId"] == "2"
    # without a matricule, the same traits: linked by the probabilistic engine, with a Provenance naming it
    h2 = (await _feed(client, chl, _local(HOSPITAL, "H2"))).json()
    assert _level(h2) == "validated" and h2["link"][0]["other"]["reference"] == f"Patient/{certified}"
    provenances = (await client.get("/fhir/Provenance", params={"target": f"Patient/{h2['id']}"})).json()
    (provenance,) = [e["resource"] for e in provenances["entry"]]
    assert provenance["activity"]["coding"][0]["code"] == "auto-link"
    assert provenance["entity"] == [{"role": "source", "what": {"reference": f"Patient/{certified}"}}]
    assert provenance["agent"][0]["who"]["identifier"]["value"].startswith("fs-")
    assert provenance["extension"][0]["valueDecimal"] > 0.95
    # somebody else: provisional, no link, no review
    other = _local(
        HOSPITAL, "H4", name=[{"family": "Ferreira", "given": ["João"]}], birthDate="1990-01-15", gender="male"
    )
    h4 = (await _feed(client, chl, other)).json()
    assert _level(h4) == "provisional" and "link" not in h4
    # the feed's own link and level are not taken
    claimed = {**other, "identifier": [{"system": HOSPITAL, "value": "H3"}],
               "link": [{"other": {"reference": f"Patient/{certified}"}, "type": "seealso"}],
               "meta": {"tag": [{"system": LEVEL_SYSTEM, "code": "validated"}]}}  # fmt: skip
    h3 = (await _feed(client, chl, claimed)).json()
    assert _level(h3) == "provisional" and "link" not in h3


async def test_only_the_domain_source_writes_its_identities(platform: Platform, client: httpx.AsyncClient) -> None:
    chl, lab, _certified = await _setup(platform)
    outcome(await _feed(client, lab, _local(HOSPITAL, "H9")), 403)
    both = _local(HOSPITAL, "H9", identifier=[{"system": HOSPITAL, "value": "H9"}, {"system": LAB, "value": "L9"}])
    outcome(await _feed(client, chl, both), 400)
    unknown = outcome(await _feed(client, chl, _local("urn:oid:1.3.182.3.1.1.99.2", "X")), 400)
    assert "not registered" in unknown["issue"][0]["diagnostics"]
    forged = _local(HOSPITAL, "H9", meta={"tag": [{"system": LEVEL_SYSTEM, "code": "certified"}]})
    outcome(await _feed(client, chl, forged), 403)
    async with platform.database.read() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Patient'") == 1, "nothing written"


async def test_merge_and_delete(platform: Platform, client: httpx.AsyncClient) -> None:
    chl, lab, _certified = await _setup(platform)
    survivor = (await _feed(client, chl, _local(HOSPITAL, "H1"))).json()
    merged = (await _feed(client, chl, _local(HOSPITAL, "H2"))).json()
    elsewhere = (await _feed(client, lab, _local(LAB, "L1"))).json()
    not_inactive = _local(
        HOSPITAL, "H2", link=[{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    )
    outcome(await _feed(client, chl, not_inactive), 400)
    cross = _local(
        HOSPITAL,
        "H2",
        active=False,
        link=[{"other": {"reference": f"Patient/{elsewhere['id']}"}, "type": "replaced-by"}],
    )
    outcome(await _feed(client, chl, cross), 400)
    merge = _local(
        HOSPITAL,
        "H2",
        active=False,
        link=[{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}],
    )
    done = await _feed(client, chl, merge)
    assert done.status_code == 200 and done.json()["id"] == merged["id"] and done.json()["active"] is False
    pix = (await client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HOSPITAL}|H2"})).json()
    assert pix["parameter"] == [] or all(
        p["name"] != "targetIdentifier" or p["valueIdentifier"]["value"] != "H2" for p in pix["parameter"]
    )
    deleted = await client.delete(f"/fhir/Patient?identifier={quote(HOSPITAL + '|H1')}", headers=chl)
    assert deleted.status_code == 204
    assert (await client.get(f"/fhir/Patient/{survivor['id']}")).status_code == 410


class _ReviewMatcher:
    """A matcher that is never sure: every identity goes to review (the feed's review path, deterministically)."""

    def __init__(self, certified: str) -> None:
        self.certified = certified

    async def candidates(self, conn: Connection, patient: dict[str, Any], limit: int) -> list[Candidate]:
        agreement = {"family": "exact", "given": "exact", "birth_date": "transposed"}
        return [Candidate(self.certified, 0.72, "review", "probable", agreement)]


async def test_uncertain_identities_open_a_review_task(platform: Platform, client: httpx.AsyncClient) -> None:
    chl, _lab, certified = await _setup(platform)
    platform.hooks._hooks.clear()  # the feed again, with a matcher that always hesitates
    IdentityFeed(_ReviewMatcher(certified)).install(platform.hooks)
    local = (await _feed(client, chl, _local(HOSPITAL, "H5"))).json()
    assert _level(local) == "provisional"
    tasks = (await client.get("/fhir/Task", params={"code": "urn:esante:mpi-task|identity-review"})).json()
    (task,) = [e["resource"] for e in tasks["entry"]]
    assert task["focus"] == {"reference": f"Patient/{local['id']}"} and task["status"] == "requested"
    (candidate,) = task["input"]
    assert candidate["valueReference"] == {"reference": f"Patient/{certified}"}
    extensions = {e["url"]: e for e in candidate["extension"]}
    assert extensions["urn:esante:mpi-match-probability"]["valueDecimal"] == 0.72
    assert {e["url"]: e["valueCode"] for e in extensions["urn:esante:mpi-field-agreement"]["extension"]}[
        "birth_date"
    ] == "transposed"
    # the Task was written in the same transaction as the identity: a refused write leaves neither
    before = orjson.loads((await client.get("/fhir/Task?_summary=count")).content)["total"]
    outcome(await _feed(client, chl, _local(HOSPITAL, "H6", birthDate="1982-13-40")), 400)
    assert orjson.loads((await client.get("/fhir/Task?_summary=count")).content)["total"] == before
