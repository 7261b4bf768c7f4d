"""Stored resources → the small records the report counts. Pure: JSON dicts in, frozen dataclasses out.

Each function reads only what the report needs (levels, domains, activity codes, times, counts): no name, birth
date or identifier value leaves this module, so the report holds aggregates only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from esante.fhir.values import parse_date_range
from esante.mpi.model import LEVEL_SYSTEM, LOCAL_DOMAIN_PREFIX, MATRICULE_SYSTEM, IdentityLevel
from esante.mpi.provenance import ACCOUNT_SYSTEM, ACTIVITY_SYSTEM, ENGINE_SYSTEM, Activity
from esante.mpi.review import REASON_SYSTEM, REVIEW_CODE, TASK_SYSTEM

DCM = "http://dicom.nema.org/resources/ontology/DCM"
IMPORT_TYPE = "110107"  # DICOM Import: one AuditEvent per certified import (mpi/certified_import.py)
IMPORT_SUBTYPE = ("urn:esante:mpi-operation", "certified-import")
RESTFUL = "http://hl7.org/fhir/restful-interaction"
WRITE_INTERACTIONS = ("create", "update", "patch", "delete")
CLOSED_STATUSES = ("completed", "rejected", "cancelled")
NO_DOMAIN = "(none)"
UNKNOWN_REASON = "(unknown)"


def instant_micros(value: Any) -> int | None:
    """A FHIR instant/dateTime → microseconds since the epoch (UTC, start of its precision); None if malformed."""
    try:
        return parse_date_range(value)[0] if isinstance(value, str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Identity:
    level: str | None  # IdentityLevel value, None for a Patient the MPI never tagged
    domain: str  # the identifier domain's system, NO_DOMAIN when none
    active: bool  # False: merged into a survivor (or otherwise retired)


def identity_of(patient: dict[str, Any], registered: Collection[str]) -> Identity:
    """The level and domain of one Patient version.

    Certified identities belong to the national register's domain (the matricule); a local identity to the
    registered establishment domain among its identifier systems (else the first local-looking OID).
    """
    level = None
    for tag in (patient.get("meta") or {}).get("tag") or []:
        if isinstance(tag, dict) and tag.get("system") == LEVEL_SYSTEM:
            level = str(tag.get("code"))
            break
    systems = [
        str(i["system"])
        for i in patient.get("identifier") or []
        if isinstance(i, dict) and isinstance(i.get("system"), str)
    ]
    if level == IdentityLevel.CERTIFIED.value:
        domain = MATRICULE_SYSTEM
    else:
        domain = next(
            (s for s in systems if s in registered),
            next((s for s in systems if s.startswith(LOCAL_DOMAIN_PREFIX)), NO_DOMAIN),
        )
    return Identity(level, domain, patient.get("active") is not False)


@dataclass(frozen=True)
class Decision:
    activity: str  # an Activity value
    recorded: int  # microseconds
    agent_kind: str  # engine | agent | other
    agent: str | None  # the agent's account id (agents only)


def decision_of(provenance: dict[str, Any]) -> Decision | None:
    """An MPI identity decision (activity system ``urn:esante:mpi-activity``), or None for any other Provenance."""
    codings = (provenance.get("activity") or {}).get("coding") or []
    activity = next(
        (c.get("code") for c in codings if isinstance(c, dict) and c.get("system") == ACTIVITY_SYSTEM), None
    )
    recorded = instant_micros(provenance.get("recorded"))
    if activity not in {a.value for a in Activity} or recorded is None:
        return None
    kind, who = "other", None
    for agent in provenance.get("agent") or []:
        identifier = ((agent or {}).get("who") or {}).get("identifier") or {}
        if identifier.get("system") == ENGINE_SYSTEM:
            kind = "engine"
            break
        if identifier.get("system") == ACCOUNT_SYSTEM:
            kind, who = "agent", str(identifier.get("value"))
            break
    return Decision(str(activity), recorded, kind, who)


@dataclass(frozen=True)
class Review:
    reason: str  # uncertain-link | collision | suspected-duplicate (UNKNOWN_REASON if missing)
    opened: int  # microseconds (authoredOn)
    closed: int | None  # microseconds, None while open
    outcome: str | None  # completed | rejected | cancelled when closed


def is_review(task: dict[str, Any]) -> bool:
    codings = (task.get("code") or {}).get("coding") or []
    return any(isinstance(c, dict) and c.get("system") == TASK_SYSTEM and c.get("code") == REVIEW_CODE for c in codings)


def review_of(versions: Sequence[tuple[int, dict[str, Any] | None]]) -> Review | None:
    """A review Task from its versions in order (last_updated microseconds, content or None when deleted).

    Closed when its status became completed/rejected/cancelled: at ``executionPeriod.end`` if the closing version
    has one, else at that version's time; a later reopening (status back to an open one) clears it. A Task
    now ``entered-in-error`` was never a review: None.
    """
    live = [(stamp, content) for stamp, content in versions if content is not None]
    if not live or not is_review(live[-1][1]) or live[-1][1].get("status") == "entered-in-error":
        return None
    first_stamp, first = live[0]
    latest = live[-1][1]
    opened = instant_micros(latest.get("authoredOn")) or instant_micros(first.get("authoredOn")) or first_stamp
    codings = (latest.get("reasonCode") or {}).get("coding") or []
    reason = next(
        (str(c["code"]) for c in codings if isinstance(c, dict) and c.get("system") == REASON_SYSTEM and c.get("code")),
        UNKNOWN_REASON,
    )
    closed: int | None = None
    outcome: str | None = None
    for stamp, content in live:
        status = content.get("status")
        if status in CLOSED_STATUSES:
            if closed is None:
                end = instant_micros((content.get("executionPeriod") or {}).get("end"))
                closed, outcome = (end if end is not None else stamp), str(status)
        else:
            closed = outcome = None
    return Review(reason, opened, closed, outcome)


@dataclass(frozen=True)
class ImportRun:
    recorded: int
    read: int
    rejected: int


def import_of(event: dict[str, Any]) -> ImportRun | None:
    """A certified import's AuditEvent (DICOM 110107, subtype certified-import) → its counts."""
    kind = event.get("type") or {}
    if kind.get("system") != DCM or kind.get("code") != IMPORT_TYPE:
        return None
    if not any((s.get("system"), s.get("code")) == IMPORT_SUBTYPE for s in event.get("subtype") or []):
        return None
    recorded = instant_micros(event.get("recorded"))
    if recorded is None:
        return None
    counts: dict[str, int] = {}
    for entity in event.get("entity") or []:
        for detail in entity.get("detail") or []:
            value = str(detail.get("valueString", ""))
            if value.isdigit():
                counts[str(detail.get("type"))] = int(value)
    return ImportRun(recorded, counts.get("read", 0), counts.get("rejected", 0))


def refused_identity_write(event: dict[str, Any]) -> int | None:
    """When this REST AuditEvent is a Patient write refused with 400 (the feed's bad input): its time, else None."""
    if event.get("outcome") != "4" or event.get("outcomeDesc") != "HTTP 400":
        return None
    if not any(s.get("system") == RESTFUL and s.get("code") in WRITE_INTERACTIONS for s in event.get("subtype") or []):
        return None
    references = [str(((e or {}).get("what") or {}).get("reference", "")) for e in event.get("entity") or []]
    if not any(r == "Patient" or r.startswith("Patient/") for r in references):
        return None
    return instant_micros(event.get("recorded"))
