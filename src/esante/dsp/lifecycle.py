"""The DSP's lifecycle use cases (state machine in ``lifecycle_model.py``, SQL in ``lifecycle_store.py``).

What the MHD side calls:

- :func:`require_accepting_documents` before storing a patient's documents (ITI-65): a 409 OperationOutcome naming
  why when the DSP is missing, pending (refusal window), refused, closed or destroyed;
- :func:`on_destroy` to register what it must delete when a DSP is destroyed at the end of its retention period
  (its blobs); the DSP itself purges the FHIR resources (DocumentReference, List, Binary, grant Consents).

Every change runs in the caller's transaction, under a per-patient lock, and appends its AuditEvent there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson

from esante.db.engine import Connection
from esante.dsp import lifecycle_store as store
from esante.dsp.audit import SYSTEM_ACTOR, Actor, dsp_event
from esante.dsp.context import DspContext
from esante.dsp.lifecycle_model import (
    DspRecord,
    DspStatus,
    LifecycleError,
    accepting,
    activate,
    close,
    destroy,
    open_record,
    refuse,
    reopen,
)
from esante.fhir.errors import FhirError, Issue
from esante.fhir.store import StoreSession
from esante.security.audit_trail import AuditTrail

__all__ = [
    "DestroyCallback",
    "Destruction",
    "LifecycleError",
    "change",
    "destroy_dsp",
    "lifecycle_error",
    "on_destroy",
    "open_dsp",
    "require_accepting_documents",
]

DestroyCallback = Callable[[StoreSession, str], Awaitable[Mapping[str, int]]]
"""``(session, patient_id) -> counts``: deletes what a service keeps for the patient's DSP outside the FHIR
resources the DSP purges itself (the MHD side: the documents' blobs), in the destruction's transaction, before the
resources are purged (so it can still read them); returns what it deleted, by kind, for the proof."""

_DESTROY_CALLBACKS: list[DestroyCallback] = []
_ISSUE_CODES = {404: "not-found", 409: "business-rule", 403: "forbidden"}


def on_destroy(callback: DestroyCallback) -> None:
    """Register ``callback`` for every destruction (idempotent: the same callable is registered once)."""
    if callback not in _DESTROY_CALLBACKS:
        _DESTROY_CALLBACKS.append(callback)


def lifecycle_error(error: LifecycleError, expression: str | None = None) -> FhirError:
    issue = Issue(
        _ISSUE_CODES.get(error.status, "processing"),
        error.message,
        expression=(expression,) if expression else (),
        details_code=error.code,
    )
    return FhirError(error.status, [issue])


async def require_accepting_documents(conn: Connection, patient_id: str, *, now: int | None = None) -> None:
    """Raise a 409 :class:`FhirError` (issue ``business-rule``, ``details`` code ``dsp-missing``, ``dsp-not-open``,
    ``dsp-refused``, ``dsp-closed`` or ``dsp-destroyed``) unless ``Patient/patient_id``'s DSP is open now."""
    record = await store.get(conn, patient_id)
    refusal = accepting(record, int(time.time()) if now is None else now)
    if refusal is not None:
        raise lifecycle_error(refusal, "subject")


async def open_dsp(conn: Connection, context: DspContext, patient_id: str) -> DspRecord | None:
    """Open the DSP of ``patient_id`` (pending for the refusal window); None when the patient has one already."""
    record = open_record(patient_id, context.now(), context.settings.refusal_window_days)
    return record if await store.insert_if_absent(conn, record) else None


_CHANGES = {"activate", "refuse", "close", "reopen"}


async def change(
    session: StoreSession, context: DspContext, patient_id: str, action: str, actor: Actor, server: str
) -> DspRecord:
    """Apply ``action`` (activate | refuse | close | reopen) to the patient's DSP and audit it; LifecycleError
    (404 no DSP, 409 a state that cannot take it) before anything is written."""
    if action not in _CHANGES:
        raise ValueError(f"unknown lifecycle change {action!r}")
    conn = session.conn
    await store.lock(conn, patient_id)
    record = await store.get(conn, patient_id)
    if record is None:
        raise LifecycleError(404, "dsp-missing", f"Patient/{patient_id} has no DSP")
    now = context.now()
    if action == "activate":
        updated = activate(record, now)
    elif action == "refuse":
        updated = refuse(record, now)
    elif action == "close":
        updated = close(record, now, context.settings.retention_years)
    else:
        updated = reopen(record, now)
    await store.save(conn, updated)
    details = {"from": record.status.value, "to": updated.status.value}
    if updated.retention_until is not None:
        details["retention-until"] = str(updated.retention_until)
    event = dsp_event(
        action, actor=actor, recorded=context.now_micros(), server=server, patient_id=patient_id, details=details
    )
    await AuditTrail().append(session.store.session(conn), event)
    return updated


# --- destruction -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destruction:
    patient_id: str
    destroyed_at: int
    counts: dict[str, int]
    digest: str
    audit_event: str | None


_DOCUMENT_RIDS = (
    "SELECT DISTINCT rid FROM idx_reference WHERE res_type IN ('DocumentReference', 'List') AND param = 'patient'"
    " AND target_type = 'Patient' AND target_id = ?"
)


async def _purge_rids(conn: Connection, patient_id: str) -> list[int]:
    """Every resource of the patient's DSP: their documents and lists, the Binaries of those documents (by
    ``securityContext`` or by the attachment's ``Binary/<id>`` URL), and the grant Consents."""
    documents = [int(r[0]) for r in await conn.fetch(_DOCUMENT_RIDS, (patient_id,))]
    rids = set(documents)
    if documents:
        marks = ", ".join("?" * len(documents))
        # every version of the documents: a Binary named by an earlier version goes too
        versions = await conn.fetch(
            f"SELECT res_id, content FROM resource WHERE res_type = 'DocumentReference' AND rid IN ({marks})", documents
        )
        ids = sorted({str(row[0]) for row in versions})
        if ids:
            id_marks = ", ".join("?" * len(ids))
            rows = await conn.fetch(f"SELECT rid FROM dsp_binary WHERE document_id IN ({id_marks})", ids)
            rids.update(int(r[0]) for r in rows)
        binaries = sorted({b for _, content in versions if content for b in _binary_ids(bytes(content))})
        if binaries:
            b_marks = ", ".join("?" * len(binaries))
            rows = await conn.fetch(
                f"SELECT DISTINCT rid FROM resource WHERE res_type = 'Binary' AND res_id IN ({b_marks})", binaries
            )
            rids.update(int(r[0]) for r in rows)
    rows = await conn.fetch("SELECT rid FROM dsp_grant WHERE patient_id = ?", (patient_id,))
    rids.update(int(r[0]) for r in rows)
    return sorted(rids)


def _binary_ids(content: bytes) -> list[str]:
    document = orjson.loads(content)
    found: list[str] = []
    for item in document.get("content", []) or []:
        attachment = item.get("attachment") if isinstance(item, dict) else None
        url = attachment.get("url") if isinstance(attachment, dict) else None
        if isinstance(url, str) and "Binary/" in url:
            tail = url.rsplit("Binary/", 1)[1].split("/_history", 1)[0]
            if tail and "/" not in tail:
                found.append(tail)
    return found


async def _purge(conn: Connection, rids: list[int]) -> tuple[dict[str, int], str]:
    """Delete every version and index row of ``rids``; the counts by type (current resources) and the digest."""
    counts: dict[str, int] = {}
    digest = hashlib.sha256()
    for start in range(0, len(rids), 500):
        chunk = rids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = await conn.fetch(
            f"SELECT res_type, res_id, version_id, is_current, content FROM resource WHERE rid IN ({marks}) "
            "ORDER BY res_type, res_id, version_id",
            chunk,
        )
        for res_type, res_id, version, current, content in rows:
            if current:
                counts[str(res_type)] = counts.get(str(res_type), 0) + 1
            body = hashlib.sha256(bytes(content)).hexdigest() if content is not None else "-"
            digest.update(f"{res_type}/{res_id}/_history/{version} {body}\n".encode())
        for table in ("idx_string", "idx_token", "idx_date", "idx_number", "idx_quantity", "idx_reference", "idx_uri"):
            await conn.execute(f"DELETE FROM {table} WHERE rid IN ({marks})", chunk)
        await conn.execute(f"DELETE FROM dsp_grant WHERE rid IN ({marks})", chunk)
        await conn.execute(f"DELETE FROM dsp_binary WHERE rid IN ({marks})", chunk)
        await conn.execute(f"DELETE FROM resource WHERE rid IN ({marks})", chunk)
    return counts, digest.hexdigest()


async def destroy_dsp(
    session: StoreSession, context: DspContext, patient_id: str, actor: Actor = SYSTEM_ACTOR, server: str = "esante"
) -> Destruction:
    """Destroy a closed DSP whose retention period is over, in ``session``'s transaction: the services' callbacks
    (blobs), then every version of the DSP's resources is purged (no tombstone, no history), the assistants'
    delegations for the patient are revoked, the record becomes ``destroyed`` and the proof is kept (table
    ``dsp_destruction`` and an AuditEvent): whose, when, how many of what, and a SHA-256 over the destroyed
    versions' ids and content hashes — no health data. LifecycleError (404/409) before anything is touched."""
    conn = session.conn
    await store.lock(conn, patient_id)
    record = await store.get(conn, patient_id)
    if record is None:
        raise LifecycleError(404, "dsp-missing", f"Patient/{patient_id} has no DSP")
    now = context.now()
    updated = destroy(record, now)
    assert record.closed_at is not None and record.retention_until is not None
    await session.flush()
    counts: dict[str, int] = {}
    for callback in list(_DESTROY_CALLBACKS):
        for kind, number in (await callback(session, patient_id)).items():
            counts[kind] = counts.get(kind, 0) + int(number)
    await session.flush()
    purged, digest = await _purge(conn, await _purge_rids(conn, patient_id))
    for kind, number in purged.items():
        counts[kind] = counts.get(kind, 0) + number
    revoked = await conn.execute(
        "UPDATE account_delegation SET revoked_at = ? WHERE patient_id = ? AND revoked_at IS NULL", (now, patient_id)
    )
    if revoked:
        counts["assistant-delegations-revoked"] = revoked
    await store.save(conn, updated)
    text = orjson.dumps(counts, option=orjson.OPT_SORT_KEYS).decode()
    details = {
        "closed-at": str(record.closed_at),
        "retention-until": str(record.retention_until),
        "counts": text,
        "digest": digest,
    }
    event = dsp_event(
        "destroy",
        actor=actor,
        recorded=context.now_micros(),
        server=server,
        patient_id=patient_id,
        details=details,
        outcome_text="DSP destroyed at the end of its retention period",
    )
    audited = await AuditTrail().append(session.store.session(conn), event)
    await store.add_destruction(
        conn,
        patient_id=patient_id,
        closed_at=record.closed_at,
        retention_until=record.retention_until,
        destroyed_at=now,
        counts=text,
        digest=digest,
        audit_event=audited.res_id,
    )
    return Destruction(patient_id, now, counts, digest, audited.res_id)


def status_parameters(record: DspRecord | None, now: int, opted_out: bool) -> list[dict[str, object]]:
    """The ``$dsp-status`` answer's parameters."""
    from esante.dsp.lifecycle_model import effective_status, instant

    if record is None:
        return [{"name": "status", "valueCode": "none"}]
    status = effective_status(record, now)
    parameters: list[dict[str, object]] = [{"name": "status", "valueCode": status.value}]
    times = (
        ("opened", record.opened_at),
        ("refusalWindowEnds", record.window_ends_at if record.status is DspStatus.PENDING else None),
        ("activated", record.activated_at or (record.window_ends_at if status is DspStatus.ACTIVE else None)),
        ("refused", record.refused_at),
        ("closed", record.closed_at),
        ("retentionUntil", record.retention_until),
        ("destroyed", record.destroyed_at),
    )
    parameters += [{"name": name, "valueInstant": instant(value)} for name, value in times if value is not None]
    parameters.append({"name": "acceptsDocuments", "valueBoolean": status is DspStatus.ACTIVE})
    parameters.append({"name": "emergencyOptOut", "valueBoolean": opted_out})
    return parameters
