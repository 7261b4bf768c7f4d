"""IHE Basic Audit Log Patterns (BALP 1.1) AuditEvents for the FHIR REST interactions — pure functions.

:func:`build_events` turns one :class:`AuditRecord` (what was attempted, by whom, with which outcome and which
resources it touched) into FHIR R4 AuditEvent dicts of the matching BALP shape:

=============================  ============  ======  ======================================  =================
interaction                    subtype       action  agents (client, server, user)           entities
=============================  ============  ======  ======================================  =================
create (PUT creating too)      create        C       110153 Source, 110152 Destination, AUT  resource (role 4)
read / vread                   read, vread   R       110152 Destination, 110153 Source, IRCP resource (role 4)
update / patch                 update, patch U       110153 Source, 110152 Destination, AUT  resource (role 4)
delete                         delete        D       110150 Application, custodian, AUT      resource (role 4)
search, history, operation,    search-*, …   E       110152 Destination, 110153 Source, IRCP query (role 24)
capabilities
transaction / batch            transaction,  E       110153 Source, 110152 Destination, AUT  resources written
                               batch                                                         (role 4)
=============================  ============  ======  ======================================  =================

When the touched resources belong to a Patient compartment the Patient* variant is produced (an entity of type 1
Person, role 1 Patient, naming the patient), one AuditEvent per patient: a search that returned the data of three
patients yields three events. Every event carries the request id as a BALP ``XrequestId`` entity. Outcome codes:
0 success, 4 minor failure (4xx: refused, not found, invalid), 8 serious failure (5xx).

Nothing here does I/O; :mod:`esante.security.audit_trail` stores the events.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from esante.fhir.compartment_paths import compartment_patients
from esante.fhir.definitions import Registry
from esante.fhir.indexing import extract_params
from esante.security.policy import Caller

DCM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACCOUNT_KIND = "urn:esante:account-kind"
CALLER_SUBJECT = "urn:esante:caller"
PROFILE_BASE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."

_ACTION = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
}
_BUNDLES = ("transaction", "batch")
_PROFILE = {"C": "Create", "R": "Read", "U": "Update", "D": "Delete", "E": "Query"}
_DISPLAY = {
    "110150": "Application",
    "110152": "Destination Role ID",
    "110153": "Source Role ID",
    "custodian": "Custodian",
    "AUT": "author (originator)",
    "IRCP": "information recipient",
}


@dataclass(frozen=True)
class Touched:
    """A resource an interaction read or wrote: its reference and the patients whose compartment holds it."""

    reference: str  # Type/id
    patients: tuple[str, ...] = ()  # Patient/id references


@dataclass(frozen=True)
class AuditRecord:
    """One REST interaction as the auditor saw it (no resource content: only references)."""

    interaction: str  # create read vread update patch delete search-type search-system history-* operation ...
    status: int  # the HTTP status returned (or refused with)
    caller: Caller
    request_id: str
    recorded: str  # FHIR instant
    server: str  # the server's base URL (the observer)
    method: str = "GET"
    path: str = ""  # below the FHIR base
    query_string: str = ""  # the query (and, for POST _search, the form body) as sent
    client_address: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    touched: tuple[Touched, ...] = ()
    patients: tuple[str, ...] = ()  # patients known from the request itself (Patient/x, compartment searches)
    entities: tuple[dict[str, Any], ...] = ()  # BALP entities an operation adds (Outcome.audit_entities)
    extra: dict[str, Any] = field(default_factory=dict)


def outcome_code(status: int) -> str:
    """BALP / AuditEvent.outcome: 0 success, 4 minor failure (4xx), 8 serious failure (5xx)."""
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    return "8"


def action_code(interaction: str) -> str:
    return _ACTION.get(interaction, "E")


def patients_of(registry: Registry, resource: dict[str, Any]) -> tuple[str, ...]:
    """The ``Patient/id`` references whose compartment holds ``resource`` (a Patient is its own patient)."""
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str):
        return ()
    if res_type == "Patient":
        res_id = resource.get("id")
        return (f"Patient/{res_id}",) if isinstance(res_id, str) else ()
    fast = compartment_patients(resource, registry)
    if fast is not None:
        return fast
    params = frozenset(registry.patient_compartment(res_type))
    if not params:
        return ()
    found: dict[str, None] = {}
    for row in extract_params(resource, params, registry).reference:
        param, _grp, target_type, target_id = row[0], row[1], row[2], row[3]
        if param in params and target_type == "Patient" and target_id:
            found[f"Patient/{target_id}"] = None
    return tuple(found)


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _agent_type(code: str) -> dict[str, Any]:
    system = DCM if code.isdigit() else PROVENANCE_PARTICIPANT if code == "custodian" else PARTICIPATION
    return {"coding": [_coding(system, code, _DISPLAY.get(code))]}


def _user_agent(caller: Caller, role_code: str) -> dict[str, Any]:
    """The requesting user from the Caller (account kind, subject, IUA-like attributes; never a token)."""
    who: dict[str, Any] = {}
    subject = caller.subject
    if subject and "/" in subject and subject.split("/", 1)[0][:1].isupper():
        who["reference"] = subject
    elif subject:
        who["identifier"] = {"system": CALLER_SUBJECT, "value": subject}
    person = caller.attributes.get("person_id") or caller.attributes.get("national_provider_identifier")
    if isinstance(person, str) and person and "identifier" not in who:
        who["identifier"] = {"value": person}
    name = caller.attributes.get("name") or caller.attributes.get("subject_name")
    if isinstance(name, str) and name:
        who["display"] = name
    if not who:
        who["display"] = caller.kind
    roles = [{"coding": [_coding(ACCOUNT_KIND, caller.kind)]}]
    subject_role = caller.attributes.get("subject_role")  # IUA: a code, or {"system": ..., "code": ...}
    if isinstance(subject_role, dict) and isinstance(subject_role.get("code"), str):
        roles.append({"coding": [{k: str(v) for k, v in subject_role.items() if k in ("system", "code", "display")}]})
    elif isinstance(subject_role, str) and subject_role:
        roles.append({"coding": [{"code": subject_role}]})
    agent: dict[str, Any] = {"type": _agent_type(role_code), "role": roles, "who": who, "requestor": True}
    org = caller.attributes.get("organization") or caller.attributes.get("subject_organization_id")
    if isinstance(org, str) and org:
        who["display"] = f"{who['display']} ({org})" if "display" in who else org
    token_id = caller.attributes.get("token_id") or caller.attributes.get("jti")
    if isinstance(token_id, str) and token_id:  # the token's id, never the token itself
        agent["policy"] = [token_id]
    if caller.purpose_of_use:
        agent["purposeOfUse"] = [{"coding": [_coding(ACT_REASON, caller.purpose_of_use)]}]
    return agent


def _agents(record: AuditRecord, action: str) -> list[dict[str, Any]]:
    client: dict[str, Any] = {"requestor": False, "who": {"display": record.client_address or "unknown client"}}
    client_id = record.caller.attributes.get("client_id")  # the OAuth client (application), when known
    if isinstance(client_id, str) and client_id:
        client["who"] = {"identifier": {"value": client_id}}
    if record.client_address:
        client["network"] = {"address": record.client_address, "type": "2"}
    server: dict[str, Any] = {
        "requestor": False,
        "who": {"display": record.server},
        "network": {"address": record.server, "type": "5"},
    }
    if action in ("C", "U") or record.interaction in ("transaction", "batch"):
        client_code, server_code, user_code = "110153", "110152", "AUT"
    elif action == "D":
        client_code, server_code, user_code = "110150", "custodian", "AUT"
    else:
        client_code, server_code, user_code = "110152", "110153", "IRCP"
    client["type"] = _agent_type(client_code)
    server["type"] = _agent_type(server_code)
    agents = [client, server]
    if record.caller.kind != "anonymous" or record.caller.subject:
        agents.append(_user_agent(record.caller, user_code))
    else:  # an anonymous request still names its requestor, as such
        agents.append(
            {
                "type": _agent_type(user_code),
                "role": [{"coding": [_coding(ACCOUNT_KIND, "anonymous")]}],
                "who": {"display": "anonymous"},
                "requestor": True,
            }
        )
    return agents


def _object(reference: str) -> dict[str, Any]:
    return {
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
        "what": {"reference": reference},
    }


def _patient(reference: str) -> dict[str, Any]:
    return {
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _coding(OBJECT_ROLE, "1", "Patient"),
        "what": {"reference": reference},
    }


def _query(record: AuditRecord) -> dict[str, Any]:
    """BALP Query entity: the request as sent, base64 (the query string may hold identifiers: no description)."""
    target = f"{record.server}/{record.path}".rstrip("/")
    text = f"{record.method} {target}" + (f"?{record.query_string}" if record.query_string else "")
    return {
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "24", "Query"),
        "query": base64.b64encode(text.encode("utf-8")).decode("ascii"),
    }


def _request_id(value: str) -> dict[str, Any]:
    return {"type": _coding(BALP_ENTITY_TYPE, "XrequestId"), "what": {"identifier": {"value": value}}}


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_events(record: AuditRecord) -> list[dict[str, Any]]:
    """The AuditEvents of one interaction: one per patient touched, or one without a patient.

    A query (search, history, operation) names the query and, in each event, one patient. A write or read names
    the resources it touched; with several patients (a transaction Bundle) each patient's event names only
    that patient's resources, and the resources of no patient share one event without a patient.
    """
    action = action_code(record.interaction)
    is_query = action == "E" and record.interaction not in _BUNDLES
    base: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _coding(EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(RESTFUL, record.interaction, record.interaction)],
        "action": action,
        "recorded": record.recorded,
        "outcome": outcome_code(record.status),
        "agent": _agents(record, action),
        "source": {
            "site": record.server,
            "observer": {"display": record.server},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if record.status >= 400:
        base["outcomeDesc"] = f"HTTP {record.status}"
    request = [_request_id(record.request_id)] if record.request_id else []
    # patient (or None) → the entities naming what was touched
    groups: dict[str | None, list[dict[str, Any]]] = {}
    named: list[str | None] = [*record.patients] or [None]  # the patient the request itself names, if any
    if is_query:
        query = [_query(record)]
        touched_patients = [p for t in record.touched for p in t.patients]
        found: list[str | None] = [*_unique([*record.patients, *touched_patients])]
        for patient in found or [None]:
            groups[patient] = query
    elif record.touched:
        for touched in record.touched:
            owners: list[str | None] = [*touched.patients] or named[:1]
            for owner in owners:
                bucket = groups.setdefault(owner, [])
                if all(e["what"] != {"reference": touched.reference} for e in bucket):
                    bucket.append(_object(touched.reference))
    else:
        objects: list[dict[str, Any]] = []
        if record.resource_type:
            ref = record.resource_type + (f"/{record.resource_id}" if record.resource_id else "")
            objects.append(_object(ref))
        for owner in named:
            groups[owner] = objects
    events: list[dict[str, Any]] = []
    for patient, entities in groups.items():
        event = dict(base)
        if record.interaction not in _BUNDLES:
            event["meta"] = {"profile": [PROFILE_BASE + ("Patient" if patient else "") + _PROFILE[action]]}
        event["entity"] = [*entities, *record.entities, *([_patient(patient)] if patient else []), *request]
        events.append(event)
    return events


def patient_from_path(parts: Sequence[str]) -> tuple[str, ...]:
    """A patient named by the request itself: ``Patient/x[/...]`` (read, history, compartment search)."""
    if len(parts) >= 2 and parts[0] == "Patient" and not parts[1].startswith(("_", "$")):
        return (f"Patient/{parts[1]}",)
    return ()


def interaction_of(method: str, parts: Sequence[str], status: int, body_type: str | None = None) -> str:
    """The restful-interaction code of a request (mirrors FhirRouter.dispatch), refined by the status."""
    n = len(parts)
    if method == "HEAD":
        method = "GET"
    if parts and parts[-1].startswith("$"):
        return "operation"
    if method == "GET" or (method == "POST" and n and parts[-1] == "_search"):
        if list(parts) == ["metadata"]:
            return "capabilities"
        if n == 0 or list(parts) == ["_search"]:
            return "search-system"
        if list(parts) == ["_history"]:
            return "history-system"
        if n == 1 or (n == 2 and parts[1] == "_search"):
            return "search-type"
        if n == 2 and parts[1] == "_history":
            return "history-type"
        if n == 2:
            return "read"
        if n == 3 and parts[2] == "_history":
            return "history-instance"
        if n == 4 and parts[2] == "_history":
            return "vread"
        return "search-type"  # Patient/x/Type compartment search
    if method == "POST":
        if n == 0:
            return "transaction" if body_type == "transaction" else "batch"
        return "create"
    if method == "PUT":
        return "create" if status == 201 else "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete"
    return "operation"
