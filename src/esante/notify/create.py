"""Creating a notification inside the caller's transaction (the transactional outbox).

A service notifies in the same :class:`StoreSession` as the change it notifies about (the DSP: the document's
transaction), so the notification commits or rolls back with it: no notification of a rolled-back document, no
lost one for a committed document. In that transaction two rows are written:

1. the outbox row, keyed by the idempotency key (``INSERT … ON CONFLICT DO NOTHING``). Under concurrency the second
   transaction with the same key waits for the first on the unique index and then writes nothing — its own
   transaction goes on (the DSP's document is still stored); a key already present gives the existing id back;
2. the ``Communication`` (through the store, so it is versioned, indexed, searchable and readable by its
   recipient through the policy seam).

E-mail is not sent here: the delivery worker (``delivery.py``) sends it after commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from esante.fhir.store import StoreSession
from esante.notify import outbox
from esante.notify.kinds import known_kinds
from esante.notify.model import NotificationRequest, check_request, communication


@dataclass(frozen=True)
class Notified:
    """The notification's id (the Communication's) and whether this call created it (False: the key existed)."""

    id: str
    created: bool


async def notify(
    session: StoreSession,
    *,
    recipient: str,
    kind: str,
    text: str,
    key: str,
    subject: str | None = None,
    about: Sequence[str] = (),
    priority: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Notified:
    """Notify ``recipient`` (``Patient/<id>`` or ``Practitioner/<id>``) of ``kind``, once per ``key``.

    ``text`` is the stored notification's short text (it may name what happened: the patient reads it once signed
    in); it never goes into an e-mail, whose text is fixed per kind. ``subject``: the Patient the notification is
    about (default: the recipient when a Patient); ``about``: references of what it is about. Raises
    :class:`~esante.notify.model.NotificationError` for a malformed request (nothing written). Pass the
    transaction's own session; the notification's rows are written before this returns.
    """
    request = NotificationRequest(recipient, kind, text, key, subject, tuple(about), priority)
    definition = check_request(request, known_kinds())
    now = clock()
    new_id = session.store.new_id()
    if not await outbox.insert(session.conn, new_id, key, kind, recipient, int(now)):
        existing = await outbox.id_for_key(session.conn, key)
        return Notified(existing or "", False)
    await session.create(communication(request, definition, now), res_id=new_id, client_id=False)
    # written now rather than at the session's next flush: a service may hand in a writer session of its own
    # that it never flushes again, and the outbox row must not commit without its Communication
    await session.flush()
    return Notified(new_id, True)
