"""The DSP's storage hooks: what must hold whoever writes (the API, MHD, an import, the DSP's own writer).

- a new **certified identity** gets its DSP opened (pending for the refusal window), unless it has one already —
  written at the session's next flush, in bulk;
- a **document** (DocumentReference, List) for a patient whose DSP does not accept documents (pending, refused,
  closed, destroyed) is refused with a 409 naming why — nothing stored;
- the **confidentiality** of a DSP document (``securityLabel`` N/R/V) is the patient's: an API writer other than
  the patient or an assistant may not create a hidden (V) document, nor change the labels or the patient of one
  (the patient uses ``$dsp-hide``, ``$dsp-unhide``, ``$dsp-confidentiality``);
- the **derived indexes** follow their resources in the same transaction: ``dsp_grant`` (one row per DSP Consent)
  and ``dsp_binary`` (a Binary's ``securityContext`` DocumentReference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from esante.dsp import grants_store, lifecycle_store
from esante.dsp.context import DspContext
from esante.dsp.grants_model import grant_row
from esante.dsp.lifecycle_model import DspRecord, accepting, open_record
from esante.dsp.model import HIDDEN, labels_of, patient_of, reference_id
from esante.fhir.errors import FhirError, Issue, unprocessable
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.fhir.store import StoreSession

LEVEL_SYSTEM = "urn:esante:identity-level"
PATIENT_KINDS = frozenset({"patient", "assistant"})


def _certified(resource: dict[str, Any]) -> bool:
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    assert isinstance(meta, dict)
    return any(
        isinstance(tag, dict) and tag.get("system") == LEVEL_SYSTEM and tag.get("code") == "certified"
        for tag in meta.get("tag", []) or []
    )


def _previous(event: HookEvent) -> dict[str, Any] | None:
    previous = event.previous
    if previous is None or previous.content is None:
        return None
    loaded: dict[str, Any] = orjson.loads(previous.content)
    return loaded


_PENDING = "_dsp_pending_opens"  # StoreSession attribute: DSPs to open at the session's next flush


def _pending_opens(session: StoreSession) -> list[DspRecord]:
    """The DSPs a session opens, written with one statement at its next flush, as the store writes its own rows
    (a register import of a million identities pays one INSERT per batch, not one per identity)."""
    pending: list[DspRecord] | None = getattr(session, _PENDING, None)
    if pending is not None:
        return pending
    pending = []
    setattr(session, _PENDING, pending)
    store_flush = session.flush

    async def flush(also: Sequence[tuple[str, Sequence[Any]]] = ()) -> None:
        while pending:
            batch, pending[:] = pending[:2000], pending[2000:]
            await lifecycle_store.insert_many_if_absent(session.conn, batch)
        await store_flush(also)

    session.flush = flush  # type: ignore[method-assign]
    return pending


class DspHooks:
    def __init__(self, context: DspContext) -> None:
        self.context = context

    def install(self, hooks: HookRegistry) -> None:
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self.identity_written, {"Patient"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, self.identity_written, {"Patient"})
        documents = {"DocumentReference", "List"}
        hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, self.document_created, documents)
        hooks.register(Pointcut.STORAGE_PRESTORAGE_UPDATE, self.document_updated, documents)
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self.consent_written, {"Consent"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, self.consent_written, {"Consent"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_DELETED, self.consent_deleted, {"Consent"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self.binary_written, {"Binary"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, self.binary_written, {"Binary"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_DELETED, self.binary_deleted, {"Binary"})

    # --- lifecycle -----------------------------------------------------------------------------------------------
    async def identity_written(self, event: HookEvent) -> None:
        """Open the DSP of a new certified identity (an existing record, whatever its status, is left alone)."""
        resource = event.resource
        if not self.context.settings.open_on_certification or resource is None or not _certified(resource):
            return
        if resource.get("active") is False or event.stored is None:
            return  # a merged identity (replaced-by) gets no DSP of its own
        record = open_record(event.stored.res_id, self.context.now(), self.context.settings.refusal_window_days)
        _pending_opens(event.session).append(record)

    async def document_created(self, event: HookEvent) -> None:
        resource = event.resource
        assert resource is not None
        patient = patient_of(resource)
        if patient is None:
            return
        record = await lifecycle_store.get(event.session.conn, patient)
        if record is None:
            return  # not a DSP patient: the platform's generic document store
        refusal = accepting(record, self.context.now())
        if refusal is not None:
            raise FhirError(
                409, [Issue("business-rule", refusal.message, expression=("subject",), details_code=refusal.code)]
            )
        if (
            resource.get("resourceType") == "DocumentReference"
            and self._api_writer_not_patient(event)
            and HIDDEN in labels_of(resource)
        ):
            raise unprocessable(
                "only the patient hides a document of their DSP ($dsp-hide): securityLabel V is refused",
                expression="DocumentReference.securityLabel",
            )

    async def document_updated(self, event: HookEvent) -> None:
        resource, previous = event.resource, _previous(event)
        if resource is None or previous is None or not self._api_writer_not_patient(event):
            return
        patient = patient_of(previous)
        if patient is None or await lifecycle_store.get(event.session.conn, patient) is None:
            return
        kind = resource.get("resourceType", "List")
        if patient_of(resource) != patient:
            raise unprocessable(
                f"a DSP document stays in its patient's DSP: {kind}.subject cannot change", expression=f"{kind}.subject"
            )
        if kind == "DocumentReference" and sorted(labels_of(resource)) != sorted(labels_of(previous)):
            raise unprocessable(
                "the confidentiality of a DSP document is set by its patient ($dsp-confidentiality, $dsp-hide, "
                "$dsp-unhide): securityLabel cannot change",
                expression="DocumentReference.securityLabel",
            )

    @staticmethod
    def _api_writer_not_patient(event: HookEvent) -> bool:
        caller = event.caller
        return caller is not None and getattr(caller, "kind", None) not in PATIENT_KINDS

    # --- derived indexes -----------------------------------------------------------------------------------------
    async def consent_written(self, event: HookEvent) -> None:
        assert event.resource is not None and event.stored is not None
        row = grant_row({**event.resource, "id": event.stored.res_id})
        if row is None:
            if event.previous is not None:
                await grants_store.remove(event.session.conn, event.stored.rid)
            return
        await grants_store.put(event.session.conn, event.stored.rid, row)

    async def consent_deleted(self, event: HookEvent) -> None:
        assert event.stored is not None
        await grants_store.remove(event.session.conn, event.stored.rid)

    async def binary_written(self, event: HookEvent) -> None:
        assert event.resource is not None and event.stored is not None
        conn = event.session.conn
        document = reference_id(event.resource.get("securityContext"), "DocumentReference")
        if event.previous is not None:
            await conn.execute("DELETE FROM dsp_binary WHERE rid = ?", (event.stored.rid,))
        if document is not None:
            await conn.execute("INSERT INTO dsp_binary (rid, document_id) VALUES (?, ?)", (event.stored.rid, document))

    async def binary_deleted(self, event: HookEvent) -> None:
        assert event.stored is not None
        await event.session.conn.execute("DELETE FROM dsp_binary WHERE rid = ?", (event.stored.rid,))
