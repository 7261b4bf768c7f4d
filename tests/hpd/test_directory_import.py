"""The directory import on SQLite and PostgreSQL: round trips (CSV, NDJSON), idempotency, delta files, the right to
practise, rejected lines (with their reason, nothing else lost) and the eHealthID ledger."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from esante.app import Platform
from esante.hpd import ehealth_ledger
from esante.hpd.csv_source import read_csv
from esante.hpd.directory_import import DirectoryImporter
from esante.hpd.model import (
    CNS_PROVIDER_SYSTEM,
    EHEALTH_ID_SYSTEM,
    LOCATION_SYSTEM,
    MINISTRY_AUTHORISATION_SYSTEM,
    ORGANIZATION_SYSTEM,
    PRACTITIONER_ROLE_SYSTEM,
    PROFESSION_SYSTEM,
    RIGHT_TO_PRACTISE_URL,
)
from esante.hpd.ndjson_source import read_ndjson
from esante.identifiers.ehealth_id import is_valid_ehealth_id, make_ehealth_id
from tests.hpd.directory_support import current, gp, hospital, identifier, ledger, nurse, versions, write_csv

TODAY = date(2025, 6, 1)


async def run(platform: Platform, path: Path, batch: int = 2) -> Any:
    source = read_csv(path, TODAY) if path.suffix == ".csv" else read_ndjson(path)
    return await DirectoryImporter(platform.store, batch_size=batch, today=TODAY).run(source)


async def test_a_csv_extract_becomes_the_directory(platform: Platform, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "extract.csv", [gp(), hospital(org_affiliated_with=""), nurse()])
    result = await run(platform, path)
    assert result.rejected == []
    assert (result.read, result.professionals, result.status_changes) == (3, 2, 0)
    assert dict(result.created) == {
        "Organization": 3,  # the cabinet, the hospital and the Ministry of Health
        "Endpoint": 2,
        "Location": 2,
        "Practitioner": 2,
        "HealthcareService": 3,  # general practice at the cabinet and the hospital, paediatric nursing
        "PractitionerRole": 3,
    }
    organizations = await current(platform, "Organization")
    assert sorted(organizations) == ["CAB00001", "HOSP01", "MINSANTE"]
    practitioners = await current(platform, "Practitioner")
    anne = practitioners["MED-2010-00042"]
    ehealth_id = identifier(anne, EHEALTH_ID_SYSTEM)
    assert ehealth_id is not None and is_valid_ehealth_id(ehealth_id)
    assert anne["identifier"][0] == {"use": "official", "system": EHEALTH_ID_SYSTEM, "value": ehealth_id}
    assert identifier(anne, CNS_PROVIDER_SYSTEM) == "901234-56"
    assert anne["active"] is True
    qualification = anne["qualification"][0]
    assert qualification["code"]["coding"][0] == {"system": PROFESSION_SYSTEM, "code": "medecin", "display": "Médecin"}
    assert qualification["issuer"]["reference"] == f"Organization/{organizations['MINSANTE']['id']}"
    assert qualification["identifier"] == [{"system": MINISTRY_AUTHORISATION_SYSTEM, "value": "MED-2010-00042"}]
    assert (await ledger(platform)) == {
        ehealth_id: anne["id"],
        identifier(practitioners["INF-2015-00007"], EHEALTH_ID_SYSTEM): practitioners["INF-2015-00007"]["id"],
    }
    roles = await current(platform, "PractitionerRole")
    assert sorted(roles) == [
        "INF-2015-00007/HOSP01/HOSP01-S1",
        "MED-2010-00042/CAB00001/CAB00001-S1",
        "MED-2010-00042/HOSP01/HOSP01-S1",
    ]
    role = roles["MED-2010-00042/CAB00001/CAB00001-S1"]
    locations = await current(platform, "Location")
    services = await current(platform, "HealthcareService")
    assert role["practitioner"]["reference"] == f"Practitioner/{anne['id']}"
    assert role["organization"]["reference"] == f"Organization/{organizations['CAB00001']['id']}"
    assert role["location"][0]["reference"] == f"Location/{locations['CAB00001-S1']['id']}"
    service = services["CAB00001/CAB00001-S1/med-generale"]
    assert role["healthcareService"][0]["reference"] == f"HealthcareService/{service['id']}"
    assert service["providedBy"]["reference"] == role["organization"]["reference"]
    assert locations["CAB00001-S1"]["address"]["city"] == "Esch-sur-Alzette"
    assert locations["CAB00001-S1"]["managingOrganization"]["reference"] == role["organization"]["reference"]
    endpoints = await current(platform, "Endpoint")
    assert organizations["HOSP01"]["endpoint"][0]["reference"] == f"Endpoint/{endpoints['HOSP01']['id']}"


async def test_the_import_is_idempotent(platform: Platform, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "extract.csv", [hospital(), gp(org_affiliated_with="HOSP01"), nurse()])
    first = await run(platform, path)
    assert first.rejected == [] and sum(first.created.values()) == 16
    before, ids = await versions(platform), await ledger(platform)
    again = await run(platform, path, batch=500)
    assert again.rejected == [] and not again.created and not again.updated
    assert again.unchanged == 16  # everything the file states, and the Ministry
    assert await versions(platform) == before, "an unchanged re-import writes no version"
    assert await ledger(platform) == ids


async def test_a_delta_file_changes_only_what_it_states(platform: Platform, tmp_path: Path) -> None:
    await run(platform, write_csv(tmp_path / "full.csv", [gp(), hospital(), nurse()]))
    before = await current(platform, "Practitioner")
    ids = await ledger(platform)
    delta = write_csv(
        tmp_path / "delta.csv",
        [
            gp(role_phone="+352 26 99 99 99"),  # a new phone at the cabinet
            nurse(role_until="2025-04-30"),  # the nurse left the hospital
            gp(
                authorisation="PHA-2020-00001",
                profession="pharmacien",
                specialties="",
                family="Kremer",
                given="Luc",
                cns_code="",
                org_id="PHA001",
                org_name="Pharmacie de la Gare",
                org_type="pharmacy",
                org_endpoint="",
                site_id="PHA001-S1",
            ),
        ],
    )
    result = await run(platform, delta)
    assert result.rejected == []
    assert dict(result.updated) == {"PractitionerRole": 2}
    assert dict(result.created) == {
        "Organization": 1,
        "Location": 1,
        "Practitioner": 1,
        "HealthcareService": 1,
        "PractitionerRole": 1,
    }
    roles = await current(platform, "PractitionerRole")
    assert roles["MED-2010-00042/CAB00001/CAB00001-S1"]["telecom"][0]["value"] == "+352 26 99 99 99"
    assert roles["MED-2010-00042/CAB00001/CAB00001-S1"]["meta"]["versionId"] == "2"
    ended = roles["INF-2015-00007/HOSP01/HOSP01-S1"]
    assert ended["active"] is False and ended["period"]["end"] == "2025-04-30"
    assert roles["MED-2010-00042/HOSP01/HOSP01-S1"]["meta"]["versionId"] == "1", "not in the delta: untouched"
    after = await current(platform, "Practitioner")
    for key, practitioner in before.items():
        assert after[key] == practitioner, "the professionals did not change"
    assert set(ids) < set(await ledger(platform))


async def test_a_suspension_makes_the_professional_and_the_roles_inactive_and_a_restoration_brings_them_back(
    platform: Platform, tmp_path: Path
) -> None:
    await run(platform, write_csv(tmp_path / "full.csv", [gp(), hospital(role_until="2025-01-31"), nurse()]))
    ehealth_id = identifier((await current(platform, "Practitioner"))["MED-2010-00042"], EHEALTH_ID_SYSTEM)
    suspended = {"status": "suspended", "status_date": "2025-05-20", "status_reason": "suspension disciplinaire"}
    # a delta naming one place only: the professional's other role follows too
    result = await run(platform, write_csv(tmp_path / "suspension.csv", [gp(**suspended)]))
    assert result.rejected == [] and result.status_changes == 1
    anne = (await current(platform, "Practitioner"))["MED-2010-00042"]
    assert anne["active"] is False
    (extension,) = [e for e in anne["extension"] if e["url"] == RIGHT_TO_PRACTISE_URL]
    assert {"url": "status", "valueCode": "suspended"} in extension["extension"]
    assert "suspension disciplinaire" not in json.dumps(anne), "the reason is not in the public entry"
    roles = await current(platform, "PractitionerRole")
    assert roles["MED-2010-00042/CAB00001/CAB00001-S1"]["active"] is False
    assert roles["MED-2010-00042/HOSP01/HOSP01-S1"]["active"] is False
    assert roles["INF-2015-00007/HOSP01/HOSP01-S1"]["active"] is True, "another professional is not touched"
    again = await run(platform, write_csv(tmp_path / "suspension.csv", [gp(**suspended)]))
    assert again.status_changes == 0 and not again.updated
    restored = await run(platform, write_csv(tmp_path / "restoration.csv", [gp(status_date="2025-05-30")]))
    assert restored.status_changes == 1
    anne = (await current(platform, "Practitioner"))["MED-2010-00042"]
    assert anne["active"] is True and identifier(anne, EHEALTH_ID_SYSTEM) == ehealth_id
    roles = await current(platform, "PractitionerRole")
    assert roles["MED-2010-00042/CAB00001/CAB00001-S1"]["active"] is True
    assert roles["MED-2010-00042/HOSP01/HOSP01-S1"]["active"] is False, "a role that ended stays ended"


async def test_a_professional_imported_withdrawn_is_inactive_from_the_start(platform: Platform, tmp_path: Path) -> None:
    withdrawn = {"status": "withdrawn", "status_date": "2024-12-01", "status_reason": "retrait"}
    result = await run(platform, write_csv(tmp_path / "w.csv", [gp(**withdrawn)]))
    assert result.status_changes == 1
    assert (await current(platform, "Practitioner"))["MED-2010-00042"]["active"] is False
    assert (await current(platform, "PractitionerRole"))["MED-2010-00042/CAB00001/CAB00001-S1"]["active"] is False


async def test_bad_lines_are_rejected_with_their_reason_and_nothing_else_is_lost(
    platform: Platform, tmp_path: Path
) -> None:
    rows = [
        gp(),
        gp(authorisation="MED-2011-00001", cns_code="12345-678"),  # line 3: bad CNS code
        gp(authorisation="MED-2011-00002", profession="sorcier"),  # line 4: unknown profession
        gp(authorisation="MED-2011-00003", authorised_from="2011-02-29"),  # line 5: not a date
        gp(authorisation="MED-2011-00004", org_name="Cabinet Autre"),  # line 6: CAB00001 given differently
        gp(
            authorisation="MED-2011-00005",
            org_id="CAB00002",
            site_id="",
            street="",
            postal_code="",
            city="",
            org_affiliated_with="HOSP99",
        ),  # line 7: an unknown organisation
        gp(authorisation="MED-2011-00006", family=""),  # line 8: missing value
        nurse(),  # line 9: fine
    ]
    result = await run(platform, write_csv(tmp_path / "mixed.csv", rows))
    assert [(r.line, r.reason.split(":")[0].split(" (")[0]) for r in result.rejected] == [
        (3, "cns_code"),
        (4, "profession"),
        (5, "authorised_from"),
        (6, "Organization CAB00001 is given differently on line 2"),
        (7, "OrganizationAffiliation HOSP99/CAB00002 refers to the Organization HOSP99, which is not in the directory"),
        (8, "family"),
    ]
    practitioners = await current(platform, "Practitioner")
    assert sorted(practitioners) == ["INF-2015-00007", "MED-2010-00042"]
    assert "CAB00002" not in await current(platform, "Organization"), "a refused line writes nothing"
    assert (await current(platform, "Organization"))["CAB00001"]["name"] == "Cabinet médical Schmit"


async def test_a_key_held_by_two_resources_refuses_the_line(platform: Platform, tmp_path: Path) -> None:
    twice = {
        "resourceType": "Organization",
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": "CAB00001"}],
        "name": "x",
    }
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        await session.create(dict(twice))
        await session.create(dict(twice))
        await session.flush()
    result = await run(platform, write_csv(tmp_path / "a.csv", [gp(), nurse()]))
    assert [(r.line, r.reason) for r in result.rejected] == [
        (2, "several Organization resources hold the identifier CAB00001: the directory needs one")
    ]
    assert sorted(await current(platform, "Practitioner")) == ["INF-2015-00007"]


async def test_ehealth_ids_are_never_reused(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spent = make_ehealth_id("123456789")
    fresh = make_ehealth_id("987654321")
    async with platform.database.transaction() as conn:
        await ehealth_ledger.record(conn, [(spent, "a-deleted-practitioner")])
    draws = iter([spent, spent, fresh, make_ehealth_id("555555555")])
    monkeypatch.setattr(ehealth_ledger, "_draw", lambda: next(draws))
    await run(platform, write_csv(tmp_path / "a.csv", [gp()]))
    anne = (await current(platform, "Practitioner"))["MED-2010-00042"]
    assert identifier(anne, EHEALTH_ID_SYSTEM) == fresh, "the spent number was drawn, checked and passed over"
    assert await ledger(platform) == {spent: "a-deleted-practitioner", fresh: anne["id"]}
    # deleted and imported again: a new Practitioner, a new number; the old one stays spent
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        stored = await session.read("Practitioner", anne["id"])
        assert stored is not None
        await session.delete(stored)
        await session.flush()
    draws = iter([spent, fresh, make_ehealth_id("555555555")])
    await run(platform, write_csv(tmp_path / "a.csv", [gp()]))
    again = (await current(platform, "Practitioner"))["MED-2010-00042"]
    assert again["id"] != anne["id"]
    assert identifier(again, EHEALTH_ID_SYSTEM) == make_ehealth_id("555555555")
    assert len(await ledger(platform)) == 3


def _ndjson(path: Path, lines: list[Any]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def _ref(res_type: str, system: str, value: str) -> dict[str, Any]:
    return {"type": res_type, "identifier": {"system": system, "value": value}}


def _ndjson_directory() -> list[Any]:
    organization = {
        "resourceType": "Organization",
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": "LAB01"}],
        "active": True,
        "type": [{"coding": [{"system": "urn:esante:hpd:organization-type", "code": "laboratory"}]}],
        "name": "Laboratoire d'analyses médicales 1",
    }
    location = {
        "resourceType": "Location",
        "identifier": [{"system": LOCATION_SYSTEM, "value": "LAB01-S1"}],
        "status": "active",
        "name": "Laboratoire 1 — Ettelbruck",
        "address": {"city": "Ettelbruck", "postalCode": "L-9080", "country": "LU"},
        "managingOrganization": _ref("Organization", ORGANIZATION_SYSTEM, "LAB01"),
    }
    practitioner = {
        "resourceType": "Practitioner",
        "id": "ignored",
        "identifier": [
            {"system": MINISTRY_AUTHORISATION_SYSTEM, "value": "BIO-2001-00003"},
            {"system": EHEALTH_ID_SYSTEM, "value": make_ehealth_id("111111111")},  # ignored: the HPD assigns them
        ],
        "name": [{"family": "Weber", "given": ["Paul"]}],
        "qualification": [
            {
                "code": {"coding": [{"system": PROFESSION_SYSTEM, "code": "biologiste"}]},
                "period": {"start": "2001-05-01"},
            }
        ],
    }
    role = {
        "resourceType": "PractitionerRole",
        "identifier": [{"system": PRACTITIONER_ROLE_SYSTEM, "value": "BIO-2001-00003/LAB01/LAB01-S1"}],
        "practitioner": _ref("Practitioner", MINISTRY_AUTHORISATION_SYSTEM, "BIO-2001-00003"),
        "organization": _ref("Organization", ORGANIZATION_SYSTEM, "LAB01"),
        "location": [_ref("Location", LOCATION_SYSTEM, "LAB01-S1")],
        "code": [{"coding": [{"system": PROFESSION_SYSTEM, "code": "biologiste"}]}],
    }
    return [organization, location, practitioner, role]


async def test_an_ndjson_directory_round_trips_and_bad_lines_are_reported(platform: Platform, tmp_path: Path) -> None:
    good = _ndjson_directory()
    unknown_profession = json.loads(json.dumps(good[2]))
    unknown_profession["identifier"][0]["value"] = "BIO-2001-00004"
    unknown_profession["qualification"][0]["code"]["coding"][0]["code"] = "alchimiste"
    no_key = {"resourceType": "Organization", "name": "sans identifiant"}
    bad_cns = json.loads(json.dumps(good[2]))
    bad_cns["identifier"] = [
        {"system": MINISTRY_AUTHORISATION_SYSTEM, "value": "BIO-2001-00005"},
        {"system": CNS_PROVIDER_SYSTEM, "value": "12-34"},
    ]
    bad_date = json.loads(json.dumps(good[2]))
    bad_date["identifier"][0]["value"] = "BIO-2001-00006"
    bad_date["qualification"][0]["period"]["start"] = "2001-02-30"
    dangling = json.loads(json.dumps(good[3]))
    dangling["identifier"][0]["value"] = "X/LAB02/-"
    dangling["organization"] = _ref("Organization", ORGANIZATION_SYSTEM, "LAB02")
    lines = [
        *good,
        "{not json",
        unknown_profession,
        no_key,
        bad_cns,
        bad_date,
        {"resourceType": "Patient", "name": [{"family": "x"}]},
        dangling,
    ]
    path = _ndjson(tmp_path / "directory.ndjson", lines)
    result = await run(platform, path)
    reasons = {r.line: r.reason for r in result.rejected}
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
    assert reasons[5].startswith("not JSON")
    assert "exactly one profession" in reasons[6]
    assert reasons[7] == "a Organization needs exactly one identifier in urn:esante:hpd:organization (its key)"
    assert "CNS provider code" in reasons[8]
    assert "2001-02-30" in reasons[9] or "start" in reasons[9]
    assert reasons[10].startswith("not a directory resource")
    assert "refers to the Organization LAB02" in reasons[11]
    paul = (await current(platform, "Practitioner"))["BIO-2001-00003"]
    ehealth_id = identifier(paul, EHEALTH_ID_SYSTEM)
    assert ehealth_id != make_ehealth_id("111111111") and paul["id"] != "ignored"
    assert paul["active"] is True
    role = (await current(platform, "PractitionerRole"))["BIO-2001-00003/LAB01/LAB01-S1"]
    assert role["practitioner"] == {
        "type": "Practitioner",
        "identifier": {"system": MINISTRY_AUTHORISATION_SYSTEM, "value": "BIO-2001-00003"},
        "reference": f"Practitioner/{paul['id']}",
    }
    assert role["active"] is True
    before = await versions(platform)
    again = await run(platform, _ndjson(tmp_path / "again.ndjson", good), batch=10)
    assert again.rejected == [] and not again.created and not again.updated and again.unchanged == 5
    assert await versions(platform) == before


async def test_csv_and_ndjson_give_the_same_directory(platform: Platform, tmp_path: Path) -> None:
    """The resources a CSV import wrote, exported as NDJSON (logical references) and imported again: unchanged."""
    await run(platform, write_csv(tmp_path / "a.csv", [gp(org_affiliated_with="HOSP01"), hospital(), nurse()]))
    ledger_before = await ledger(platform)
    exported: list[dict[str, Any]] = []
    order = ("Endpoint", "Organization", "OrganizationAffiliation", "Location", "Practitioner")
    for res_type in (*order, "HealthcareService", "PractitionerRole"):
        for resource in (await current(platform, res_type)).values():
            resource = {k: v for k, v in resource.items() if k not in ("id", "meta")}
            exported.append(orjson.loads(orjson.dumps(_logical(resource))))
    before = await versions(platform)
    result = await run(platform, _ndjson(tmp_path / "export.ndjson", exported), batch=3)
    assert result.rejected == [] and not result.created and not result.updated
    assert await versions(platform) == before
    assert await ledger(platform) == ledger_before


def _logical(value: Any) -> Any:
    """Drop the literal reference of every logical reference (as an exporter to another directory would)."""
    if isinstance(value, dict):
        if "identifier" in value and isinstance(value["identifier"], dict) and "reference" in value:
            value = {k: v for k, v in value.items() if k != "reference"}
        return {k: _logical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_logical(v) for v in value]
    return value


def _doc_block(language: str) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "hpd.md").read_text(encoding="utf-8")
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


async def test_the_samples_of_the_documentation_import(platform: Platform, tmp_path: Path) -> None:
    csv_sample = tmp_path / "sample.csv"
    csv_sample.write_text(_doc_block("csv"), encoding="utf-8")
    result = await run(platform, csv_sample)
    assert result.rejected == [] and result.professionals == 2 and result.status_changes == 1
    ndjson_sample = tmp_path / "sample.ndjson"
    ndjson_sample.write_text(_doc_block("json"), encoding="utf-8")
    result = await run(platform, ndjson_sample)
    assert result.rejected == [] and result.created["PractitionerRole"] == 1
