"""The CVE's Immunization profile: its identifiers, extensions and codes, and readers of a resource's parts. Pure.

An Immunization of the CVE (docs/cve.md "The record") is a FHIR R4 Immunization with

- extension ``urn:esante:cve:record-origin`` (``valueCoding`` in the code system of the same URL): ``performed``
  (acte réalisé: given and recorded by the vaccinator), ``historical`` (acte historisé: transcribed from the paper
  card) or ``imported`` (e.g. COVID-19 doses imported from the MSVAC register); ``primarySource`` and
  ``reportOrigin`` follow from it;
- ``vaccineCode`` with a CVX coding; the product (extension ``urn:esante:cve:product``, ``valueCoding`` GTIN in
  ``https://www.gs1.org/gtin``), ``manufacturer`` (``identifier`` MVX), ``lotNumber``, ``expirationDate``;
- the pack's serial number, extension ``urn:esante:cve:serial-number`` (``valueString``): R4 has no element for
  it (AI 21 of the GS1 DataMatrix);
- the scanned GS1 DataMatrix itself, extension ``urn:esante:cve:gs1-datamatrix`` (``valueString``), from which
  the server fills or checks product, lot, expiry and serial;
- ``site``, ``route``, ``performer`` (Practitioner or PractitionerRole), ``protocolApplied.doseNumber``.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

__all__ = [
    "CVX_SYSTEM",
    "GS1_URL",
    "GTIN_SYSTEM",
    "MVX_SYSTEM",
    "ORIGIN_URL",
    "PRODUCT_URL",
    "REPORT_ORIGIN_SYSTEM",
    "SERIAL_URL",
    "Origin",
    "codings",
    "cvx_of",
    "extension_value",
    "full_date",
    "origin_of",
    "patient_id_of",
    "set_extension",
]

CVX_SYSTEM = "http://hl7.org/fhir/sid/cvx"
MVX_SYSTEM = "http://hl7.org/fhir/sid/mvx"
GTIN_SYSTEM = "https://www.gs1.org/gtin"
ORIGIN_URL = "urn:esante:cve:record-origin"  # extension URL and code system
PRODUCT_URL = "urn:esante:cve:product"
SERIAL_URL = "urn:esante:cve:serial-number"
GS1_URL = "urn:esante:cve:gs1-datamatrix"
REPORT_ORIGIN_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-origin"
REPORT_ORIGINS = {
    "provider": "Other Provider",
    "record": "Written Record",
    "recall": "Parent/Guardian/Patient Recall",
    "school": "School Record",
}


class Origin(enum.StrEnum):
    PERFORMED = "performed"  # acte réalisé
    HISTORICAL = "historical"  # acte historisé (paper card)
    IMPORTED = "imported"  # import (e.g. MSVAC COVID-19 doses)


ORIGIN_DISPLAY = {
    Origin.PERFORMED: "Acte réalisé (performed)",
    Origin.HISTORICAL: "Acte historisé (historical, from the paper card)",
    Origin.IMPORTED: "Import (imported from another register)",
}


def codings(concept: Any) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept (nothing for anything else)."""
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding", []) or [] if isinstance(c, dict)]


def extensions(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) or [] if isinstance(e, dict) and e.get("url") == url]


def extension_value(resource: dict[str, Any], url: str, key: str) -> Any:
    """The ``key`` value (``valueString``, ``valueCoding``) of the first extension ``url``, or None."""
    found = extensions(resource, url)
    return found[0].get(key) if found else None


def set_extension(resource: dict[str, Any], url: str, key: str, value: Any) -> None:
    """Replace (or add) extension ``url`` with one ``key`` value."""
    kept = [e for e in resource.get("extension", []) or [] if not (isinstance(e, dict) and e.get("url") == url)]
    resource["extension"] = [*kept, {"url": url, key: value}]


def origin_of(resource: dict[str, Any]) -> Origin | None:
    """The record origin the extension states (None: absent or not one of the codes)."""
    coding = extension_value(resource, ORIGIN_URL, "valueCoding")
    if not isinstance(coding, dict) or coding.get("system") != ORIGIN_URL:
        return None
    try:
        return Origin(str(coding.get("code")))
    except ValueError:
        return None


def origin_coding(origin: Origin) -> dict[str, str]:
    return {"system": ORIGIN_URL, "code": origin.value, "display": ORIGIN_DISPLAY[origin]}


def cvx_of(resource: dict[str, Any]) -> str | None:
    """The CVX code of ``vaccineCode`` (the first CVX coding), as written."""
    for coding in codings(resource.get("vaccineCode")):
        if coding.get("system") == CVX_SYSTEM and isinstance(coding.get("code"), str):
            return str(coding["code"]).strip()
    return None


def patient_id_of(resource: dict[str, Any]) -> str | None:
    """``Patient/<id>`` → id (literal, relative references only: the CVE belongs to a patient of the platform)."""
    patient = resource.get("patient")
    reference = patient.get("reference") if isinstance(patient, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return None
    rest = reference[len("Patient/") :]
    return rest if rest and "/" not in rest else None


def full_date(value: Any) -> date | None:
    """The calendar date of a FHIR date/dateTime with at least a day (``2024-05-01``, ``2024-05-01T10:00:00Z``);
    None for a partial date, another type or text that is not a date."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
