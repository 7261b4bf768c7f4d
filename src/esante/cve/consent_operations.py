"""The patient authorises (and stops authorising) a vaccinator for their CVE:

    POST Patient/{id}/$cve-authorize   holder, assistants   practitioner (Reference Practitioner/x, or
                                                            Identifier eHealthID), end (date, optional)
                                       → the authorisation Consent: 201 created, 200 when one is already in force
    POST Consent/{id}/$cve-revoke      holder, assistants   → the Consent, now inactive (200)

The practitioner must be in the directory and be a vaccinator (consent.py ``is_vaccinator``: 422 otherwise). The
Consents are written by these operations only (the access rule vetoes API writes of them), as the patient: the
audit trail records the operation with the patient. Refusals are 4xx OperationOutcomes; nothing is written.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.cve.consent import CONSENT_SYSTEM, VACCINATOR, build_authorisation, is_cve_consent, is_vaccinator, revoked
from esante.cve.context import CveContext
from esante.cve.parameters import Param, read_parameters
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, bad_request, not_found
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.hpd.model import EHEALTH_ID_SYSTEM
from esante.hpd.practitioner_lookup import practitioner_content

__all__ = ["consent_operations"]

PATIENT_KINDS = frozenset({"patient", "assistant"})
_AUTHORIZE = {
    "practitioner": Param(("valueReference", "valueIdentifier"), required=True),
    "end": Param(("valueDate", "valueDateTime")),
}
_EXISTING = (
    "SELECT r.res_id FROM resource r"
    " JOIN idx_reference a ON a.rid = r.rid AND a.param = 'actor' AND a.target_type = 'Practitioner'"
    " AND a.target_id = ?"
    " JOIN idx_reference p ON p.rid = r.rid AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?"
    " JOIN idx_token c ON c.rid = r.rid AND c.param = 'category' AND c.system = ? AND c.code = ?"
    " JOIN idx_token s ON s.rid = r.rid AND s.param = 'status' AND s.code = 'active'"
    " WHERE r.res_type = 'Consent' AND r.is_current AND NOT r.deleted ORDER BY r.rid"
)


def _holder(call: OperationCall, patient_id: str | None) -> str:
    """The performer reference of the patient or assistant acting for ``patient_id``; 403 for anyone else."""
    caller = call.ctx.caller
    person = caller.attributes.get("person_id")
    if caller.kind not in PATIENT_KINDS or not person or (patient_id is not None and person != patient_id):
        raise FhirError(
            403, [Issue("forbidden", f"${call.name} is for the holder of the vaccination record and their assistants")]
        )
    fhir_user = caller.attributes.get("fhir_user")
    if caller.kind == "assistant" and isinstance(fhir_user, str) and fhir_user.startswith("Patient/"):
        return fhir_user
    return f"Patient/{person}"


async def _practitioner(call: OperationCall, kind: str, value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if kind == "valueReference":
        reference = value.get("reference", "")
        if not reference.startswith("Practitioner/") or "/" in reference[len("Practitioner/") :]:
            raise bad_request(
                "practitioner must reference a Practitioner (Practitioner/<id>)", expression="practitioner"
            )
        found = await practitioner_content(call.session.conn, reference[len("Practitioner/") :], None)
    else:
        if value.get("system") != EHEALTH_ID_SYSTEM or not isinstance(value.get("value"), str):
            raise bad_request(
                f"a practitioner identifier is an eHealthID ({EHEALTH_ID_SYSTEM})", expression="practitioner"
            )
        found = await practitioner_content(call.session.conn, None, value["value"])
    if found is None:
        raise FhirError(
            404, [Issue("not-found", "no such Practitioner in the directory", expression=("practitioner",))]
        )
    return found


def _answer(stored: StoredResource, status: int) -> Outcome:
    return Outcome(status, stored.content, {"ETag": stored.etag}, stored)


def consent_operations(context: CveContext) -> list[OperationDefinition]:
    async def authorize(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        performer = _holder(call, call.resource_id)
        found = read_parameters(call, _AUTHORIZE)
        kind, value = found["practitioner"][0]
        practitioner_id, practitioner = await _practitioner(call, kind, value)
        if not is_vaccinator(practitioner, context.vaccinator_professions, context.today()):
            raise FhirError(
                422,
                [
                    Issue(
                        "business-rule",
                        "this professional is not a vaccinator (a vaccinating profession, or the trained-vaccinator "
                        "qualification)",
                        expression=("practitioner",),
                        details_code="cve-not-vaccinator",
                    )
                ],
            )
        end = str(found["end"][0][1]) if found["end"] else None
        if end is not None and end[:10] < context.today().isoformat():
            raise bad_request("end is in the past", expression="end")
        patient = await call.session.read("Patient", call.resource_id)
        if patient is None or patient.deleted:
            raise not_found(f"Patient/{call.resource_id} is not known")
        await call.session.flush()
        rows = await call.session.conn.fetch(_EXISTING, (practitioner_id, call.resource_id, CONSENT_SYSTEM, VACCINATOR))
        for row in rows:
            existing = await call.session.read("Consent", str(row[0]))
            if existing is not None and existing.content is not None and end is None:
                provision = orjson.loads(existing.content).get("provision", {})
                period = provision.get("period", {}) if isinstance(provision, dict) else {}
                if not isinstance(period, dict) or "end" not in period:
                    return _answer(existing, 200)  # the same open-ended authorisation is in force
        consent = build_authorisation(call.resource_id, practitioner_id, performer, context.now(), end)
        stored = await call.session.create(consent, client_id=False)
        return _answer(stored, 201)

    async def revoke(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        read_parameters(call, {})
        if call.ctx.caller.kind not in PATIENT_KINDS:
            _holder(call, None)
        current = await call.session.read("Consent", call.resource_id)
        content = orjson.loads(current.content) if current is not None and current.content is not None else None
        reference = content.get("patient", {}).get("reference") if isinstance(content, dict) else None
        patient_id = (
            reference[len("Patient/") :] if isinstance(reference, str) and reference.startswith("Patient/") else None
        )
        caller = call.ctx.caller
        if content is None or not is_cve_consent(content) or caller.attributes.get("person_id") != patient_id:
            raise not_found(f"Consent/{call.resource_id} is not a CVE authorisation of this patient")
        _holder(call, patient_id)
        assert current is not None
        if content.get("status") != "active":
            return _answer(current, 200)
        stored = await call.session.update(revoked(content, context.now()), current)
        return _answer(stored, 200)

    return [
        OperationDefinition(
            name="cve-authorize",
            handler=authorize,
            instance=True,
            resource_types=frozenset({"Patient"}),
            affects_state=True,
            documentation="The patient (or an assistant) authorises a vaccinator to read and record their "
            "vaccinations: practitioner (Reference or eHealthID), end (optional). Answers the Consent.",
        ),
        OperationDefinition(
            name="cve-revoke",
            handler=revoke,
            instance=True,
            resource_types=frozenset({"Consent"}),
            affects_state=True,
            documentation="The patient (or an assistant) withdraws a vaccinator's authorisation (the Consent "
            "becomes inactive).",
        ),
    ]
