"""The right to practise as the HPD records it: statuses, allowed transitions, who decided, and the checks on a
change's inputs. Pure (no I/O); the use case is ``hpd/practise.py``.

A professional's right is ``active``, ``suspended`` (temporarily: a disciplinary or health measure) or ``withdrawn``
(struck off). The HPD's table ``hpd_right_to_practise`` holds the current status of every professional whose
right ever changed; a professional without a row has never lost it (active). Every change is kept in
``hpd_right_to_practise_history``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from esante.hpd.model import Status

REASON_MAX = 1000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# What each status may become. Same → same is refused (nothing to do); a withdrawn right is restored, never
# "suspended" (the Ministry restores it, then suspends it if it must).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ACTIVE: frozenset({Status.SUSPENDED, Status.WITHDRAWN}),
    Status.SUSPENDED: frozenset({Status.ACTIVE, Status.WITHDRAWN}),
    Status.WITHDRAWN: frozenset({Status.ACTIVE}),
}


class Source(StrEnum):
    """Where a change came from."""

    IMPORT = "import"  # the Ministry of Health's register (esante hpd import, delta files)
    ADMINISTRATOR = "administrator"  # an HPD administrator's operation ($hpd-suspend, $hpd-withdraw, $hpd-restore)


@dataclass(frozen=True)
class Agent:
    """Who made a change: an account (``kind`` staff), the operator running an import (``operator``)..."""

    id: str  # account id, operator name
    kind: str = "staff"  # staff | operator
    display: str | None = None


@dataclass(frozen=True)
class RecordedRight:
    """A row of ``hpd_right_to_practise``: the current status of one professional's right."""

    practitioner_id: str
    ehealth_id: str | None
    status: Status
    effective: str | None  # ISO date the current status took effect
    reason: str | None
    changed_at: int  # epoch microseconds of the last change
    tokens_valid_after: int  # epoch seconds: grants issued before it are refused (moved at each loss of the right)

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE


@dataclass(frozen=True)
class PractiseChange:
    """What :func:`hpd.practise.change_right_to_practise` did (``changed`` False: the status already was that)."""

    practitioner_id: str
    ehealth_id: str | None
    previous: Status
    status: Status
    effective: str
    reason: str
    source: Source
    agent: Agent
    recorded_at: int  # epoch microseconds
    changed: bool = True
    roles: tuple[str, ...] = ()  # PractitionerRole ids made inactive (a loss) or active again (a restoration)
    accounts: tuple[str, ...] = ()  # the professional's accounts whose grants were revoked
    refresh_tokens_revoked: int = 0
    audit_event: str | None = None  # the AuditEvent id
    history_id: int | None = field(default=None, compare=False)


class PractiseError(Exception):
    """A change refused: ``status`` is the HTTP status (400 bad input, 404 unknown professional, 409 transition),
    ``code`` a stable code, ``message`` for people. Nothing was written."""

    def __init__(self, status: int, code: str, message: str, expression: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.expression = expression


def parse_status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise PractiseError(400, "invalid_status", f"unknown right-to-practise status {value!r} ({allowed})") from None


def check_reason(value: str | None) -> str:
    """The reason of a change: required, one line of text, at most :data:`REASON_MAX` characters."""
    text = (value or "").strip()
    if not text:
        raise PractiseError(400, "missing_reason", "a reason is required for every change of a right to practise")
    if len(text) > REASON_MAX:
        raise PractiseError(400, "invalid_reason", f"the reason has at most {REASON_MAX} characters")
    if _CONTROL.search(text):
        raise PractiseError(400, "invalid_reason", "the reason may not contain control characters")
    return text


def check_effective(value: str | date | None, today: date) -> str:
    """The effective date (ISO ``YYYY-MM-DD``): today by default; a past date is recorded as given, a future one is
    refused — the change takes effect when it is recorded (schedule nothing ahead: record it on the day)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return today.isoformat()
    if isinstance(value, date):
        day = value
    else:
        text = value.strip()
        if not _DATE.match(text):
            raise PractiseError(400, "invalid_date", f"the effective date {text!r} is not a date (YYYY-MM-DD)")
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise PractiseError(400, "invalid_date", f"the effective date {text!r} does not exist") from None
    if day > today:
        raise PractiseError(
            400,
            "future_date",
            f"the effective date {day.isoformat()} is in the future: record the change on the day it takes effect",
        )
    if day.year < 1900:
        raise PractiseError(400, "invalid_date", f"the effective date {day.isoformat()} is too far in the past")
    return day.isoformat()


def check_transition(practitioner_id: str, current: Status, target: Status, since: str | None) -> None:
    """Refuse (409) a change the status cannot take."""
    if current is target:
        if target is Status.ACTIVE:
            raise PractiseError(
                409,
                "not_lost",
                f"the right to practise of Practitioner/{practitioner_id} is active: there is nothing to restore",
            )
        when = f" since {since}" if since else ""
        raise PractiseError(
            409,
            f"already_{target.value}",
            f"the right to practise of Practitioner/{practitioner_id} is already {target.value}{when}",
        )
    if target not in TRANSITIONS[current]:
        raise PractiseError(
            409,
            "invalid_transition",
            f"the right to practise of Practitioner/{practitioner_id} is {current.value}: it cannot become "
            f"{target.value} (restore it first)",
        )


def refusal_code(status: Status) -> str:
    """The stable code a refusal carries (login, token endpoint, bearer gate, introspection)."""
    return f"right_to_practise_{status.value}"


def refusal_message(status: Status, effective: str | None) -> str:
    """What a professional (or the software acting for them) is told. The reason is not repeated: it is the
    Ministry's decision, told to the professional by the Ministry; the audit trail keeps it."""
    when = f" since {effective}" if effective else ""
    return f"the right to practise of this professional is {status.value}{when}: access is refused"


REVOKED_CODE = "right_to_practise_revoked"
REVOKED_MESSAGE = (
    "this grant was issued before the right to practise of this professional was last suspended or withdrawn: "
    "it was revoked then; sign in again"
)
