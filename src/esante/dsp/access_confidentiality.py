"""The patient's say over a document's confidentiality (POST, the DocumentReference out):

    DocumentReference/{id}/$dsp-hide              hide it: only the patient, assistants and the author see it (V)
    DocumentReference/{id}/$dsp-unhide            show it again at the level it had
    DocumentReference/{id}/$dsp-confidentiality   level (code N | R): normal, or restricted to the trusted circle,
                                                  MR03 and the author

For the holder of the DSP and their assistants only (403 for others, 404 for a document outside their DSP). The
labels are ``securityLabel`` codings of v3-Confidentiality (``model.py``); the DSP's own writer makes the new
version (no API writer may change them) and the change is audited. Asking for the state the document is already in
changes nothing (200).
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.dsp import lifecycle_store
from esante.dsp.audit import dsp_event
from esante.dsp.context import DspContext
from esante.dsp.lifecycle_model import DspStatus
from esante.dsp.model import HIDDEN, NORMAL, SETTABLE_LEVELS, labels_of, patient_of, with_labels
from esante.dsp.operations import PATIENT_KINDS, Spec, forbidden, holder_or_assistant, read_parameters
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, bad_request, not_found
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.validation import validate_resource
from esante.security.audit_trail import AuditTrail


def _current_level(document: dict[str, Any]) -> str:
    levels = [code for code in labels_of(document) if code != HIDDEN]
    return max(levels, key=SETTABLE_LEVELS.index) if levels else NORMAL


def _operation(context: DspContext, name: str, text: str) -> OperationDefinition:
    specs = {"level": Spec(("valueCode", "valueString"), required=True)} if name == "dsp-confidentiality" else {}

    async def handler(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        if call.ctx.caller.kind not in PATIENT_KINDS:
            raise forbidden(f"${name} is for the holder of the DSP and their assistants only")
        found = read_parameters(call, specs)
        level = found.get("level")
        if level is not None and level not in SETTABLE_LEVELS:
            raise bad_request("level must be N (normal) or R (restricted); hiding is $dsp-hide", expression="level")
        writer = call.session.store.session(call.session.conn)
        stored = await writer.read("DocumentReference", call.resource_id)
        if stored is None or stored.deleted or stored.content is None:
            raise not_found(f"DocumentReference/{call.resource_id} is not known")
        document: dict[str, Any] = orjson.loads(stored.content)
        patient = patient_of(document)
        if patient is None or call.ctx.caller.attributes.get("person_id") != patient:
            raise not_found(f"DocumentReference/{call.resource_id} is not known")
        actor = holder_or_assistant(call, patient)
        await lifecycle_store.lock(call.session.conn, patient)
        record = await lifecycle_store.get(call.session.conn, patient)
        if record is None or record.status in (DspStatus.REFUSED, DspStatus.DESTROYED):
            raise FhirError(409, [Issue("business-rule", "this document is not in a DSP", details_code="dsp-missing")])
        hidden = HIDDEN in labels_of(document)
        current = _current_level(document)
        wanted_hidden = {"dsp-hide": True, "dsp-unhide": False}.get(name, hidden)
        wanted_level = level or current
        if wanted_hidden == hidden and wanted_level == current:
            return Outcome(200, stored.content, {"ETag": stored.etag}, stored)
        updated = with_labels(document, wanted_level, wanted_hidden)
        validate_resource(updated)
        written = await writer.update(updated, stored)
        details = {
            "from": current + (" hidden" if hidden else ""),
            "to": wanted_level + (" hidden" if wanted_hidden else ""),
        }
        event = dsp_event(
            name.removeprefix("dsp-"),
            actor=actor,
            recorded=context.now_micros(),
            server=call.ctx.base_url,
            patient_id=patient,
            what=f"DocumentReference/{call.resource_id}",
            details=details,
        )
        await AuditTrail().append(writer, event)
        return Outcome(200, written.content, {"ETag": written.etag}, written)

    return OperationDefinition(
        name=name,
        handler=handler,
        instance=True,
        resource_types=frozenset({"DocumentReference"}),
        affects_state=True,
        documentation=text,
    )


def confidentiality_operations(context: DspContext) -> list[OperationDefinition]:
    return [
        _operation(context, "dsp-hide", "The patient hides a document of their DSP (patient, assistants, author)."),
        _operation(context, "dsp-unhide", "The patient shows a hidden document again, at the level it had."),
        _operation(context, "dsp-confidentiality", "The patient sets a document's level: N normal, R restricted."),
    ]
