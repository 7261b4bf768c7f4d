"""The holder's operations on their DSP (the patient, or an assistant acting for them):

    GET|POST /fhir/Patient/{id}/$dsp-status     the state, its dates, whether it accepts documents, the opt-out
    POST     /fhir/Patient/{id}/$dsp-activate   open it now (in the refusal window, or after a refusal)
    POST     /fhir/Patient/{id}/$dsp-refuse     refuse it (in the refusal window only)
    POST     /fhir/Patient/{id}/$dsp-close      close (deactivate) it: kept for the retention period
    POST     /fhir/Patient/{id}/$dsp-reopen     reopen a closed DSP: its content comes back

No input parameters; the answer is the ``$dsp-status`` Parameters after the change. 403 for anyone but the holder
and their assistants, 404 for a patient without a DSP, 409 for a change the DSP's state cannot take (the
OperationOutcome's ``details`` code says which state: ``dsp-pending``, ``dsp-closed``, ``dsp-window-over``, ...).
Each change is audited (``urn:esante:dsp-event``) in its transaction.
"""

from __future__ import annotations

from esante.dsp import lifecycle_store
from esante.dsp.context import DspContext
from esante.dsp.grants import emergency_opted_out
from esante.dsp.lifecycle import LifecycleError, change, lifecycle_error, status_parameters
from esante.dsp.operations import holder_or_assistant, parameters, read_parameters
from esante.fhir.context import Outcome
from esante.fhir.errors import not_found
from esante.fhir.operations import OperationCall, OperationDefinition

CHANGES = {
    "dsp-activate": ("activate", "Open the DSP now (during the refusal window, or after having refused it)."),
    "dsp-refuse": ("refuse", "Refuse the DSP during its refusal window: it is never opened."),
    "dsp-close": ("close", "Close (deactivate) the DSP: no professional access, kept for the retention period."),
    "dsp-reopen": ("reopen", "Reopen a closed DSP: its content and grants come back."),
}


async def _status(call: OperationCall, context: DspContext, patient_id: str) -> Outcome:
    conn = call.session.conn
    record = await lifecycle_store.get(conn, patient_id)
    if record is None:
        raise not_found(f"Patient/{patient_id} has no DSP")
    now = context.now()
    body = parameters(*status_parameters(record, now, await emergency_opted_out(conn, patient_id, now)))
    return Outcome(200, body)


def status_operation(context: DspContext) -> OperationDefinition:
    async def handler(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        holder_or_assistant(call, call.resource_id)
        read_parameters(call, {})
        return await _status(call, context, call.resource_id)

    return OperationDefinition(
        name="dsp-status",
        handler=handler,
        instance=True,
        resource_types=frozenset({"Patient"}),
        documentation="The state of the patient's DSP (holder and assistants): status, dates, acceptsDocuments, "
        "emergencyOptOut.",
    )


def _change_operation(context: DspContext, name: str, action: str, text: str) -> OperationDefinition:
    async def handler(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        actor = holder_or_assistant(call, call.resource_id)
        read_parameters(call, {})
        try:
            await change(call.session, context, call.resource_id, action, actor, call.ctx.base_url)
        except LifecycleError as failure:
            raise lifecycle_error(failure) from failure
        return await _status(call, context, call.resource_id)

    return OperationDefinition(
        name=name,
        handler=handler,
        instance=True,
        resource_types=frozenset({"Patient"}),
        affects_state=True,
        documentation=f"{text} (holder and assistants; no parameters; answers the new $dsp-status).",
    )


def lifecycle_operations(context: DspContext) -> list[OperationDefinition]:
    return [status_operation(context)] + [
        _change_operation(context, name, action, text) for name, (action, text) in CHANGES.items()
    ]
