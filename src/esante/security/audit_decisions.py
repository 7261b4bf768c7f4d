"""Authorization-decision AuditEvents (IHE BALP "AuthZ" pattern, Security Alert 110113). Pure: no I/O.

Every interaction's REST AuditEvent already records its outcome (a refusal is outcome 4, ``HTTP 403``). The policy
decisions that deserve an event of their own get one more, shaped like BALP's ``IHE.BasicAudit.AuthZconsent``
(``AuthZ-Role`` subtype when rules and roles decided, ``AuthZ-Consent`` when a consent did):

- every **denial** (outcome 8 with the reason in ``outcomeDesc``, as in BALP's ``ex-auditAuthZconsent-deny``);
- every **notable permit**: access granted through an exceptional right (acting for another patient as a DSP
  assistant now; emergency access and consents with the DSP) — outcome 0.

Routine permits (a patient reading their own record, a system client within its scopes) are recorded by the REST
event alone: the trail stays one event per access for the common case.
"""

from __future__ import annotations

from typing import Any

from esante.security.audit import (
    ACT_REASON,
    DCM,
    ENTITY_TYPE,
    OBJECT_ROLE,
    SOURCE_TYPE,
    AuditRecord,
    _coding,
    _request_id,
)
from esante.security.pdp.decision import Decision

AUTHZ_SUBTYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
SECURITY_ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
USER_AGENT_TYPES = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ESANTE_DECISION = "urn:esante:authorization-decision"
_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def recorded_decisions(decisions: list[Any]) -> list[Decision]:
    """The decisions of one request that get an event: denials and notable permits, each (type, letter) once."""
    chosen: dict[tuple[str, str, bool], Decision] = {}
    for decision in decisions:
        if not isinstance(decision, Decision):
            continue
        if not decision.allowed or decision.notable:
            chosen.setdefault((decision.resource_type, decision.letter, decision.allowed), decision)
    return list(chosen.values())


def decision_events(record: AuditRecord, decisions: list[Any]) -> list[dict[str, Any]]:
    """One AuthZ AuditEvent per recorded decision of the request described by ``record``."""
    return [_event(record, d) for d in recorded_decisions(decisions)]


def _event(record: AuditRecord, decision: Decision) -> dict[str, Any]:
    caller = record.caller
    consent = any("consent" in rule for rule in decision.rules)
    user: dict[str, Any] = {
        "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
        "requestor": True,
        "who": _who(caller.subject, caller.attributes),
    }
    if caller.purpose_of_use:
        user["purposeOfUse"] = [{"coding": [_coding(ACT_REASON, caller.purpose_of_use)]}]
    client_id = caller.attributes.get("client_id")
    client: dict[str, Any] = {
        "type": {"coding": [_coding(DCM, "110150", "Application")]},
        "who": {"identifier": {"value": client_id}}
        if isinstance(client_id, str) and client_id
        else {"display": "client"},
        "requestor": False,
    }
    if record.client_address:
        client["network"] = {"address": record.client_address, "type": "2"}
    agents = [client, user]
    organization = caller.attributes.get("subject_organization") or caller.attributes.get("subject_organization_id")
    if isinstance(organization, str) and organization:
        agents.append(
            {
                "type": {"coding": [_coding(ROLE_CLASS, "PROV", "healthcare provider")]},
                "who": {"display": organization},
                "requestor": False,
            }
        )
    agents.append(
        {
            "type": {"coding": [_coding(SECURITY_ROLE_TYPE, "authserver", "authorization server")]},
            "who": {"display": record.server},
            "requestor": False,
        }
    )
    verb = f"{_WORDS.get(decision.letter, decision.letter)} {decision.resource_type}"
    detail = [
        {"type": "request", "valueString": verb},
        {"type": "rules", "valueString": ", ".join(decision.rules) or "none"},
    ]
    entities: list[dict[str, Any]] = [
        {
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "24", "Query"),
            "what": {"display": verb},
            "detail": detail,
        }
    ]
    person = caller.attributes.get("person_id")
    patients = list(record.patients) or ([f"Patient/{person}"] if isinstance(person, str) and person else [])
    for patient in patients[:1]:
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
                "what": {"reference": patient},
            }
        )
    jti = caller.attributes.get("jti")
    if isinstance(jti, str) and jti:
        entities.append(
            {
                "type": _coding(USER_AGENT_TYPES, "UserOauthAgent", "User OAuth Agent participant"),
                "what": {"identifier": {"value": jti}},
            }
        )
    if record.request_id:
        entities.append(_request_id(record.request_id))
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {"profile": ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.AuthZconsent"]}
        if consent
        else {},
        "type": _coding(DCM, "110113", "Security Alert"),
        "subtype": [_coding(AUTHZ_SUBTYPE, "AuthZ-Consent" if consent else "AuthZ-Role")],
        "action": "E",
        "recorded": record.recorded,
        "outcome": "0" if decision.allowed else "8",
        "agent": agents,
        "source": {
            "site": record.server,
            "observer": {"display": record.server},
            "type": [_coding(SOURCE_TYPE, "6", "Security Server")],
        },
        "entity": entities,
    }
    if not event["meta"]:
        del event["meta"]
    if not decision.allowed:
        event["outcomeDesc"] = f"denied: {decision.reason}"
    return event


def _who(subject: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
    fhir_user = attributes.get("fhir_user")
    if isinstance(fhir_user, str) and fhir_user:
        return {"reference": fhir_user}
    if subject:
        return {"identifier": {"system": "urn:esante:caller", "value": subject}}
    return {"display": "anonymous"}
