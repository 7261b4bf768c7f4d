"""The patient-controlled grants as FHIR ``Consent`` resources: the profile, building one, reading one back. Pure.

Profile (docs/dsp.md "Grants"): every DSP grant is one R4 Consent

- ``status`` ``active`` (in force) or ``inactive`` (revoked by the patient, replaced, ended by an opt-out);
- ``scope`` ``consentscope|patient-privacy``; ``category`` LOINC ``59284-0`` (Patient Consent) **and** the grant's
  kind in :data:`KIND_SYSTEM` (``trusted-circle``, ``referent``, ``relationship``, ``emergency``, ``block``,
  ``emergency-opt-out``, ``assistant``) — a Consent is a DSP grant when it carries a kind of that system;
- ``patient`` the DSP's holder (the certified Patient); ``dateTime`` when it was declared; ``performer`` who
  declared it (the patient, an assistant's person, or the professional for a relationship or an emergency);
- ``policyRule`` ``urn:esante:dsp:policy|dsp-access``;
- ``provision.type`` ``permit`` (trusted circle, MR03, relationship, emergency, assistant) or ``deny`` (block,
  emergency opt-out); ``provision.actor``: the professional (``Practitioner/x``) or the assistant
  (``Patient/y``) with a role of :data:`ROLE_SYSTEM`; ``provision.period``: from the declaration, ending for a
  relationship (default 120 days after its last declaration) and an emergency (default 24 h), open for the
  permanent ones; ``provision.action`` ``consentaction|access`` (read) and, for read/write grants,
  ``consentaction|correct`` (write); ``provision.purpose`` ``ETREAT``/``BTG`` for an emergency and for the opt-out
  (which denies emergency treatment access);
- an emergency's mandatory reason: extension :data:`REASON_URL` (``valueString``).

Only the DSP's operations write these Consents (the access rule vetoes API writes of them); a store hook derives
one ``dsp_grant`` row per Consent, which is what the access rule's SQL reads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esante.dsp.lifecycle_model import instant
from esante.dsp.model import reference_id

KIND_SYSTEM = "urn:esante:dsp:consent-kind"
ROLE_SYSTEM = "urn:esante:dsp:actor-role"
POLICY_SYSTEM = "urn:esante:dsp:policy"
REASON_URL = "urn:esante:dsp:emergency-reason"
LOINC = "http://loinc.org"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MAX_REASON = 1000


class Kind(enum.StrEnum):
    TRUSTED_CIRCLE = "trusted-circle"  # cercle médical de confiance: permanent read/write
    REFERENT = "referent"  # médecin référent (MR03): permanent read/write
    RELATIONSHIP = "relationship"  # therapeutic relationship declared by the professional: read/write, limited
    EMERGENCY = "emergency"  # break-the-glass: read-only, essential classes, limited
    BLOCK = "block"  # the professional sees nothing (but what they authored)
    EMERGENCY_OPT_OUT = "emergency-opt-out"  # no emergency access possible
    ASSISTANT = "assistant"  # a DSP assistant (the account delegation is the authority; this is the record)


# what each kind is, as the Consent says it
ROLES = {
    Kind.TRUSTED_CIRCLE: ("trusted-circle", "cercle médical de confiance"),
    Kind.REFERENT: ("referent", "médecin référent (MR03)"),
    Kind.RELATIONSHIP: ("relationship", "relation thérapeutique"),
    Kind.EMERGENCY: ("emergency", "accès en urgence"),
    Kind.BLOCK: ("blocked", "professionnel bloqué"),
    Kind.ASSISTANT: ("assistant", "assistant DSP"),
}
DENY_KINDS = frozenset({Kind.BLOCK, Kind.EMERGENCY_OPT_OUT})
READ_WRITE_KINDS = frozenset({Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP})
PROFESSIONAL_KINDS = frozenset({Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP, Kind.EMERGENCY, Kind.BLOCK})
PATIENT_DECLARED = frozenset(
    {Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.BLOCK, Kind.EMERGENCY_OPT_OUT, Kind.ASSISTANT}
)  # the kinds $dsp-grant creates (relationships and emergencies are declared by professionals)


@dataclass(frozen=True)
class GrantRow:
    """What the access rule needs of one DSP Consent (table ``dsp_grant``); times in epoch seconds."""

    consent_id: str
    patient_id: str
    kind: Kind
    practitioner_id: str | None
    active: bool
    starts_at: int | None
    ends_at: int | None


def kind_of(consent: dict[str, Any]) -> Kind | None:
    """The DSP kind of a Consent (None: not a DSP grant)."""
    for concept in consent.get("category", []) or []:
        for coding in (concept.get("coding", []) or []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == KIND_SYSTEM:
                try:
                    return Kind(str(coding.get("code")))
                except ValueError:
                    return None
    return None


def parse_time(value: Any) -> int | None:
    """A FHIR date or dateTime as epoch seconds (a date: its first second, UTC), None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            moment = datetime(int(text), 1, 1, tzinfo=UTC)
        elif len(text) == 7:
            moment = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp())


def grant_row(consent: dict[str, Any]) -> GrantRow | None:
    """The grant a stored Consent makes (None: not a DSP grant, or without a patient)."""
    kind = kind_of(consent)
    patient = reference_id(consent.get("patient"), "Patient")
    if kind is None or patient is None:
        return None
    provision = consent.get("provision") if isinstance(consent.get("provision"), dict) else {}
    assert isinstance(provision, dict)
    practitioner = None
    for actor in provision.get("actor", []) or []:
        if isinstance(actor, dict):
            practitioner = practitioner or reference_id(actor.get("reference"), "Practitioner")
    period = provision.get("period") if isinstance(provision.get("period"), dict) else {}
    assert isinstance(period, dict)
    return GrantRow(
        consent_id=str(consent.get("id", "")),
        patient_id=patient,
        kind=kind,
        practitioner_id=practitioner,
        active=consent.get("status") == "active",
        starts_at=parse_time(period.get("start")),
        ends_at=parse_time(period.get("end")),
    )


def build_consent(
    kind: Kind,
    *,
    patient_id: str,
    performer: str,
    now: int,
    actor: str | None = None,
    ends_at: int | None = None,
    reason: str | None = None,
    purpose: str | None = None,
) -> dict[str, Any]:
    """A new DSP grant Consent (``performer``/``actor``: references such as ``Patient/x``, ``Practitioner/y``)."""
    provision: dict[str, Any] = {"type": "deny" if kind in DENY_KINDS else "permit"}
    period: dict[str, str] = {"start": instant(now) or ""}
    if ends_at is not None:
        period["end"] = instant(ends_at) or ""
    provision["period"] = period
    if actor is not None:
        code, display = ROLES[kind]
        provision["actor"] = [
            {
                "role": {"coding": [{"system": ROLE_SYSTEM, "code": code, "display": display}]},
                "reference": {"reference": actor},
            }
        ]
    actions = ["access"] + (["correct"] if kind in READ_WRITE_KINDS else [])
    if kind is not Kind.EMERGENCY_OPT_OUT and kind is not Kind.BLOCK:
        provision["action"] = [{"coding": [{"system": ACTION_SYSTEM, "code": code}]} for code in actions]
    if kind is Kind.EMERGENCY:
        provision["purpose"] = [{"system": ACT_REASON, "code": purpose or "BTG"}]
    elif kind is Kind.EMERGENCY_OPT_OUT:
        provision["purpose"] = [{"system": ACT_REASON, "code": "ETREAT"}, {"system": ACT_REASON, "code": "BTG"}]
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [{"system": KIND_SYSTEM, "code": kind.value}]},
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": instant(now),
        "performer": [{"reference": performer}],
        "policyRule": {"coding": [{"system": POLICY_SYSTEM, "code": "dsp-access"}]},
        "provision": provision,
    }
    if reason is not None:
        consent["extension"] = [{"url": REASON_URL, "valueString": reason}]
    return consent


def renewed(consent: dict[str, Any], now: int, ends_at: int) -> dict[str, Any]:
    """A relationship declared again: same Consent, its period now ends at ``ends_at``."""
    provision = dict(consent.get("provision") or {})
    period = dict(provision.get("period") or {})
    period["end"] = instant(ends_at) or ""
    provision["period"] = period
    return {**consent, "status": "active", "dateTime": instant(now), "provision": provision}


def ended(consent: dict[str, Any], now: int) -> dict[str, Any]:
    """A revoked grant: inactive, its period closed now."""
    provision = dict(consent.get("provision") or {})
    period = dict(provision.get("period") or {})
    end = parse_time(period.get("end"))
    if end is None or end > now:
        period["end"] = instant(now) or ""
    provision["period"] = period
    return {**consent, "status": "inactive", "provision": provision}


def in_force(row: GrantRow, now: int) -> bool:
    return row.active and (row.starts_at is None or row.starts_at <= now) and (row.ends_at is None or row.ends_at > now)
