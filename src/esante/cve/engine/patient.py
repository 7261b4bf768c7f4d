"""The patient-side inputs and the engine's outputs (chapter 4.1 "gather necessary data", appendix A)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

__all__ = [
    "AdministeredDose",
    "AntigenForecast",
    "Assessment",
    "DoseEvaluation",
    "EvaluationReason",
    "EvaluationStatus",
    "Forecast",
    "Observation",
    "Patient",
    "SeriesStatus",
    "TargetDoseStatus",
    "VaccineGroupForecast",
]


class EvaluationStatus(StrEnum):
    """Table 3-1."""

    VALID = "Valid"
    NOT_VALID = "Not Valid"
    EXTRANEOUS = "Extraneous"
    SUB_STANDARD = "Sub-standard"


class TargetDoseStatus(StrEnum):
    """Table 3-2."""

    NOT_SATISFIED = "Not Satisfied"
    SATISFIED = "Satisfied"
    SKIPPED = "Skipped"
    UNNECESSARY = "Unnecessary"


class SeriesStatus(StrEnum):
    """Table 3-3."""

    COMPLETE = "Complete"
    CONTRAINDICATED = "Contraindicated"
    IMMUNE = "Immune"
    NOT_COMPLETE = "Not Complete"
    AGED_OUT = "Aged Out"
    NOT_RECOMMENDED = "Not Recommended"


class EvaluationReason(StrEnum):
    """The evaluation reasons of chapter 6, worded as the CDC test cases word them."""

    TOO_YOUNG = "Age: Too Young"
    TOO_OLD = "Age: Too Old"
    GRACE_AGE = "Age: Grace Period"
    TOO_SOON = "Interval: Too Soon"
    GRACE_INTERVAL = "Interval: Grace Period"
    LIVE_VIRUS_CONFLICT = "Live Virus Conflict"
    INADVERTENT = "Inadvertent Vaccine"
    NOT_PREFERABLE_OR_ALLOWABLE = "Not a preferable or allowable vaccine"
    SERIES_COMPLETE = "Series Already Complete"
    EXPIRED = "Expired product"
    DOSE_CONDITION = "Dose condition"


@dataclass(frozen=True, slots=True)
class AdministeredDose:
    """A vaccine dose administered: the product (CVX, optional MVX) and the date; the rest is optional."""

    date_administered: date
    cvx: str
    mvx: str | None = None
    lot_expiration: date | None = None
    dose_condition: bool = False  # e.g. recall, cold-chain break: the dose is sub-standard (table 6-3)
    identifier: str | None = None  # caller's own reference, echoed in evaluations


@dataclass(frozen=True, slots=True)
class Observation:
    """A patient observation (condition, indication, contraindication, immunity evidence) by CDSi code."""

    code: str
    date: dt.date | None = None  # onset; used by intervals "from relevant observation"
    end: dt.date | None = None  # no longer active after this date


@dataclass(frozen=True, slots=True)
class Patient:
    birth_date: date
    gender: str = "Unknown"  # "Female", "Male", "Unknown" (F/M accepted)
    doses: tuple[AdministeredDose, ...] = ()
    observations: tuple[Observation, ...] = ()
    country_of_birth: str | None = None  # None: unknown, taken as matching the schedule's immunity country


@dataclass(frozen=True, slots=True)
class DoseEvaluation:
    """One vaccine dose administered evaluated against one target dose of a patient series."""

    dose_index: int  # position of the dose in Patient.doses
    date_administered: date
    cvx: str
    antigen: str
    series: str
    target_dose: int | None  # 1-based dose number the dose was evaluated against (None: beyond the series)
    status: EvaluationStatus
    reasons: tuple[EvaluationReason, ...] = ()


@dataclass(frozen=True, slots=True)
class Forecast:
    """Forecast dates of a patient series or vaccine group (section 7.5); None where the rule leaves it blank."""

    dose_number: int | None
    earliest: date | None
    recommended: date | None
    past_due: date | None
    latest: date | None
    unadjusted_recommended: date | None = None
    unadjusted_past_due: date | None = None
    recommended_vaccines: tuple[str, ...] = ()  # CVX codes (FORECASTRECVAC-1)


@dataclass(frozen=True, slots=True)
class AntigenForecast:
    """The outcome of one best patient series of an antigen."""

    antigen: str
    series: str
    series_type: str
    series_group: str
    status: SeriesStatus
    forecast: Forecast | None
    reason: str | None
    evaluations: tuple[DoseEvaluation, ...]
    priority_forecast: bool = False  # FORECASTPRIORITY-1
    dose_number: int = 1  # FORECASTDN-1, also for a complete series (it enters FORECASTDN-2)
    guidance: tuple[str, ...] = ()  # FORECASTGUIDANCE-1


@dataclass(frozen=True, slots=True)
class VaccineGroupForecast:
    vaccine_group: str
    series_type: str
    status: SeriesStatus
    forecast: Forecast | None
    reasons: tuple[str, ...]
    antigens: tuple[AntigenForecast, ...]
    guidance: tuple[str, ...] = ()  # administrative guidance for the provider (FORECASTGUIDANCE-1)


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything the engine returns for one patient at one assessment date."""

    assessment_date: date
    vaccine_groups: tuple[VaccineGroupForecast, ...]
    antigens: tuple[AntigenForecast, ...]
    notices: tuple[str, ...] = field(default=())  # indications / contraindications that could not be resolved

    def group(self, name: str) -> tuple[VaccineGroupForecast, ...]:
        return tuple(g for g in self.vaccine_groups if g.vaccine_group.lower() == name.lower())
