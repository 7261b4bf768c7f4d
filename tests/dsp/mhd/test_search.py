"""ITI-67 Find Document References and ITI-66 Find Document Lists over HTTP, with every parameter the guide lists
(the IHE ones — creation, designationType, sourceId — served as SearchParameter resources too), GET and POST; and
what the server declares (CapabilityStatement, the document classes as terminology)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.mpi.model import MATRICULE_SYSTEM
from tests.dsp.mhd.support import (
    FHIR_JSON,
    MHD,
    World,
    author_of,
    located,
    mhd_world,
    national_id,
    pdf,
    submission,
)

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
V3 = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
FORMAT = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
LIST_TYPES = f"{MHD}/CodeSystem/MHDlistTypes"


class Filed:
    """Léa's two documents and Marc's one, with the ids the server gave them."""

    def __init__(self) -> None:
        self.a = self.b = self.marc = ""
        self.set_a = self.set_b = self.folder = ""
        self.unique_a = "urn:oid:2.25.771001"


async def _file(world: World) -> Filed:
    filed = Filed()
    lea = {"reference": f"Patient/{world.patients['lea']}"}
    a = submission(lea, [pdf("consultation")], author=author_of("dr-demo"), unique_ids=[filed.unique_a])
    document = next(e["resource"] for e in a["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    document["context"]["related"] = [{"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.99"}}]
    a["entry"][0]["resource"]["source"] = author_of("dr-demo")
    a["entry"].append(
        {
            "fullUrl": "urn:uuid:5a1b0c2d-0000-4000-8000-00000000f01d",
            "resource": {
                "resourceType": "List",
                "status": "current",
                "mode": "working",
                "title": "Suivi cardiologique",
                "code": {"coding": [{"system": LIST_TYPES, "code": "folder"}]},
                "subject": lea,
                "entry": [{"item": {"reference": a["entry"][1]["fullUrl"]}}],
            },
            "request": {"method": "POST", "url": "List"},
        }
    )
    a["entry"][0]["resource"]["entry"].append({"item": {"reference": "urn:uuid:5a1b0c2d-0000-4000-8000-00000000f01d"}})
    b = submission(lea, [pdf("lab")], author=author_of("ex-practitioner"), type_code="11502-2", confidentiality="R")
    document = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    document["date"] = "2025-06-10T08:00:00+02:00"
    document["context"] = {
        "period": {"start": "2025-06-09T08:00:00+02:00", "end": "2025-06-09T09:00:00+02:00"},
        "facilityType": {"coding": [{"system": SCT, "code": "708175003"}]},
        "practiceSetting": {"coding": [{"system": SCT, "code": "408478003"}]},
    }
    document["content"][0]["attachment"]["creation"] = "2025-06-09T10:00:00+02:00"
    b["entry"][0]["resource"]["date"] = "2025-06-10T08:00:00+02:00"
    b["entry"][0]["resource"]["extension"][1]["valueCodeableConcept"]["coding"][0]["code"] = "371531000"
    marc = submission({"reference": f"Patient/{world.patients['marc']}"}, [pdf("marc")])
    async with httpx.AsyncClient(timeout=30) as http:
        for bundle, name in ((a, "a"), (b, "b"), (marc, "marc")):
            response = await http.post(world.fhir, json=bundle, headers={**world.system(), **FHIR_JSON})
            assert response.status_code == 200, response.text
            setattr(filed, name, located(response.json(), "DocumentReference")[0])
            lists = located(response.json(), "List")
            if name == "a":
                filed.set_a, filed.folder = lists
            elif name == "b":
                (filed.set_b,) = lists
    return filed


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with mhd_world(db_url, tmp_path) as built:
        built.filed = await _file(built)  # type: ignore[attr-defined]
        yield built


async def ids(world: World, res_type: str, query: list[tuple[str, str]], *, post: bool = False) -> set[str]:
    headers = world.patient(world.patients["lea"])
    async with httpx.AsyncClient(timeout=30) as http:
        if post:
            response = await http.post(f"{world.fhir}/{res_type}/_search", data=dict(query), headers=headers)
        else:
            response = await http.get(f"{world.fhir}/{res_type}", params=query, headers=headers)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset" and "total" in bundle
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}


def lea_ref(world: World) -> tuple[str, str]:
    return ("patient", f"Patient/{world.patients['lea']}")


async def test_find_document_references(world: World) -> None:
    f: Filed = world.filed  # type: ignore[attr-defined]
    lea = lea_ref(world)
    current = ("status", "current")
    matricule = await national_id(world, "lea", MATRICULE_SYSTEM)
    expected: list[tuple[list[tuple[str, str]], set[str]]] = [
        ([lea, current], {f.a, f.b}),
        ([("patient.identifier", f"{MATRICULE_SYSTEM}|{matricule}"), current], {f.a, f.b}),
        ([lea, ("status", "superseded")], set()),
        ([lea, ("type", f"{LOINC}|11502-2")], {f.b}),
        ([lea, ("category", "urn:esante:dsp:document-class|laboratory-results")], {f.b}),
        ([lea, ("category", "urn:esante:dsp:document-class|consultation-report")], {f.a}),
        ([lea, ("date", "ge2026-01-01")], {f.a}),
        ([lea, ("period", "gt2026-01-01")], {f.a}),
        ([lea, ("period", "lt2026-01-01")], {f.b}),
        ([lea, ("setting", f"{SCT}|394802001")], {f.a}),
        ([lea, ("facility", f"{SCT}|708175003")], {f.b}),
        ([lea, ("event", f"{SCT}|11429006")], {f.a}),
        ([lea, ("security-label", f"{V3}|R")], {f.b}),
        ([lea, ("security-label", f"{V3}|N")], {f.a}),
        ([lea, ("format", f"{FORMAT}|urn:ihe:iti:xds:2017:mimeTypeSufficient")], {f.a, f.b}),
        ([lea, ("related:identifier", "urn:ietf:rfc:3986|urn:oid:1.2.3.99")], {f.a}),
        ([lea, ("author.family", "Demo")], {f.a}),
        ([lea, ("author.given", "Claire")], {f.a}),
        ([lea, ("author.family", "Moehrke"), ("author.given", "John")], {f.b}),
        ([lea, ("creation", "ge2026-01-01")], {f.a}),
        ([lea, ("creation", "lt2026-01-01")], {f.b}),
        ([lea, ("identifier", f"urn:ietf:rfc:3986|{f.unique_a}")], {f.a}),
        ([("patient", f"Patient/{world.patients['marc']}"), current], set()),  # not Léa's to see
    ]
    for query, wanted in expected:
        assert await ids(world, "DocumentReference", query) == wanted, query
    assert await ids(world, "DocumentReference", [lea, current, ("author.family", "Demo")], post=True) == {f.a}


async def test_find_document_lists(world: World) -> None:
    f: Filed = world.filed  # type: ignore[attr-defined]
    lea = lea_ref(world)
    submission_sets = ("code", f"{LIST_TYPES}|submissionset")
    matricule = await national_id(world, "lea", MATRICULE_SYSTEM)
    expected: list[tuple[list[tuple[str, str]], set[str]]] = [
        ([lea, submission_sets, ("status", "current")], {f.set_a, f.set_b}),
        ([lea, ("code", f"{LIST_TYPES}|folder")], {f.folder}),
        ([("patient.identifier", f"{MATRICULE_SYSTEM}|{matricule}"), submission_sets], {f.set_a, f.set_b}),
        ([lea, submission_sets, ("designationType", f"{SCT}|225728007")], {f.set_a}),
        ([lea, submission_sets, ("designationType", f"{SCT}|371531000")], {f.set_b}),
        ([lea, submission_sets, ("sourceId", "urn:oid:1.3.182.9.1")], {f.set_a, f.set_b}),
        ([lea, submission_sets, ("date", "ge2026-01-01")], {f.set_a}),
        ([lea, submission_sets, ("source.family", "Demo")], {f.set_a}),
        ([lea, submission_sets, ("source.given", "Claire")], {f.set_a}),
    ]
    for query, wanted in expected:
        assert await ids(world, "List", query) == wanted, query
    assert await ids(world, "List", [lea, submission_sets, ("sourceId", "urn:oid:1.3.182.9.1")], post=True) == {
        f.set_a,
        f.set_b,
    }


async def test_definitions_are_served(world: World) -> None:
    headers = world.patient(world.patients["lea"])
    async with httpx.AsyncClient(timeout=30) as http:
        for url in ("DocumentReference-Creation", "List-DesignationType", "List-SourceId"):
            found = await http.get(
                f"{world.fhir}/SearchParameter", params={"url": f"{MHD}/SearchParameter/{url}"}, headers=headers
            )
            assert found.status_code == 200, found.text
            (entry,) = found.json()["entry"]
            assert entry["resource"]["id"] == url and entry["resource"]["status"] == "active"
        classes = await http.get(
            f"{world.fhir}/CodeSystem", params={"url": "urn:esante:dsp:document-class"}, headers=headers
        )
        (entry,) = classes.json()["entry"]
        codes = {c["code"] for c in entry["resource"]["concept"]}
        assert {"consultation-report", "imaging-report", "patient-provided"} <= codes and len(codes) == 12
        value_set = await http.get(f"{world.fhir}/ValueSet/dsp-document-class", headers=headers)
        assert value_set.json()["compose"]["include"] == [{"system": "urn:esante:dsp:document-class"}]
        mapping = await http.get(f"{world.fhir}/ConceptMap/dsp-document-type-to-class", headers=headers)
        elements = {e["code"]: e["target"][0]["code"] for e in mapping.json()["group"][0]["element"]}
        assert elements["11502-2"] == "laboratory-results" and elements["18842-5"] == "discharge-letter"
        statement = (await http.get(f"{world.fhir}/metadata")).json()
    assert f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient" in statement["instantiates"]
    assert f"{MHD}/CapabilityStatement/IHE.MHD.DocumentResponder" in statement["instantiates"]
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert "creation" in {p["name"] for p in resources["DocumentReference"]["searchParam"]}
    assert {"designationType", "sourceId"} <= {p["name"] for p in resources["List"]["searchParam"]}
    assert f"{MHD}/StructureDefinition/IHE.MHD.Minimal.DocumentReference" in resources["DocumentReference"].get(
        "supportedProfile", []
    )
