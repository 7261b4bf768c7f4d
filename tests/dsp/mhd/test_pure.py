"""The pure parts of the MHD side, without a server: Accept negotiation, the media type checks, the document
classes, and how a submission is read (FHIR document, image links, options, claims)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from esante.dsp.mhd.classes import CLASS_SYSTEM, document_classes
from esante.dsp.mhd.content import ContentPolicy, check_declared, media_type
from esante.dsp.mhd.model import Option
from esante.dsp.mhd.retrieve import negotiate
from esante.dsp.mhd.submission import is_provide_bundle, read_submission
from esante.fhir.errors import FhirError
from tests.dsp.mhd.support import COMPREHENSIVE, MINIMAL, example, pdf, sha1, submission

POLICY = ContentPolicy.parse(
    "application/pdf,text/plain,application/fhir+json,application/fhir+xml,application/hl7-v3+xml,text/xml"
)
CLASSES = document_classes()
PATIENT = {"reference": "Patient/p"}


def code(error: pytest.ExceptionInfo[FhirError]) -> str | None:
    return error.value.issues[0].details_code


@pytest.mark.parametrize(
    ("accept", "content_type", "mode"),
    [
        ("", "application/pdf", "raw"),
        ("*/*", "application/pdf", "raw"),
        ("application/*", "application/pdf", "raw"),
        ("application/pdf", "application/pdf", "raw"),
        ("application/pdf, application/fhir+json", "application/pdf", "raw"),  # the document's own type wins a tie
        ("application/fhir+json", "application/pdf", "resource"),
        ("application/json", "application/pdf", "resource"),
        ("application/fhir+json, */*;q=0.8", "application/pdf", "resource"),
        ("application/fhir+json", "application/fhir+json", "raw"),  # a FHIR document asked for as itself
        ("application/json", "application/fhir+json", "resource"),
        ("text/html", "application/pdf", "none"),
        ("application/pdf;q=0", "application/pdf", "none"),
        ("text/*", "text/plain; charset=utf-8", "raw"),
    ],
)
def test_negotiate(accept: str, content_type: str, mode: str) -> None:
    assert negotiate(accept, content_type) == mode


def test_media_types() -> None:
    assert media_type("Text/Plain; charset=UTF-8") == "text/plain"
    POLICY.check("application/pdf", pdf(), "x")
    POLICY.check("text/plain; charset=iso-8859-1", "é".encode("latin-1"), "x")
    POLICY.check("application/fhir+json", b'{"resourceType": "Bundle"}', "x")
    POLICY.check("application/fhir+xml", b'<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"/>', "x")
    POLICY.check("application/hl7-v3+xml", b"\xef\xbb\xbf<ClinicalDocument xmlns='urn:hl7-org:v3'/>", "x")
    lenient = ContentPolicy.parse("application/pdf", pdfa_required=False)
    lenient.check("application/pdf", b"%PDF-1.7 plain PDF", "x")
    with pytest.raises(FhirError) as refused:
        POLICY.check("application/pdf", b"%PDF-1.7 plain PDF", "x")
    assert code(refused) == "InvalidDocumentContent"
    with pytest.raises(FhirError) as refused:
        POLICY.check("application/fhir+xml", b"<Bundle/>", "x")
    assert code(refused) == "InvalidDocumentContent"
    with pytest.raises(ValueError, match="no media type"):
        ContentPolicy.parse(" , ")


def test_declared_size_and_hash() -> None:
    data = b"Hello World"
    assert check_declared({"size": 11, "hash": "Ck1VqNd45QIvq3AZd8XYQLvEhtA="}, data, "a") is None
    assert check_declared({"hash": "0a4d55a8d778e5022fab701977c5d840bbc486d0"}, data, "a") is None  # hex tolerated
    corrected: dict[str, Any] = {"size": 12, "hash": "Ck1VqNd45QIvq3AZd8XYQLvEhtA="}
    assert "corrected" in str(check_declared(corrected, data, "a")) and corrected["size"] == 11
    with pytest.raises(FhirError) as refused:
        check_declared({"size": 12}, data, "a")
    assert code(refused) == "XDSNonIdenticalSize"
    with pytest.raises(FhirError) as refused:
        check_declared({"size": 11, "hash": sha1(b"other")}, data, "a")
    assert code(refused) == "XDSNonIdenticalHash"


def test_document_classes() -> None:
    def document(type_code: str | None = None, category: str | None = None, system: str = "http://loinc.org") -> Any:
        resource: dict[str, Any] = {}
        if type_code:
            resource["type"] = {"coding": [{"system": "http://loinc.org", "code": type_code}]}
        if category:
            resource["category"] = [{"coding": [{"system": system, "code": category}]}]
        return resource

    assert CLASSES.class_of(document("11502-2")) == "laboratory-results"
    assert CLASSES.class_of(document("60591-5", "11369-6")) == "patient-summary"  # the type first
    assert CLASSES.class_of(document(None, "11369-6")) == "vaccination-history"  # else a LOINC category
    assert CLASSES.class_of(document("11502-2", "prescription", CLASS_SYSTEM)) == "prescription"  # explicit wins
    assert CLASSES.class_of(document("99999-9")) is None
    classified = document("18748-4", "11369-6")
    assert CLASSES.classify(classified) == "imaging-report"
    assert len(classified["category"]) == 1  # MHD: one category; the class is one more coding of it
    assert classified["category"][0]["coding"][-1]["system"] == CLASS_SYSTEM
    assert CLASSES.unknown_class(document(None, "nonsense", CLASS_SYSTEM)) == "nonsense"
    assert set(CLASSES.displays) == {
        "consultation-report", "discharge-letter", "emergency-summary", "laboratory-results", "imaging-report",
        "operative-report", "prescription", "medication-list", "vaccination-history", "patient-summary",
        "blood-group-allergies", "patient-provided",
    }  # fmt: skip


def test_claims_and_options() -> None:
    assert is_provide_bundle(submission(PATIENT))
    unprofiled = submission(PATIENT)
    del unprofiled["meta"]
    assert is_provide_bundle(unprofiled)  # a SubmissionSet List makes it a submission (then refused: no profile)
    assert not is_provide_bundle(example("Bundle-ex-dummyBundleDocAndBinary"))
    comprehensive = submission(PATIENT, profile=COMPREHENSIVE)
    document = next(e for e in comprehensive["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    document["resource"]["category"] = [{"coding": [{"system": "http://loinc.org", "code": "11488-4"}]}]
    document["resource"]["context"]["sourcePatientInfo"] = PATIENT
    read = read_submission(comprehensive, POLICY, CLASSES)
    assert read.option is Option.COMPREHENSIVE and read.documents[0].doc_class == "consultation-report"
    minimal = submission(PATIENT, profile=MINIMAL)
    del next(e for e in minimal["entry"] if e["resource"]["resourceType"] == "DocumentReference")["resource"]["type"]
    assert read_submission(minimal, POLICY, CLASSES).option is Option.MINIMAL  # no type needed


def test_fhir_document_publish() -> None:
    """A FHIR document Bundle in place of a Binary is stored as its JSON serialisation, hash and size computed."""
    bundle = example("Bundle-ex-comprehensiveProvideDocumentBundleDocument")
    read = read_submission(copy.deepcopy(bundle), POLICY, CLASSES)
    (document,) = read.documents
    assert document.content_type == "application/fhir+json" and document.data.startswith(b'{"resourceType":"Bundle"')
    attachment = document.resource["content"][0]["attachment"]
    assert attachment["size"] == len(document.data) and attachment["hash"] == sha1(document.data)
    assert document.doc_class == "discharge-letter"  # LOINC 28655-9
    with_hash = copy.deepcopy(bundle)
    with_hash["entry"][1]["resource"]["content"][0]["attachment"]["size"] = 10
    with pytest.raises(FhirError) as refused:
        read_submission(with_hash, POLICY, CLASSES)
    assert code(refused) == "XDSRegistryMetadataError"


def test_image_links_only_for_imaging_reports() -> None:
    link = {"attachment": {"contentType": "application/dicom", "url": "https://pacs.example.lu/wado-rs/studies/1.2.3"}}
    imaging = submission(PATIENT, type_code="18748-4")
    document = next(e["resource"] for e in imaging["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    document["content"].append(link)
    (read,) = read_submission(imaging, POLICY, CLASSES).documents
    assert read.doc_class == "imaging-report" and read.position == 0
    consultation = submission(PATIENT, type_code="11488-4")
    document = next(
        e["resource"] for e in consultation["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    )
    document["content"].append(link)
    with pytest.raises(FhirError) as refused:
        read_submission(consultation, POLICY, CLASSES)
    assert "imaging report" in refused.value.issues[0].diagnostics


def test_a_confidentiality_is_added_when_none_is_given() -> None:
    bundle = submission(PATIENT, confidentiality=None)
    (read,) = read_submission(bundle, POLICY, CLASSES).documents
    labels = read.resource["securityLabel"]
    assert labels == [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N",
                     "display": "normal"}]}
    ]  # fmt: skip


def test_whitespace_in_base64_is_tolerated() -> None:
    data = pdf("wrapped", 3000)
    bundle = submission(PATIENT, [data])
    binary = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Binary")
    encoded = base64.b64encode(data).decode()
    binary["data"] = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    (read,) = read_submission(bundle, POLICY, CLASSES).documents
    assert read.data == data
