"""Notifications: stored FHIR ``Communication`` resources readable over the API, and e-mail through SMTP.

What services call (inside their own transaction's :class:`~esante.fhir.store.StoreSession`)::

    from esante.notify import make_key, notify

    await notify(
        session,
        recipient="Patient/p1",
        kind="dsp-new-document",
        text="New document: discharge letter (CHL, 2026-12-03)",
        key=make_key("dsp-new-document", "Patient/p1", "DocumentReference/d1"),
        about=["DocumentReference/d1"],
    )

See docs/notifications.md for the model, the outbox, delivery, configuration and privacy.
"""

from esante.notify.create import Notified, notify
from esante.notify.kinds import KIND_SYSTEM, NotificationKind, register_kind
from esante.notify.model import NOTIFICATION_SYSTEM, NotificationError, make_key

__all__ = [
    "KIND_SYSTEM",
    "NOTIFICATION_SYSTEM",
    "NotificationError",
    "NotificationKind",
    "Notified",
    "make_key",
    "notify",
    "register_kind",
]
