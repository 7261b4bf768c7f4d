"""The patient's DSP consent ("consentement DSP") for their vaccination record, as a FHIR ``Consent``. Pure.

With it, the platform keeps the patient's vaccination history current in their DSP (``dsp_consent_sync.py``).
One R4 Consent per consent given, in the CVE's Consent family (docs/cve.md "Access"):

- ``status`` ``active`` (given) · ``inactive`` (withdrawn: its period closed at the withdrawal);
- ``scope`` ``consentscope|patient-privacy``; ``category`` LOINC ``59284-0`` (Patient Consent) **and**
  ``urn:esante:cve:consent|dsp-sharing`` — the CVE's consent system, so the CVE's access rule already keeps
  every API write off it (only the operations below, and ``$cve-revoke``, write it);
- ``patient``; ``dateTime``; ``performer`` the patient or the assistant who gave it;
- ``policyRule`` ``urn:esante:cve:policy|dsp-sharing``;
- ``provision.type`` ``permit``, ``provision.action`` ``consentaction|disclose`` (the history is disclosed to the
  DSP), ``provision.period`` from the consent (an end once withdrawn), ``provision.class`` ``Immunization`` (what
  is disclosed).

No actor: the DSP's own grants decide who reads the document there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from esante.cve.consent import (
    ACTION_SYSTEM,
    CONSENT_SYSTEM,
    LOINC,
    POLICY_SYSTEM,
    SCOPE_SYSTEM,
    instant,
)

__all__ = ["DSP_SHARING", "build_dsp_consent", "is_dsp_consent", "withdrawn"]

DSP_SHARING = "dsp-sharing"
_RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"


def is_dsp_consent(consent: Any) -> bool:
    """A Consent carrying ``urn:esante:cve:consent|dsp-sharing``."""
    if not isinstance(consent, dict) or consent.get("resourceType") != "Consent":
        return False
    for concept in consent.get("category", []) or []:
        for coding in (concept.get("coding", []) or []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and (coding.get("system"), coding.get("code")) == (CONSENT_SYSTEM, DSP_SHARING):
                return True
    return False


def build_dsp_consent(patient_id: str, performer: str, now: datetime) -> dict[str, Any]:
    """The consent of ``patient_id`` (given by ``performer``) to keep their vaccination history in their DSP."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {
                "coding": [
                    {
                        "system": CONSENT_SYSTEM,
                        "code": DSP_SHARING,
                        "display": "Partage du carnet de vaccination dans le DSP",
                    }
                ]
            },
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": instant(now),
        "performer": [{"reference": performer}],
        "policyRule": {"coding": [{"system": POLICY_SYSTEM, "code": DSP_SHARING}]},
        "provision": {
            "type": "permit",
            "period": {"start": instant(now)},
            "action": [{"coding": [{"system": ACTION_SYSTEM, "code": "disclose"}]}],
            "class": [{"system": _RESOURCE_TYPES, "code": "Immunization"}],
        },
    }


def withdrawn(consent: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The consent withdrawn: inactive, its period closed now."""
    provision = dict(consent.get("provision") or {})
    period = dict(provision.get("period") or {})
    period["end"] = instant(now)
    provision["period"] = period
    return {**consent, "status": "inactive", "provision": provision}
