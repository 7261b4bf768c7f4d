"""What the DSP tells the patient through the notification service (``esante.notify``), besides its grants'
notices (``grants.py``: a therapeutic relationship declared, an emergency access):

- **a new document** in the DSP (``dsp-new-document``): a store hook on every DocumentReference *created* for a
  patient who has a DSP, whoever writes it (ITI-65, a plain create, an assistant's upload, the CVE's filing), in
  the document's own transaction — a rolled-back filing leaves no notification, and the key (the document's id)
  makes it once per document: an update or a replacement's supersession of the old one notifies nothing, the
  replacement itself is a new document. The holder's own uploads are not notified (they know);
- **the opening** of their DSP and its refusal window (``dsp-opened``, a kind this module registers):
  ``notices_openings.py``.

When the DSP is destroyed at the end of its retention period, its notifications go with it
(:func:`destroy_notifications`, a ``lifecycle.on_destroy`` callback): a new-document notice names the document's
class, which must not outlive the document.

The stored notification may say what the document is (its class and type): it is read after signing in, through
the access rules. The e-mail never does (its text is fixed per kind, see docs/notifications.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esante.dsp import lifecycle_store
from esante.dsp.context import DspContext
from esante.dsp.mhd.classes import DocumentClasses
from esante.dsp.model import patient_of
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.fhir.store import StoreSession
from esante.notify import KIND_SYSTEM, make_key, notify
from esante.notify.kinds import EmailText, NotificationKind, register_kind

NEW_DOCUMENT = "dsp-new-document"
OPENED = "dsp-opened"

register_kind(
    NotificationKind(
        OPENED,
        "Your shared care record (DSP) was opened",
        "routine",
        {
            "fr": EmailText(
                "Votre dossier de soins partagé (DSP) a été ouvert",
                "Un dossier de soins partagé (DSP) a été ouvert pour vous.\n"
                "Vous pouvez le refuser pendant la période indiquée dans votre espace eSanté ; sans refus de votre "
                "part, il devient actif à la fin de cette période.\n"
                "Connectez-vous à votre espace eSanté pour en savoir plus : {portal_url}",
            ),
            "de": EmailText(
                "Ihre gemeinsame Patientenakte (DSP) wurde eröffnet",
                "Für Sie wurde eine gemeinsame Patientenakte (DSP) eröffnet.\n"
                "Sie können sie innerhalb der in Ihrem eSanté-Bereich angegebenen Frist ablehnen; ohne Ablehnung "
                "wird sie am Ende dieser Frist aktiv.\n"
                "Melden Sie sich in Ihrem eSanté-Bereich an, um mehr zu erfahren: {portal_url}",
            ),
            "en": EmailText(
                "Your shared care record (DSP) was opened",
                "A shared care record (DSP) was opened for you.\n"
                "You may refuse it within the period shown in your eSanté space; unless you refuse it, it becomes "
                "active at the end of that period.\n"
                "Log in to your eSanté space to learn more: {portal_url}",
            ),
        },
    )
)


def _display(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in concept.get("coding", []) or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str) and coding["display"].strip():
            return str(coding["display"]).strip()
    return None


def new_document_text(document: dict[str, Any], classes: DocumentClasses) -> str:
    """The stored notification's text: the document's class and type as the source named them (no content)."""
    code = classes.class_of(document)
    words = [classes.displays.get(code, code)] if code else []
    kind = _display(document.get("type"))
    if kind and kind not in words:
        words.append(kind)
    what = " — ".join(words) if words else "a document"
    return f"A new document was added to your shared care record (DSP): {what}."


class NewDocumentNotices:
    """The store hook (PRECOMMIT, DocumentReference created): one ``dsp-new-document`` notification per document."""

    def __init__(self, context: DspContext, classes: DocumentClasses) -> None:
        self.context = context
        self.classes = classes

    def install(self, hooks: HookRegistry) -> None:
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self.document_created, {"DocumentReference"})

    async def document_created(self, event: HookEvent) -> None:
        resource, stored = event.resource, event.stored
        if resource is None or stored is None or resource.get("status") == "entered-in-error":
            return
        patient = patient_of(resource)
        if patient is None:
            return
        caller = event.caller
        if getattr(caller, "kind", None) == "patient" and getattr(caller, "attributes", {}).get("person_id") == patient:
            return  # the holder's own upload
        conn = event.session.conn
        if await lifecycle_store.get(conn, patient) is None:
            return  # not a DSP patient (the DSP's own hook already refused a DSP that is not open)
        reference = f"DocumentReference/{stored.res_id}"
        await notify(
            event.session.store.session(conn),  # a writer of its own: the transaction's session is mid-write
            recipient=f"Patient/{patient}",
            kind=NEW_DOCUMENT,
            text=new_document_text(resource, self.classes),
            key=make_key(NEW_DOCUMENT, reference),
            about=(reference,),
        )


_INDEX_TABLES = ("idx_string", "idx_token", "idx_date", "idx_number", "idx_quantity", "idx_reference", "idx_uri")
_NOTIFICATIONS = (
    "SELECT DISTINCT s.rid, r.res_id FROM idx_reference s JOIN idx_token k ON k.rid = s.rid AND k.param = 'category'"
    " AND k.system = ? AND k.code LIKE 'dsp-%' JOIN resource r ON r.rid = s.rid AND r.is_current"
    " WHERE s.res_type = 'Communication' AND s.param = 'subject' AND s.target_type = 'Patient' AND s.target_id = ?"
)


async def destroy_notifications(session: StoreSession, patient_id: str) -> Mapping[str, int]:
    """Purge the DSP's notifications about ``patient_id`` (every kind ``dsp-*``: every version, index rows and
    outbox rows), in the destruction's transaction; ``{"notifications": n}`` for the proof of destruction."""
    conn = session.conn
    rows = await conn.fetch(_NOTIFICATIONS, (KIND_SYSTEM, patient_id))
    if not rows:
        return {}
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        rids = [int(row[0]) for row in chunk]
        marks = ", ".join("?" * len(chunk))
        for table in _INDEX_TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE rid IN ({marks})", rids)
        await conn.execute(f"DELETE FROM resource WHERE rid IN ({marks})", rids)
        await conn.execute(f"DELETE FROM notify_outbox WHERE id IN ({marks})", [str(row[1]) for row in chunk])
    return {"notifications": len(rows)}
