"""The AuditEvents of the DSP's own changes (pure: the use cases append them to the hash-chained trail in the change's
own transaction, so a change and its record commit or roll back together).

Shape: DICOM 110110 *Patient Record* (the patient's shared record changed) with a subtype naming what changed
(``urn:esante:dsp-event`` open | activate | refuse | close | reopen | destroy | grant | revoke | relationship |
emergency | hide | unhide | confidentiality | open-all | destroy-due); action C/U/D/E; agents the person who did it
(the patient, an assistant acting for them, a professional, the operator) and the platform; entities the patient
and what changed (the Consent, the DocumentReference), with details that never carry health data (the emergency
reason stays in its Consent, readable by the patient, not in the trail).

The router writes the REST AuditEvent of the request beside it; access decisions get their AuthZ events from the
policy seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esante.fhir.model import micros_to_instant

DCM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
EVENT_SYSTEM = "urn:esante:dsp-event"
AGENT_SYSTEM = "urn:esante:agent"
_ACTIONS = {"open": "C", "destroy": "D", "open-all": "E", "destroy-due": "E"}


@dataclass(frozen=True)
class Actor:
    """Who made a change: ``kind`` patient | assistant | professional | operator | system, ``reference`` a FHIR
    reference when there is one (``Patient/x``, ``Practitioner/y``), ``account`` the account or client id."""

    kind: str
    reference: str | None = None
    account: str | None = None
    display: str | None = None
    client_address: str | None = None
    request_id: str | None = None


SYSTEM_ACTOR = Actor("system", display="eSanté DSP")


def dsp_event(
    event: str,
    *,
    actor: Actor,
    recorded: int,
    server: str,
    patient_id: str | None = None,
    what: str | None = None,
    details: dict[str, str] | None = None,
    outcome_text: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent of one DSP change (``recorded``: epoch microseconds; ``what``: the changed resource)."""
    who: dict[str, Any] = {}
    if actor.reference:
        who["reference"] = actor.reference
    if actor.account:
        who["identifier"] = {"system": f"{AGENT_SYSTEM}:{actor.kind}", "value": actor.account}
    if actor.display:
        who["display"] = actor.display
    if not who:
        who["display"] = actor.kind
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPATION, "code": "AUT", "display": "author (originator)"}]},
        "role": [{"coding": [{"system": "urn:esante:account-kind", "code": actor.kind}]}],
        "who": who,
        "requestor": True,
    }
    if actor.client_address:
        agent["network"] = {"address": actor.client_address, "type": "2"}
    entities: list[dict[str, Any]] = []
    if patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{patient_id}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if what or details:
        entity: dict[str, Any] = {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            "name": f"dsp {event}",
        }
        if what:
            entity["what"] = {"reference": what}
        if details:
            entity["detail"] = [{"type": key, "valueString": value} for key, value in details.items()]
        entities.append(entity)
    if actor.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": actor.request_id}},
                "type": {
                    "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                    "code": "XrequestId",
                },
            }
        )
    body: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": EVENT_SYSTEM, "code": event}],
        "action": _ACTIONS.get(event, "U"),
        "recorded": micros_to_instant(recorded),
        "outcome": "0",
        "outcomeDesc": outcome_text or f"dsp {event}",
        "agent": [
            agent,
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"display": server},
                "requestor": False,
            },
        ],
        "source": {"site": server, "observer": {"display": server}},
    }
    if entities:
        body["entity"] = entities
    return body
