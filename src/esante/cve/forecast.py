"""A patient's current forecast, for the platform's own jobs (reminders, the vaccination-history document of the
DSP consent): reads the stored record as the platform (no policy: the caller is a job, not a user) and runs the
engine.

    forecast = await patient_forecast(context, session, patient_id)          # Assessment + FHIR + what is due
    for item in forecast.due:                                                  # due / overdue vaccine groups
        print(item.vaccine_group, item.status, item.dose_number, item.recommended, item.past_due)
    forecast.parameters                                                        # the $immds-forecast output

Reads: the Patient (404-free: None when it does not exist), its completed Immunizations, its Conditions and
Observations (all of them — a job acts for the platform; the engine keeps only those that map to a CDSi
observation), each in one indexed statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from esante.cve.context import CveContext
from esante.cve.engine import Assessment, SeriesStatus, assess
from esante.cve.immds_input import ForecastInput, forecast_input
from esante.cve.immds_output import forecast_status, to_parameters
from esante.fhir.store import StoreSession

__all__ = ["DueVaccination", "PatientForecast", "due_vaccinations", "patient_forecast", "patient_records"]

_OF_PATIENT = (
    # p.res_type = r.res_type: the index's leading column (without it PostgreSQL scanned every reference row)
    "SELECT r.content FROM resource r JOIN idx_reference p ON p.rid = r.rid AND p.res_type = r.res_type"
    " AND p.param = 'patient'"
    " AND p.target_type = 'Patient' AND p.target_id = ? WHERE r.res_type = ? AND r.is_current AND NOT r.deleted"
    " ORDER BY r.rid"
)


@dataclass(frozen=True)
class DueVaccination:
    """One vaccine group the patient should receive now or soon (a reminder's subject)."""

    vaccine_group: str
    series_type: str
    status: str  # "due" (from the earliest date) | "overdue" (from the past-due date)
    dose_number: int | None
    earliest: date | None
    recommended: date | None
    past_due: date | None
    latest: date | None
    vaccines: tuple[str, ...]  # recommended CVX codes


@dataclass(frozen=True)
class PatientForecast:
    patient_id: str
    assessment: Assessment
    parameters: dict[str, Any]  # the $immds-forecast output (evaluations + recommendation)
    due: tuple[DueVaccination, ...]


def due_vaccinations(assessment: Assessment) -> tuple[DueVaccination, ...]:
    """The vaccine groups due or overdue on the assessment date (not complete, earliest date reached)."""
    on = assessment.assessment_date
    items: list[DueVaccination] = []
    for group in assessment.vaccine_groups:
        if group.status is not SeriesStatus.NOT_COMPLETE or group.forecast is None:
            continue
        _, status = forecast_status(group, on)
        if status not in ("due", "overdue"):
            continue
        f = group.forecast
        items.append(
            DueVaccination(
                group.vaccine_group,
                group.series_type,
                status,
                f.dose_number,
                f.earliest,
                f.recommended,
                f.past_due,
                f.latest,
                f.recommended_vaccines,
            )
        )
    return tuple(items)


async def _contents(session: StoreSession, res_type: str, patient_id: str) -> list[dict[str, Any]]:
    rows = await session.conn.fetch(_OF_PATIENT, (patient_id, res_type))
    return [orjson.loads(bytes(row[0])) for row in rows if row[0] is not None]


async def patient_records(
    session: StoreSession, patient_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(Patient, Immunizations, Conditions, Observations) as stored; None when the patient does not exist."""
    stored = await session.read("Patient", patient_id)
    if stored is None or stored.deleted or stored.content is None:
        return None
    patient = orjson.loads(stored.content)
    return (
        patient,
        await _contents(session, "Immunization", patient_id),
        await _contents(session, "Condition", patient_id),
        await _contents(session, "Observation", patient_id),
    )


async def patient_forecast(
    context: CveContext, session: StoreSession, patient_id: str, on: date | None = None
) -> PatientForecast | None:
    """The forecast of ``patient_id`` on ``on`` (default: today) with the configured schedule; None when the
    patient does not exist. Raises ``ScheduleUnavailable`` when the schedule cannot be loaded, and a 422
    ``FhirError`` when the patient has no full birth date."""
    records = await patient_records(session, patient_id)
    if records is None:
        return None
    patient, immunizations, conditions, observations = records
    data = await context.schedule.aget()
    fi: ForecastInput = forecast_input(
        patient, immunizations, data, conditions=conditions, observations=observations, strict=False
    )
    assessment = assess(data, fi.patient, on or context.today())
    return PatientForecast(
        patient_id, assessment, to_parameters(assessment, data, fi, context.schedule.name), due_vaccinations(assessment)
    )
