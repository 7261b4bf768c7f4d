"""Keeping a consenting patient's vaccination history current in their DSP: the queue's producers (store hooks) and
its worker.

**Why a queue and a worker, not the vaccinator's transaction.** Filing a document in the DSP is an IHE ITI-65
submission: the document goes to the blob store (encrypted, outside the database), then the DSP's Document
Recipient runs its own transaction with every DSP check (certified patient, DSP open, uniqueIds, classes,
replacement). Doing that inside the transaction that records a vaccination would make the vaccinator wait for it,
fail their write when the DSP refuses (a closed DSP is none of their business) and leave blobs behind on a rollback.
So:

1. **in the change's transaction** a store hook upserts the patient's row of ``cve_dsp_sync`` (``pending``): on every
   create, update or delete of one of their Immunizations (the CVE's record listener) and of their DSP-sharing
   Consent. The row commits or rolls back with the change: a committed change is never forgotten, a rolled-back
   one is never filed. The hook does not look at the consent (a consent given concurrently must not be missed);
2. **after commit** the worker (the server's background task every ``cve_dsp_sync_interval`` seconds, woken early
   by a change in the same process, or ``esante cve dsp-sync``) claims due rows and, for each patient: no consent in
   force → ``stopped``; DSP not open → ``waiting`` (a pending DSP is tried again when its refusal window ends, a
   closed one daily) or ``not-filed`` (no DSP, refused, destroyed); the history unchanged since the last filing
   and that document still current → nothing to do; else the document is built (``dsp_consent_document.py``) and
   filed **through the DSP's MHD Document Recipient** (``BundleProcessor.process``: exactly the ITI-65 path of
   establishments), replacing the CVE's current document, with the platform's audit trail recording the
   submission like any other (one BALP event per patient, the CVE's job as the requestor).

Withdrawing the consent stops the updates; the last document filed **stays** in the DSP (see docs/cve.md "DSP
consent" for why; the patient may hide it there with ``$dsp-hide``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from esante.cve import dsp_consent_queue as queue
from esante.cve.consent import CONSENT_SYSTEM
from esante.cve.context import CveContext
from esante.cve.dsp_consent import DSP_SHARING, is_dsp_consent
from esante.cve.dsp_consent_document import HISTORY_IDENTIFIER, history_hash, provide_bundle, vaccination_document
from esante.cve.record.profile import patient_id_of
from esante.db.engine import Connection
from esante.dsp import lifecycle_store
from esante.dsp.lifecycle_model import accepting
from esante.fhir.context import RequestContext
from esante.fhir.errors import FhirError
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.security.policy import Caller

if TYPE_CHECKING:
    from esante.app import Platform

__all__ = [
    "SYNC_CALLER",
    "BackgroundSync",
    "DspSync",
    "SyncReport",
    "consent_in_force",
    "consenting_patients",
    "install_queue_hooks",
]

log = structlog.get_logger("esante.cve.dsp_sync")

# the job files documents as establishment software of the platform: it writes the DSP's document types only
SYNC_CALLER = Caller(
    kind="system",
    subject="esante-cve-dsp-sync",
    scopes=("system/DocumentReference.cru", "system/List.cru", "system/Binary.cr", "system/Patient.r"),
)
DAY = 86_400
_RETRY_BASE, _RETRY_MAX = 60, 3600
_FINAL = frozenset({"dsp-missing", "dsp-refused", "dsp-destroyed"})
_CONSENT = (
    "SELECT r.res_id FROM idx_reference p"
    " JOIN idx_token c ON c.rid = p.rid AND c.res_type = 'Consent' AND c.param = 'category' AND c.system = ?"
    " AND c.code = ?"
    " JOIN idx_token s ON s.rid = p.rid AND s.res_type = 'Consent' AND s.param = 'status' AND s.code = 'active'"
    " JOIN resource r ON r.rid = p.rid AND r.is_current AND NOT r.deleted"
    " WHERE p.res_type = 'Consent' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?"
    " ORDER BY r.rid DESC"
)
# the patient's Immunizations as stored (the index's leading res_type column keeps it one index range at any size)
_IMMUNIZATIONS = (
    "SELECT r.content FROM idx_reference p JOIN resource r ON r.rid = p.rid AND r.is_current AND NOT r.deleted"
    " WHERE p.res_type = 'Immunization' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?"
    " ORDER BY r.rid"
)
_CURRENT_DOCUMENT = (
    "SELECT r.res_id FROM idx_token i"
    " JOIN idx_token s ON s.rid = i.rid AND s.res_type = 'DocumentReference' AND s.param = 'status'"
    " AND s.code = 'current'"
    " JOIN resource r ON r.rid = i.rid AND r.is_current AND NOT r.deleted"
    " WHERE i.res_type = 'DocumentReference' AND i.param = 'identifier' AND i.system = ? AND i.code = ?"
    " ORDER BY r.last_updated DESC"
)


async def consent_in_force(conn: Connection, patient_id: str) -> str | None:
    """The id of ``patient_id``'s DSP-sharing Consent in force (active), or None."""
    row = await conn.fetchrow(_CONSENT, (CONSENT_SYSTEM, DSP_SHARING, patient_id))
    return str(row[0]) if row is not None else None


async def current_document(conn: Connection, patient_id: str) -> str | None:
    """The id of the CVE's current vaccination-history DocumentReference in ``patient_id``'s DSP, or None."""
    row = await conn.fetchrow(_CURRENT_DOCUMENT, (HISTORY_IDENTIFIER, patient_id))
    return str(row[0]) if row is not None else None


# ---------------------------------------------------------------------------------------------- the producers
def install_queue_hooks(context: CveContext, hooks: HookRegistry, wake: Callable[[], None] | None = None) -> None:
    """Queue the patient in the transaction of every change of their record (the CVE's record listener) or of
    their DSP-sharing Consent; ``wake`` tells this process's worker that there is work once it commits."""

    # the patients already queued in a transaction (by its connection): an import writing ten Immunizations of a
    # patient in one transaction queues them once
    queued: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    async def record_changed(session: Any, patient_id: str) -> None:
        seen = queued.setdefault(session.conn, set())
        if patient_id in seen:
            return
        await queue.request(session.conn, patient_id, int(context.clock() * 1_000_000))
        seen.add(patient_id)
        if wake is not None:
            wake()

    async def consent_changed(event: HookEvent) -> None:
        previous = orjson.loads(event.previous.content) if event.previous and event.previous.content else None
        for content in (event.resource, previous):
            if is_dsp_consent(content):
                patient_id = patient_id_of(content) if isinstance(content, dict) else None
                if patient_id is not None:
                    await record_changed(event.session, patient_id)
                return

    context.on_record_change(record_changed)
    for pointcut in (Pointcut.STORAGE_PRECOMMIT_CREATED, Pointcut.STORAGE_PRECOMMIT_UPDATED):
        hooks.register(pointcut, consent_changed, {"Consent"})


# ---------------------------------------------------------------------------------------------- the worker
@dataclass
class SyncReport:
    filed: int = 0  # documents filed (new or replacing)
    unchanged: int = 0  # the history had not changed: nothing filed
    waiting: int = 0  # the DSP is not open (yet / any more): tried again later
    not_filed: int = 0  # refused for good (no DSP, refused, destroyed, unknown identity)
    stopped: int = 0  # no consent in force
    failed: int = 0  # errors: retried with a back-off
    superseded: int = 0  # rows changed again while being handled (handled at the next run)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return self.filed + self.unchanged + self.waiting + self.not_filed + self.stopped + self.failed

    def count(self, status: str, reason: str | None) -> None:
        name = {"filed": "filed", "waiting": "waiting", "not-filed": "not_filed", "stopped": "stopped"}.get(status)
        if name is not None:
            setattr(self, name, getattr(self, name) + 1)
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


@dataclass
class _Outcome:
    status: str
    reason: str | None = None
    document_id: str | None = None
    content_hash: str | None = None
    filed: bool = False
    next_attempt_at: int | None = None
    failed: bool = False
    unchanged: bool = False


class DspSync:
    """Files the vaccination-history documents the queue asks for (see the module docstring)."""

    def __init__(
        self, platform: Platform, context: CveContext, *, batch: int = 20, clock: Callable[[], float] = time.time
    ) -> None:
        self.platform = platform
        self.context = context
        self.batch = batch
        self.clock = clock
        self.base_url = platform.settings.effective_audience

    async def run_once(self, limit: int | None = None, progress: Callable[[int], None] | None = None) -> SyncReport:
        """Handle the due rows (at most ``limit``) until none is left."""
        report = SyncReport()
        database = self.platform.database
        while limit is None or report.handled < limit:
            size = self.batch if limit is None else min(self.batch, limit - report.handled)
            now = int(self.clock())
            async with database.read() as conn:  # most runs find nothing: no write transaction for them
                if not await queue.any_due(conn, now):
                    break
            token = str(uuid.uuid4())
            async with database.transaction() as conn:
                rows = await queue.claim(conn, now, size, now + 300 + 30 * size, token)
            if not rows:
                break
            for row in rows:
                outcome = await self._handle(row)
                async with database.transaction() as conn:
                    recorded = await queue.finish(
                        conn,
                        row,
                        token,
                        int(self.clock()),
                        outcome.status,
                        outcome.reason,
                        document_id=outcome.document_id,
                        content_hash=outcome.content_hash,
                        filed=outcome.filed,
                        next_attempt_at=outcome.next_attempt_at,
                        failed=outcome.failed,
                    )
                if not recorded:
                    report.superseded += 1
                if outcome.failed:
                    report.failed += 1
                    report.reasons[outcome.reason or "error"] = report.reasons.get(outcome.reason or "error", 0) + 1
                elif outcome.unchanged:
                    report.unchanged += 1
                else:
                    report.count(outcome.status, outcome.reason)
                if progress is not None:
                    progress(1)
        return report

    async def _handle(self, row: queue.QueueRow) -> _Outcome:
        try:
            return await self._file(row)
        except Exception as exc:  # retried with a back-off; the vaccinator's record is not affected
            delay = min(_RETRY_MAX, _RETRY_BASE * 2 ** min(row.attempts, 10))
            log.error("cve.dsp_sync_failed", error=type(exc).__name__)
            return _Outcome(
                "pending", f"error: {type(exc).__name__}", next_attempt_at=int(self.clock()) + delay, failed=True
            )

    async def _file(self, row: queue.QueueRow) -> _Outcome:
        patient_id = row.patient_id
        store = self.platform.store
        async with store.database.read() as conn:
            if await consent_in_force(conn, patient_id) is None:
                reason = "consent-withdrawn" if row.document_id else "no-consent"
                return _Outcome("stopped", reason)
            now = int(self.clock())
            record = await lifecycle_store.get(conn, patient_id)
            refusal = accepting(record, now)
            if refusal is not None:
                return self._not_open(refusal.code, record.window_ends_at if record is not None else None)
            stored = await store.session(conn).read("Patient", patient_id)
            if stored is None or stored.deleted or stored.content is None:
                return _Outcome("not-filed", "no-patient")
            patient = orjson.loads(stored.content)
            immunizations = [orjson.loads(bytes(r[0])) for r in await conn.fetch(_IMMUNIZATIONS, (patient_id,))]
            digest = history_hash(patient, immunizations)
            current = await current_document(conn, patient_id)
        if current is not None and current == row.document_id and digest == row.content_hash:
            return _Outcome("filed", None, unchanged=True)
        moment = datetime.fromtimestamp(self.clock(), UTC)
        bundle = provide_bundle(patient_id, vaccination_document(patient, immunizations, moment), moment, current)
        ctx = RequestContext(caller=SYNC_CALLER, base_url=self.base_url, request_id=uuid.uuid4().hex)
        try:
            outcome = await self.platform.router.bundles.process(ctx, bundle)
        except FhirError as error:
            await self._audit(ctx, bundle, error.status, None)
            if error.status >= 500:
                raise
            code = next((i.details_code for i in error.issues if i.details_code), None) or f"http-{error.status}"
            if code.startswith("dsp-"):
                return self._not_open(code, None)
            log.warning("cve.dsp_sync_refused", code=code)
            return _Outcome("not-filed", code)
        await self._audit(ctx, bundle, outcome.status, outcome)
        document_id = _created_document(outcome.body)
        return _Outcome("filed", None, document_id=document_id, content_hash=digest, filed=True)

    def _not_open(self, code: str, window_ends_at: int | None) -> _Outcome:
        now = int(self.clock())
        if code in _FINAL:
            return _Outcome("not-filed", code)
        if code == "dsp-not-open" and window_ends_at is not None and window_ends_at > now:
            return _Outcome("waiting", code, next_attempt_at=window_ends_at + 1)
        return _Outcome("waiting", code, next_attempt_at=now + DAY)

    async def _audit(self, ctx: RequestContext, bundle: dict[str, Any], status: int, outcome: Any) -> None:
        auditor = self.platform.router.auditor
        if auditor is None:
            return
        record = auditor.record_of(
            method="POST",
            path="",
            query=(),
            body=orjson.dumps({"resourceType": "Bundle", "type": bundle["type"]}),
            ctx=ctx,
            status=status,
            outcome=outcome,
        )
        await auditor.record(record, ctx.decisions)


def _created_document(body: Any) -> str | None:
    """The id of the DocumentReference an ITI-65 answer created (its ``location``)."""
    for entry in (body or {}).get("entry", []) if isinstance(body, dict) else []:
        location = str((entry.get("response") or {}).get("location", ""))
        if location.startswith("DocumentReference/") or "/DocumentReference/" in location:
            return location.split("DocumentReference/", 1)[1].split("/", 1)[0]
    return None


class BackgroundSync:
    """The server process's sync task: a run every ``interval`` seconds, or one second after a change of this
    process commits (``wake``), until stopped."""

    def __init__(self, sync: DspSync, interval: float) -> None:
        self.sync = sync
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake: asyncio.Event | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Run soon (a change was written); callable from any thread (an import's own event loop)."""
        event, loop = self._wake, self._event_loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed: the next interval does it
                loop.call_soon_threadsafe(event.set)

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._event_loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._loop(), name="esante-cve-dsp-sync")

    async def _loop(self) -> None:
        assert self._wake is not None
        while not self._stop.is_set():
            try:
                await self.sync.run_once()
            except Exception as exc:  # a database hiccup must not end the task; the rows wait in the queue
                log.error("cve.dsp_sync_run_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            if self._wake.is_set() and not self._stop.is_set():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # let the change's transaction commit
                    await asyncio.wait_for(self._stop.wait(), timeout=1.0)

    async def stop(self) -> None:
        """Let the current run finish, then end."""
        self._stop.set()
        self.wake()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None


async def consenting_patients(conn: Connection) -> list[str]:
    """Every patient whose DSP-sharing consent is in force (``esante cve dsp-sync --requeue``)."""
    rows = await conn.fetch(
        "SELECT DISTINCT p.target_id FROM idx_reference p"
        " JOIN idx_token c ON c.rid = p.rid AND c.res_type = 'Consent' AND c.param = 'category' AND c.system = ?"
        " AND c.code = ?"
        " JOIN idx_token s ON s.rid = p.rid AND s.res_type = 'Consent' AND s.param = 'status' AND s.code = 'active'"
        " WHERE p.res_type = 'Consent' AND p.param = 'patient' AND p.target_type = 'Patient' ORDER BY 1",
        (CONSENT_SYSTEM, DSP_SHARING),
    )
    return [str(r[0]) for r in rows]
