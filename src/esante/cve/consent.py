"""The patient's authorisation of a vaccinator, as a FHIR ``Consent``; and what makes a professional a vaccinator.
Pure.

Profile (docs/cve.md "Access"): one R4 Consent per (patient, vaccinator)

- ``status`` ``active`` (in force) or ``inactive`` (revoked by the patient);
- ``scope`` ``consentscope|patient-privacy``; ``category`` LOINC ``59284-0`` (Patient Consent) **and**
  ``urn:esante:cve:consent|vaccinator`` — a Consent is a CVE authorisation when it carries that category;
- ``patient`` the CVE's holder; ``dateTime`` when it was given; ``performer`` who gave it (the patient, or the
  assistant's Patient); ``policyRule`` ``urn:esante:cve:policy|cve-access``;
- ``provision.type`` ``permit``; ``provision.actor`` the vaccinator (``Practitioner/x``, role
  ``urn:esante:cve:actor-role|vaccinator``); ``provision.period`` from the authorisation (an end when the patient
  gives one); ``provision.action`` ``consentaction|access`` and ``consentaction|correct`` (read and record).

The access rule reads these Consents **in SQL, through the search index** (``patient``, ``actor``, ``category``,
``status``, ``period``): no derived table, so an authorisation applies from the transaction that writes it.
Only the CVE's operations (``$cve-authorize``, ``$cve-revoke``) write them; the rule vetoes API writes.

A **vaccinator** is a professional whose profession vaccinates by itself (setting
``cve_vaccinator_professions``, default ``medecin``) or who holds the qualification
``urn:esante:cve:qualification|trained-vaccinator`` ("vaccinateur formé", 475 nationally) on their Practitioner,
in force (``qualification.period``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "CONSENT_SYSTEM",
    "QUALIFICATION_SYSTEM",
    "VACCINATOR",
    "build_authorisation",
    "is_cve_consent",
    "is_vaccinator",
    "revoked",
]

CONSENT_SYSTEM = "urn:esante:cve:consent"
VACCINATOR = "vaccinator"
ROLE_SYSTEM = "urn:esante:cve:actor-role"
POLICY_SYSTEM = "urn:esante:cve:policy"
QUALIFICATION_SYSTEM = "urn:esante:cve:qualification"
TRAINED_VACCINATOR = "trained-vaccinator"
PROFESSION_SYSTEM = "urn:esante:hpd:profession"
LOINC = "http://loinc.org"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def is_cve_consent(consent: dict[str, Any]) -> bool:
    for concept in consent.get("category", []) or []:
        for coding in (concept.get("coding", []) or []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == CONSENT_SYSTEM:
                return True
    return False


def build_authorisation(
    patient_id: str, practitioner_id: str, performer: str, now: datetime, end: str | None
) -> dict[str, Any]:
    """A new authorisation of ``Practitioner/practitioner_id`` by ``performer`` for the CVE of ``patient_id``."""
    period: dict[str, str] = {"start": instant(now)}
    if end is not None:
        period["end"] = end
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [{"system": CONSENT_SYSTEM, "code": VACCINATOR, "display": "Vaccinateur autorisé (CVE)"}]},
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": instant(now),
        "performer": [{"reference": performer}],
        "policyRule": {"coding": [{"system": POLICY_SYSTEM, "code": "cve-access"}]},
        "provision": {
            "type": "permit",
            "period": period,
            "actor": [
                {
                    "role": {"coding": [{"system": ROLE_SYSTEM, "code": VACCINATOR, "display": "vaccinateur"}]},
                    "reference": {"reference": f"Practitioner/{practitioner_id}"},
                }
            ],
            "action": [
                {"coding": [{"system": ACTION_SYSTEM, "code": "access"}]},
                {"coding": [{"system": ACTION_SYSTEM, "code": "correct"}]},
            ],
        },
    }


def revoked(consent: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The authorisation withdrawn: inactive, its period closed now (unless it ended already)."""
    provision = dict(consent.get("provision") or {})
    period = dict(provision.get("period") or {})
    end = period.get("end")
    if not isinstance(end, str) or end > instant(now):
        period["end"] = instant(now)
    provision["period"] = period
    return {**consent, "status": "inactive", "provision": provision}


def _in_force(period: Any, today: date) -> bool:
    if not isinstance(period, dict):
        return True
    start, end = period.get("start"), period.get("end")
    if isinstance(start, str) and start[:10] > today.isoformat():
        return False
    return not (isinstance(end, str) and end[:10] < today.isoformat())


def is_vaccinator(practitioner: dict[str, Any], professions: frozenset[str], today: date) -> bool:
    """Whether the Practitioner may vaccinate: a profession of ``professions``, or the trained-vaccinator
    qualification in force."""
    for qualification in practitioner.get("qualification", []) or []:
        if not isinstance(qualification, dict):
            continue
        code = qualification.get("code")
        for coding in (code.get("coding", []) or []) if isinstance(code, dict) else []:
            if not isinstance(coding, dict):
                continue
            system, value = coding.get("system"), coding.get("code")
            if system == PROFESSION_SYSTEM and value in professions:
                return True
            if (
                system == QUALIFICATION_SYSTEM
                and value == TRAINED_VACCINATOR
                and _in_force(qualification.get("period"), today)
            ):
                return True
    return False
