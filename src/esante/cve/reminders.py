"""The reminders job (``esante cve reminders``, or the server every ``cve_reminders_interval_hours``): for every
patient with a CVE, the doses due or overdue today by the configured schedule, and ONE notification per patient
naming the doses not reminded before (``reminders_model.py`` says what a dose and its key are).

A patient **has a CVE** when an Immunization or a CVE Consent (a vaccinator's authorisation, the DSP-sharing
consent) names them: a newborn whose parents authorised the paediatrician is reminded of the 2-month doses before
any is recorded. Deceased patients and inactive (merged) identities are not reminded.

The job reads as the platform (no policy: it is not a user's request), in batches of ``batch`` patients taken in
the order of their ids (keyset: resumable, no OFFSET):

1. on a read connection, in five indexed statements per batch: the patients, their Immunizations, Conditions and
   Observations (the forecast's inputs, exactly as ``forecast.patient_forecast`` reads them) and the dose keys
   already reminded;
2. the engine forecasts each patient (pure, CPU: in ``workers`` processes when asked); the doses to remind are
   the overdue ones and the due ones whose recommended date is at most ``lead_days`` away;
3. ONE write transaction per batch: for each patient with new due doses, the doses' rows in ``cve_reminder``
   (``ON CONFLICT DO NOTHING``: a dose another run reminded meanwhile is left out), then ``notify()`` (the
   Communication and its outbox row; the e-mail follows through the delivery worker).

A run therefore never reminds a dose twice, whether it is run again, interrupted and resumed, or run by two
processes at once (the primary key serialises them: the second waits on the first's rows, then writes nothing).
One AuditEvent records the run (how many patients were read and notified; no patient is named: each notification is
in the patient's own record).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import structlog

from esante.cve.consent import CONSENT_SYSTEM
from esante.cve.context import CveContext
from esante.cve.engine import SupportingData, assess
from esante.cve.forecast import DueVaccination, due_vaccinations
from esante.cve.immds_input import forecast_input
from esante.cve.reminders_model import (
    DEFAULT_LEAD_DAYS,
    REMINDER_KIND,
    dose_key,
    is_remindable,
    notification_key,
    reminder_text,
    to_remind,
)
from esante.fhir.errors import FhirError
from esante.fhir.model import micros_to_instant
from esante.fhir.store import ResourceStore
from esante.notify import notify
from esante.security.audit_trail import AuditTrail

__all__ = ["ReminderJob", "ReminderReport", "count_patients", "due_of"]

log = structlog.get_logger("esante.cve.reminders")

_PATIENTS = (
    "SELECT target_id FROM idx_reference WHERE res_type = 'Immunization' AND param = 'patient'"
    " AND target_type = 'Patient' AND target_id > ?"
    " UNION SELECT p.target_id FROM idx_reference p"
    " JOIN idx_token c ON c.rid = p.rid AND c.res_type = 'Consent' AND c.param = 'category' AND c.system = ?"
    " WHERE p.res_type = 'Consent' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id > ?"
)
_OF_PATIENTS = (
    "SELECT p.target_id, r.content FROM idx_reference p JOIN resource r ON r.rid = p.rid AND r.is_current"
    " AND NOT r.deleted WHERE p.res_type = ? AND p.param = 'patient' AND p.target_type = 'Patient'"
    " AND p.target_id IN ({ids}) ORDER BY r.rid"
)
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_INSERT_DOSE = (
    "INSERT INTO cve_reminder (patient_id, dose_key, notification_id, created_at) VALUES (?, ?, '', ?)"
    " ON CONFLICT (patient_id, dose_key) DO NOTHING"
)

Records = tuple[bytes, list[bytes], list[bytes], list[bytes]]  # Patient, Immunizations, Conditions, Observations


@dataclass
class ReminderReport:
    """What a run did (counts only: no patient is named)."""

    on: date | None = None
    patients: int = 0  # patients with a CVE looked at
    skipped: int = 0  # not forecast: no full birth date, deceased, inactive identity, missing Patient
    due: int = 0  # due or overdue doses found
    already: int = 0  # ... of which reminded before
    reminded: int = 0  # ... named by a notification of this run
    notifications: int = 0  # notifications created (one per patient with newly due doses)
    batches: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)  # why patients were skipped

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


async def count_patients(store: ResourceStore) -> int:
    """How many patients have a CVE (the progress bar's total)."""
    async with store.database.read() as conn:
        value = await conn.fetchval(f"SELECT COUNT(*) FROM ({_PATIENTS}) AS cve", ("", CONSENT_SYSTEM, ""))
    return int(value or 0)


# ------------------------------------------------------------------------------------------------ the forecast (pure)
_WORKER_DATA: SupportingData | None = None


def due_of(
    data: SupportingData, records: Records, on: date, lead_days: int = DEFAULT_LEAD_DAYS
) -> tuple[str, tuple[DueVaccination, ...]]:
    """The doses to remind a patient of on ``on`` from their stored records (``reminders_model.to_remind``):
    ``("", doses)``, or a reason and nothing."""
    patient = orjson.loads(records[0])
    if not is_remindable(patient):
        return "deceased or inactive", ()
    immunizations, conditions, observations = ([orjson.loads(c) for c in part] for part in records[1:])
    try:
        fi = forecast_input(patient, immunizations, data, conditions=conditions, observations=observations)
    except FhirError:
        return "no full birth date", ()
    return "", to_remind(due_vaccinations(assess(data, fi.patient, on)), on, lead_days)


def _init_worker(setting: str) -> None:
    global _WORKER_DATA
    from esante.cve.schedule import Schedule

    _WORKER_DATA = Schedule(setting).get()


def _due_in_worker(
    batch: list[tuple[str, Records]], on: date, lead_days: int
) -> list[tuple[str, str, tuple[DueVaccination, ...]]]:
    assert _WORKER_DATA is not None
    return [(pid, *due_of(_WORKER_DATA, records, on, lead_days)) for pid, records in batch]


# ------------------------------------------------------------------------------------------------ the job
class ReminderJob:
    """One run at a time per instance; ``workers`` > 1 forecasts in that many processes (CPU-bound engine)."""

    def __init__(
        self,
        store: ResourceStore,
        context: CveContext,
        *,
        batch: int = 200,
        workers: int = 1,
        lead_days: int = DEFAULT_LEAD_DAYS,
        clock: Callable[[], float] = time.time,
        actor: str = "esante cve reminders",
    ) -> None:
        if batch < 1 or workers < 1:
            raise ValueError("batch and workers must be positive")
        self.store = store
        self.context = context
        self.batch = batch
        self.workers = workers
        self.lead_days = lead_days
        self.clock = clock
        self.actor = actor

    async def run(
        self, on: date | None = None, limit: int | None = None, progress: Callable[[int], None] | None = None
    ) -> ReminderReport:
        """Remind every patient with a CVE (at most ``limit`` patients) of the doses due on ``on`` (default:
        the CVE's today). Raises ``ScheduleUnavailable`` when the schedule cannot be loaded."""
        started = time.perf_counter()
        day = on or self.context.today()
        report = ReminderReport(on=day)
        data = await self.context.schedule.aget()
        pool = None
        if self.workers > 1:
            setting = self.context.schedule.setting
            pool = ProcessPoolExecutor(self.workers, initializer=_init_worker, initargs=(setting,))
        try:
            after = ""
            while limit is None or report.patients < limit:
                size = self.batch if limit is None else min(self.batch, limit - report.patients)
                ids, records, reminded = await self._read(after, size)
                if not ids:
                    break
                after = ids[-1]
                dues = await self._forecast(data, pool, ids, records, day)
                await self._write(dues, reminded, report)
                report.patients += len(ids)
                report.batches += 1
                if progress is not None:
                    progress(len(ids))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        report.seconds = time.perf_counter() - started
        await self._audit(report)
        return report

    async def _read(self, after: str, size: int) -> tuple[list[str], dict[str, Records], dict[str, set[str]]]:
        async with self.store.database.read() as conn:
            rows = await conn.fetch(f"{_PATIENTS} ORDER BY 1 LIMIT ?", (after, CONSENT_SYSTEM, after, size))
            ids = [str(r[0]) for r in rows]
            if not ids:
                return [], {}, {}
            marks = ", ".join("?" for _ in ids)
            patients = await conn.fetch(
                f"SELECT res_id, content FROM resource WHERE res_type = 'Patient' AND is_current AND NOT deleted"
                f" AND res_id IN ({marks})",
                ids,
            )
            found: dict[str, Records] = {str(r[0]): (bytes(r[1]), [], [], []) for r in patients if r[1] is not None}
            for position, res_type in enumerate(("Immunization", "Condition", "Observation"), start=1):
                for row in await conn.fetch(_OF_PATIENTS.format(ids=marks), (res_type, *ids)):
                    records = found.get(str(row[0]))
                    if records is not None and row[1] is not None:
                        part = records[position]
                        assert isinstance(part, list)
                        part.append(bytes(row[1]))
            reminded: dict[str, set[str]] = {}
            for row in await conn.fetch(
                f"SELECT patient_id, dose_key FROM cve_reminder WHERE patient_id IN ({marks})", ids
            ):
                reminded.setdefault(str(row[0]), set()).add(str(row[1]))
        return ids, found, reminded

    async def _forecast(
        self,
        data: SupportingData,
        pool: ProcessPoolExecutor | None,
        ids: list[str],
        records: dict[str, Records],
        on: date,
    ) -> list[tuple[str, str, tuple[DueVaccination, ...]]]:
        present = [(pid, records[pid]) for pid in ids if pid in records]
        missing: list[tuple[str, str, tuple[DueVaccination, ...]]] = [
            (pid, "no Patient", ()) for pid in ids if pid not in records
        ]
        done: list[tuple[str, str, tuple[DueVaccination, ...]]]
        if pool is None:
            done = [(pid, *due_of(data, r, on, self.lead_days)) for pid, r in present]
        else:
            loop = asyncio.get_running_loop()
            step = max(1, -(-len(present) // self.workers))
            parts = [present[i : i + step] for i in range(0, len(present), step)]
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, _due_in_worker, p, on, self.lead_days) for p in parts)
            )
            done = [item for part in results for item in part]
        return [*done, *missing]

    async def _write(
        self,
        dues: Sequence[tuple[str, str, tuple[DueVaccination, ...]]],
        reminded: dict[str, set[str]],
        report: ReminderReport,
    ) -> None:
        todo: list[tuple[str, list[tuple[str, DueVaccination]]]] = []
        for pid, reason, items in dues:
            if reason:
                report.skip(reason)
                continue
            report.due += len(items)
            known = reminded.get(pid, set())
            new = [(dose_key(item), item) for item in items]
            fresh = [(key, item) for key, item in new if key not in known]
            report.already += len(new) - len(fresh)
            if fresh:
                todo.append((pid, fresh))
        if not todo:
            return
        now = int(self.clock())
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn)
            for pid, fresh in todo:
                kept = [(key, item) for key, item in fresh if await conn.execute(_INSERT_DOSE, (pid, key, now))]
                report.already += len(fresh) - len(kept)
                if not kept:
                    continue  # another run reminded them meanwhile
                keys = [key for key, _ in kept]
                notified = await notify(
                    session,
                    recipient=f"Patient/{pid}",
                    kind=REMINDER_KIND,
                    text=reminder_text([item for _, item in kept]),
                    key=notification_key(pid, keys),
                    clock=self.clock,
                )
                marks = ", ".join("?" for _ in keys)
                await conn.execute(
                    f"UPDATE cve_reminder SET notification_id = ? WHERE patient_id = ? AND dose_key IN ({marks})",
                    (notified.id, pid, *keys),
                )
                report.reminded += len(kept)
                report.notifications += int(notified.created)
            await session.flush()

    async def _audit(self, report: ReminderReport) -> None:
        event = reminders_event(report, self.actor, int(self.clock() * 1_000_000), self.context.schedule.name)
        async with self.store.database.transaction() as conn:
            await AuditTrail().append(self.store.session(conn), event)
        log.info(
            "cve.reminders_run",
            patients=report.patients,
            notifications=report.notifications,
            doses=report.reminded,
            skipped=report.skipped,
            seconds=round(report.seconds, 1),
        )


def reminders_event(report: ReminderReport, actor: str, recorded: int, schedule: str) -> dict[str, Any]:
    """The run's AuditEvent: DICOM *Patient Record* read by the platform (action E), counts only."""
    details = {
        "date": report.on.isoformat() if report.on else "",
        "schedule": schedule,
        "patients": str(report.patients),
        "notifications": str(report.notifications),
        "doses-reminded": str(report.reminded),
        "skipped": str(report.skipped),
    }
    return {
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": "urn:esante:cve-event", "code": "reminders"}],
        "action": "E",
        "recorded": micros_to_instant(recorded),
        "outcome": "0",
        "outcomeDesc": f"{report.notifications} vaccination reminders for {report.patients} patients",
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "AUT",
                            "display": "author (originator)",
                        }
                    ]
                },
                "who": {"display": actor},
                "requestor": True,
            }
        ],
        "source": {"site": actor, "observer": {"display": actor}},
        "entity": [
            {
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                    "display": "System Object",
                },
                "name": "cve reminders",
                "detail": [{"type": key, "valueString": value} for key, value in details.items()],
            }
        ],
    }
