"""Every ITI-65 request of the IHE MHD 4.2 guide (../shared/data/ig-examples/MHD: the Bundles whose example
canonical is a ProvideBundle profile) is accepted over HTTP, and our transaction-response has the shape of the
guide's response example for it; what was stored is then found (ITI-67) and retrieved (ITI-68) by the patient.

The fixtures are what the examples refer to (support.py): the certified identities Patient/ex-patient and
fdoc-patient, Dee Schmidt (the Minimal examples' patient, known by name only), the HPD's Practitioner/ex-practitioner,
the professionals the contained authors designate (by e-mail, by the identifier acme|23), Organization/ex-organization,
and for some examples the documents and the Folder they replace, append to or update.

Two settings differ from the defaults, where the examples need them (docs/dsp-mhd.md): the FHIR document example
refers to its patient by the absolute URL http://example.org/fhir/Patient/fdoc-patient, so that server runs with
the base URL http://example.org/fhir; the two Minimal examples name their patient by name alone, which the MPI's
engine grades "probable" at best, so those servers accept probable matches (the default, certain, refuses them with
XDSUnknownPatientId: tested too).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dsp.mhd.support import FHIR_JSON, World, example, located, mhd_world, put, xds_code

CLASS_SYSTEM = "urn:esante:dsp:document-class"
HELLO = b"Hello World"

# request example → (its response example, settings, fixtures it needs)
CASES: dict[str, tuple[str | None, dict[str, Any], tuple[str, ...]]] = {
    "Bundle-ex-minimalProvideDocumentBundleSimple": (
        "Bundle-ex-response-minimalProvideDocumentBundleSimple",
        {"mhd_patient_match_grade": "probable"},
        (),
    ),
    "Bundle-ex-minimalProvideDocumentBundleSimpleContained": (
        "Bundle-ex-response-minimalProvideDocumentBundleSimpleContained",
        {"mhd_patient_match_grade": "probable"},
        (),
    ),
    "Bundle-ex-comprehensiveProvideDocumentBundleSimple": (
        "Bundle-ex-response-comprehensiveProvideDocumentBundleSimple",
        {},
        (),
    ),
    "Bundle-ex-comprehensiveProvideDocumentBundleMultiple": (
        "Bundle-ex-response-comprehensiveProvideDocumentBundleMultiple",
        {},
        (),
    ),
    "Bundle-ex-comprehensiveProvideDocumentBundleComplete": (
        "Bundle-ex-response-comprehensiveProvideDocumentBundleComplete",
        {},
        ("appended",),
    ),
    "Bundle-ex-unContainedComprehensiveProvideDocumentBundleComplete": (
        "Bundle-ex-response-unContainedComprehensiveProvideDocumentBundleCompt",
        {},
        ("appended",),
    ),
    "Bundle-ex-comprehensiveProvideDocumentBundleReplace": (None, {}, ("replaced",)),
    "Bundle-ex-ProvideDocumentBundle-addToFolder": (None, {}, ("appended", "folder")),
    "Bundle-ex-comprehensiveProvideDocumentBundleDocument": (None, {"base_url": "http://example.org/fhir"}, ()),
}


def test_every_request_example_of_the_guide_is_covered() -> None:
    """The cases are exactly the guide's ITI-65 requests (its ImplementationGuide resource says which)."""
    guide = example("ImplementationGuide-ihe.iti.mhd")
    requests = {
        "Bundle-" + r["reference"]["reference"].split("/", 1)[1]
        for r in guide["definition"]["resource"]
        if r["reference"]["reference"].startswith("Bundle/")
        and str(r.get("exampleCanonical", "")).endswith("ProvideBundle")
    }
    assert requests == set(CASES)


async def _fixtures(world: World, http: httpx.AsyncClient, needs: tuple[str, ...]) -> None:
    if "replaced" in needs:  # the document the Replace example supersedes (the guide's is a dummy with no subject)
        replaced = example("DocumentReference-ex-documentreference")
        await put(world, http, {**replaced, "subject": {"reference": "Patient/ex-patient"}})
    if "appended" in needs:  # the document the Complete examples append to, the addToFolder Folder lists
        await put(world, http, example("DocumentReference-ex-DocumentReferenceComprehensive"))
    if "folder" in needs:  # the Folder the addToFolder example updates
        folder = next(
            e["resource"]
            for e in example("Bundle-ex-ProvideDocumentBundle-addToFolder")["entry"]
            if e["request"]["method"] == "PUT"
        )
        existing = {**folder, "entry": folder["entry"][:1]}  # the registered document only
        await put(world, http, existing)


_LOCATION = re.compile(r"^(.*/)?(?P<type>[A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/\d+)?$")


def _type_of(location: str) -> str:
    match = _LOCATION.match(location)
    assert match, location
    return match.group("type")


def assert_shape(ours: dict[str, Any], guide: dict[str, Any], request: dict[str, Any]) -> None:
    """Our transaction-response has the guide's shape: a transaction-response with the response profile, one
    entry per request entry (in request order), each with the response elements the guide's example has (status,
    location, lastModified), locations of the same resource types, 2xx statuses."""
    assert ours["resourceType"] == "Bundle" and ours["type"] == guide["type"] == "transaction-response"
    assert ours["meta"]["profile"] == guide["meta"]["profile"]
    assert len(ours["entry"]) == len(request["entry"]) == len(guide["entry"])
    for entry, theirs in zip(ours["entry"], guide["entry"], strict=True):
        assert set(theirs) <= set(entry), (entry, theirs)
        assert set(theirs["response"]) <= set(entry["response"]), (entry, theirs)
        assert re.match(r"^2\d\d( |$)", entry["response"]["status"]), entry
    assert sorted(_type_of(e["response"]["location"]) for e in ours["entry"]) == sorted(
        _type_of(e["response"]["location"]) for e in guide["entry"]
    )
    for entry, sent in zip(ours["entry"], request["entry"], strict=True):
        expected = sent["resource"]["resourceType"]
        expected = "Binary" if expected == "Bundle" else expected  # a FHIR document is stored as a Binary
        assert _type_of(entry["response"]["location"]) == expected
        assert entry["response"]["status"].startswith("201" if expected != "Patient" else "200")


@pytest.mark.parametrize("name", sorted(CASES))
async def test_the_guide_example_is_accepted(db_url: str, tmp_path: Path, name: str) -> None:
    response_example, settings, needs = CASES[name]
    request = example(name)
    async with mhd_world(db_url, tmp_path, **settings) as world, httpx.AsyncClient(timeout=30) as http:
        await _fixtures(world, http, needs)
        answer = await http.post(world.fhir, json=request, headers={**world.system(), **FHIR_JSON})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if response_example is not None:
            assert_shape(body, example(response_example), request)
        else:
            assert len(body["entry"]) == len(request["entry"])
        await _check_stored(world, http, name, body)


async def _check_stored(world: World, http: httpx.AsyncClient, name: str, body: dict[str, Any]) -> None:
    if name == "Bundle-ex-comprehensiveProvideDocumentBundleDocument":
        patient_id = "fdoc-patient"
    else:
        patient_id = world.patients["dee"] if "minimal" in name else "ex-patient"
    as_patient = world.patient(patient_id)
    documents = located(body, "DocumentReference")
    assert documents
    for document_id in documents:
        read = await http.get(f"{world.fhir}/DocumentReference/{document_id}", headers=as_patient)
        assert read.status_code == 200, read.text
        document = read.json()
        assert document["subject"] == {"reference": f"Patient/{patient_id}"}  # the certified identity
        assert any(label["coding"][0]["code"] in ("N", "R") for label in document["securityLabel"])
        attachment = document["content"][0]["attachment"]
        assert attachment["url"].startswith("Binary/")
        for author in document.get("author", []):  # professionals now point at the HPD
            if author["reference"].startswith("Practitioner/"):
                assert author["reference"] in {"Practitioner/ex-practitioner", "Practitioner/iti-author",
                                               "Practitioner/adam-careful"}  # fmt: skip
        content = await http.get(f"{world.fhir}/{attachment['url']}", headers={**as_patient, "Accept": "*/*"})
        assert content.status_code == 200, content.text
        assert content.headers["content-type"].startswith(attachment["contentType"])
        assert len(content.content) == attachment["size"]
        assert base64.b64encode(hashlib.sha1(content.content).digest()).decode() == attachment["hash"]
        binary_id = attachment["url"].split("/")[1]
        stored = await world.rows("SELECT content FROM resource WHERE res_type = 'Binary' AND res_id = ?", (binary_id,))
        assert b'"data"' not in bytes(stored[0][0]), "the Binary row holds no document bytes"
        links = await world.rows("SELECT address, patient_id FROM dsp_document_blob WHERE binary_id = ?", (binary_id,))
        assert links and links[0][1] == patient_id
    found = await http.get(
        f"{world.fhir}/DocumentReference",
        params={"patient": f"Patient/{patient_id}", "status": "current"},
        headers=as_patient,
    )
    assert found.status_code == 200, found.text
    assert {e["resource"]["id"] for e in found.json().get("entry", [])} >= set(documents)
    if name == "Bundle-ex-comprehensiveProvideDocumentBundleSimple":
        document = (await http.get(f"{world.fhir}/DocumentReference/{documents[0]}", headers=as_patient)).json()
        # the LOINC type 60591-5 (Patient summary Document) gives the DSP class, beside the source's category
        codings = document["category"][0]["coding"]
        assert {"system": "http://loinc.org", "code": "11369-6"} in codings
        assert any(c["system"] == CLASS_SYSTEM and c["code"] == "patient-summary" for c in codings)
        raw = await http.get(f"{world.fhir}/{document['content'][0]['attachment']['url']}", headers=as_patient)
        assert raw.content == HELLO
    if name == "Bundle-ex-comprehensiveProvideDocumentBundleReplace":
        replaced = await http.get(f"{world.fhir}/DocumentReference/ex-documentreference", headers=as_patient)
        assert replaced.json()["status"] == "superseded"
        # the guide's example declares 24 bytes for its 23: the SHA-1 matches, so the size is corrected, with a warning
        (created,) = [e for e in body["entry"] if "/DocumentReference/" in e["response"]["location"]
                      and e["response"]["status"].startswith("201")]  # fmt: skip
        warning = created["response"]["outcome"]["issue"][0]
        assert warning["severity"] == "warning" and "24" in warning["diagnostics"]
        stored = (await http.get(f"{world.fhir}/DocumentReference/{documents[0]}", headers=as_patient)).json()
        assert stored["content"][0]["attachment"]["size"] == 23
    if name == "Bundle-ex-ProvideDocumentBundle-addToFolder":
        folder = await http.get(
            f"{world.fhir}/List/aaaaaaaa-bbbb-cccc-dddd-e00777700005", headers=as_patient
        )  # fmt: skip
        items = [e["item"]["reference"] for e in folder.json()["entry"]]
        assert items == ["DocumentReference/ex-DocumentReferenceComprehensive", f"DocumentReference/{documents[0]}"]
    if name == "Bundle-ex-comprehensiveProvideDocumentBundleDocument":
        document = (await http.get(f"{world.fhir}/DocumentReference/{documents[0]}", headers=as_patient)).json()
        assert document["author"] == [
            {"reference": "Practitioner/adam-careful", "identifier": document["author"][0]["identifier"]}
        ]
        raw = await http.get(f"{world.fhir}/{document['content'][0]['attachment']['url']}", headers=as_patient)
        assert raw.headers["content-type"].startswith("application/fhir+json")
        assert json.loads(raw.content)["type"] == "document"


async def test_a_patient_known_by_name_only_is_refused_by_default(db_url: str, tmp_path: Path) -> None:
    """With the default grade (certain), the Minimal example's name-only Patient is no certain match: 422
    XDSUnknownPatientId, nothing stored."""
    async with mhd_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        request = example("Bundle-ex-minimalProvideDocumentBundleSimple")
        answer = await http.post(world.fhir, json=request, headers={**world.system(), **FHIR_JSON})
        assert answer.status_code == 422, answer.text
        assert xds_code(answer.json()) == "XDSUnknownPatientId"
        assert (
            await world.rows("SELECT 1 FROM resource WHERE res_type IN ('DocumentReference', 'List', 'Binary')") == []
        )
