"""The patient gives or withdraws the DSP consent of their vaccination record, and sees where it stands:

    POST Patient/{id}/$cve-dsp-consent   holder, assistants   value (boolean): true gives the consent, false
                                                              withdraws it → the status below (201 when a consent
                                                              was created, else 200)
    GET  Patient/{id}/$cve-dsp-status    holder, assistants   → the status (Parameters)

The status: ``consent`` (boolean: in force), ``consentRef`` (the Consent in force, or the last one), ``state`` (the
queue's: ``pending`` — a filing is to come, ``waiting`` — the DSP is not open, ``filed``, ``not-filed``,
``stopped``, or ``none`` — nothing asked yet), ``reason`` (``dsp-closed``, ``dsp-not-open``, ``consent-withdrawn``…),
``document`` (the last document filed, which stays in the DSP after a withdrawal), ``filed`` (when).

The Consent (``dsp_consent.py``) is written by these operations only (the CVE's access rule vetoes API writes of
CVE Consents); ``Consent/{id}/$cve-revoke`` withdraws it too. Both are written as the caller in the operation's
transaction, where the store hook queues the patient's document (``dsp_consent_sync.py``). Refusals are 4xx
OperationOutcomes; nothing is written.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.cve import dsp_consent_queue as queue
from esante.cve.consent import CONSENT_SYSTEM
from esante.cve.context import CveContext
from esante.cve.dsp_consent import DSP_SHARING, build_dsp_consent, withdrawn
from esante.cve.dsp_consent_sync import consent_in_force
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, bad_request, not_found
from esante.fhir.model import micros_to_instant
from esante.fhir.operations import OperationCall, OperationDefinition

__all__ = ["dsp_consent_operations"]

PATIENT_KINDS = frozenset({"patient", "assistant"})
_LAST_CONSENT = (
    "SELECT r.res_id FROM idx_reference p"
    " JOIN idx_token c ON c.rid = p.rid AND c.res_type = 'Consent' AND c.param = 'category' AND c.system = ?"
    " AND c.code = ?"
    " JOIN resource r ON r.rid = p.rid AND r.is_current AND NOT r.deleted"
    " WHERE p.res_type = 'Consent' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?"
    " ORDER BY r.last_updated DESC"
)


def _holder(call: OperationCall) -> str:
    """The performer reference of the patient or assistant acting for the instance's patient; 403 otherwise."""
    caller = call.ctx.caller
    person = caller.attributes.get("person_id")
    if caller.kind not in PATIENT_KINDS or not person or person != call.resource_id:
        raise FhirError(
            403, [Issue("forbidden", f"${call.name} is for the holder of the vaccination record and their assistants")]
        )
    fhir_user = caller.attributes.get("fhir_user")
    if caller.kind == "assistant" and isinstance(fhir_user, str) and fhir_user.startswith("Patient/"):
        return fhir_user
    return f"Patient/{person}"


def _value(call: OperationCall) -> bool:
    parameters = call.parameters
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request("the body must be a Parameters resource with 'value' (boolean)", expression="Parameters")
    found: list[Any] = []
    for parameter in parameters.get("parameter", []) or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name != "value":
            raise bad_request(f"unknown parameter {name!r}: only 'value' (boolean) is read", expression=str(name))
        found.append(parameter)
    if len(found) != 1:
        raise bad_request("exactly one parameter 'value' (boolean) is required", expression="value")
    value = found[0].get("valueBoolean")
    if not isinstance(value, bool):
        raise bad_request("parameter value must be a valueBoolean (true: consent, false: withdraw)", expression="value")
    return value


async def _status(call: OperationCall, status: int = 200) -> Outcome:
    assert call.resource_id is not None
    conn = call.session.conn
    await call.session.flush()
    in_force = await consent_in_force(conn, call.resource_id)
    last = in_force
    if last is None:
        row = await conn.fetchrow(_LAST_CONSENT, (CONSENT_SYSTEM, DSP_SHARING, call.resource_id))
        last = str(row[0]) if row is not None else None
    state = await queue.state(conn, call.resource_id)
    parameters: list[dict[str, Any]] = [{"name": "consent", "valueBoolean": in_force is not None}]
    if last is not None:
        parameters.append({"name": "consentRef", "valueReference": {"reference": f"Consent/{last}"}})
    parameters.append({"name": "state", "valueCode": state.status if state is not None else "none"})
    if state is not None and state.reason:
        parameters.append({"name": "reason", "valueString": state.reason})
    if state is not None and state.document_id:
        document = {"reference": f"DocumentReference/{state.document_id}"}
        parameters.append({"name": "document", "valueReference": document})
    if state is not None and state.filed_at:
        parameters.append({"name": "filed", "valueInstant": micros_to_instant(state.filed_at * 1_000_000)})
    return Outcome(status, {"resourceType": "Parameters", "parameter": parameters})


def dsp_consent_operations(context: CveContext) -> list[OperationDefinition]:
    async def give_or_withdraw(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        performer = _holder(call)
        value = _value(call)
        patient = await call.session.read("Patient", call.resource_id)
        if patient is None or patient.deleted:
            raise not_found(f"Patient/{call.resource_id} is not known")
        await call.session.flush()
        current = await consent_in_force(call.session.conn, call.resource_id)
        if value:
            if current is not None:
                return await _status(call)
            await call.session.create(build_dsp_consent(call.resource_id, performer, context.now()), client_id=False)
            return await _status(call, 201)
        while current is not None:  # every consent in force (one, unless given twice concurrently)
            stored = await call.session.read("Consent", current)
            assert stored is not None and stored.content is not None
            await call.session.update(withdrawn(orjson.loads(stored.content), context.now()), stored)
            await call.session.flush()
            current = await consent_in_force(call.session.conn, call.resource_id)
        return await _status(call)

    async def status(call: OperationCall) -> Outcome:
        _holder(call)
        if call.parameters.get("parameter"):
            raise bad_request("$cve-dsp-status takes no parameters", expression="Parameters")
        return await _status(call)

    return [
        OperationDefinition(
            name="cve-dsp-consent",
            handler=give_or_withdraw,
            instance=True,
            resource_types=frozenset({"Patient"}),
            affects_state=True,
            documentation="The patient (or an assistant) gives (value true) or withdraws (value false) the consent "
            "to keep their vaccination history current in their DSP. Answers the status ($cve-dsp-status).",
        ),
        OperationDefinition(
            name="cve-dsp-status",
            handler=status,
            instance=True,
            resource_types=frozenset({"Patient"}),
            documentation="Whether the DSP consent of the vaccination record is in force and where the "
            "vaccination-history document stands in the DSP.",
            read_only=True,
        ),
    ]
