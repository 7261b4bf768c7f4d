"""The DSP's life as a state machine. Pure (no I/O): every function takes the time (epoch seconds) it acts at.

    (new certified identity) ──open──► pending ──(end of the refusal window, or the patient activates)──► active
                                         │                                                              │  ▲
                                       refuse                                                       close  reopen
                                         ▼                                                              ▼  │
                                      refused ──(the patient asks for it later)──► active            closed
                                                                                                        │
                                                                  (retention over: ``esante dsp destroy-due``)
                                                                                                        ▼
                                                                                                    destroyed

Our reading of PLATFORM.md ("opened automatically ... 30 days to refuse; a refused DSP is never opened; starts
empty: nothing older than its opening"): during the refusal window the DSP is **pending** — it exists (the person
can see it, refuse it, set up their grants) but it is not open: it accepts no document and grants no professional
access, so a refusal never has anything to delete. It opens at the end of the window, or earlier when the patient
activates it. The end of the window needs no job: a pending record whose window is over *is* active (the access
rule's SQL and :func:`effective_status` say so; the record is rewritten as active when next changed). A refusal is
final unless the patient later asks for their DSP themself (``$dsp-activate``), which opens it then, empty.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime


class DspStatus(enum.StrEnum):
    PENDING = "pending"  # in the refusal window: not open yet
    ACTIVE = "active"  # open: accepts documents, grants access
    REFUSED = "refused"  # refused in the window: never opened
    CLOSED = "closed"  # closed by the patient: kept for the retention period, no professional access
    DESTROYED = "destroyed"  # retention over: content destroyed, the proof kept


class LifecycleError(Exception):
    """A change the record cannot take now: ``status`` 404/409, a stable ``code`` and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DspRecord:
    """One person's DSP (table ``dsp_record``); times in epoch seconds."""

    patient_id: str
    status: DspStatus
    opened_at: int  # when it was created for the person (the window started)
    window_ends_at: int
    updated_at: int
    activated_at: int | None = None
    refused_at: int | None = None
    closed_at: int | None = None
    retention_until: int | None = None
    destroyed_at: int | None = None


def effective_status(record: DspRecord, now: int) -> DspStatus:
    """The status at ``now``: a pending record whose window is over is active."""
    if record.status is DspStatus.PENDING and now >= record.window_ends_at:
        return DspStatus.ACTIVE
    return record.status


def open_record(patient_id: str, now: int, window_days: int) -> DspRecord:
    """A new DSP: pending for ``window_days`` (0: active at once)."""
    ends = now + window_days * 86400
    if window_days == 0:
        return DspRecord(patient_id, DspStatus.ACTIVE, now, now, now, activated_at=now)
    return DspRecord(patient_id, DspStatus.PENDING, now, ends, now)


def _settled(record: DspRecord, now: int) -> DspRecord:
    """The record with a window that ended written as the activation it was."""
    if record.status is DspStatus.PENDING and now >= record.window_ends_at:
        return replace(record, status=DspStatus.ACTIVE, activated_at=record.window_ends_at)
    return record


def _refuse_state(record: DspRecord, action: str) -> LifecycleError:
    words = {
        DspStatus.PENDING: "is not open yet (refusal window)",
        DspStatus.ACTIVE: "is open",
        DspStatus.REFUSED: "was refused",
        DspStatus.CLOSED: "is closed",
        DspStatus.DESTROYED: "was destroyed at the end of its retention period",
    }
    return LifecycleError(409, f"dsp-{record.status.value}", f"the DSP {words[record.status]}: it cannot {action}")


def activate(record: DspRecord, now: int) -> DspRecord:
    """The patient opens their DSP before the end of the window (or asks for it after refusing)."""
    current = _settled(record, now)
    if current.status in (DspStatus.PENDING, DspStatus.REFUSED):
        return replace(
            current,
            status=DspStatus.ACTIVE,
            activated_at=now,
            window_ends_at=min(current.window_ends_at, now),
            refused_at=None,
            updated_at=now,
        )
    raise _refuse_state(current, "be activated")


def refuse(record: DspRecord, now: int) -> DspRecord:
    """The person refuses their DSP within the refusal window (afterwards they close it instead)."""
    current = _settled(record, now)
    if current.status is DspStatus.PENDING:
        return replace(current, status=DspStatus.REFUSED, refused_at=now, updated_at=now)
    if current.status is DspStatus.ACTIVE:
        raise LifecycleError(
            409, "dsp-window-over", "the refusal window is over and the DSP is open: close it instead ($dsp-close)"
        )
    raise _refuse_state(current, "be refused")


def close(record: DspRecord, now: int, retention_years: int) -> DspRecord:
    """The patient closes (deactivates) their DSP: kept until ``retention_years`` after today."""
    current = _settled(record, now)
    if current.status is not DspStatus.ACTIVE:
        raise _refuse_state(current, "be closed")
    return replace(
        current, status=DspStatus.CLOSED, closed_at=now, retention_until=add_years(now, retention_years), updated_at=now
    )


def reopen(record: DspRecord, now: int) -> DspRecord:
    """The patient reopens a closed DSP: its content comes back, the retention clock stops."""
    if record.status is not DspStatus.CLOSED:
        raise _refuse_state(_settled(record, now), "be reopened")
    return replace(record, status=DspStatus.ACTIVE, closed_at=None, retention_until=None, updated_at=now)


def destroy(record: DspRecord, now: int) -> DspRecord:
    """The end of the retention period (only a closed DSP whose retention is over)."""
    if record.status is not DspStatus.CLOSED:
        raise _refuse_state(record, "be destroyed")
    if record.retention_until is None or now < record.retention_until:
        raise LifecycleError(409, "dsp-retained", "the DSP's retention period is not over")
    return replace(record, status=DspStatus.DESTROYED, destroyed_at=now, updated_at=now)


def accepting(record: DspRecord | None, now: int) -> LifecycleError | None:
    """Why the DSP of a patient does not accept documents now (None: it does)."""
    if record is None:
        return LifecycleError(409, "dsp-missing", "the patient has no DSP (none was opened for this identity)")
    status = effective_status(record, now)
    if status is DspStatus.ACTIVE:
        return None
    reasons = {
        DspStatus.PENDING: ("dsp-not-open", "the patient's DSP is not open yet (refusal window): nothing is stored"),
        DspStatus.REFUSED: ("dsp-refused", "the patient refused their DSP: it accepts no document"),
        DspStatus.CLOSED: ("dsp-closed", "the patient closed their DSP: it accepts no new document"),
        DspStatus.DESTROYED: ("dsp-destroyed", "the patient's DSP was destroyed: it accepts no document"),
    }
    code, message = reasons[status]
    return LifecycleError(409, code, message)


def add_years(epoch: int, years: int) -> int:
    """``epoch`` plus whole calendar years (29 February → 28 February in a common year)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    year = moment.year + years
    day = min(moment.day, calendar.monthrange(year, moment.month)[1])
    return int(moment.replace(year=year, day=day).timestamp())


def instant(epoch: int | None) -> str | None:
    """An epoch as a FHIR instant (UTC)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
