"""The HPD's vocabulary: identifier systems, the right-to-practise status and how it is written on a Practitioner.

Pure (no I/O). Every directory resource carries one *business identifier* that the import keys on (the Ministry
of Health authorisation number for professionals, the directory's own codes for the rest); the eHealthID is
assigned by the HPD alone (docs/hpd.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from esante.identifiers.cns_provider_code import CNS_PROVIDER_SYSTEM
from esante.identifiers.ehealth_id import EHEALTH_ID_SYSTEM

__all__ = [
    "AFFILIATION_SYSTEM",
    "CNS_PROVIDER_SYSTEM",
    "DIRECTORY_TYPES",
    "EHEALTH_ID_SYSTEM",
    "ENDPOINT_SYSTEM",
    "HEALTHCARE_SERVICE_SYSTEM",
    "KEY_SYSTEMS",
    "LOCATION_SYSTEM",
    "MINISTRY_AUTHORISATION_SYSTEM",
    "MINISTRY_ORGANIZATION_ID",
    "ORGANIZATION_SYSTEM",
    "ORGANIZATION_TYPE_SYSTEM",
    "PRACTITIONER_ROLE_SYSTEM",
    "PROFESSION_SYSTEM",
    "RIGHT_TO_PRACTISE_URL",
    "RightToPractise",
    "Status",
    "business_key",
    "right_to_practise_extension",
    "right_to_practise_of",
]

MINISTRY_AUTHORISATION_SYSTEM = "urn:esante:hpd:ministry-authorisation"  # the Ministry's register number
PROFESSION_SYSTEM = "urn:esante:hpd:profession"  # CodeSystem data/professions.json
ORGANIZATION_TYPE_SYSTEM = "urn:esante:hpd:organization-type"  # CodeSystem data/organization-types.json

# The directory's own business identifiers of the places of practice (the codes of the source files)
ORGANIZATION_SYSTEM = "urn:esante:hpd:organization"
LOCATION_SYSTEM = "urn:esante:hpd:location"
PRACTITIONER_ROLE_SYSTEM = "urn:esante:hpd:practitioner-role"
HEALTHCARE_SERVICE_SYSTEM = "urn:esante:hpd:healthcare-service"
ENDPOINT_SYSTEM = "urn:esante:hpd:endpoint"
AFFILIATION_SYSTEM = "urn:esante:hpd:organization-affiliation"

# The issuer of every right to practise (Practitioner.qualification.issuer): created by the import when missing
MINISTRY_ORGANIZATION_ID = "MINSANTE"
MINISTRY_NAME = "Ministère de la Santé et de la Sécurité sociale"

RIGHT_TO_PRACTISE_URL = "urn:esante:hpd:right-to-practise"  # Practitioner extension: status, date

# The key each directory type is imported on (system of its business identifier)
KEY_SYSTEMS: dict[str, str] = {
    "Practitioner": MINISTRY_AUTHORISATION_SYSTEM,
    "Organization": ORGANIZATION_SYSTEM,
    "Location": LOCATION_SYSTEM,
    "PractitionerRole": PRACTITIONER_ROLE_SYSTEM,
    "HealthcareService": HEALTHCARE_SERVICE_SYSTEM,
    "Endpoint": ENDPOINT_SYSTEM,
    "OrganizationAffiliation": AFFILIATION_SYSTEM,
}
DIRECTORY_TYPES = frozenset(KEY_SYSTEMS)


class Status(enum.StrEnum):
    """The right to practise as the Ministry's register states it."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class RightToPractise:
    """Status of a professional's right to practise; ``date`` (ISO) and ``reason`` say since when and why (both
    required unless active)."""

    status: Status
    date: str | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE


ACTIVE = RightToPractise(Status.ACTIVE)


def right_to_practise_extension(right: RightToPractise) -> dict[str, Any]:
    """The Practitioner extension recording the status and since when (``Practitioner.active`` is true iff it is
    active). The reason is not written there: a directory entry is public, the reason stays in the HPD's history of
    changes and the audit trail (docs/hpd-practise.md)."""
    parts: list[dict[str, Any]] = [{"url": "status", "valueCode": right.status.value}]
    if right.date:
        parts.append({"url": "date", "valueDate": right.date})
    return {"url": RIGHT_TO_PRACTISE_URL, "extension": parts}


def right_to_practise_of(practitioner: dict[str, Any]) -> RightToPractise:
    """The status a stored (or imported) Practitioner records; without the extension, ``active`` decides."""
    for extension in practitioner.get("extension", []) or []:
        if isinstance(extension, dict) and extension.get("url") == RIGHT_TO_PRACTISE_URL:
            values = {
                part.get("url"): part.get("valueCode", part.get("valueDate", part.get("valueString")))
                for part in extension.get("extension", []) or []
                if isinstance(part, dict)
            }
            try:
                status = Status(str(values.get("status")))
            except ValueError:
                break
            return RightToPractise(status, values.get("date"), values.get("reason"))
    if practitioner.get("active", True) is False:
        return RightToPractise(Status.SUSPENDED)
    return ACTIVE


def business_key(resource: dict[str, Any]) -> str | None:
    """The value of the resource's business identifier (the system :data:`KEY_SYSTEMS` names for its type)."""
    system = KEY_SYSTEMS.get(resource.get("resourceType", ""))
    values = [
        i.get("value")
        for i in resource.get("identifier", []) or []
        if isinstance(i, dict) and i.get("system") == system and isinstance(i.get("value"), str)
    ]
    return values[0] if len(values) == 1 else None
