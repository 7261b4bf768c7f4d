"""The eligibility check's rules — pure (no I/O): the request → a query, the affiliations → an answer.

Input: a FHIR CoverageEligibilityRequest (POST) or the parameters ``patient`` (``system|value``) and
``servicedDate`` (GET). The person is named by matricule (``urn:oid:1.3.182.4.4``) or eSanté patient identifier
(``urn:oid:1.3.182.2.4.2``); the date of service defaults to today (Luxembourg). Malformed requests are 400s; an
identifier that fails its check digits, an unknown person or a date outside the affiliations are *answers*
(CoverageEligibilityResponse with ``outcome`` and ``error`` codes), never errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from esante.fhir.errors import FhirError, Issue, bad_request
from esante.fhir.validation import validate_resource
from esante.identifiers.esante_id import EsanteIdError, parse_esante_id
from esante.identifiers.matricule import MatriculeError, parse_matricule
from esante.wse.model import ELIGIBILITY_RESULT_SYSTEM, ESANTE_ID_SYSTEM, MATRICULE_SYSTEM

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PURPOSES = ("auth-requirements", "benefits", "discovery", "validation")
_GET_PARAMETERS = ("patient", "servicedDate")

# The answers (CoverageEligibilityResponse.error.code, system urn:esante:wse:eligibility-result)
RESULTS: dict[str, str] = {
    "unknown-person": "No affiliation is recorded for this person",
    "before-affiliation": "The date of service is before the person's affiliation",
    "after-affiliation": "The person's affiliation ended before the date of service",
    "between-affiliations": "The date of service falls between two of the person's affiliations",
    "invalid-matricule": "The matricule is not valid",
    "invalid-esante-id": "The eSanté patient identifier is not valid",
    "date-out-of-range": "The date of service is outside the period the service answers for",
}


@dataclass(frozen=True)
class EligibilityQuery:
    """Who (``system``, ``value`` as given), for which day; ``invalid`` names a failed identifier check."""

    system: str
    value: str
    served: str  # ISO date
    purpose: tuple[str, ...] = ("validation",)
    request_identifier: dict[str, Any] | None = None
    invalid: str | None = None  # invalid-matricule | invalid-esante-id (with ``reason``)
    reason: str | None = None

    @property
    def by_matricule(self) -> bool:
        return self.system == MATRICULE_SYSTEM


@dataclass(frozen=True)
class CoverageRow:
    """One affiliation of the person as ``wse_affiliation`` holds it."""

    coverage_id: str
    insurer: str
    coverage_type: str
    status: str
    start: str
    end: str | None

    def covers(self, day: str) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Answer:
    """What the check found: ``result`` None when the person is covered on the day (``in_force`` non-empty)."""

    result: str | None
    in_force: tuple[CoverageRow, ...] = ()
    others: tuple[CoverageRow, ...] = ()  # the person's affiliations that do not cover the day (for the periods)


def _identifier_of(system: str, value: str, served: str, purpose: tuple[str, ...], ident: Any) -> EligibilityQuery:
    """Check the identifier's value: a failed check is an answer (``invalid``), not a 400."""
    try:
        normal = parse_matricule(value).value if system == MATRICULE_SYSTEM else parse_esante_id(value)
    except (MatriculeError, EsanteIdError) as error:
        code = "invalid-matricule" if system == MATRICULE_SYSTEM else "invalid-esante-id"
        return EligibilityQuery(system, value[:32], served, purpose, ident, code, str(error))
    return EligibilityQuery(system, normal, served, purpose, ident)


def _system_value(text: str, element: str) -> tuple[str, str]:
    system, bar, value = text.partition("|")
    if not bar or not value:
        raise bad_request(f"{element}: the person as system|value (matricule or eSanté id)", expression=element)
    return system, value


def _check_system(system: str, element: str) -> None:
    if system not in (MATRICULE_SYSTEM, ESANTE_ID_SYSTEM):
        raise bad_request(
            f"{element}: the person is named by matricule ({MATRICULE_SYSTEM}) or eSanté patient identifier "
            f"({ESANTE_ID_SYSTEM}), not {system!r}",
            expression=element,
        )


def served_day(value: Any, element: str, today: date) -> str:
    """The date of service: a full date ``YYYY-MM-DD`` (400 otherwise), today when absent."""
    if value is None:
        return today.isoformat()
    if not isinstance(value, str) or not _DAY.match(value):
        raise bad_request(f"{element}: a full date YYYY-MM-DD, not {value!r}", expression=element)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{element}: {value} does not exist", expression=element) from None
    return value


def query_from_parameters(parameters: dict[str, Any], today: date) -> EligibilityQuery:
    """GET ``$check?patient=system|value&servicedDate=YYYY-MM-DD`` (the router turned the query into Parameters)."""
    found: dict[str, str] = {}
    for entry in parameters.get("parameter", []):
        name = entry.get("name")
        if name not in _GET_PARAMETERS:
            raise bad_request(f"unknown parameter {name!r} (expected: {', '.join(_GET_PARAMETERS)})", expression=name)
        if name in found:
            raise bad_request(f"parameter {name} is given more than once", expression=name)
        found[name] = entry.get("valueString", "")
    if "patient" not in found:
        raise bad_request("patient: required (system|value: the matricule or eSanté id)", expression="patient")
    system, value = _system_value(found["patient"], "patient")
    _check_system(system, "patient")
    served = served_day(found.get("servicedDate"), "servicedDate", today)
    return _identifier_of(system, value, served, ("validation",), None)


def query_from_request(resource: Any, today: date) -> EligibilityQuery:
    """POST: a CoverageEligibilityRequest (FHIR R4; ``status``, ``purpose``, ``created`` and ``insurer``, which R4
    requires but the check does not need, may be left out)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "CoverageEligibilityRequest":
        found = resource.get("resourceType") if isinstance(resource, dict) else None
        raise bad_request(f"the body must be a CoverageEligibilityRequest, not {found!r}", expression="resourceType")
    checked = dict(resource)
    checked.setdefault("status", "active")
    checked.setdefault("purpose", ["validation"])
    checked.setdefault("created", today.isoformat())
    checked.setdefault("insurer", {"display": "the CCSS register"})
    validate_resource(checked, expected_type="CoverageEligibilityRequest")
    if checked["status"] != "active":
        raise bad_request(f"status: an eligibility check is 'active', not {checked['status']!r}", expression="status")
    if "servicedPeriod" in checked:
        raise FhirError(
            400,
            [
                Issue(
                    "not-supported",
                    "servicedPeriod: give one date of service (servicedDate)",
                    expression=("servicedPeriod",),
                )
            ],
        )
    patient = checked.get("patient")
    ident = patient.get("identifier") if isinstance(patient, dict) else None
    if (
        not isinstance(ident, dict)
        or not isinstance(ident.get("system"), str)
        or not isinstance(ident.get("value"), str)
    ):
        raise bad_request(
            "patient.identifier: name the person by matricule or eSanté patient identifier (system and value)",
            expression="CoverageEligibilityRequest.patient.identifier",
        )
    _check_system(ident["system"], "CoverageEligibilityRequest.patient.identifier.system")
    served = served_day(checked.get("servicedDate"), "CoverageEligibilityRequest.servicedDate", today)
    purpose = tuple(p for p in checked["purpose"] if p in _PURPOSES) or ("validation",)
    identifiers = checked.get("identifier") or []
    request_identifier = identifiers[0] if identifiers else None
    return _identifier_of(ident["system"], ident["value"], served, purpose, request_identifier)


def in_window(served: str, today: date, past_days: int, future_days: int) -> bool:
    """Whether the service answers for this day (not too far back, not too far ahead)."""
    day = date.fromisoformat(served)
    return today - timedelta(days=past_days) <= day <= today + timedelta(days=future_days)


def decide(rows: list[CoverageRow], served: str) -> Answer:
    """Covered on ``served`` by an active affiliation, or why not (annulled affiliations do not count)."""
    active = [row for row in rows if row.status == "active"]
    if not active:
        return Answer("unknown-person")
    in_force = tuple(row for row in active if row.covers(served))
    others = tuple(row for row in active if not row.covers(served))
    if in_force:
        return Answer(None, in_force, others)
    if all(served < row.start for row in active):
        return Answer("before-affiliation", (), others)
    if all(row.end is not None and row.end < served for row in active):
        return Answer("after-affiliation", (), others)
    return Answer("between-affiliations", (), others)


def result_coding(code: str) -> dict[str, Any]:
    return {"coding": [{"system": ELIGIBILITY_RESULT_SYSTEM, "code": code, "display": RESULTS[code]}]}
