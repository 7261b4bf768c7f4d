"""The grants' operations (POST, Parameters in; the grant's Consent out — 201 when created, 200 when the same
grant was already in force):

    Patient/{id}/$dsp-grant                 holder, assistants   kind (code: trusted-circle | referent | block |
                                                                 emergency-opt-out | assistant), practitioner
                                                                 (Reference Practitioner/x, or Identifier eHealthID),
                                                                 assistant (Reference Patient/y)
    Consent/{id}/$dsp-revoke                holder, assistants   —  (the Consent becomes inactive)
    Patient/{id}/$dsp-emergency-opt-out     holder, assistants   value (boolean): opt out (true) or back in (false)
    Patient/{id}/$dsp-relationship          professional         —  (declares, or renews, a therapeutic relationship)
    Patient/$dsp-relationship               professional         patient (Identifier: matricule or eSanté id)
    Patient/{id}/$dsp-emergency             professional         reason (string, required)
    Patient/$dsp-emergency                  professional         reason, patient (Identifier)

A professional is a professional's own token or a system client acting for one (IUA
``national_provider_identifier``), known to the directory. Failures are 4xx OperationOutcomes whose ``details``
code names the rule (``dsp-emergency-opt-out``, ``dsp-referent-physician``, ...), nothing written.
"""

from __future__ import annotations

from typing import Any

from esante.dsp import grants_store
from esante.dsp.access_caller import find_practitioner
from esante.dsp.context import DspContext
from esante.dsp.grants import (
    Written,
    add_grant,
    consent_patient,
    declare_emergency,
    declare_relationship,
    patient_by_identifier,
    patient_exists,
    revoke_grant,
)
from esante.dsp.grants_model import PATIENT_DECLARED, Kind
from esante.dsp.model import reference_id
from esante.dsp.operations import Spec, holder_or_assistant, professional_actor, read_parameters
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, bad_request, not_found
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.hpd.model import EHEALTH_ID_SYSTEM

_PATIENT = frozenset({"Patient"})


def _answer(written: Written) -> Outcome:
    stored = written.consent
    status = 201 if written.created else 200
    return Outcome(status, stored.content, {"ETag": stored.etag}, stored)


async def _practitioner(call: OperationCall, value: Any) -> str:
    """A Practitioner named by reference (``Practitioner/x``) or by eHealthID (``Identifier``)."""
    if "reference" in value:
        found = reference_id(value, "Practitioner")
        if found is None:
            raise bad_request(
                "practitioner must reference a Practitioner (Practitioner/<id>)", expression="practitioner"
            )
        return found
    if value.get("system") != EHEALTH_ID_SYSTEM:
        raise bad_request(f"a practitioner identifier is an eHealthID ({EHEALTH_ID_SYSTEM})", expression="practitioner")
    match = await find_practitioner(call.session.conn, None, value["value"])
    if match is None:
        raise FhirError(404, [Issue("not-found", "no Practitioner has this eHealthID", expression=("practitioner",))])
    return match[0]


async def _holder_patient(call: OperationCall) -> str:
    assert call.resource_id is not None
    return call.resource_id


def grant_operation(context: DspContext) -> OperationDefinition:
    specs = {
        "kind": Spec(("valueCode", "valueString"), required=True),
        "practitioner": Spec(("valueReference", "valueIdentifier")),
        "assistant": Spec(("valueReference",)),
    }

    async def handler(call: OperationCall) -> Outcome:
        patient_id = await _holder_patient(call)
        actor = holder_or_assistant(call, patient_id)
        found = read_parameters(call, specs)
        try:
            kind = Kind(found["kind"])
        except ValueError:
            kind = None
        if kind is None or kind not in PATIENT_DECLARED:
            choices = ", ".join(sorted(k.value for k in PATIENT_DECLARED))
            raise bad_request(f"kind must be one of {choices}", expression="kind")
        practitioner = await _practitioner(call, found["practitioner"]) if "practitioner" in found else None
        assistant = None
        if "assistant" in found:
            assistant = reference_id(found["assistant"], "Patient")
            if assistant is None:
                raise bad_request("assistant must reference a Patient (Patient/<id>)", expression="assistant")
        written = await add_grant(
            call.session,
            context,
            patient_id,
            kind,
            actor=actor,
            server=call.ctx.base_url,
            practitioner_id=practitioner,
            assistant_id=assistant,
        )
        return _answer(written)

    return OperationDefinition(
        name="dsp-grant",
        handler=handler,
        instance=True,
        resource_types=_PATIENT,
        affects_state=True,
        documentation="The patient declares a grant of their DSP (holder and assistants): kind, practitioner or "
        "assistant. Answers the grant's Consent.",
    )


def revoke_operation(context: DspContext) -> OperationDefinition:
    async def handler(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        caller = call.ctx.caller
        if caller.kind not in ("patient", "assistant"):
            raise FhirError(403, [Issue("forbidden", "$dsp-revoke is for the holder of the DSP and their assistants")])
        read_parameters(call, {})
        patient_id = await consent_patient(call.session, call.resource_id)
        if caller.attributes.get("person_id") != patient_id:
            raise not_found(f"Consent/{call.resource_id} is not a grant of your DSP")
        actor = holder_or_assistant(call, patient_id)
        stored = await revoke_grant(
            call.session, context, call.resource_id, actor=actor, server=call.ctx.base_url, patient_id=patient_id
        )
        return Outcome(200, stored.content, {"ETag": stored.etag}, stored)

    return OperationDefinition(
        name="dsp-revoke",
        handler=handler,
        instance=True,
        resource_types=frozenset({"Consent"}),
        affects_state=True,
        documentation="The patient revokes a grant of their DSP (holder and assistants): the Consent becomes inactive.",
    )


def opt_out_operation(context: DspContext) -> OperationDefinition:
    specs = {"value": Spec(("valueBoolean",), required=True)}

    async def handler(call: OperationCall) -> Outcome:
        patient_id = await _holder_patient(call)
        actor = holder_or_assistant(call, patient_id)
        value = read_parameters(call, specs)["value"]
        server = call.ctx.base_url
        if value:
            written = await add_grant(
                call.session, context, patient_id, Kind.EMERGENCY_OPT_OUT, actor=actor, server=server
            )
            return _answer(written)
        held = await grants_store.active(call.session.conn, patient_id, Kind.EMERGENCY_OPT_OUT, context.now())
        if not held:
            raise FhirError(
                409,
                [
                    Issue(
                        "business-rule",
                        "the patient has not opted out of emergency access",
                        details_code="dsp-no-opt-out",
                    )
                ],
            )
        stored = None
        for grant in held:
            stored = await revoke_grant(
                call.session, context, grant.consent_id, actor=actor, server=server, patient_id=patient_id
            )
        assert stored is not None
        return Outcome(200, stored.content, {"ETag": stored.etag}, stored)

    return OperationDefinition(
        name="dsp-emergency-opt-out",
        handler=handler,
        instance=True,
        resource_types=_PATIENT,
        affects_state=True,
        documentation="The patient opts out of (value true) or back into (false) emergency access to their DSP.",
    )


async def _target_patient(call: OperationCall, found: dict[str, Any]) -> str:
    """The patient of a professional's declaration: the instance, or the ``patient`` identifier at type level."""
    if call.resource_id is not None:
        if "patient" in found:
            raise bad_request("patient is given by the URL at instance level", expression="patient")
        if not await patient_exists(call.session.conn, call.resource_id):
            raise not_found(f"Patient/{call.resource_id} is not known")
        return call.resource_id
    if "patient" not in found:
        raise bad_request(
            "patient (Identifier: matricule or eSanté id) is required at type level", expression="patient"
        )
    return await patient_by_identifier(call.session.conn, found["patient"])


def relationship_operation(context: DspContext) -> OperationDefinition:
    specs = {"patient": Spec(("valueIdentifier",))}

    async def handler(call: OperationCall) -> Outcome:
        actor, practitioner, _ = professional_actor(call)
        found = read_parameters(call, specs)
        patient_id = await _target_patient(call, found)
        written = await declare_relationship(
            call.session, context, patient_id, practitioner, actor=actor, server=call.ctx.base_url
        )
        return _answer(written)

    return OperationDefinition(
        name="dsp-relationship",
        handler=handler,
        instance=True,
        type_level=True,
        resource_types=_PATIENT,
        affects_state=True,
        documentation="A professional declares (or renews) a therapeutic relationship with the patient "
        f"({context.settings.relationship_days} days from this declaration).",
    )


def emergency_operation(context: DspContext) -> OperationDefinition:
    specs = {"reason": Spec(("valueString",), required=True), "patient": Spec(("valueIdentifier",))}

    async def handler(call: OperationCall) -> Outcome:
        actor, practitioner, _ = professional_actor(call)
        found = read_parameters(call, specs)
        patient_id = await _target_patient(call, found)
        written = await declare_emergency(
            call.session,
            context,
            patient_id,
            practitioner,
            found["reason"],
            actor=actor,
            server=call.ctx.base_url,
            purpose=call.ctx.caller.purpose_of_use,
        )
        return _answer(written)

    return OperationDefinition(
        name="dsp-emergency",
        handler=handler,
        instance=True,
        type_level=True,
        resource_types=_PATIENT,
        affects_state=True,
        documentation="Emergency (break-the-glass) access by a professional: a reason is mandatory; read-only, "
        f"essential documents, {context.settings.emergency_hours} h; refused after the patient's opt-out; "
        "the patient is notified.",
    )


def grants_operations(context: DspContext) -> list[OperationDefinition]:
    return [
        grant_operation(context),
        revoke_operation(context),
        opt_out_operation(context),
        relationship_operation(context),
        emergency_operation(context),
    ]
