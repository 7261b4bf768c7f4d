"""The vaccination-history document filed in the DSP of a consenting patient, and the ITI-65 Bundle that files it.
Pure (no I/O).

**The document is a FHIR document** (a ``Bundle`` of type ``document``, stored by the DSP as
``application/fhir+json``), shaped like the immunization section of the International Patient Summary:

- entry 1, the ``Composition``: ``status`` final, ``type`` LOINC ``82593-5`` *Immunization summary report* (the
  DSP classes it ``vaccination-history``), ``subject`` the Patient entry, ``date``, ``author`` the CVE (display),
  ``title``, ``confidentiality`` N, one ``section`` LOINC ``11369-6`` *History of Immunization* whose narrative is
  a table of the doses (date, vaccine, product, lot, dose number, origin) and whose entries are the Immunizations
  (or ``emptyReason`` *nilknown* when there is none yet);
- the Patient as stored (the DSP's certified identity);
- every Immunization of the record, oldest first: ``completed`` and ``not-done`` ones (``entered-in-error`` ones
  are withdrawn records and are left out), as stored, their ``patient`` pointing at the Patient entry.

Why a FHIR document rather than a PDF: it is the record itself (codes, dates, lots), machine-readable by every
professional's software and checkable by a test; the DSP serves it like any document (ITI-68), and a viewer can
render its narrative.

**Filing**: an IHE MHD ITI-65 *Minimal* Provide Document Bundle (SubmissionSet, DocumentReference, the FHIR
document) run through the DSP's own Document Recipient, so every DSP check applies (certified patient, DSP open,
uniqueIds, classes, replacement). The DocumentReference carries:

- ``masterIdentifier`` a new uniqueId (``urn:oid:2.25.<uuid>``) per version of the document;
- ``identifier`` ``urn:esante:cve:vaccination-history|<patient id>``: what finds the CVE's current document of a
  patient (``DocumentReference?identifier=…&status=current``);
- ``type`` LOINC ``82593-5``, ``category`` ``urn:esante:dsp:document-class|vaccination-history``,
  ``securityLabel`` N (normal: the patient may raise it, or hide the document, in the DSP);
- ``relatesTo`` ``replaces`` the previous version when one is current (it becomes ``superseded``).

``history_hash`` digests what the document says (the Patient and the Immunizations as stored, without their
``meta``): an unchanged history is not filed again.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from esante.cve.record.profile import ORIGIN_URL
from esante.dsp.mhd.model import (
    EXT_SOURCE_ID,
    IDENTIFIER_TYPES,
    LIST_TYPES,
    MINIMAL_BUNDLE,
    MINIMAL_DOCUMENT,
    MINIMAL_SUBMISSION_SET,
)
from esante.dsp.model import CONFIDENTIALITY_SYSTEM, DOCUMENT_CLASS_SYSTEM

__all__ = [
    "HISTORY_IDENTIFIER",
    "SOURCE_ID",
    "history_hash",
    "included",
    "provide_bundle",
    "vaccination_document",
]

HISTORY_IDENTIFIER = "urn:esante:cve:vaccination-history"  # DocumentReference.identifier system; value: patient id
LOINC = "http://loinc.org"
DOCUMENT_TYPE = {"system": LOINC, "code": "82593-5", "display": "Immunization summary report"}
SECTION_CODE = {"system": LOINC, "code": "11369-6", "display": "History of Immunization Narrative"}
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
FORMAT_SYSTEM = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
AUTHOR = "eSanté — carnet de vaccination électronique (CVE)"
TITLE = "Vaccination history (CVE)"
# the SubmissionSet's sourceId: an OID of the UUID arc (ITU-T X.667), derived once from the CVE's name
SOURCE_ID = f"urn:oid:2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'urn:esante:cve').int}"
_KEPT_STATUSES = ("completed", "not-done")


def included(immunizations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Immunizations a history shows, oldest first (entered-in-error ones are withdrawn records)."""
    kept = [i for i in immunizations if i.get("status") in _KEPT_STATUSES]
    return sorted(kept, key=lambda i: (str(i.get("occurrenceDateTime") or ""), str(i.get("id") or "")))


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def history_hash(patient: dict[str, Any], immunizations: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of what the document says: the Patient and the included Immunizations, without ``meta``."""
    body = [_without_meta(patient), *(_without_meta(i) for i in included(immunizations))]
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    for coding in concept.get("coding", []) or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return str(coding["display"])
    for coding in concept.get("coding", []) or []:
        if isinstance(coding, dict) and coding.get("code"):
            system = str(coding.get("system", ""))
            prefix = "CVX " if system.endswith("/cvx") else ""
            return f"{prefix}{coding['code']}"
    return ""


def _origin(immunization: dict[str, Any]) -> str:
    for extension in immunization.get("extension", []) or []:
        if isinstance(extension, dict) and extension.get("url") == ORIGIN_URL:
            return str((extension.get("valueCoding") or {}).get("code") or "")
    return ""


def _dose(immunization: dict[str, Any]) -> str:
    for protocol in immunization.get("protocolApplied", []) or []:
        if isinstance(protocol, dict):
            for key in ("doseNumberPositiveInt", "doseNumberString"):
                if key in protocol:
                    return str(protocol[key])
    return ""


def _narrative(immunizations: Sequence[dict[str, Any]]) -> str:
    """The section's XHTML: a table of the doses (escaped; FHIR narrative rules: no scripts, no attributes)."""
    if not immunizations:
        return '<div xmlns="http://www.w3.org/1999/xhtml"><p>No vaccination recorded.</p></div>'
    rows = []
    for immunization in immunizations:
        product = ""
        for extension in immunization.get("extension", []) or []:
            if isinstance(extension, dict) and extension.get("url") == "urn:esante:cve:product":
                product = str((extension.get("valueCoding") or {}).get("display") or "")
        cells = [
            str(immunization.get("occurrenceDateTime") or "")[:10],
            _text(immunization.get("vaccineCode")),
            product,
            str(immunization.get("lotNumber") or ""),
            _dose(immunization),
            _origin(immunization) + (" (not done)" if immunization.get("status") == "not-done" else ""),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Date", "Vaccine", "Product", "Lot", "Dose", "Record"))
    return (
        '<div xmlns="http://www.w3.org/1999/xhtml"><table><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def vaccination_document(
    patient: dict[str, Any], immunizations: Sequence[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """The FHIR document (Bundle type document) of ``patient``'s vaccination history at ``now``."""
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    kept = included(immunizations)
    entries: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    for immunization in kept:
        url = f"urn:uuid:{uuid.uuid4()}"
        copy = {**_without_meta(immunization), "patient": {"reference": patient_url}}
        entries.append({"fullUrl": url, "resource": copy})
        references.append({"reference": url})
    section: dict[str, Any] = {
        "title": "Immunizations",
        "code": {"coding": [SECTION_CODE]},
        "text": {"status": "generated", "div": _narrative(kept)},
    }
    if references:
        section["entry"] = references
    else:
        section["emptyReason"] = {"coding": [{"system": EMPTY_REASON, "code": "nilknown", "display": "Nil Known"}]}
    composition = {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "status": "final",
        "type": {"coding": [DOCUMENT_TYPE]},
        "subject": {"reference": patient_url},
        "date": _instant(now),
        "author": [{"display": AUTHOR}],
        "title": TITLE,
        "confidentiality": "N",
        "section": [section],
    }
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": _instant(now),
        "entry": [
            {"fullUrl": f"urn:uuid:{composition['id']}", "resource": composition},
            {"fullUrl": patient_url, "resource": _without_meta(patient)},
            *entries,
        ],
    }


def provide_bundle(
    patient_id: str, document: dict[str, Any], now: datetime, replaces: str | None = None
) -> dict[str, Any]:
    """The ITI-65 (Minimal) Bundle filing ``document`` in the DSP of ``patient_id``; ``replaces``: the id of the
    CVE's current document there, which the new one supersedes."""
    set_url, doc_url, content_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    subject = {"reference": f"Patient/{patient_id}"}
    stamp = _instant(now)
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [MINIMAL_DOCUMENT]},
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:2.25.{uuid.uuid4().int}"},
        "identifier": [{"system": HISTORY_IDENTIFIER, "value": patient_id}],
        "status": "current",
        "type": {"coding": [DOCUMENT_TYPE]},
        "category": [{"coding": [{"system": DOCUMENT_CLASS_SYSTEM, "code": "vaccination-history"}]}],
        "subject": subject,
        "date": stamp,
        "description": TITLE,
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": "N", "display": "normal"}]}],
        "content": [
            {
                "attachment": {
                    "contentType": "application/fhir+json",
                    "url": content_url,
                    "language": "en",
                    "creation": stamp,
                    "title": TITLE,
                },
                "format": {"system": FORMAT_SYSTEM, "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
            }
        ],
    }
    if replaces:
        reference["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    submission_set = {
        "resourceType": "List",
        "meta": {"profile": [MINIMAL_SUBMISSION_SET]},
        "extension": [{"url": EXT_SOURCE_ID, "valueIdentifier": {"value": SOURCE_ID}}],
        "identifier": [
            {
                "system": "urn:ietf:rfc:3986",
                "value": f"urn:oid:2.25.{uuid.uuid4().int}",
                "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "uniqueId"}]},
            }
        ],
        "status": "current",
        "mode": "working",
        "title": TITLE,
        "code": {"coding": [{"system": LIST_TYPES, "code": "submissionset"}]},
        "subject": subject,
        "date": stamp,
        "entry": [{"item": {"reference": doc_url}}],
    }
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [MINIMAL_BUNDLE]},
        "type": "transaction",
        "entry": [
            {"fullUrl": set_url, "resource": submission_set, "request": {"method": "POST", "url": "List"}},
            {"fullUrl": doc_url, "resource": reference, "request": {"method": "POST", "url": "DocumentReference"}},
            {"fullUrl": content_url, "resource": document, "request": {"method": "POST", "url": "Bundle"}},
        ],
    }
