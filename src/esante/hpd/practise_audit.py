"""The AuditEvent of a change of a right to practise (pure: ``hpd/practise.py`` appends it to the hash-chained trail
in the change's own transaction, so the change and its record commit or roll back together).

Shape: DICOM 110113 *Security Alert* with subtype DICOM 110137 *User Security Attributes Changed* (a person's
rights changed) and the operation (``urn:esante:hpd-practise`` suspend | withdraw | restore); action U; agents the
decider (an HPD administrator's account, or the operator running the register import) and the platform; entities
the Practitioner (what changed, with old and new status, effective date, reason and source as details) and the
professional's eHealthID. The request's REST AuditEvent (an operation) is written by the router beside it.
"""

from __future__ import annotations

from typing import Any

from esante.fhir.model import micros_to_instant
from esante.hpd.model import EHEALTH_ID_SYSTEM, Status
from esante.hpd.practise_model import PractiseChange

DCM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PRACTISE_EVENT_SYSTEM = "urn:esante:hpd-practise"
AGENT_SYSTEM = "urn:esante:agent"


def operation_code(previous: Status, status: Status) -> str:
    """suspend | withdraw | restore (what the change did)."""
    if status is Status.ACTIVE:
        return "restore"
    return "suspend" if status is Status.SUSPENDED else "withdraw"


def practise_event(
    change: PractiseChange,
    *,
    server: str,
    request_id: str | None = None,
    client_address: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent of ``change`` (``server``: the platform's base URL or the job's name, the observer)."""
    operation = operation_code(change.previous, change.status)
    agent = change.agent
    who: dict[str, Any] = {"identifier": {"system": f"{AGENT_SYSTEM}:{agent.kind}", "value": agent.id}}
    if agent.display:
        who["display"] = agent.display
    decider: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPATION, "code": "AUT", "display": "author (originator)"}]},
        "role": [{"coding": [{"system": "urn:esante:account-kind", "code": agent.kind}]}],
        "who": who,
        "requestor": True,
    }
    if client_address:
        decider["network"] = {"address": client_address, "type": "2"}
    details = [
        {"type": "old-status", "valueString": change.previous.value},
        {"type": "new-status", "valueString": change.status.value},
        {"type": "effective", "valueString": change.effective},
        {"type": "reason", "valueString": change.reason},
        {"type": "source", "valueString": change.source.value},
    ]
    if change.roles:
        details.append({"type": "roles", "valueString": " ".join(f"PractitionerRole/{r}" for r in change.roles)})
    if change.accounts:
        details.append({"type": "accounts", "valueString": " ".join(change.accounts)})
    if change.refresh_tokens_revoked:
        details.append({"type": "refresh-tokens-revoked", "valueString": str(change.refresh_tokens_revoked)})
    professional: dict[str, Any] = {
        "what": {"reference": f"Practitioner/{change.practitioner_id}"},
        "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        "name": f"right to practise: {change.previous.value} -> {change.status.value}",
        "detail": details,
    }
    if change.ehealth_id:
        professional["what"]["identifier"] = {"system": EHEALTH_ID_SYSTEM, "value": change.ehealth_id}
    entities = [professional]
    if request_id:
        entities.append(
            {
                "what": {"identifier": {"value": request_id}},
                "type": {
                    "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                    "code": "XrequestId",
                },
            }
        )
    return {
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": "110113", "display": "Security Alert"},
        "subtype": [
            {"system": DCM, "code": "110137", "display": "User Security Attributes Changed"},
            {"system": PRACTISE_EVENT_SYSTEM, "code": operation},
        ],
        "action": "U",
        "recorded": micros_to_instant(change.recorded_at),
        "outcome": "0",
        "outcomeDesc": f"right to practise {change.status.value} ({change.source.value})",
        "agent": [
            decider,
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"display": server},
                "requestor": False,
            },
        ],
        "source": {"site": server, "observer": {"display": server}},
        "entity": entities,
    }
