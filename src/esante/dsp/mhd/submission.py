"""An ITI-65 Provide Document Bundle read and checked, before anything is looked up or stored. Pure: no I/O.

:func:`read_submission` sorts the Bundle's entries (one SubmissionSet, DocumentReferences with their Binary or FHIR
document, Folders, at most one Patient, the PATCHes that supersede replaced documents), checks the MHD metadata of
the option the Bundle declares (Minimal, or Comprehensive for the Comprehensive and UnContained Comprehensive
profiles; a resource that declares a Comprehensive profile itself is held to it in any Bundle), decodes every
document and checks its media type, size and SHA-1 against the bytes. The first problem found is raised as a 4xx
:class:`~esante.fhir.errors.FhirError` carrying an XDS error code (``model.Xds``).

Deliberate leniency (the guide's own request examples must be accepted): two DocumentReferences of one Bundle may
share a uniqueId (``Bundle-ex-comprehensiveProvideDocumentBundleMultiple`` does); uniqueness is enforced against the
documents already registered (``registry.py``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from esante.dsp.mhd.classes import DocumentClasses
from esante.dsp.mhd.content import (
    IMAGE_LINK_TYPES,
    ContentPolicy,
    check_declared,
    decode_base64,
    media_type,
    sha1_base64,
)
from esante.dsp.mhd.model import (
    COMPREHENSIVE_BUNDLE,
    CONFIDENTIALITY,
    CONFIDENTIALITY_LEVELS,
    EXT_DESIGNATION_TYPE,
    EXT_SOURCE_ID,
    LIST_TYPES,
    MINIMAL_BUNDLE,
    UNCONTAINED_BUNDLE,
    Option,
    Xds,
    metadata_error,
    profiles_of,
    xds_error,
)

RELATIONS = ("replaces", "transforms", "signs", "appends")
IMAGING_CLASS = "imaging-report"


class Kind(enum.StrEnum):
    SUBMISSION_SET = "SubmissionSet"
    DOCUMENT = "DocumentReference"
    BINARY = "Binary"
    FHIR_DOCUMENT = "FHIR document Bundle"
    FOLDER = "Folder"
    PATIENT = "Patient"
    SUPERSEDE = "DocumentReference update"


@dataclass
class Entry:
    """One entry of the submitted Bundle."""

    index: int
    kind: Kind
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any]

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}].resource"


@dataclass
class Document:
    """A DocumentReference and the document it describes (decoded, checked)."""

    entry: Entry
    option: Option
    content: Entry  # the Binary, or the FHIR document Bundle, carrying the bytes
    data: bytes
    content_type: str
    position: int = 0  # the index of the document's own content in DocumentReference.content
    doc_class: str | None = None
    warnings: list[str] = field(default_factory=list)  # reported in the entry's response.outcome

    @property
    def resource(self) -> dict[str, Any]:
        return self.entry.resource

    @property
    def unique_id(self) -> str:
        return str(self.resource["masterIdentifier"]["value"])

    def relations(self, code: str) -> list[str]:
        """The references of this document's ``relatesTo`` of ``code`` (e.g. the documents it replaces)."""
        return [
            str(r["target"]["reference"])
            for r in self.resource.get("relatesTo", [])
            if r.get("code") == code and isinstance(r.get("target", {}).get("reference"), str)
        ]


@dataclass
class Submission:
    """The sorted, checked content of one ITI-65 Bundle."""

    option: Option
    entries: list[Entry]
    submission_set: Entry
    documents: list[Document] = field(default_factory=list)
    folders: list[Entry] = field(default_factory=list)
    patient: Entry | None = None
    supersedes: list[Entry] = field(default_factory=list)

    def by_full_url(self) -> dict[str, Entry]:
        return {e.full_url: e for e in self.entries if e.full_url}


def is_provide_bundle(bundle: dict[str, Any]) -> bool:
    """An ITI-65 Bundle: it declares a ProvideBundle profile, or it creates a SubmissionSet List."""
    profiles = profiles_of(bundle)
    if {MINIMAL_BUNDLE, COMPREHENSIVE_BUNDLE, UNCONTAINED_BUNDLE}.intersection(profiles):
        return True
    entries = bundle.get("entry")
    return isinstance(entries, list) and any(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) and _list_code(e["resource"]) == "submissionset"
        for e in entries
    )


def _list_code(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") != "List":
        return None
    for coding in (resource.get("code") or {}).get("coding", []):
        if coding.get("system") == LIST_TYPES:
            return str(coding.get("code"))
    return None


def read_submission(bundle: dict[str, Any], policy: ContentPolicy, classes: DocumentClasses) -> Submission:
    """Sort and check an ITI-65 Bundle (see the module docstring); raises the first problem found."""
    option = Option.of_bundle(profiles_of(bundle))
    if option is None:
        raise metadata_error(
            "Bundle.meta.profile must name the MHD option of the submission: "
            f"{MINIMAL_BUNDLE}, {COMPREHENSIVE_BUNDLE} or {UNCONTAINED_BUNDLE}",
            "Bundle.meta.profile",
        )
    entries = [_entry(i, raw) for i, raw in enumerate(_raw_entries(bundle))]
    sets = [e for e in entries if e.kind is Kind.SUBMISSION_SET]
    if len(sets) != 1:
        found = "none" if not sets else f"{len(sets)} (entries {', '.join(str(e.index) for e in sets)})"
        raise metadata_error(f"a Provide Document Bundle creates exactly one SubmissionSet List; found {found}")
    patients = [e for e in entries if e.kind is Kind.PATIENT]
    if len(patients) > 1:
        raise metadata_error("a Provide Document Bundle carries at most one Patient", patients[1].where)
    submission = Submission(
        option,
        entries,
        sets[0],
        folders=[e for e in entries if e.kind is Kind.FOLDER],
        patient=patients[0] if patients else None,
        supersedes=[e for e in entries if e.kind is Kind.SUPERSEDE],
    )
    by_url = submission.by_full_url()
    used: dict[int, int] = {}  # content entry index → document entry index
    for entry in entries:
        if entry.kind is Kind.DOCUMENT:
            document = _document(entry, option, by_url, used, policy)
            _check_document(document, classes)
            submission.documents.append(document)
    for entry in entries:
        if entry.kind in (Kind.BINARY, Kind.FHIR_DOCUMENT) and entry.index not in used:
            raise xds_error(
                400,
                Xds.MISSING_DOCUMENT_METADATA,
                f"the {entry.kind} of entry {entry.index} is the document of no DocumentReference of the Bundle",
                expression=entry.where,
            )
    _check_submission_set(submission, by_url)
    for folder in submission.folders:
        _check_folder(folder, option, by_url)
    _check_supersedes(submission)
    return submission


def _raw_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise metadata_error("a Provide Document Bundle has entries (a SubmissionSet at least)", "Bundle.entry")
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise metadata_error(f"{where} must carry a resource", where)
        request = entry.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise metadata_error(f"{where}.request (method and url) is required in a transaction", f"{where}.request")
    return entries


def _entry(index: int, raw: dict[str, Any]) -> Entry:
    resource: dict[str, Any] = raw["resource"]
    request = raw["request"]
    method = str(request["method"])
    url = str(request.get("url") or "")
    full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
    res_type = resource.get("resourceType")
    kind: Kind | None = None
    if res_type == "List":
        code = _list_code(resource)
        kind = {"submissionset": Kind.SUBMISSION_SET, "folder": Kind.FOLDER}.get(code or "")
        if kind is None:
            raise metadata_error(
                f"a List of a Provide Document Bundle is a SubmissionSet or a Folder (code {LIST_TYPES}|submissionset"
                " or |folder)",
                f"Bundle.entry[{index}].resource.code",
            )
        allowed = ("POST",) if kind is Kind.SUBMISSION_SET else ("POST", "PUT")
    elif res_type == "DocumentReference":
        kind, allowed = Kind.DOCUMENT, ("POST",)
    elif res_type == "Binary":
        kind, allowed = Kind.BINARY, ("POST",)
    elif res_type == "Bundle" and resource.get("type") == "document":
        kind, allowed = Kind.FHIR_DOCUMENT, ("POST",)
    elif res_type == "Patient":
        kind, allowed = Kind.PATIENT, ("POST", "PUT")
    elif method == "PATCH" and url.split("?")[0].strip("/").startswith("DocumentReference/"):
        kind, allowed = Kind.SUPERSEDE, ("PATCH",)
    else:
        raise metadata_error(
            f"a Provide Document Bundle may not {method} a {res_type} (entry {index})", f"Bundle.entry[{index}]"
        )
    if method not in allowed:
        raise metadata_error(
            f"the {kind} of entry {index} must be sent with {' or '.join(allowed)}, not {method}",
            f"Bundle.entry[{index}].request.method",
        )
    return Entry(index, kind, method, url, full_url, resource)


# --------------------------------------------------------------------------------------------- documents


def _document(
    entry: Entry, bundle_option: Option, by_url: dict[str, Entry], used: dict[int, int], policy: ContentPolicy
) -> Document:
    resource = entry.resource
    where = entry.where
    option = max(bundle_option, Option.declared(profiles_of(resource)))
    contents = resource.get("content")
    if not isinstance(contents, list) or not contents:
        raise xds_error(
            400, Xds.MISSING_DOCUMENT, "the DocumentReference has no content", expression=f"{where}.content"
        )
    carried: list[tuple[int, Entry]] = []
    for i, content in enumerate(contents):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        at = f"{where}.content[{i}].attachment"
        if not isinstance(attachment, dict):
            raise metadata_error("content.attachment is required", at)
        if "data" in attachment:
            raise metadata_error("attachment.data is not allowed: the document travels in a Binary of the Bundle", at)
        url = attachment.get("url")
        if not isinstance(url, str) or not url:
            raise metadata_error("attachment.url is required (the fullUrl of the document's Binary)", f"{at}.url")
        if not isinstance(attachment.get("contentType"), str):
            raise metadata_error("attachment.contentType is required", f"{at}.contentType")
        target = by_url.get(url)
        if target is not None and target.kind in (Kind.BINARY, Kind.FHIR_DOCUMENT):
            carried.append((i, target))
        elif _image_link(attachment):
            continue  # checked once the document's class is known (imaging reports only)
        else:
            raise xds_error(
                400,
                Xds.MISSING_DOCUMENT,
                f"attachment.url {url} is not the fullUrl of a Binary of the Bundle: the DSP keeps the documents it "
                "registers, so each one travels with its DocumentReference",
                expression=f"{at}.url",
            )
    if len(carried) != 1:
        raise metadata_error(
            f"a DocumentReference describes exactly one document of the Bundle; this one points at {len(carried)}",
            f"{where}.content",
        )
    position, target = carried[0]
    if target.index in used:
        raise metadata_error(
            f"the {target.kind} of entry {target.index} is already the document of entry {used[target.index]}",
            f"{where}.content[{position}].attachment.url",
        )
    used[target.index] = entry.index
    attachment = contents[position]["attachment"]
    at = f"{where}.content[{position}].attachment"
    declared_type = str(attachment["contentType"])
    if target.kind is Kind.BINARY:
        data = decode_base64(target.resource.get("data"), f"{target.where}.data")
        binary_type = target.resource.get("contentType")
        if not isinstance(binary_type, str) or media_type(binary_type) != media_type(declared_type):
            raise metadata_error(
                f"attachment.contentType '{declared_type}' differs from the Binary's contentType '{binary_type}'",
                f"{at}.contentType",
            )
    else:  # ITI-65 FHIR Document Publish: the document Bundle is stored as its JSON serialisation
        if media_type(declared_type) != "application/fhir+json":
            raise metadata_error(
                "a FHIR document is stored as application/fhir+json; attachment.contentType must say so",
                f"{at}.contentType",
            )
        if "hash" in attachment or "size" in attachment:
            raise metadata_error("attachment.hash and .size must be absent for a FHIR document (ITI-65)", at)
        data = orjson.dumps(target.resource)
    policy.check(declared_type, data, f"{at}.contentType")
    warning = check_declared(attachment, data, at)
    attachment.setdefault("size", len(data))
    attachment.setdefault("hash", sha1_base64(data))
    return Document(entry, option, target, data, declared_type, position, warnings=[warning] if warning else [])


def _image_link(attachment: dict[str, Any]) -> bool:
    """A link to the images of an imaging report (PACS / DICOMweb): an absolute http(s) URL of a DICOM type."""
    url = str(attachment.get("url"))
    return media_type(str(attachment.get("contentType"))) in IMAGE_LINK_TYPES and urlsplit(url).scheme in (
        "http",
        "https",
    )


def _check_document(document: Document, classes: DocumentClasses) -> None:
    resource = document.resource
    where = document.entry.where
    master = resource.get("masterIdentifier")
    if not isinstance(master, dict) or not isinstance(master.get("value"), str) or not master["value"].strip():
        raise metadata_error("masterIdentifier (the document's uniqueId) is required", f"{where}.masterIdentifier")
    if resource.get("status") != "current":
        raise metadata_error(
            f"a submitted DocumentReference is 'current', not '{resource.get('status')}'", f"{where}.status"
        )
    if "docStatus" in resource:
        raise metadata_error("docStatus is not used by MHD", f"{where}.docStatus")
    if len(resource.get("category") or []) > 1:
        raise metadata_error("a DocumentReference has one category (XDS classCode) at most", f"{where}.category")
    for i, relation in enumerate(resource.get("relatesTo") or []):
        if relation.get("code") not in RELATIONS:
            raise metadata_error(
                f"relatesTo.code must be one of {', '.join(RELATIONS)}", f"{where}.relatesTo[{i}].code"
            )
        if not isinstance((relation.get("target") or {}).get("reference"), str):
            raise metadata_error(
                "relatesTo.target must reference a DocumentReference", f"{where}.relatesTo[{i}].target"
            )
    if document.option is Option.COMPREHENSIVE:
        _require_comprehensive(document)
    _check_confidentiality(resource, where)
    unknown = classes.unknown_class(resource)
    if unknown is not None:
        raise metadata_error(f"'{unknown}' is not a DSP document class", f"{where}.category")
    document.doc_class = classes.classify(resource)
    links = [i for i, c in enumerate(resource["content"]) if i != document.position]
    if links and document.doc_class != IMAGING_CLASS:
        raise metadata_error(
            "only an imaging report may carry a link to images besides its document", f"{where}.content[{links[0]}]"
        )


_COMPREHENSIVE_DOCUMENT = (
    ("type", "type (XDS typeCode)"),
    ("category", "category (XDS classCode)"),
    ("subject", "subject (the patient)"),
    ("securityLabel", "securityLabel (XDS confidentialityCode)"),
    ("context", "context"),
)
_COMPREHENSIVE_CONTEXT = (
    ("facilityType", "context.facilityType (XDS healthcareFacilityTypeCode)"),
    ("practiceSetting", "context.practiceSetting (XDS practiceSettingCode)"),
    ("sourcePatientInfo", "context.sourcePatientInfo"),
)


def _require_comprehensive(document: Document) -> None:
    resource = document.resource
    where = document.entry.where
    for element, name in _COMPREHENSIVE_DOCUMENT:
        if not resource.get(element):
            raise metadata_error(f"Comprehensive metadata require {name}", f"{where}.{element}")
    for element, name in _COMPREHENSIVE_CONTEXT:
        if not resource["context"].get(element):
            raise metadata_error(f"Comprehensive metadata require {name}", f"{where}.context.{element}")
    for i, content in enumerate(resource["content"]):
        attachment = content["attachment"]
        if _image_link(attachment):
            continue
        for element in ("language", "creation"):
            if not attachment.get(element):
                raise metadata_error(
                    f"Comprehensive metadata require attachment.{element}", f"{where}.content[{i}].attachment.{element}"
                )
        if not content.get("format"):
            raise metadata_error(
                "Comprehensive metadata require content.format (XDS formatCode)", f"{where}.content[{i}].format"
            )


def _check_confidentiality(resource: dict[str, Any], where: str) -> None:
    """v3-Confidentiality labels are N, R or V (the DSP's levels); none given: N (normal) is added."""
    found = []
    for i, label in enumerate(resource.get("securityLabel") or []):
        for coding in label.get("coding", []) if isinstance(label, dict) else []:
            if coding.get("system") == CONFIDENTIALITY:
                if coding.get("code") not in CONFIDENTIALITY_LEVELS:
                    raise metadata_error(
                        f"the DSP's confidentiality levels are {', '.join(CONFIDENTIALITY_LEVELS)} "
                        f"(v3-Confidentiality), not '{coding.get('code')}'",
                        f"{where}.securityLabel[{i}]",
                    )
                found.append(coding["code"])
    if len(set(found)) > 1:
        raise metadata_error("a document has one confidentiality level", f"{where}.securityLabel")
    if not found:
        labels = resource.setdefault("securityLabel", [])
        labels.append({"coding": [{"system": CONFIDENTIALITY, "code": "N", "display": "normal"}]})


# --------------------------------------------------------------------------------------------- lists


def _extensions(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if isinstance(e, dict) and e.get("url") == url]


def _check_submission_set(submission: Submission, by_url: dict[str, Entry]) -> None:
    entry = submission.submission_set
    resource = entry.resource
    where = entry.where
    option = max(submission.option, Option.declared(profiles_of(resource)))
    if resource.get("mode") != "working":
        raise metadata_error("a SubmissionSet's mode is 'working'", f"{where}.mode")
    if resource.get("status") != "current":
        raise metadata_error("a SubmissionSet's status is 'current'", f"{where}.status")
    source_ids = _extensions(resource, EXT_SOURCE_ID)
    if len(source_ids) != 1 or not (source_ids[0].get("valueIdentifier") or {}).get("value"):
        raise metadata_error(
            f"a SubmissionSet carries exactly one sourceId ({EXT_SOURCE_ID}) with an identifier value",
            f"{where}.extension",
        )
    if not resource.get("date"):
        raise metadata_error("a SubmissionSet's date (XDS submissionTime) is required", f"{where}.date")
    if option is Option.COMPREHENSIVE:
        if not _extensions(resource, EXT_DESIGNATION_TYPE):
            raise metadata_error(
                "Comprehensive metadata require the SubmissionSet's designationType (XDS contentTypeCode)",
                f"{where}.extension",
            )
        if not resource.get("subject"):
            raise metadata_error("Comprehensive metadata require the SubmissionSet's subject", f"{where}.subject")
    listed: set[str] = set()
    for i, item in enumerate(resource.get("entry") or []):
        reference = (item.get("item") or {}).get("reference") if isinstance(item, dict) else None
        if not isinstance(reference, str):
            raise metadata_error(
                "SubmissionSet.entry.item must reference a DocumentReference or a Folder", f"{where}.entry[{i}]"
            )
        target = by_url.get(reference)
        if target is not None and target.kind not in (Kind.DOCUMENT, Kind.FOLDER):
            raise metadata_error(
                f"SubmissionSet.entry.item {reference} is a {target.kind}, not a DocumentReference or a Folder",
                f"{where}.entry[{i}].item",
            )
        if target is None and not reference.startswith(("DocumentReference/", "List/")):
            raise metadata_error(
                f"SubmissionSet.entry.item {reference} is neither an entry of the Bundle nor a registered "
                "DocumentReference or Folder",
                f"{where}.entry[{i}].item",
            )
        listed.add(reference)
    for document in submission.documents:
        if document.entry.full_url not in listed:
            raise metadata_error(
                f"the DocumentReference of entry {document.entry.index} is not listed in the SubmissionSet's entries",
                f"{where}.entry",
            )


def _check_folder(entry: Entry, bundle_option: Option, by_url: dict[str, Entry]) -> None:
    resource = entry.resource
    where = entry.where
    option = max(bundle_option, Option.declared(profiles_of(resource)))
    if resource.get("mode") != "working":
        raise metadata_error("a Folder's mode is 'working'", f"{where}.mode")
    if option is Option.COMPREHENSIVE:
        if not _extensions(resource, EXT_DESIGNATION_TYPE):
            raise metadata_error(
                "Comprehensive metadata require the Folder's designationType (XDS codeList)", f"{where}.extension"
            )
        for element in ("title", "subject"):
            if not resource.get(element):
                raise metadata_error(f"Comprehensive metadata require the Folder's {element}", f"{where}.{element}")
    for i, item in enumerate(resource.get("entry") or []):
        reference = (item.get("item") or {}).get("reference") if isinstance(item, dict) else None
        target = by_url.get(reference) if isinstance(reference, str) else None
        ok = (target is not None and target.kind is Kind.DOCUMENT) or (
            target is None and isinstance(reference, str) and reference.startswith("DocumentReference/")
        )
        if not ok:
            raise metadata_error("a Folder's entries reference DocumentReferences", f"{where}.entry[{i}].item")


def _check_supersedes(submission: Submission) -> None:
    """A PATCH in an ITI-65 Bundle only supersedes a document another DocumentReference of the Bundle replaces."""
    replaced = {target for document in submission.documents for target in document.relations("replaces")}
    for entry in submission.supersedes:
        target = entry.url.split("?")[0].strip("/")
        if not _is_supersede_patch(entry.resource):
            raise metadata_error(
                "a DocumentReference PATCH in a Provide Document Bundle sets its status to superseded, and only that",
                entry.where,
            )
        if target not in replaced:
            raise metadata_error(
                f"{target} is superseded by this Bundle but no DocumentReference of it replaces it (relatesTo)",
                f"Bundle.entry[{entry.index}].request.url",
            )


def _is_supersede_patch(parameters: dict[str, Any]) -> bool:
    if parameters.get("resourceType") != "Parameters":
        return False
    operations = parameters.get("parameter") or []
    if len(operations) != 1 or operations[0].get("name") != "operation":
        return False
    parts = {p.get("name"): p for p in operations[0].get("part", [])}
    path = parts.get("path", {}).get("valueString")
    kind = parts.get("type", {}).get("valueCode")
    value = parts.get("value", {}).get("valueCode")
    return path == "DocumentReference.status" and kind == "replace" and value == "superseded"
