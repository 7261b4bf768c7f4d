"""The WSE's vocabulary and the affiliation as a FHIR Coverage — pure (no I/O).

An *affiliation* is the CCSS's record that a person (by matricule) is insured with a fund (CNS, CMFEP, CMFEC, EMCFL
or a foreign institution) for a period. The platform keeps each one as a FHIR ``Coverage``; the derived table
``wse_affiliation`` (one row per Coverage, maintained by store hooks) is what the eligibility check reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from esante.identifiers.matricule import MatriculeError, parse_matricule

MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"
ESANTE_ID_SYSTEM = "urn:oid:1.3.182.2.4.2"
AFFILIATION_SYSTEM = "urn:esante:wse:affiliation"  # the CCSS's affiliation number (the import's business key)
INSURER_SYSTEM = "urn:esante:wse:insurer"  # CNS, CMFEP, … (Organization.identifier and Coverage.payor.identifier)
COVERAGE_TYPE_SYSTEM = "urn:esante:wse:coverage-type"
RELATIONSHIP_SYSTEM = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
ELIGIBILITY_RESULT_SYSTEM = "urn:esante:wse:eligibility-result"
PRESCRIBER_RESULT_SYSTEM = "urn:esante:wse:prescriber-result"
REQUEST_ID_SYSTEM = "urn:esante:request-id"

COVERAGE_TYPES: dict[str, str] = {
    "principal": "Insured in their own right (assuré principal)",
    "co-insured": "Covered through a principal insured person (coassuré)",
    "voluntary": "Voluntary or continued insurance",
    "pensioner": "Insured as a pensioner",
    "s1-registration": "Insured by a foreign institution, registered at a Luxembourg fund (S1 form)",
}
RELATIONSHIPS = ("self", "spouse", "child", "parent", "common", "other")
STATUSES = ("active", "cancelled")  # an affiliation is in the register (active) or annulled (cancelled)
_AFFILIATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./-]{0,63}$")
_FOREIGN = re.compile(r"^FOREIGN-([A-Z]{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AffiliationError(ValueError):
    """A line or a Coverage that is not a valid affiliation; the message names the element and the problem."""


@dataclass(frozen=True)
class Insurer:
    code: str  # CNS, CMFEP, … or FOREIGN-FR
    name: str
    kind: str  # national | public-sector | foreign | register

    @property
    def organization_id(self) -> str:
        """The fixed id of its Organization in the store (written at start-up)."""
        return "wse-insurer-" + self.code.lower()

    def reference(self) -> dict[str, Any]:
        """A reference to its Organization (foreign institutions have none in the store: identifier only)."""
        ref: dict[str, Any] = {} if self.kind == "foreign" else {"reference": f"Organization/{self.organization_id}"}
        ref["type"] = "Organization"
        ref["identifier"] = {"system": INSURER_SYSTEM, "value": self.code}
        ref["display"] = self.name
        return ref

    def organization(self) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": self.organization_id,
            "identifier": [{"system": INSURER_SYSTEM, "value": self.code}],
            "active": True,
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "ins"}]}]
            if self.kind != "register"
            else [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "govt"}]}],
            "name": self.name,
        }


@dataclass(frozen=True)
class InsurerTable:
    register: Insurer
    funds: dict[str, Insurer]
    foreign_countries: frozenset[str]

    def get(self, code: str) -> Insurer | None:
        """The fund named ``code`` (a national fund, or ``FOREIGN-<country>`` for an EU/EEA/Swiss institution)."""
        fund = self.funds.get(code)
        if fund is not None:
            return fund
        match = _FOREIGN.match(code)
        if match and match.group(1) in self.foreign_countries:
            return Insurer(code, f"Foreign institution ({match.group(1)})", "foreign")
        return None

    def organizations(self) -> list[dict[str, Any]]:
        """The Organizations written at start-up: the register and the national funds (foreign ones on first use)."""
        return [self.register.organization(), *(fund.organization() for fund in self.funds.values())]


def load_insurers(path: str = "") -> InsurerTable:
    """The insurer table (``path`` empty → the packaged ``data/insurers.json``)."""
    if path:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    else:
        data = json.loads((resources.files("esante.wse") / "data" / "insurers.json").read_text(encoding="utf-8"))
    register = Insurer(data["register"]["code"], data["register"]["name"], "register")
    funds = {f["code"]: Insurer(f["code"], f["name"], f.get("kind", "national")) for f in data["funds"]}
    return InsurerTable(register, funds, frozenset(data.get("foreign_countries", ())))


@cache
def packaged_insurers() -> InsurerTable:
    return load_insurers()


@dataclass(frozen=True)
class Affiliation:
    """One affiliation as the CCSS states it (a line of the import)."""

    affiliation_id: str
    matricule: str
    insurer: str
    coverage_type: str
    start: str  # ISO date
    end: str | None = None  # ISO date, inclusive; None: open-ended
    status: str = "active"
    relationship: str = "self"
    subscriber: str | None = None  # the principal insured person's matricule (co-insured)


def check_date(value: str, element: str) -> str:
    if not isinstance(value, str) or not _DATE.match(value):
        raise AffiliationError(f"{element}: a date YYYY-MM-DD, not {value!r}")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise AffiliationError(f"{element}: {value} does not exist") from None
    return value


def check_matricule(value: str, element: str) -> str:
    try:
        return parse_matricule(value).value
    except MatriculeError as error:
        raise AffiliationError(f"{element}: invalid matricule: {error}") from None


def check_affiliation(item: Affiliation, insurers: InsurerTable) -> Affiliation:
    """The affiliation with its values normalised, or :class:`AffiliationError` naming the first problem."""
    if not _AFFILIATION_ID.match(item.affiliation_id or ""):
        raise AffiliationError(
            f"affiliation_id: letters, digits, '.', '/', '-' (at most 64), not {item.affiliation_id!r}"
        )
    matricule = check_matricule(item.matricule, "matricule")
    insurer = insurers.get(item.insurer)
    if insurer is None:
        known = ", ".join(insurers.funds)
        raise AffiliationError(f"insurer: {item.insurer!r} is not a fund ({known} or FOREIGN-<country>)")
    if item.coverage_type not in COVERAGE_TYPES:
        raise AffiliationError(f"type: {item.coverage_type!r} is not one of {', '.join(COVERAGE_TYPES)}")
    start = check_date(item.start, "start")
    end = check_date(item.end, "end") if item.end else None
    if end is not None and end < start:
        raise AffiliationError(f"end: {end} is before start {start}")
    if item.status not in STATUSES:
        raise AffiliationError(f"status: {item.status!r} is not one of {', '.join(STATUSES)}")
    if item.relationship not in RELATIONSHIPS:
        raise AffiliationError(f"relationship: {item.relationship!r} is not one of {', '.join(RELATIONSHIPS)}")
    subscriber = check_matricule(item.subscriber, "subscriber") if item.subscriber else None
    if item.coverage_type == "co-insured" and subscriber is None:
        raise AffiliationError("subscriber: a co-insured person's affiliation names the principal insured person")
    if subscriber is not None and subscriber == matricule:
        raise AffiliationError("subscriber: the principal insured person is another person than the beneficiary")
    return Affiliation(
        item.affiliation_id,
        matricule,
        insurer.code,
        item.coverage_type,
        start,
        end,
        item.status,
        item.relationship,
        subscriber,
    )


def _person(matricule: str, patient_id: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    if patient_id:
        ref["reference"] = f"Patient/{patient_id}"
    ref["type"] = "Patient"
    ref["identifier"] = {"system": MATRICULE_SYSTEM, "value": matricule}
    return ref


def coverage_of(item: Affiliation, insurers: InsurerTable, patient_id: str | None = None) -> dict[str, Any]:
    """The Coverage body of a checked affiliation (``patient_id``: the MPI's certified Patient, when known)."""
    insurer = insurers.get(item.insurer)
    assert insurer is not None, "check_affiliation first"
    period: dict[str, str] = {"start": item.start}
    if item.end:
        period["end"] = item.end
    coverage: dict[str, Any] = {
        "resourceType": "Coverage",
        "identifier": [{"use": "official", "system": AFFILIATION_SYSTEM, "value": item.affiliation_id}],
        "status": item.status,
        "type": {
            "coding": [
                {"system": COVERAGE_TYPE_SYSTEM, "code": item.coverage_type},
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PUBLICPOL"},
            ]
        },
        "beneficiary": _person(item.matricule, patient_id),
        "relationship": {"coding": [{"system": RELATIONSHIP_SYSTEM, "code": item.relationship}]},
        "period": period,
        "payor": [insurer.reference()],
    }
    if item.subscriber:
        coverage["subscriber"] = _person(item.subscriber)
        coverage["subscriberId"] = item.subscriber
    return coverage


@dataclass(frozen=True)
class AffiliationRow:
    """What ``wse_affiliation`` keeps of a Coverage: exactly what the eligibility check needs."""

    affiliation_id: str
    matricule: str
    insurer: str
    coverage_type: str
    status: str
    start: str
    end: str | None


def row_of(coverage: dict[str, Any]) -> AffiliationRow | None:
    """The affiliation a stored Coverage records, or None when it is not a CCSS affiliation (no affiliation number,
    no valid matricule as beneficiary, or no insurer code): other Coverages are not the WSE's."""
    ids = [
        i.get("value")
        for i in coverage.get("identifier", []) or []
        if isinstance(i, dict) and i.get("system") == AFFILIATION_SYSTEM
    ]
    beneficiary = coverage.get("beneficiary") or {}
    ident = beneficiary.get("identifier") if isinstance(beneficiary, dict) else None
    payors = [
        p.get("identifier", {}).get("value")
        for p in coverage.get("payor", []) or []
        if isinstance(p, dict)
        and isinstance(p.get("identifier"), dict)
        and p["identifier"].get("system") == INSURER_SYSTEM
    ]
    if len(ids) != 1 or not isinstance(ids[0], str) or not isinstance(ident, dict) or not payors:
        return None
    if ident.get("system") != MATRICULE_SYSTEM or not isinstance(ident.get("value"), str):
        return None
    try:
        matricule = parse_matricule(ident["value"]).value
    except MatriculeError:
        return None
    period = coverage.get("period") or {}
    start = str(period.get("start") or "")[:10] or "0001-01-01"
    end = str(period["end"])[:10] if period.get("end") else None
    kind = next(
        (
            c.get("code")
            for c in (coverage.get("type") or {}).get("coding", []) or []
            if isinstance(c, dict) and c.get("system") == COVERAGE_TYPE_SYSTEM
        ),
        None,
    )
    return AffiliationRow(
        ids[0], matricule, str(payors[0]), str(kind or ""), str(coverage.get("status") or ""), start, end
    )
