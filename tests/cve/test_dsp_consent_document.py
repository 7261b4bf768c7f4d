"""The vaccination-history document and its ITI-65 Bundle (pure): a valid FHIR R4 document shaped like the IPS
immunization section, what it includes and in which order, an escaped narrative, a digest that changes with the
history only, and a Provide Document Bundle the DSP's own reader accepts and classes ``vaccination-history``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from esante.config import Settings
from esante.cve.dsp_consent import build_dsp_consent, is_dsp_consent, withdrawn
from esante.cve.dsp_consent_document import (
    HISTORY_IDENTIFIER,
    history_hash,
    included,
    provide_bundle,
    vaccination_document,
)
from esante.dsp.mhd.classes import document_classes
from esante.dsp.mhd.content import ContentPolicy
from esante.dsp.mhd.submission import read_submission
from esante.fhir.validation import validate_resource

NOW = datetime(2026, 5, 11, 9, 30, tzinfo=UTC)
PATIENT = {
    "resourceType": "Patient",
    "id": "lea",
    "meta": {"versionId": "3", "lastUpdated": "2026-05-01T10:00:00Z"},
    "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": "1980010100001"}],
    "name": [{"family": "Schmit", "given": ["Lea"]}],
    "birthDate": "1980-01-01",
}


def imm(iid: str, day: str, cvx: str = "03", status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Immunization",
        "id": iid,
        "meta": {"versionId": "1"},
        "status": status,
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": cvx}]},
        "patient": {"reference": "Patient/lea"},
        "occurrenceDateTime": day,
        "primarySource": False,
        **extra,
    }


HISTORY = [
    imm("i3", "2024-06-01", "115", lotNumber="<script>alert(1)</script>"),
    imm("i1", "1981-03-01"),
    imm("i2", "1990-01-01", status="entered-in-error"),
    imm("i4", "2025-10-15", "140", status="not-done", statusReason={"text": "refused"}),
]


def test_the_document_is_valid_r4_and_shaped_like_the_ips_section() -> None:
    document = vaccination_document(PATIENT, HISTORY, NOW)
    validate_resource(document)
    for entry in document["entry"]:
        validate_resource(entry["resource"])
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition" and composition["status"] == "final"
    assert composition["type"]["coding"][0]["code"] == "82593-5"
    patient_entry = document["entry"][1]
    assert patient_entry["resource"]["id"] == "lea" and "meta" not in patient_entry["resource"]
    assert composition["subject"] == {"reference": patient_entry["fullUrl"]}
    section = composition["section"][0]
    assert section["code"]["coding"][0]["code"] == "11369-6"
    immunizations = [e for e in document["entry"] if e["resource"]["resourceType"] == "Immunization"]
    assert [e["resource"]["id"] for e in immunizations] == ["i1", "i3", "i4"]  # oldest first, no entered-in-error
    assert section["entry"] == [{"reference": e["fullUrl"]} for e in immunizations]
    assert all(e["resource"]["patient"] == {"reference": patient_entry["fullUrl"]} for e in immunizations)
    div = section["text"]["div"]
    assert "<script>" not in div and "&lt;script&gt;" in div and "(not done)" in div
    assert len({e["fullUrl"] for e in document["entry"]}) == len(document["entry"])


def test_an_empty_history_says_so() -> None:
    document = vaccination_document(PATIENT, [], NOW)
    validate_resource(document)
    section = document["entry"][0]["resource"]["section"][0]
    assert "entry" not in section and section["emptyReason"]["coding"][0]["code"] == "nilknown"


def test_the_digest_follows_what_the_document_says() -> None:
    base = history_hash(PATIENT, HISTORY)
    assert history_hash({**PATIENT, "meta": {"versionId": "4"}}, HISTORY) == base  # meta is the store's
    assert history_hash(PATIENT, list(reversed(HISTORY))) == base  # order is the document's
    assert history_hash(PATIENT, [*HISTORY, imm("i5", "1991-01-01", status="entered-in-error")]) == base
    assert history_hash(PATIENT, [*HISTORY, imm("i5", "2026-05-10", "150")]) != base
    assert history_hash({**PATIENT, "name": [{"family": "Weber"}]}, HISTORY) != base
    assert [i["id"] for i in included(HISTORY)] == ["i1", "i3", "i4"]


def test_the_provide_bundle_passes_the_dsp_reader_and_replaces_the_previous_document() -> None:
    settings = Settings()
    document = vaccination_document(PATIENT, HISTORY, NOW)
    bundle = provide_bundle("lea", document, NOW, replaces="old-doc")
    validate_resource(bundle)
    submission = read_submission(
        bundle,
        ContentPolicy.parse(settings.mhd_content_types, settings.mhd_pdfa_required),
        document_classes(settings.mhd_document_classes_file),
    )
    (filed,) = submission.documents
    assert filed.doc_class == "vaccination-history"
    assert filed.content_type == "application/fhir+json"
    assert filed.relations("replaces") == ["DocumentReference/old-doc"]
    assert filed.resource["identifier"] == [{"system": HISTORY_IDENTIFIER, "value": "lea"}]
    assert filed.resource["subject"] == {"reference": "Patient/lea"}
    assert "relatesTo" not in provide_bundle("lea", document, NOW)["entry"][1]["resource"]
    unique = {provide_bundle("lea", document, NOW)["entry"][1]["resource"]["masterIdentifier"]["value"] for _ in "ab"}
    assert len(unique) == 2  # a new uniqueId for each version


def test_the_consent_profile() -> None:
    consent = build_dsp_consent("lea", "Patient/lea", NOW)
    validate_resource(consent)
    assert is_dsp_consent(consent) and consent["status"] == "active"
    assert consent["provision"]["action"][0]["coding"][0]["code"] == "disclose"
    gone = withdrawn(consent, NOW)
    assert gone["status"] == "inactive" and gone["provision"]["period"]["end"] == "2026-05-11T09:30:00Z"
    assert not is_dsp_consent({**consent, "category": [consent["category"][0]]})
    assert not is_dsp_consent({"resourceType": "Immunization"}) and not is_dsp_consent(None)
