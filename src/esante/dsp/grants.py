"""The grants' use cases: the patient (or an assistant) declares trusted-circle professionals, their MR03, blocks,
the emergency opt-out and assistants; a professional declares a therapeutic relationship or an emergency access;
the patient revokes any of them. Each writes a Consent (``grants_model.py``) with the DSP's own writer, in the
request's transaction, and appends its AuditEvent; a store hook keeps ``dsp_grant`` in step.

Nothing here deletes a grant: a revocation makes its Consent inactive. A professional's loss of the right to
practise touches no grant either (the access rule's SQL asks the HPD, so the restoration brings them back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.dsp import grants_store, lifecycle_store
from esante.dsp.access_caller import professions_of
from esante.dsp.audit import Actor, dsp_event
from esante.dsp.context import DspContext
from esante.dsp.grants_model import (
    MAX_REASON,
    PATIENT_DECLARED,
    Kind,
    build_consent,
    ended,
    grant_row,
    kind_of,
    renewed,
)
from esante.dsp.lifecycle_model import DspStatus, effective_status
from esante.fhir.errors import FhirError, Issue
from esante.fhir.model import StoredResource
from esante.fhir.store import StoreSession
from esante.fhir.validation import validate_resource
from esante.security.audit_trail import AuditTrail

PHYSICIAN = "medecin"
CERTIFIED_SYSTEMS = ("urn:oid:1.3.182.4.4", "urn:oid:1.3.182.2.4.2")  # matricule, eSanté patient identifier


def _error(status: int, code: str, message: str, expression: str | None = None, issue: str | None = None) -> FhirError:
    kinds = {400: "invalid", 403: "forbidden", 404: "not-found", 409: "business-rule", 422: "processing"}
    return FhirError(
        status,
        [
            Issue(
                issue or kinds.get(status, "processing"),
                message,
                expression=(expression,) if expression else (),
                details_code=code,
            )
        ],
    )


@dataclass(frozen=True)
class Written:
    """A grant's Consent as stored, and whether this call created it (False: it was already in force)."""

    consent: StoredResource
    created: bool


# --- look-ups ----------------------------------------------------------------------------------------------------


async def patient_exists(conn: Connection, patient_id: str) -> bool:
    value = await conn.fetchval(
        "SELECT 1 FROM resource WHERE res_type = 'Patient' AND res_id = ? AND is_current AND NOT deleted", (patient_id,)
    )
    return value is not None


async def patient_by_identifier(conn: Connection, identifier: dict[str, Any]) -> str:
    """The certified Patient with a national identifier (matricule or eSanté id); 400/404 otherwise."""
    system, value = identifier.get("system"), identifier.get("value")
    if system not in CERTIFIED_SYSTEMS or not isinstance(value, str) or not value:
        raise _error(
            400,
            "dsp-patient-identifier",
            f"the patient is named by a national identifier ({' or '.join(CERTIFIED_SYSTEMS)})",
            "patient",
        )
    row = await conn.fetchrow(
        "SELECT r.res_id FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted"
        " WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.system = ? AND t.code = ?"
        " AND EXISTS (SELECT 1 FROM dsp_record d WHERE d.patient_id = r.res_id) ORDER BY r.res_id LIMIT 1",
        (system, value),
    )
    if row is None:
        raise _error(404, "dsp-missing", "no DSP holder has this identifier", "patient")
    return str(row[0])


async def practitioner_content(conn: Connection, practitioner_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT content FROM resource WHERE res_type = 'Practitioner' AND res_id = ? AND is_current AND NOT deleted",
        (practitioner_id,),
    )
    if row is None or row[0] is None:
        raise _error(
            404, "dsp-unknown-practitioner", f"Practitioner/{practitioner_id} is not in the directory", "practitioner"
        )
    content: dict[str, Any] = orjson.loads(bytes(row[0]))
    return content


async def _record_for_grants(conn: Connection, context: DspContext, patient_id: str, *, open_only: bool) -> None:
    """The DSP must exist and still be the patient's (pending, active or closed); ``open_only``: open now."""
    await lifecycle_store.lock(conn, patient_id)
    record = await lifecycle_store.get(conn, patient_id)
    if record is None:
        raise _error(404, "dsp-missing", f"Patient/{patient_id} has no DSP")
    status = effective_status(record, context.now())
    if open_only and status is not DspStatus.ACTIVE:
        raise _error(
            409, f"dsp-{status.value}", f"the patient's DSP is not open ({status.value}): no access to declare"
        )
    if status in (DspStatus.REFUSED, DspStatus.DESTROYED):
        raise _error(409, f"dsp-{status.value}", f"the DSP is {status.value}: it has no grants to manage")


async def _write(
    session: StoreSession,
    consent: dict[str, Any],
    current: StoredResource | None = None,
) -> StoredResource:
    validate_resource(consent)
    writer = session.store.session(session.conn)
    stored = (
        await writer.update(consent, current) if current is not None else await writer.create(consent, client_id=False)
    )
    await writer.flush()
    return stored


async def _audit(
    session: StoreSession,
    context: DspContext,
    event: str,
    actor: Actor,
    server: str,
    patient_id: str,
    consent: StoredResource,
    details: dict[str, str],
) -> None:
    body = dsp_event(
        event,
        actor=actor,
        recorded=context.now_micros(),
        server=server,
        patient_id=patient_id,
        what=f"Consent/{consent.res_id}",
        details=details,
    )
    await AuditTrail().append(session.store.session(session.conn), body)


async def _read_consent(session: StoreSession, consent_id: str) -> StoredResource:
    stored = await session.store.session(session.conn).read("Consent", consent_id)
    return _present(stored, consent_id)


def _present(stored: StoredResource | None, consent_id: str) -> StoredResource:
    if stored is None or stored.deleted or stored.content is None or kind_of(orjson.loads(stored.content)) is None:
        raise _error(404, "dsp-unknown-grant", f"Consent/{consent_id} is not a grant of a DSP")
    return stored


async def consent_patient(session: StoreSession, consent_id: str) -> str:
    """The patient of a DSP grant Consent (404 when it is none)."""
    stored = await _read_consent(session, consent_id)
    assert stored.content is not None
    row = grant_row(orjson.loads(stored.content))
    if row is None:
        raise _error(404, "dsp-unknown-grant", f"Consent/{consent_id} is not a grant of a DSP")
    return row.patient_id


async def _existing(session: StoreSession, consent_id: str) -> StoredResource:
    return _present(await session.store.session(session.conn).read("Consent", consent_id), consent_id)


# --- the patient's declarations ---------------------------------------------------------------------------------


async def add_grant(
    session: StoreSession,
    context: DspContext,
    patient_id: str,
    kind: Kind,
    *,
    actor: Actor,
    server: str,
    practitioner_id: str | None = None,
    assistant_id: str | None = None,
) -> Written:
    """The patient (or an assistant) declares a grant of ``kind`` (trusted-circle, referent, block: a
    ``practitioner_id``; emergency-opt-out: none; assistant: the assistant's Patient ``assistant_id``)."""
    if kind not in PATIENT_DECLARED:
        raise _error(400, "dsp-grant-kind", f"a patient does not declare {kind.value} grants", "kind")
    conn = session.conn
    if kind is Kind.ASSISTANT and actor.kind == "assistant" and not context.settings.assistants_may_appoint:
        raise _error(403, "dsp-assistant-appoints", "only the holder of the DSP appoints assistants")
    needs_practitioner = kind in (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.BLOCK)
    if needs_practitioner and not practitioner_id:
        raise _error(400, "dsp-practitioner-required", f"a {kind.value} grant names a practitioner", "practitioner")
    if not needs_practitioner and practitioner_id:
        raise _error(400, "dsp-practitioner-unexpected", f"a {kind.value} grant names no practitioner", "practitioner")
    if (kind is Kind.ASSISTANT) != (assistant_id is not None):
        raise _error(400, "dsp-assistant-required", "an assistant grant (and only it) names the assistant", "assistant")
    await _record_for_grants(conn, context, patient_id, open_only=False)
    now = context.now()
    if practitioner_id is not None:
        practitioner = await practitioner_content(conn, practitioner_id)
        if kind is Kind.REFERENT and PHYSICIAN not in professions_of(practitioner):
            raise _error(422, "dsp-referent-physician", "a médecin référent (MR03) is a physician", "practitioner")
    account_id = None
    if assistant_id is not None:
        account_id = await _assistant_account(conn, patient_id, assistant_id)
    existing = await grants_store.active(conn, patient_id, kind, now, practitioner_id)
    if kind is Kind.ASSISTANT:
        existing = [h for h in existing if await _names_assistant(session, h.consent_id, assistant_id)]
    if existing:
        return Written(await _existing(session, existing[0].consent_id), False)
    if kind is Kind.REFERENT:  # one médecin référent at a time: the new one replaces the previous
        for held in await grants_store.active(conn, patient_id, Kind.REFERENT, now):
            await _end(session, context, held.consent_id, actor, server, patient_id, "replaced")
    if kind is Kind.EMERGENCY_OPT_OUT:  # an opt-out also ends the emergency accesses in force
        for held in await grants_store.active(conn, patient_id, Kind.EMERGENCY, now):
            await _end(session, context, held.consent_id, actor, server, patient_id, "emergency opt-out")
    if account_id is not None:
        await conn.execute(
            "INSERT INTO account_delegation (account_id, patient_id, created_at) SELECT ?, ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM account_delegation WHERE account_id = ? AND patient_id = ? AND revoked_at IS NULL)",
            (account_id, patient_id, now, account_id, patient_id),
        )
    actor_ref = (
        f"Practitioner/{practitioner_id}" if practitioner_id else (f"Patient/{assistant_id}" if assistant_id else None)
    )
    consent = build_consent(
        kind, patient_id=patient_id, performer=actor.reference or f"Patient/{patient_id}", now=now, actor=actor_ref
    )
    stored = await _write(session, consent)
    details = {"kind": kind.value}
    if actor_ref:
        details["actor"] = actor_ref
    await _audit(session, context, "grant", actor, server, patient_id, stored, details)
    return Written(stored, True)


async def _names_assistant(session: StoreSession, consent_id: str, assistant_id: str | None) -> bool:
    stored = await _existing(session, consent_id)
    assert stored.content is not None
    provision = orjson.loads(stored.content).get("provision", {})
    refs = [a.get("reference", {}).get("reference") for a in provision.get("actor", []) if isinstance(a, dict)]
    return f"Patient/{assistant_id}" in refs


async def _assistant_account(conn: Connection, patient_id: str, assistant_id: str) -> str:
    """The patient account of the person appointed as assistant (422 when they cannot be one)."""
    if assistant_id == patient_id:
        raise _error(422, "dsp-self-assistant", "a patient is not their own assistant", "assistant")
    if not await patient_exists(conn, assistant_id):
        raise _error(404, "dsp-unknown-assistant", f"Patient/{assistant_id} does not exist", "assistant")
    row = await conn.fetchrow(
        "SELECT id, status FROM account WHERE kind = 'patient' AND patient_id = ? AND status IN ('active', 'inactive')"
        " ORDER BY created_at LIMIT 1",
        (assistant_id,),
    )
    if row is None:
        raise _error(
            422, "dsp-assistant-account", "the assistant needs an eSanté account (active or to activate)", "assistant"
        )
    return str(row[0])


async def revoke_grant(
    session: StoreSession, context: DspContext, consent_id: str, *, actor: Actor, server: str, patient_id: str
) -> StoredResource:
    """The patient revokes a grant of their DSP (the Consent becomes inactive; an assistant's delegation is
    revoked with it). 404 for a Consent that is not a grant of this patient's DSP, 409 when already revoked."""
    conn = session.conn
    await lifecycle_store.lock(conn, patient_id)
    stored = await _existing(session, consent_id)
    assert stored.content is not None
    consent = orjson.loads(stored.content)
    row = grant_row(consent)
    if row is None or row.patient_id != patient_id:
        raise _error(404, "dsp-unknown-grant", f"Consent/{consent_id} is not a grant of this DSP")
    if row.kind is Kind.ASSISTANT and actor.kind == "assistant" and not context.settings.assistants_may_appoint:
        raise _error(403, "dsp-assistant-appoints", "only the holder of the DSP removes assistants")
    if not row.active:
        raise _error(409, "dsp-grant-revoked", f"Consent/{consent_id} is already revoked")
    return await _end(session, context, consent_id, actor, server, patient_id, "revoked by the patient")


async def _end(
    session: StoreSession, context: DspContext, consent_id: str, actor: Actor, server: str, patient_id: str, why: str
) -> StoredResource:
    stored = await _existing(session, consent_id)
    assert stored.content is not None
    consent = orjson.loads(stored.content)
    now = context.now()
    updated = await _write(session, ended(consent, now), stored)
    row = grant_row(consent)
    if row is not None and row.kind is Kind.ASSISTANT:
        assistant = _actor_patient(consent)
        if assistant is not None:
            await session.conn.execute(
                "UPDATE account_delegation SET revoked_at = ? WHERE patient_id = ? AND revoked_at IS NULL"
                " AND account_id IN (SELECT id FROM account WHERE kind = 'patient' AND patient_id = ?)",
                (now, patient_id, assistant),
            )
    await _audit(
        session,
        context,
        "revoke",
        actor,
        server,
        patient_id,
        updated,
        {"kind": row.kind.value if row else "?", "why": why},
    )
    return updated


def _actor_patient(consent: dict[str, Any]) -> str | None:
    from esante.dsp.model import reference_id

    for actor in (consent.get("provision") or {}).get("actor", []) or []:
        found = reference_id(actor.get("reference") if isinstance(actor, dict) else None, "Patient")
        if found:
            return found
    return None


# --- the professionals' declarations ----------------------------------------------------------------------------


async def declare_relationship(
    session: StoreSession, context: DspContext, patient_id: str, practitioner_id: str, *, actor: Actor, server: str
) -> Written:
    """A professional declares (or declares again) a therapeutic relationship: in force for the configured days
    from this declaration. A new one notifies the patient."""
    conn = session.conn
    await _record_for_grants(conn, context, patient_id, open_only=True)
    now = context.now()
    ends = now + context.settings.relationship_days * 86400
    held = await grants_store.active(conn, patient_id, Kind.RELATIONSHIP, now, practitioner_id)
    if held:
        current = await _existing(session, held[0].consent_id)
        assert current.content is not None
        stored = await _write(session, renewed(orjson.loads(current.content), now, ends), current)
        await _audit(
            session,
            context,
            "relationship",
            actor,
            server,
            patient_id,
            stored,
            {"kind": "relationship", "renewed": "true", "until": str(ends)},
        )
        return Written(stored, False)
    consent = build_consent(
        Kind.RELATIONSHIP,
        patient_id=patient_id,
        performer=f"Practitioner/{practitioner_id}",
        now=now,
        actor=f"Practitioner/{practitioner_id}",
        ends_at=ends,
    )
    stored = await _write(session, consent)
    await _audit(
        session,
        context,
        "relationship",
        actor,
        server,
        patient_id,
        stored,
        {"kind": "relationship", "until": str(ends)},
    )
    await _notify(
        session,
        patient_id,
        "dsp-access-granted",
        stored,
        "A professional declared a therapeutic relationship with you: they may read and add documents "
        "of your DSP for the time of your care.",
    )
    return Written(stored, True)


def check_reason(reason: Any) -> str:
    """The emergency's reason: mandatory text of at most MAX_REASON characters, without control characters."""
    if not isinstance(reason, str) or not reason.strip():
        raise _error(400, "dsp-emergency-reason", "an emergency access needs a reason", "reason")
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise _error(400, "dsp-emergency-reason", f"the reason is longer than {MAX_REASON} characters", "reason")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise _error(400, "dsp-emergency-reason", "the reason contains control characters", "reason")
    return text


async def declare_emergency(
    session: StoreSession,
    context: DspContext,
    patient_id: str,
    practitioner_id: str,
    reason: str,
    *,
    actor: Actor,
    server: str,
    purpose: str | None = None,
) -> Written:
    """Break the glass: a read-only access to the essential documents for the configured hours, with its reason;
    refused (403) when the patient opted out; the patient is notified."""
    text = check_reason(reason)
    conn = session.conn
    await _record_for_grants(conn, context, patient_id, open_only=True)
    now = context.now()
    if await grants_store.active(conn, patient_id, Kind.EMERGENCY_OPT_OUT, now):
        raise _error(403, "dsp-emergency-opt-out", "the patient opted out of emergency access to their DSP")
    ends = now + context.settings.emergency_hours * 3600
    consent = build_consent(
        Kind.EMERGENCY,
        patient_id=patient_id,
        performer=f"Practitioner/{practitioner_id}",
        now=now,
        actor=f"Practitioner/{practitioner_id}",
        ends_at=ends,
        reason=text,
        purpose=purpose if purpose in ("ETREAT", "BTG") else "BTG",
    )
    stored = await _write(session, consent)
    await _audit(
        session, context, "emergency", actor, server, patient_id, stored, {"kind": "emergency", "until": str(ends)}
    )
    await _notify(
        session,
        patient_id,
        "dsp-emergency-access",
        stored,
        "A professional opened an emergency access to your DSP (read-only, essential documents).",
    )
    return Written(stored, True)


async def _notify(session: StoreSession, patient_id: str, kind: str, consent: StoredResource, text: str) -> None:
    from esante.notify.create import notify

    await notify(
        session.store.session(session.conn),
        recipient=f"Patient/{patient_id}",
        kind=kind,
        text=text,
        key=f"{kind}:Consent/{consent.res_id}/{consent.version_id}",
        about=(f"Consent/{consent.res_id}",),
        clock=time.time,
    )


async def emergency_opted_out(conn: Connection, patient_id: str, now: int) -> bool:
    return bool(await grants_store.active(conn, patient_id, Kind.EMERGENCY_OPT_OUT, now))
