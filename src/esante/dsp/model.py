"""The DSP's vocabulary and settings. Pure (no I/O).

Shared with the MHD side (decided once, do not change): a DSP belongs to the certified Patient (the MPI's certified
identity); ``DocumentReference.subject`` is that Patient; the document class is a ``DocumentReference.category``
coding of :data:`DOCUMENT_CLASS_SYSTEM`; the confidentiality is a ``DocumentReference.securityLabel`` coding of
:data:`CONFIDENTIALITY_SYSTEM`: ``N`` normal (also when absent), ``R`` restricted (trusted circle, MR03 and the
author only), ``V`` hidden by the patient (the patient, assistants and the author only). A document may carry ``V``
beside ``N``/``R``: hiding adds ``V`` and unhiding removes it, so the level set before comes back; the most
restrictive label present decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from esante.config import Settings

DOCUMENT_CLASS_SYSTEM = "urn:esante:dsp:document-class"
DOCUMENT_CLASSES = (
    "consultation-report",
    "discharge-letter",
    "emergency-summary",
    "laboratory-results",
    "imaging-report",
    "operative-report",
    "prescription",
    "medication-list",
    "vaccination-history",
    "patient-summary",
    "blood-group-allergies",
    "patient-provided",
)
PATIENT_PROVIDED = "patient-provided"

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
NORMAL, RESTRICTED, HIDDEN = "N", "R", "V"
LEVELS = (NORMAL, RESTRICTED, HIDDEN)  # in increasing order of restriction
SETTABLE_LEVELS = (NORMAL, RESTRICTED)  # what $dsp-confidentiality sets; V comes and goes with $dsp-hide/$dsp-unhide

# The types the DSP rule governs (their rows about a patient who has a DSP), and the grant Consents
DOCUMENT_TYPES = frozenset({"DocumentReference", "List", "Binary"})
GOVERNED_TYPES = DOCUMENT_TYPES | {"Consent"}


def labels_of(resource: dict[str, Any]) -> list[str]:
    """The confidentiality codes a resource's ``securityLabel`` carries (in order, without repeats)."""
    codes: list[str] = []
    for label in resource.get("securityLabel", []) or []:
        for coding in (label.get("coding", []) or []) if isinstance(label, dict) else []:
            code = coding.get("code") if isinstance(coding, dict) else None
            if coding.get("system") == CONFIDENTIALITY_SYSTEM and code in LEVELS and code not in codes:
                codes.append(code)
    return codes


def level_of(resource: dict[str, Any]) -> str:
    """The effective level: the most restrictive label present (N when none)."""
    codes = labels_of(resource)
    return max(codes, key=LEVELS.index) if codes else NORMAL


def with_labels(resource: dict[str, Any], level: str, hidden: bool) -> dict[str, Any]:
    """``resource`` (a copy) whose confidentiality labels are ``level`` and, when ``hidden``, ``V``; other labels
    (other systems) are kept."""
    kept = [
        label
        for label in resource.get("securityLabel", []) or []
        if not (
            isinstance(label, dict)
            and any(
                isinstance(c, dict) and c.get("system") == CONFIDENTIALITY_SYSTEM for c in label.get("coding", []) or []
            )
        )
    ]
    codes = [level] + ([HIDDEN] if hidden else [])
    labels = kept + [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": code}]} for code in codes]
    return {**resource, "securityLabel": labels}


def categories_of(resource: dict[str, Any]) -> list[str]:
    """The DSP document classes a DocumentReference's ``category`` carries."""
    found: list[str] = []
    for concept in resource.get("category", []) or []:
        for coding in (concept.get("coding", []) or []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == DOCUMENT_CLASS_SYSTEM:
                code = coding.get("code")
                if isinstance(code, str) and code not in found:
                    found.append(code)
    return found


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The id in ``{"reference": "<type>/<id>"}`` (relative or absolute, without a version), else None."""
    text = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(text, str) or f"{resource_type}/" not in text:
        return None
    head, _, tail = text.rpartition(f"{resource_type}/")
    if head and not head.endswith("/"):
        return None
    value = tail.split("/_history", 1)[0]
    return value if value and "/" not in value else None


def patient_of(resource: dict[str, Any]) -> str | None:
    """The Patient a DocumentReference or List is about (``subject``), a Consent is of (``patient``)."""
    if resource.get("resourceType") == "Consent":
        return reference_id(resource.get("patient"), "Patient")
    return reference_id(resource.get("subject"), "Patient")


@dataclass(frozen=True)
class DspSettings:
    """The DSP's defaults (PLATFORM.md "DSP"), each a setting of ``config.Settings`` (README "Configuration")."""

    refusal_window_days: int = 30  # the person has this long to refuse before the DSP opens (0: opens at once)
    retention_years: int = 10  # a closed DSP is kept this long, then destroyed
    relationship_days: int = 120  # a therapeutic relationship lasts this long after its last declaration
    emergency_hours: int = 24  # an emergency (break-the-glass) access lasts this long
    assistants_may_appoint: bool = False  # a DSP assistant may appoint other assistants
    open_on_certification: bool = True  # a new certified identity gets its DSP opened by a store hook
    habilitation_file: str = ""  # the profession x document class matrix; empty: the packaged one
    establishment_reads: bool = False  # a system client without a professional reads DSP documents by its scopes

    @classmethod
    def from_settings(cls, settings: Settings) -> DspSettings:
        values = cls(
            refusal_window_days=settings.dsp_refusal_window_days,
            retention_years=settings.dsp_retention_years,
            relationship_days=settings.dsp_relationship_days,
            emergency_hours=settings.dsp_emergency_hours,
            assistants_may_appoint=settings.dsp_assistants_may_appoint,
            open_on_certification=settings.dsp_open_on_certification,
            habilitation_file=settings.dsp_habilitation_file,
            establishment_reads=settings.dsp_establishment_reads,
        )
        values.check()
        return values

    def check(self) -> None:
        """Refuse settings that make no sense (the message names the setting)."""
        for name, low in (
            ("refusal_window_days", 0),
            ("retention_years", 0),
            ("relationship_days", 1),
            ("emergency_hours", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"dsp_{name} must be an integer ≥ {low}, not {value!r}")


def unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
