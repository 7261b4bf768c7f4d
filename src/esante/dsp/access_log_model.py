"""The patient's DSP access log: its vocabulary and pure functions (no I/O).

Who accessed or filed which document of a DSP, when, and **in which capacity** is recorded in the audit trail
itself, on the interaction's REST AuditEvent (IHE BALP), when the access happens (``access_log_capture.py``):

- the requesting user agent gets a ``role`` coding of :data:`CAPACITY_SYSTEM` per capacity that let them in
  (``trusted-circle``, ``emergency``, ...), ``who.reference`` the Practitioner (or the assistant's Patient),
  ``name`` their name and, for a professional, ``altId`` their eHealthID;
- each DSP document entity (role 4, ``DocumentReference/x``) gets ``detail`` items ``dsp-action`` (read,
  retrieve, file, replace, update, hide, unhide, confidentiality), ``dsp-capacity`` (its capacities, space
  separated) and, for a replacement, ``dsp-replaces``; a search's query entity gets ``dsp-action`` search.

``agent.role`` is indexed (``agent-role``), so the log is a search of the patient's own AuditEvents:
``AuditEvent?patient=Patient/x&agent-role=<CAPACITY_SYSTEM>|<code>,…`` (``access_log.py``). This module turns a
REST interaction into its :class:`Target`, applies an :class:`Annotation` to an event, and reads annotated
events back into :class:`LogEntry` rows.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from esante.dsp.grants_model import Kind
from esante.fhir.values import parse_date_range
from esante.identifiers.ehealth_id import EHEALTH_ID_SYSTEM
from esante.security.audit import AuditRecord

CAPACITY_SYSTEM = "urn:esante:dsp:access-capacity"
ACTION_DETAIL = "dsp-action"
CAPACITY_DETAIL = "dsp-capacity"
REPLACES_DETAIL = "dsp-replaces"
DEFAULT_COUNT = 50
MAX_COUNT = 200


class Capacity(enum.StrEnum):
    """Why the platform let this person reach the document (the way in the access rule used)."""

    PATIENT = "patient"  # the holder themself
    ASSISTANT = "assistant"  # a DSP assistant acting for the holder
    AUTHOR = "author"  # a professional's own document
    TRUSTED_CIRCLE = "trusted-circle"
    REFERENT = "referent"  # médecin référent (MR03)
    RELATIONSHIP = "relationship"  # therapeutic relationship
    EMERGENCY = "emergency"  # break-the-glass
    ESTABLISHMENT = "establishment"  # establishment software acting as the establishment (no professional named)
    OTHER = "other"  # anyone else the policy let through (agency staff, an unknown professional)


DISPLAY = {
    Capacity.PATIENT: "the patient",
    Capacity.ASSISTANT: "DSP assistant",
    Capacity.AUTHOR: "author of the document",
    Capacity.TRUSTED_CIRCLE: "trusted circle",
    Capacity.REFERENT: "médecin référent (MR03)",
    Capacity.RELATIONSHIP: "therapeutic relationship",
    Capacity.EMERGENCY: "emergency access",
    Capacity.ESTABLISHMENT: "establishment",
    Capacity.OTHER: "other",
}
GRANT_CAPACITY = {
    Kind.TRUSTED_CIRCLE: Capacity.TRUSTED_CIRCLE,
    Kind.REFERENT: Capacity.REFERENT,
    Kind.RELATIONSHIP: Capacity.RELATIONSHIP,
    Kind.EMERGENCY: Capacity.EMERGENCY,
}
ORDER = tuple(Capacity)  # capacities are always listed in this order


class Action(enum.StrEnum):
    READ = "read"  # the document's metadata (read, vread, its history)
    RETRIEVE = "retrieve"  # the document itself (ITI-68, Binary)
    SEARCH = "search"  # a search of the patient's documents (ITI-67)
    FILE = "file"  # a new document (ITI-65, a create, a patient upload)
    REPLACE = "replace"  # a new document replacing another (relatesTo replaces)
    UPDATE = "update"  # a document corrected (update, patch)
    HIDE = "hide"
    UNHIDE = "unhide"
    CONFIDENTIALITY = "confidentiality"


WRITE = "write"  # a write, resolved per document into file, replace or update (needs the stored versions)
DOCUMENT = "DocumentReference"
_OPERATIONS = {"dsp-hide": Action.HIDE, "dsp-unhide": Action.UNHIDE, "dsp-confidentiality": Action.CONFIDENTIALITY}


def ordered(capacities: Iterable[Capacity]) -> tuple[Capacity, ...]:
    chosen = set(capacities)
    return tuple(c for c in ORDER if c in chosen)


# --- what an interaction did -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a REST interaction did to DSP documents: ``action`` (an :class:`Action` or :data:`WRITE`) and the
    document the request itself names (an instance read, history or operation), if any."""

    action: str
    document: str | None = None  # "DocumentReference/<id>"


def target_of(record: AuditRecord) -> Target | None:
    """The DSP document access of a successful interaction, or None when it touches no DSP document."""
    if record.status >= 400:
        return None
    parts = [p for p in record.path.split("/") if p]
    interaction = record.interaction
    if interaction == "operation":
        action = _OPERATIONS.get(parts[-1][1:]) if parts and parts[-1].startswith("$") else None
        if action is None or len(parts) != 3 or parts[0] != DOCUMENT:
            return None
        return Target(action, f"{DOCUMENT}/{parts[1]}")
    # the type the request is about: Patient/x/DocumentReference is a compartment search of documents
    res_type = parts[2] if len(parts) >= 3 and parts[0] == "Patient" and not parts[1].startswith("$") else None
    res_type = res_type or record.resource_type
    if interaction in ("read", "vread", "history-instance"):
        if res_type == "Binary":
            return Target(Action.RETRIEVE)  # the event names the Binary's DocumentReference
        if res_type == DOCUMENT and record.resource_id:
            return Target(Action.READ, f"{DOCUMENT}/{record.resource_id}")
        return None
    if interaction in ("search-type", "history-type"):
        return Target(Action.SEARCH) if res_type == DOCUMENT else None
    if interaction in ("create", "update", "patch"):
        return Target(WRITE) if res_type == DOCUMENT else None
    if interaction in ("transaction", "batch"):
        return Target(WRITE)
    return None


def event_patient(event: dict[str, Any]) -> str | None:
    """The patient id an AuditEvent is about (its Patient entity, role 1)."""
    for entity in event.get("entity", []) or []:
        role = entity.get("role") if isinstance(entity, dict) else None
        reference = (entity.get("what") or {}).get("reference") if isinstance(entity, dict) else None
        patient = isinstance(role, dict) and role.get("code") == "1"
        if patient and isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.split("/", 1)[1]
    return None


def event_documents(event: dict[str, Any]) -> list[str]:
    """The ``DocumentReference/<id>`` entities of an event, in order."""
    found: list[str] = []
    for entity in event.get("entity", []) or []:
        reference = (entity.get("what") or {}).get("reference") if isinstance(entity, dict) else None
        if isinstance(reference, str) and reference.startswith(f"{DOCUMENT}/") and reference not in found:
            found.append(reference)
    return found


# --- writing the facts into the event ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentFacts:
    action: Action
    capacities: tuple[Capacity, ...]
    replaces: str | None = None  # "DocumentReference/<id>" a replacement supersedes


@dataclass(frozen=True)
class Annotation:
    """What the capture found for one event (one patient)."""

    capacities: tuple[Capacity, ...]  # on the requesting agent: every capacity of the event
    documents: dict[str, DocumentFacts] = field(default_factory=dict)  # "DocumentReference/<id>" → facts
    query_action: Action | None = None  # a search: on the query entity
    who_reference: str | None = None  # "Practitioner/<id>" or the assistant's "Patient/<id>"
    who_name: str | None = None
    ehealth_id: str | None = None


def _capacity_role(capacity: Capacity) -> dict[str, Any]:
    return {"coding": [{"system": CAPACITY_SYSTEM, "code": capacity.value, "display": DISPLAY[capacity]}]}


def _document_details(facts: DocumentFacts) -> list[dict[str, str]]:
    details = [
        {"type": ACTION_DETAIL, "valueString": facts.action.value},
        {"type": CAPACITY_DETAIL, "valueString": " ".join(c.value for c in facts.capacities)},
    ]
    if facts.replaces:
        details.append({"type": REPLACES_DETAIL, "valueString": facts.replaces})
    return details


def _document_entity(reference: str, facts: DocumentFacts) -> dict[str, Any]:
    return {
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4"},
        "what": {"reference": reference},
        "detail": _document_details(facts),
    }


def annotate(event: dict[str, Any], annotation: Annotation) -> None:
    """Write ``annotation`` into ``event`` (copies what it changes: the events of a record share objects)."""
    agents = copy.deepcopy(event.get("agent", []) or [])
    for agent in agents:
        if not agent.get("requestor"):
            continue
        agent["role"] = [*(agent.get("role") or []), *(_capacity_role(c) for c in annotation.capacities)]
        who = dict(agent.get("who") or {})
        if annotation.who_reference and "reference" not in who:
            who["reference"] = annotation.who_reference
        agent["who"] = who
        if annotation.who_name:
            agent["name"] = annotation.who_name
        if annotation.ehealth_id:
            agent["altId"] = annotation.ehealth_id
        break
    event["agent"] = agents
    entities: list[dict[str, Any]] = []
    named: set[str] = set()
    for entity in event.get("entity", []) or []:
        entity = dict(entity)
        reference = (entity.get("what") or {}).get("reference")
        if reference in annotation.documents and reference not in named:
            entity["detail"] = [*(entity.get("detail") or []), *_document_details(annotation.documents[reference])]
            named.add(reference)
        elif annotation.query_action is not None and (entity.get("role") or {}).get("code") == "24":
            entity["detail"] = [*(entity.get("detail") or []), {"type": ACTION_DETAIL, "valueString": "search"}]
        entities.append(entity)
    missing = [_document_entity(ref, facts) for ref, facts in annotation.documents.items() if ref not in named]
    event["entity"] = missing + entities


# --- reading it back ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One row of the log: an access to one document (or a search of the documents)."""

    when: str
    action: str
    capacities: tuple[str, ...]
    who: dict[str, Any]  # a FHIR Reference: reference, identifier (eHealthID or client), display
    event: str  # the AuditEvent's id (the evidence)
    organization: str | None = None
    document: str | None = None  # "DocumentReference/<id>"
    replaces: str | None = None


def _details(entity: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for detail in entity.get("detail", []) or []:
        if isinstance(detail, dict) and isinstance(detail.get("type"), str):
            values[detail["type"]] = str(detail.get("valueString", ""))
    return values


def _who(event: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
    """The requesting agent as a Reference, its capacities and organisation."""
    agents = [a for a in event.get("agent", []) or [] if isinstance(a, dict)]
    user = next((a for a in agents if a.get("requestor")), {})
    capacities: list[str] = []
    for role in user.get("role", []) or []:
        codings = (role.get("coding") or []) if isinstance(role, dict) else []
        for coding in codings:
            code = coding.get("code") if isinstance(coding, dict) else None
            if isinstance(code, str) and coding.get("system") == CAPACITY_SYSTEM:
                capacities.append(code)
    who_in: dict[str, Any] = user.get("who") or {}
    who: dict[str, Any] = {}
    if isinstance(who_in.get("reference"), str):
        who["reference"] = who_in["reference"]
    if isinstance(user.get("altId"), str):
        who["identifier"] = {"system": EHEALTH_ID_SYSTEM, "value": user["altId"]}
    display = user.get("name") if isinstance(user.get("name"), str) else None
    organization = None
    if Capacity.ESTABLISHMENT.value in capacities:
        # the establishment's software: named by its OAuth client (the client agent)
        client = next((a for a in agents if not a.get("requestor") and (a.get("who") or {}).get("identifier")), None)
        if client is not None:
            value = client["who"]["identifier"].get("value")
            who["identifier"] = {"system": "urn:esante:oauth-client", "value": value}
            display = display or str(value)
    raw_display = who_in.get("display")
    if isinstance(raw_display, str) and raw_display.endswith(")") and " (" in raw_display:
        organization = raw_display.rsplit(" (", 1)[1][:-1]  # the audit trail writes "name (organisation)"
    if display:
        who["display"] = display
    return who, tuple(capacities), organization


def entries_of(event: dict[str, Any]) -> list[LogEntry]:
    """The log rows of an annotated AuditEvent: one per document it names, or one for a search."""
    event_id = str(event.get("id", ""))
    when = str(event.get("recorded", ""))
    who, capacities, organization = _who(event)
    rows: list[LogEntry] = []
    for entity in event.get("entity", []) or []:
        if not isinstance(entity, dict):
            continue
        details = _details(entity)
        action = details.get(ACTION_DETAIL)
        if not action:
            continue
        reference = (entity.get("what") or {}).get("reference")
        document = reference if isinstance(reference, str) and reference.startswith(f"{DOCUMENT}/") else None
        own = tuple(details.get(CAPACITY_DETAIL, "").split()) if document else capacities
        rows.append(
            LogEntry(
                when,
                action,
                own or capacities,
                who,
                event_id,
                organization,
                document,
                details.get(REPLACES_DETAIL) or None,
            )
        )
    return rows


# --- the operation's parameters ----------------------------------------------------------------------------------


class LogQueryError(ValueError):
    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class LogQuery:
    since: str | None = None  # FHIR date/dateTime/instant: entries recorded at or after it
    count: int = DEFAULT_COUNT  # accesses per page
    own: bool = False  # include the holder's own accesses
    cursor: tuple[str, int] | None = None  # (recorded instant, accesses at that instant already listed)


def parse_cursor(text: str) -> tuple[str, int]:
    instant, sep, skip = text.rpartition("~")
    if not sep or not skip.isdigit() or len(skip) > 9:
        raise ValueError("malformed")
    parse_date_range(instant)
    return instant, int(skip)


def format_cursor(instant: str, skip: int) -> str:
    return f"{instant}~{skip}"


def parse_query(pairs: Sequence[tuple[str, str]]) -> LogQuery:
    """``_since``, ``_count`` (1..200), ``own`` (true|false), ``_cursor`` (from a ``next`` link); anything else,
    a repeated or malformed one → :class:`LogQueryError` naming it."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in ("_format", "_pretty"):
            continue
        if name not in ("_since", "_count", "own", "_cursor"):
            raise LogQueryError(f"unknown parameter {name!r} (accepted: _since, _count, own, _cursor)", name)
        if name in seen:
            raise LogQueryError(f"parameter {name} is given more than once", name)
        seen[name] = value
    since = seen.get("_since")
    if since is not None:
        try:
            parse_date_range(since)
        except ValueError as exc:
            raise LogQueryError(f"_since is not a FHIR date, dateTime or instant: {exc}", "_since") from None
    count = DEFAULT_COUNT
    if "_count" in seen:
        text = seen["_count"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
            raise LogQueryError(f"_count must be a whole number from 1 to {MAX_COUNT}, not {text!r}", "_count")
        count = int(text)
    own = False
    if "own" in seen:
        if seen["own"] not in ("true", "false"):
            raise LogQueryError(f"own must be true or false, not {seen['own']!r}", "own")
        own = seen["own"] == "true"
    cursor = None
    if "_cursor" in seen:
        try:
            cursor = parse_cursor(seen["_cursor"])
        except ValueError:
            message = "_cursor is not a cursor this server gave (take the 'next' link as it is)"
            raise LogQueryError(message, "_cursor") from None
    return LogQuery(since, count, own, cursor)


def next_cursor(previous: tuple[str, int] | None, instants: Sequence[str]) -> tuple[str, int] | None:
    """The cursor after a page whose accesses were recorded at ``instants`` (newest first): the last instant and
    how many accesses at that instant have been listed so far. The page was read at or before the previous
    cursor's instant, skipping the accesses already listed there, and ties keep their order (the search sorts
    them by row): when the whole page sits at that instant, the count goes on from the previous one."""
    if not instants:
        return None
    last = instants[-1]
    listed = sum(1 for instant in instants if instant == last)
    if previous is not None and previous[0] == last:
        listed += previous[1]
    return last, listed
