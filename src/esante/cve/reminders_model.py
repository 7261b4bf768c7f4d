"""What a vaccination reminder is: which due doses it names, the key that makes it "never twice", and its text.
Pure (no I/O): the job (``reminders.py``) reads the records, runs the engine and writes.

**A due dose** is one vaccine-group forecast of the engine that is due (from its earliest date) or overdue (from its
past-due date) on the day of the run (``forecast.due_vaccinations``). **It is reminded from its recommended date
less ``lead_days``** (``cve_reminders_lead_days``, 14 by default: time to book an appointment), never before its
earliest date, and at once when it is overdue (``remind_from``). Why not from the earliest date: the earliest date is
the first day a dose *counts*, not when it is advised — a 10-yearly dTap-IPV booster may count after 5 years, and an
infant's 4-month dose 4 weeks after the 2-month one; reminding then would tell adults to come 5 years early.

It is identified by its **dose key**:

    vaccine group | series type | forecast dose number | earliest date

- the vaccine group and the series type (standard, or a risk series such as pertussis in pregnancy) say *what*;
- the forecast dose number says *which dose* (a booster every 10 years is dose 6, then 7…);
- the earliest date tells apart doses with the same number in different seasons (influenza, COVID-19: dose 1 of
  each season) and a dose the forecast moved to another series as the patient aged.

The earliest date does not move from one day to the next for a given history (checked over synthetic histories,
``tests/cve/test_reminders_model.py``): a dose is reminded once, when it becomes due, and not again when it becomes
overdue. A new history (a dose given, a record corrected) makes new forecasts: the dose given is no longer due, the
next one gets its own key when its time comes.

**One notification per patient and run** names every dose newly due (a baby at 2 months has four or five vaccine
groups due the same day: one e-mail, not five). The "never twice" guarantee is per dose, kept by the table
``cve_reminder`` (primary key patient + dose key) written in the notification's transaction; the notification's
own idempotency key is derived from the doses it names.

**The text** is the stored notification's (read by the patient once signed in); the e-mail never carries it (its
text is fixed per kind: docs/notifications.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from esante.cve.forecast import DueVaccination
from esante.notify import make_key

__all__ = [
    "DEFAULT_LEAD_DAYS",
    "REMINDER_KIND",
    "TEXT_LIMIT",
    "dose_key",
    "is_remindable",
    "notification_key",
    "remind_from",
    "reminder_text",
    "to_remind",
]

REMINDER_KIND = "cve-reminder"  # packaged in notify/data/kinds.json (fixed e-mail text without health data)
TEXT_LIMIT = 2000  # notify's limit on a stored notification's text
DEFAULT_LEAD_DAYS = 14


def remind_from(due: DueVaccination, lead_days: int = DEFAULT_LEAD_DAYS) -> date | None:
    """The first day ``due`` is reminded: its recommended date less ``lead_days``, not before its earliest date
    (the earliest date when it has no recommended date); None when it has neither."""
    if due.recommended is None:
        return due.earliest
    start = due.recommended - timedelta(days=max(0, lead_days))
    return max(start, due.earliest) if due.earliest is not None else start


def to_remind(
    items: Sequence[DueVaccination], on: date, lead_days: int = DEFAULT_LEAD_DAYS
) -> tuple[DueVaccination, ...]:
    """The due doses a reminder names on ``on``: the overdue ones, and the due ones whose reminding day came."""
    kept = []
    for item in items:
        start = remind_from(item, lead_days)
        if item.status == "overdue" or start is None or start <= on:
            kept.append(item)
    return tuple(kept)


def dose_key(due: DueVaccination) -> str:
    """``group|series type|dose number|earliest`` (at most 255 characters: the table's key)."""
    number = str(due.dose_number) if due.dose_number is not None else "-"
    earliest = due.earliest.isoformat() if due.earliest is not None else "-"
    return f"{due.vaccine_group}|{due.series_type}|{number}|{earliest}"[:255]


def notification_key(patient_id: str, dose_keys: Sequence[str]) -> str:
    """The notification's idempotency key: the patient and a digest of the doses it names."""
    digest = hashlib.sha256("\n".join(sorted(dose_keys)).encode()).hexdigest()[:32]
    return make_key(REMINDER_KIND, f"Patient/{patient_id}", digest)


def is_remindable(patient: dict[str, Any]) -> bool:
    """Whether a Patient may be reminded at all: not deceased, not an inactive (merged) identity."""
    if patient.get("active") is False:
        return False
    return not (patient.get("deceasedBoolean") is True or isinstance(patient.get("deceasedDateTime"), str))


@dataclass(frozen=True)
class _Line:
    due: DueVaccination

    def render(self) -> str:
        d = self.due
        name = d.vaccine_group if d.series_type in ("", "Standard") else f"{d.vaccine_group} ({d.series_type})"
        if d.dose_number is not None:
            name += f", dose {d.dose_number}"
        if d.status == "overdue" and d.past_due is not None:
            when = f"overdue since {_day(d.past_due)}"
        elif d.recommended is not None and d.earliest is not None and d.recommended > d.earliest:
            when = f"due from {_day(d.earliest)}, recommended by {_day(d.recommended)}"
        else:
            when = f"due from {_day(d.earliest)}"
        if d.status != "overdue" and d.past_due is not None:
            when += f", overdue from {_day(d.past_due)}"
        return f"{name}: {when}"


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else "now"


def reminder_text(items: Sequence[DueVaccination]) -> str:
    """The stored notification's text: one line per due dose, within ``TEXT_LIMIT`` characters."""
    head = "Vaccination reminder from your vaccination record (CVE). Due now:"
    tail = "Ask your doctor or an authorised vaccinator; your vaccination record shows the details."
    lines = [f"- {_Line(item).render()}" for item in items]
    text = "\n".join([head, *lines, tail])
    while len(text) > TEXT_LIMIT and len(lines) > 1:
        lines.pop()
        more = len(items) - len(lines)
        text = "\n".join([head, *lines, f"- … and {more} more", tail])
    return text[:TEXT_LIMIT]
