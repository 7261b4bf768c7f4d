"""A notification as data: the request a service makes, the FHIR ``Communication`` it becomes, reading it, and the
e-mail delivery's retry schedule. Pure (no I/O).

The stored notification is an R4 ``Communication`` (docs/notifications.md):

- ``identifier`` ``urn:esante:notification|<idempotency key>``; ``status`` completed; ``category`` the kind
  (``urn:esante:notification-kind|dsp-new-document``); ``priority`` from the kind;
- ``subject`` the Patient it is about, ``recipient`` the person notified (a Patient or a Practitioner),
  ``about`` the resources it refers to (e.g. the DocumentReference), ``sender`` eSanté;
- ``sent`` when it was created, ``payload.contentString`` the service's short text;
- ``received``: when the recipient read it (absent: unread, searchable as ``received:missing=true``).

The R4 Patient compartment holds Communications by subject, sender and recipient, so a patient (and their
assistants) read theirs through the existing compartment rule.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esante.notify.kinds import KIND_SYSTEM, NotificationKind

NOTIFICATION_SYSTEM = "urn:esante:notification"  # Communication.identifier system: the idempotency key
SENDER_DISPLAY = "eSanté"
RECIPIENT_TYPES = ("Patient", "Practitioner")
MAX_KEY = 255
MAX_TEXT = 2000
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


class NotificationError(ValueError):
    """A notification request a service got wrong (a programming error of the caller; nothing is written)."""


@dataclass(frozen=True)
class NotificationRequest:
    """What a service asks for. ``key`` makes it idempotent: the same key never yields a second notification."""

    recipient: str  # Patient/<id> or Practitioner/<id>
    kind: str
    text: str  # the stored notification's text: may name the document; never sent by e-mail
    key: str
    subject: str | None = None  # the Patient it is about; default: the recipient when it is a Patient
    about: tuple[str, ...] = ()  # references of what it is about (DocumentReference/x, Consent/y, ...)
    priority: str | None = None  # default: the kind's

    @property
    def effective_subject(self) -> str | None:
        if self.subject is not None:
            return self.subject
        return self.recipient if self.recipient.startswith("Patient/") else None


def reference_parts(reference: str) -> tuple[str, str] | None:
    match = _REFERENCE.match(reference) if isinstance(reference, str) else None
    return (match.group(1), match.group(2)) if match else None


def check_request(request: NotificationRequest, kinds: dict[str, NotificationKind]) -> NotificationKind:
    """Refuse a malformed request with a message naming the problem; the kind it uses otherwise."""
    parts = reference_parts(request.recipient)
    if parts is None or parts[0] not in RECIPIENT_TYPES:
        raise NotificationError(f"recipient must be Patient/<id> or Practitioner/<id>, not {request.recipient!r}")
    kind = kinds.get(request.kind)
    if kind is None:
        raise NotificationError(f"unknown notification kind {request.kind!r} (known: {', '.join(sorted(kinds))})")
    if not isinstance(request.text, str) or not request.text.strip():
        raise NotificationError("text must be a non-empty string")
    if len(request.text) > MAX_TEXT:
        raise NotificationError(f"text is longer than {MAX_TEXT} characters")
    if not isinstance(request.key, str) or not request.key.strip() or len(request.key) > MAX_KEY:
        raise NotificationError(f"key must be a non-empty string of at most {MAX_KEY} characters (see make_key)")
    if request.subject is not None:
        subject = reference_parts(request.subject)
        if subject is None or subject[0] != "Patient":
            raise NotificationError(f"subject must be Patient/<id>, not {request.subject!r}")
    for reference in request.about:
        if reference_parts(reference) is None:
            raise NotificationError(f"about must hold references Type/<id>, not {reference!r}")
    if request.priority is not None and request.priority not in ("routine", "urgent", "asap", "stat"):
        raise NotificationError(f"priority must be routine, urgent, asap or stat, not {request.priority!r}")
    return kind


def make_key(kind: str, *parts: object) -> str:
    """An idempotency key ``<kind>:<part>:<part>…`` (e.g. ``cve-reminder:<patient>:<vaccine group>:<dose>``).

    Colons inside parts are escaped so that different part lists never give the same key; a key longer than the
    column keeps its readable start and ends with a SHA-256 of the whole.
    """
    text = ":".join([kind, *(str(p).replace("%", "%25").replace(":", "%3A") for p in parts)])
    if len(text) <= MAX_KEY:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{text[: MAX_KEY - 65]}#{digest}"


def instant(seconds: float) -> str:
    """FHIR instant (UTC, millisecond precision)."""
    stamp = datetime.fromtimestamp(seconds, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def communication(request: NotificationRequest, kind: NotificationKind, sent: float) -> dict[str, Any]:
    """The stored notification (validated in the tests against R4)."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "identifier": [{"system": NOTIFICATION_SYSTEM, "value": request.key}],
        "status": "completed",
        "category": [{"coding": [{"system": KIND_SYSTEM, "code": kind.code, "display": kind.display}]}],
        "priority": request.priority or kind.priority,
    }
    subject = request.effective_subject
    if subject is not None:
        resource["subject"] = {"reference": subject}
    if request.about:
        resource["about"] = [{"reference": r} for r in dict.fromkeys(request.about)]
    resource["sent"] = instant(sent)
    resource["recipient"] = [{"reference": request.recipient}]
    resource["sender"] = {"display": SENDER_DISPLAY}
    resource["payload"] = [{"contentString": request.text}]
    return resource


def kind_of(resource: dict[str, Any]) -> str | None:
    """The notification kind of a Communication, or None when it is not one of ours."""
    for category in resource.get("category") or []:
        for coding in category.get("coding") or [] if isinstance(category, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == KIND_SYSTEM and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return None


def recipients(resource: dict[str, Any]) -> list[str]:
    return [
        r["reference"]
        for r in resource.get("recipient") or []
        if isinstance(r, dict) and isinstance(r.get("reference"), str)
    ]


def with_read(resource: dict[str, Any], read_at: float | None) -> dict[str, Any] | None:
    """The Communication marked read at ``read_at`` (None: unread again); None when nothing changes."""
    if read_at is None:
        if "received" not in resource:
            return None
        return {k: v for k, v in resource.items() if k not in ("received", "meta")}
    if "received" in resource:
        return None  # already read: the first reading time is kept
    updated = {k: v for k, v in resource.items() if k != "meta"}
    ordered: dict[str, Any] = {}
    for name, value in updated.items():  # keep R4 element order: received right after sent
        ordered[name] = value
        if name == "sent":
            ordered["received"] = instant(read_at)
    if "received" not in ordered:
        ordered["received"] = instant(read_at)
    return ordered


# ----------------------------------------------------------------------------------------- e-mail retry schedule


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: int = 60
    max_seconds: int = 3600

    def delay(self, attempts: int) -> int:
        """Seconds to wait after the ``attempts``-th failed attempt (exponential, capped)."""
        return int(min(self.max_seconds, self.base_seconds * (2 ** max(0, attempts - 1))))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
