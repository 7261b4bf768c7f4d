"""ITI-65 refusals over HTTP: each bad submission is a 4xx OperationOutcome naming the problem, with the XDS error code
in issue.details, and leaves nothing behind — no DocumentReference, List or Binary, no blob link, no blob on disk.
And what is accepted though sent differently: the patient by matricule, eSanté id or conditional reference, authors
by eHealthID, a PractitionerRole."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.context import dsp_context
from esante.dsp.lifecycle import change
from esante.hpd.model import EHEALTH_ID_SYSTEM as EHEALTH
from esante.hpd.practise import Agent, Source, change_right_to_practise
from esante.mpi.model import ESANTE_ID_SYSTEM, MATRICULE_SYSTEM
from tests.dsp.mhd.support import (
    COMPREHENSIVE,
    FHIR_JSON,
    World,
    author_of,
    ehealth_id,
    mhd_world,
    national_id,
    pdf,
    submission,
    xds_code,
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with mhd_world(db_url, tmp_path) as built:
        yield built


async def post(world: World, bundle: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(world.fhir, json=bundle, headers={**world.system(), **FHIR_JSON})


def blobs_on_disk(world: World) -> list[Path]:
    return sorted((world.blob_dir() / "objects").glob("*/*/*")) if (world.blob_dir() / "objects").exists() else []


async def nothing_stored(world: World) -> None:
    rows = await world.rows("SELECT res_type FROM resource WHERE res_type IN ('DocumentReference', 'List', 'Binary')")
    assert rows == []
    assert await world.rows("SELECT binary_id FROM dsp_document_blob") == []
    assert blobs_on_disk(world) == []


async def refused(world: World, bundle: dict[str, Any], status: int, code: str | None, *, where: str = "") -> str:
    response = await post(world, bundle)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert xds_code(body) == code, body
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    if where:
        assert any(where in expression for expression in issue.get("expression", [])), issue
    await nothing_stored(world)
    return str(issue["diagnostics"])


def ref(world: World, name: str = "lea") -> dict[str, str]:
    return {"reference": f"Patient/{world.patients[name]}"}


def binary_of(bundle: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Binary"][index]


def document_of(bundle: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"][index]


# --------------------------------------------------------------------------------------------- the bytes


async def test_hash_mismatch(world: World) -> None:
    bundle = submission(ref(world), author=author_of("dr-demo"))
    document_of(bundle)["content"][0]["attachment"]["hash"] = base64.b64encode(b"x" * 20).decode()
    await refused(world, bundle, 422, "XDSNonIdenticalHash", where="attachment.hash")


async def test_size_mismatch(world: World) -> None:
    bundle = submission(ref(world))
    attachment = document_of(bundle)["content"][0]["attachment"]
    attachment["size"] += 1
    del attachment["hash"]  # nothing vouches for the bytes: the size must be right
    await refused(world, bundle, 422, "XDSNonIdenticalSize", where="attachment.size")


async def test_hash_that_is_no_sha1(world: World) -> None:
    bundle = submission(ref(world))
    document_of(bundle)["content"][0]["attachment"]["hash"] = "bm90IGEgaGFzaA=="
    await refused(world, bundle, 400, "XDSRegistryMetadataError", where="attachment.hash")


@pytest.mark.parametrize(
    ("content_type", "data", "code"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n....", "XDSRepositoryMetadataError"),  # not a DSP media type
        ("application/pdf", b"GIF89a not a pdf", "InvalidDocumentContent"),  # not what it says
        ("application/pdf", b"%PDF-1.7\n no PDF/A metadata\n%%EOF", "InvalidDocumentContent"),  # PDF, not PDF/A
        ("text/plain", b"\xff\xfe\xfd not UTF-8", "InvalidDocumentContent"),
        ("application/fhir+json", b'{"no": "resourceType"}', "InvalidDocumentContent"),
        ("application/hl7-v3+xml", b"plain words, no XML", "InvalidDocumentContent"),
    ],
)
async def test_wrong_content_type(world: World, content_type: str, data: bytes, code: str) -> None:
    bundle = submission(ref(world), [data], content_type=content_type)
    await refused(world, bundle, 422, code, where="contentType")


async def test_binary_type_differs_from_the_attachment(world: World) -> None:
    bundle = submission(ref(world))
    binary_of(bundle)["contentType"] = "text/plain"
    await refused(world, bundle, 400, "XDSRegistryMetadataError", where="contentType")


# --------------------------------------------------------------------------------------------- the structure


async def test_missing_submission_set(world: World) -> None:
    bundle = submission(ref(world))
    bundle["meta"]["profile"] = ["https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.ProvideBundle"]
    bundle["entry"] = bundle["entry"][1:]
    text = await refused(world, bundle, 400, "XDSRegistryMetadataError")
    assert "SubmissionSet" in text


async def test_two_submission_sets(world: World) -> None:
    bundle = submission(ref(world))
    second = copy.deepcopy(bundle["entry"][0])
    second["fullUrl"] = "urn:uuid:0e8d3b0a-27a0-4b7e-9a4c-2f8a7e3f0001"
    bundle["entry"].append(second)
    text = await refused(world, bundle, 400, "XDSRegistryMetadataError")
    assert "exactly one SubmissionSet" in text


async def test_document_reference_without_its_binary(world: World) -> None:
    bundle = submission(ref(world))
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Binary"]
    await refused(world, bundle, 400, "XDSMissingDocument", where="attachment.url")


async def test_document_hosted_elsewhere(world: World) -> None:
    bundle = submission(ref(world))
    document_of(bundle)["content"][0]["attachment"]["url"] = "https://hospital.example/documents/1.pdf"
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Binary"]
    await refused(world, bundle, 400, "XDSMissingDocument")


async def test_binary_without_document_reference(world: World) -> None:
    bundle = submission(ref(world), [pdf("one"), pdf("two")])
    docs = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    bundle["entry"].remove(docs[1])
    bundle["entry"][0]["resource"]["entry"] = bundle["entry"][0]["resource"]["entry"][:1]
    await refused(world, bundle, 400, "XDSMissingDocumentMetadata")


async def test_document_not_listed_in_the_submission_set(world: World) -> None:
    bundle = submission(ref(world))
    bundle["entry"][0]["resource"]["entry"] = []
    await refused(world, bundle, 400, "XDSRegistryMetadataError", where="entry")


async def test_an_entry_an_mhd_bundle_may_not_carry(world: World) -> None:
    bundle = submission(ref(world))
    bundle["entry"].append({"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "x"}})
    await refused(world, bundle, 400, "XDSRegistryMetadataError")


async def test_no_profile_declared(world: World) -> None:
    bundle = submission(ref(world))
    del bundle["meta"]
    await refused(world, bundle, 400, "XDSRegistryMetadataError", where="Bundle.meta.profile")


@pytest.mark.parametrize(
    ("change_it", "where"),
    [
        (lambda d: d.pop("masterIdentifier"), "masterIdentifier"),
        (lambda d: d.update(status="superseded"), "status"),
        (lambda d: d.update(docStatus="final"), "docStatus"),
        (lambda d: d.update(securityLabel=[{"coding": [{"system": _V3, "code": "L"}]}]), "securityLabel"),
        (lambda d: d["category"].append({"text": "two"}), "category"),
        (lambda d: d["category"][0]["coding"].append({"system": "urn:esante:dsp:document-class", "code": "x"}),
         "category"),
        (lambda d: d.update(relatesTo=[{"code": "replaces"}]), "relatesTo"),
        (lambda d: d["content"][0]["attachment"].update(data="SGk="), "attachment"),
    ],
)  # fmt: skip
async def test_minimal_metadata(world: World, change_it: Any, where: str) -> None:
    bundle = submission(ref(world))
    document = document_of(bundle)
    document["category"] = [{"coding": [{"system": "http://loinc.org", "code": "11488-4"}]}]
    change_it(document)
    await refused(world, bundle, 400, "XDSRegistryMetadataError", where=where)


_V3 = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


@pytest.mark.parametrize(
    ("change_it", "where"),
    [
        (lambda b: document_of(b).pop("type"), "type"),
        (lambda b: document_of(b)["context"].pop("practiceSetting"), "practiceSetting"),
        (lambda b: document_of(b)["content"][0]["attachment"].pop("creation"), "creation"),
        (lambda b: document_of(b)["content"][0].pop("format"), "format"),
        (lambda b: b["entry"][0]["resource"].update(extension=b["entry"][0]["resource"]["extension"][:1]),
         "extension"),
    ],
)  # fmt: skip
async def test_comprehensive_metadata(world: World, change_it: Any, where: str) -> None:
    bundle = submission(ref(world), profile=COMPREHENSIVE)
    document = document_of(bundle)
    document["category"] = [{"coding": [{"system": "http://loinc.org", "code": "11488-4"}]}]
    document["context"]["sourcePatientInfo"] = ref(world)
    complete = copy.deepcopy(bundle)
    change_it(bundle)
    await refused(world, bundle, 400, "XDSRegistryMetadataError", where=where)
    assert (await post(world, complete)).status_code == 200  # the same, complete, is accepted


# --------------------------------------------------------------------------------------------- the patient


@pytest.mark.parametrize(
    "patient",
    [
        {"reference": "Patient/nobody"},
        {"reference": "https://elsewhere.example/fhir/Patient/x"},
        {"identifier": {"system": MATRICULE_SYSTEM, "value": "1999010100123"}},
        {"identifier": {"system": "http://example.org/mrn", "value": "12"}},
        {"reference": f"Patient?identifier={ESANTE_ID_SYSTEM}|1234567897"},
    ],
)
async def test_unknown_patient(world: World, patient: dict[str, Any]) -> None:
    await refused(world, submission(patient), 422, "XDSUnknownPatientId", where="subject")


async def test_a_local_identity_linked_to_nobody_has_no_dsp(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{world.fhir}/Patient",
            json={"resourceType": "Patient", "name": [{"family": "Provisoire", "given": ["Paul"]}]},
            headers={**world.system(), **FHIR_JSON},
        )
        assert created.status_code == 201, created.text
    text = await refused(
        world, submission({"reference": f"Patient/{created.json()['id']}"}), 422, "XDSUnknownPatientId"
    )
    assert "certified" in text


async def test_different_patients_in_one_submission(world: World) -> None:
    bundle = submission(ref(world, "lea"))
    document_of(bundle)["subject"] = ref(world, "marc")
    await refused(world, bundle, 422, "XDSPatientIdDoesNotMatch", where="subject")


@pytest.mark.parametrize("how", ["matricule", "esante-id", "conditional"])
async def test_the_patient_by_national_identifier(world: World, how: str) -> None:
    system = ESANTE_ID_SYSTEM if how == "esante-id" else MATRICULE_SYSTEM
    value = await national_id(world, "marc", system)
    patient: dict[str, Any] = {"identifier": {"system": system, "value": value}}
    if how == "conditional":
        patient = {"reference": f"Patient?identifier={system}|{value}"}
    response = await post(world, submission(patient))
    assert response.status_code == 200, response.text
    rows = await world.rows("SELECT content FROM resource WHERE res_type = 'DocumentReference' AND is_current")
    assert f'"subject":{{"reference":"Patient/{world.patients["marc"]}"}}'.encode() in bytes(rows[0][0])


# --------------------------------------------------------------------------------------------- the authors


async def test_unknown_author(world: World) -> None:
    bundle = submission(ref(world), author={"reference": "Practitioner/nobody"})
    text = await refused(world, bundle, 422, "XDSRegistryMetadataError", where="author")
    assert "HPD" in text


async def test_contained_author_unknown_to_the_hpd(world: World) -> None:
    bundle = submission(ref(world), author={"reference": "#someone"})
    document_of(bundle)["contained"] = [
        {"resourceType": "Practitioner", "id": "someone", "identifier": [{"system": EHEALTH, "value": ehealth_id(99)}]}
    ]
    await refused(world, bundle, 422, "XDSRegistryMetadataError", where="author")


async def test_author_whose_right_to_practise_is_withdrawn(world: World) -> None:
    async with world.database.transaction() as conn:
        await change_right_to_practise(
            world.platform.store.session(conn),
            "dr-gone",
            "withdrawn",
            reason="disciplinary decision",
            source=Source.ADMINISTRATOR,
            agent=Agent("test-admin"),
        )
    bundle = submission(ref(world), author=author_of("dr-gone"))
    text = await refused(world, bundle, 422, "XDSRegistryMetadataError", where="author")
    assert "may not practise" in text


@pytest.mark.parametrize(
    "author",
    [
        {"identifier": {"system": EHEALTH, "value": ehealth_id(4)}},
        {"reference": f"Practitioner?identifier={EHEALTH}|{ehealth_id(4)}"},
        {"reference": "PractitionerRole/dr-demo-gp"},
    ],
)
async def test_authors_known_by_identifier_or_role(world: World, author: dict[str, Any]) -> None:
    response = await post(world, submission(ref(world), author=author))
    assert response.status_code == 200, response.text
    rows = await world.rows("SELECT content FROM resource WHERE res_type = 'DocumentReference' AND is_current")
    stored = bytes(rows[0][0])
    assert b'"reference":"Practitioner/dr-demo"' in stored or b'"reference":"PractitionerRole/dr-demo-gp"' in stored


# --------------------------------------------------------------------------------------------- the registry


async def test_duplicate_unique_id(world: World) -> None:
    document = pdf("same")
    first = submission(ref(world), [document], unique_ids=["urn:oid:2.25.1001"])
    assert (await post(world, first)).status_code == 200
    again = submission(ref(world), [document], unique_ids=["urn:oid:2.25.1001"])
    response = await post(world, again)
    assert response.status_code == 422 and xds_code(response.json()) == "XDSDuplicateUniqueIdInRegistry"
    other = submission(ref(world), [pdf("other")], unique_ids=["urn:oid:2.25.1001"])
    response = await post(world, other)
    assert response.status_code == 422 and xds_code(response.json()) == "XDSNonIdenticalHash"
    rows = await world.rows("SELECT res_id FROM resource WHERE res_type = 'DocumentReference' AND is_current")
    assert len(rows) == 1


async def test_closed_dsp_accepts_no_document(world: World) -> None:
    patient_id = world.patients["lea"]
    async with world.database.transaction() as conn:
        session = world.platform.store.session(conn)
        await change(session, dsp_context(world.platform), patient_id, "close", SYSTEM_ACTOR, "test")
    response = await post(world, submission(ref(world)))
    assert response.status_code == 409, response.text
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "dsp-closed"
    await nothing_stored(world)
